"""The AWS bundle as Lambda runs it: awslambdaric's loop against a Runtime API this test serves, the
bundle read-only, only /tmp writable, the process nobody with no HOME, Lambda's environment, and an
address space of the configured memory size (litefaas.packaging.lambda_runtime)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.aws_events import KINDS, aws_event, aws_response
from fixtures.requests import ENCRYPTED, ROWS, make_keys, seal

from core.engine import Engine
from litefaas.packaging import bundle as bundler
from litefaas.packaging import lambda_runtime, proof
from litefaas.packaging.targets import Target
from litefaas.paths import BUILD

PYTHON312 = proof.find_python("3.12")
WHY_NOT = lambda_runtime.can_sandbox() or (None if PYTHON312 else "no working python3.12 here")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]
SANDBOX_ROOT = BUILD / "lambda-sandbox"  # not under /tmp: the sandbox mounts its own /tmp


@pytest.fixture(scope="module")
def lambda_dirs():
    """The unpacked x86_64 AWS bundle, awslambdaric's layer and the interpreter's prefix."""
    shutil.rmtree(SANDBOX_ROOT, ignore_errors=True)
    SANDBOX_ROOT.mkdir(parents=True)
    built = bundler.build_bundle(Target("aws"), SANDBOX_ROOT / "dist")
    task = bundler.unpack(built.path, SANDBOX_ROOT / "task")
    runtime = lambda_runtime.runtime_layer(Target("aws"), SANDBOX_ROOT / "runtime")
    yield task, runtime, lambda_runtime.python_home(PYTHON312)
    shutil.rmtree(SANDBOX_ROOT, ignore_errors=True)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def the_python(sandboxed: lambda_runtime.LambdaProcess) -> int:
    """The pid of the interpreter inside the sandbox (unshare's child, exec'd through setpriv)."""
    pid = sandboxed.process.pid
    for _ in range(5):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            return pid
        pid = int(children[0])
    return pid


def test_every_event_shape_answers_sealed_under_awslambdaric_read_only_as_nobody(lambda_dirs):
    # GIVEN the bundle under Lambda's runtime client, as Lambda's sandbox holds it
    task, runtime, home = lambda_dirs
    keys = make_keys()
    api = lambda_runtime.RuntimeApi().start()
    sandboxed = lambda_runtime.start_lambda(
        task, runtime, home, api, {"LITEFAAS_PRIVATE_KEYS": keys.private_json}
    )
    expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:4], dtype=np.float32)})["probability"]
    try:
        # WHEN each event source's event of a sealed request arrives through the Runtime API
        answers = {}
        for kind in KINDS:
            sealed = seal(keys, inputs=ROWS[:4])
            request_id, result = api.invoke(aws_event(kind, "POST", "/predict", ENCRYPTED, sealed.body))
            assert isinstance(result, bytes), result
            status, _, body = aws_response(kind, json.loads(result))
            answers[kind] = (status, sealed.open(body)["outputs"])
            if kind == "direct":
                direct_id = request_id
            if kind == KINDS[0]:
                python = the_python(sandboxed)
                status_fields = proc_status(python)
                environ = dict(
                    item.split("=", 1)
                    for item in Path(f"/proc/{python}/environ").read_text().split("\0")
                    if "=" in item
                )
                mounts = Path(f"/proc/{python}/mounts").read_text()
        # THEN every answer decrypts to the model's own output
        for kind, (status, outputs) in answers.items():
            assert status == 200, kind
            np.testing.assert_allclose(outputs, expected, rtol=1e-6)
        # AND the runtime client asked only what the Runtime API offers, once per event
        paths = [(call.method, call.path.rsplit("/", 1)[-1]) for call in api.calls]
        assert paths.count(("POST", "response")) == len(KINDS) and not api.errors and api.init_error is None
        assert set(paths) == {("GET", "next"), ("POST", "response")}
        # AND it ran as Lambda runs it: nobody, no HOME, Lambda's variables, its code read-only
        assert status_fields["Uid"].split()[0] == "65534"
        assert "HOME" not in environ
        assert environ["_HANDLER"] == lambda_runtime.HANDLER and environ["LAMBDA_TASK_ROOT"] == "/mnt/task"
        memory_mb = lambda_runtime.configured_memory_mb()
        assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == str(memory_mb) == "512"
        (address_space,) = [
            line
            for line in Path(f"/proc/{python}/limits").read_text().splitlines()
            if "address space" in line
        ]
        assert address_space.split()[3:5] == [str(memory_mb * 1024 * 1024)] * 2
        read_only = {line.split()[1] for line in mounts.splitlines() if " ro," in f" {line.split()[3]},"}
        assert {"/mnt/task", "/mnt/runtime", "/mnt/lang"} <= read_only
    finally:
        output = sandboxed.stop()
        api.stop()
    # AND the function's lines carry the request ids Lambda gave
    requests = [json.loads(line) for line in output.splitlines() if '"event":"request"' in line]
    assert {line["request_id"] for line in requests} == set(api.responses)
    # AND the trace is the front door's X-Amzn-Trace-Id where the event has one, else the invocation's
    # X-Ray trace (Lambda-Runtime-Trace-Id, which the runtime client puts in _X_AMZN_TRACE_ID)
    (direct,) = [line for line in requests if line["request_id"] == direct_id]
    assert direct["trace_id"] == "5759e988bd862e3fe1be46a994272793"


@pytest.mark.parametrize(
    ("handler", "env", "error_type", "says"),
    [
        ("handlers.aws.nothing.handler", "keys", "Runtime.ImportModuleError", "handlers.aws.nothing"),
        ("handlers.aws.handler.nothing", "keys", "Runtime.HandlerNotFound", "nothing"),
        (lambda_runtime.HANDLER, "none", "ConfigError", "LITEFAAS_PRIVATE_KEYS"),
    ],
)
def test_a_wrong_handler_or_a_missing_key_is_lambdas_init_error(lambda_dirs, handler, env, error_type, says):
    task, runtime, home = lambda_dirs
    function_env = {"LITEFAAS_PRIVATE_KEYS": make_keys().private_json} if env == "keys" else {}
    api = lambda_runtime.RuntimeApi().start()
    sandboxed = lambda_runtime.start_lambda(task, runtime, home, api, function_env, handler=handler)
    try:
        error = api.wait_init_error(60)
        code = sandboxed.process.wait(30)
    finally:
        output = sandboxed.stop()
        api.stop()
    assert error is not None, output
    assert error["errorType"] == error_type and says in error["errorMessage"], error
    assert code != 0
    assert "private_key" not in json.dumps(error)


def test_the_memory_limit_holds(lambda_dirs):
    # GIVEN an address space far below what the interpreter and LiteRT need
    task, runtime, home = lambda_dirs
    api = lambda_runtime.RuntimeApi().start()
    sandboxed = lambda_runtime.start_lambda(
        task, runtime, home, api, {"LITEFAAS_PRIVATE_KEYS": make_keys().private_json}, memory_mb=48
    )
    # WHEN it starts THEN it cannot come up, and no event is ever answered
    try:
        code = sandboxed.process.wait(60)
    finally:
        sandboxed.stop()
        api.stop()
    assert code != 0 and not api.responses
