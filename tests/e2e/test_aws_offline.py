"""The Lambda handler behind serverless-offline on 127.0.0.1: real HTTP, one warm Python, stopped by PID."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.binary import ENCRYPTED_V2, features, seal_v2
from fixtures.requests import ENCRYPTED, PLAINTEXT, ROWS, make_keys, seal

from core.engine import Engine
from litefaas.client import Client, InvalidPayloadError, PlaintextDisabledError
from litefaas.local.aws import (
    OFFLINE_HOOKS,
    OSLS_BIN,
    binary_media_types,
    lambda_port,
    launch_spec,
)
from litefaas.local.process import free_port
from litefaas.paths import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / OSLS_BIN).is_file() or not (ROOT / "node_modules" / "serverless-offline").is_dir(),
        reason="node_modules is missing (osls, serverless-offline): run `npm ci` or `make setup`",
    ),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH"),
]

HEALTH_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15
FUNCTION_NAME = "litefaas-dev-predict"


class OfflineServer:
    """serverless-offline started from ``launch_spec`` in a process group of its own."""

    def __init__(self, env: dict[str, str], log_path: Path, **options: int) -> None:
        self.port = free_port()
        self.spec = launch_spec(self.port, env, **options)
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.spec.argv,
                cwd=self.spec.cwd,
                env=self.spec.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serverless-offline exited early:\n{self.log}"
            try:
                if httpx.get(f"{self.spec.base_url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        pytest.fail(f"no /health within {HEALTH_TIMEOUT_S} s:\n{self.log}")

    def group(self) -> dict[int, str]:
        """Live processes of the server's process group: pid -> command line."""
        listing = subprocess.run(
            ["ps", "-ww", "-A", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True
        ).stdout
        members = {}
        for line in listing.splitlines():
            pid, pgid, stat, *args = line.split(maxsplit=3)
            if int(pgid) == self.process.pid and not stat.startswith("Z"):
                members[int(pid)] = " ".join(args)
        return members

    def children(self, pid: int) -> list[int]:
        listing = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
        return [int(line) for line in listing.stdout.split()]

    def stop(self) -> bool:
        """SIGINT to the node process, SIGKILL to the group after a timeout; True if SIGINT sufficed."""
        if self.process.poll() is None:
            self.process.send_signal(self.spec.kill_signal)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill_group()
            self.process.wait()
            return False
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.group() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.group():
            self.kill_group()
            return False
        return True

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def function_env(keys, **extra: str) -> dict[str, str]:
    # explicit values, so that a developer's .env (useDotenv) cannot change what is tested
    return {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "0", **extra}


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def engine():
    return Engine.from_dir()


@pytest.fixture(scope="module")
def server(keys, tmp_path_factory):
    started = OfflineServer(function_env(keys), tmp_path_factory.mktemp("aws") / "offline.log")
    try:
        started.wait_healthy()
        yield started
    finally:
        started.stop()


def test_launch_spec_binds_loopback_and_stops_with_sigint(server):
    argv = server.spec.argv
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--reloadHandler" not in argv
    assert server.spec.kill_signal == signal.SIGINT
    assert Path(argv[0]).name == "node"
    assert server.spec.base_url.startswith("http://127.0.0.1:")


def test_encrypted_predictions_equal_the_engine(server, engine):
    # GIVEN serverless-offline serving the handler with a fresh key ring
    with Client(server.spec.base_url) as client:
        # WHEN a client seals batches to the key set it fetched
        assert client.health()["status"] == "ok"
        for rows in (ROWS[:1], ROWS[:5], (ROWS * 8)[:64]):
            result = client.predict(rows)
            # THEN the decrypted outputs are the engine's own
            expected = engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"]
            np.testing.assert_array_equal(result.outputs, expected)
            assert result.model == engine.manifest.public_info()


def test_protocol_errors_over_http(server, keys):
    base = server.spec.base_url
    with Client(base, plaintext=True) as client, pytest.raises(PlaintextDisabledError):
        client.predict(ROWS[:1])
    answer = httpx.post(f"{base}/predict", content=b'{"inputs": [[1]]}', headers=PLAINTEXT)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "plaintext_disabled")
    answer = httpx.post(f"{base}/predict", content=b"not json", headers=ENCRYPTED)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_envelope")
    assert httpx.get(f"{base}/keys").json() == keys.public


def test_direct_invoke_through_the_lambda_api(server, keys, engine):
    # GIVEN the envelope as the whole event, sent to serverless-offline's Lambda Invoke API
    sealed = seal(keys, inputs=ROWS[:2])
    url = f"http://127.0.0.1:{lambda_port(server.port)}/2015-03-31/functions/{FUNCTION_NAME}/invocations"
    answer = httpx.post(url, content=sealed.body)
    # THEN the payload is {statusCode, headers, body} with the sealed answer as an object
    assert answer.status_code == 200
    payload = json.loads(answer.content)
    assert payload["statusCode"] == 200
    outputs = sealed.open(payload["body"])["outputs"]
    expected = engine.predict({"features": np.asarray(ROWS[:2], dtype=np.float32)})["probability"]
    assert outputs == expected.tolist()


def test_version_2_binary_bodies_reach_the_handler_intact(server, engine):
    # GIVEN the launch spec's hook, which makes serverless-offline honour binaryMediaTypes
    assert f"--import={OFFLINE_HOOKS.as_uri()}" in server.spec.env["NODE_OPTIONS"]
    assert json.loads(server.spec.env["OFFLINE_BINARY_MEDIA_TYPES"]) == binary_media_types()
    assert {"application/litefaas", "application/vnd.litefaas.tensors"} <= set(binary_media_types())
    rows = np.asarray((ROWS * 40)[:1024], dtype=np.float32)  # every byte value shows up somewhere
    with Client(server.spec.base_url) as client:
        # WHEN sealed version-2 bodies (raw bytes, not UTF-8) go through the HTTP API
        for batch in (rows[:1], rows):
            result = client.predict_tensors({"features": batch})
            # THEN the handler opened them, and the sealed binary answer (isBase64Encoded) came back as bytes
            expected = engine.predict({"features": batch})["probability"]
            np.testing.assert_array_equal(result["probability"], expected)
        # AND a 224x224x3 float32 tensor arrives whole: the model refuses its shape once it has opened it
        image = np.random.default_rng(1).random((1, 224, 224, 3), dtype=np.float32)
        with pytest.raises(InvalidPayloadError) as caught:
            client.predict_tensors({"features": image})
    assert caught.value.encrypted and "shape" in caught.value.message


def test_one_warm_python_process(server):
    for _ in range(20):
        assert httpx.get(f"{server.spec.base_url}/health").status_code == 200
    pythons = [
        args for args in server.group().values() if "invoke.py" in args and not args.startswith("/bin/sh")
    ]
    assert len(pythons) == 1, pythons


BURST = 64


def test_a_burst_of_cold_starts_is_answered_not_timed_out(server, keys, engine):
    """GIVEN the host after its one warm process (the test above) WHEN 64 sealed requests arrive at
    once, so that serverless-offline starts a Python process for each on this small machine
    THEN every one is the function's sealed answer: none is cut off by Lambda's timeout, which the
    local host would answer with a plaintext HTTP 200."""
    sealed = [seal(keys, inputs=ROWS[index % len(ROWS) : index % len(ROWS) + 1]) for index in range(BURST)]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            url = f"{server.spec.base_url}/predict"
            return await asyncio.gather(
                *(client.post(url, content=s.body, headers=ENCRYPTED) for s in sealed)
            )

    answers = asyncio.run(burst())
    assert [answer.status_code for answer in answers] == [200] * BURST
    for index, (request, answer) in enumerate(zip(sealed, answers, strict=True)):
        assert answer.headers["content-type"].startswith(ENCRYPTED["Content-Type"]), answer.text[:200]
        row = ROWS[index % len(ROWS)]
        expected = engine.predict({"features": np.asarray([row], dtype=np.float32)})["probability"]
        assert request.open(answer.content)["outputs"] == expected.tolist()


def test_sigint_to_node_stops_everything(keys, tmp_path):
    # GIVEN a running server that has answered a request (so its Python child exists)
    server = OfflineServer(function_env(keys), tmp_path / "offline.log")
    try:
        server.wait_healthy()
        descendants = server.children(server.process.pid)
        descendants += [grandchild for child in descendants for grandchild in server.children(child)]
        assert descendants, "the handler process should be running"
    finally:
        # WHEN the node process alone gets SIGINT
        clean = server.stop()
    # THEN it exits by itself and leaves no process behind
    assert clean, f"SIGKILL was needed:\n{server.log}"
    assert server.process.returncode is not None
    assert server.group() == {}
    listing = subprocess.run(
        ["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, descendants))], capture_output=True, text=True
    ).stdout
    assert [line for line in listing.splitlines() if not line.split()[1].startswith("Z")] == []


def test_a_python_process_that_dies_mid_event_fails_only_its_invocation(keys, engine, tmp_path):
    # GIVEN serverless-offline with a short function timeout, with its runner guard, answering
    started = OfflineServer(function_env(keys), tmp_path / "offline.log", timeout_s=3)
    try:
        assert f"--import={OFFLINE_HOOKS.as_uri()}" in started.spec.env["NODE_OPTIONS"]
        started.wait_healthy()
        rows = np.asarray(ROWS[:2], dtype=np.float32)
        expected = engine.predict({"features": rows})["probability"]
        with Client(started.spec.base_url) as client:
            np.testing.assert_array_equal(client.predict(rows).outputs, expected)
            runtimes = [pid for pid, args in started.group().items() if args.startswith("python3 -u ")]
            assert len(runtimes) == 1, started.group()
            # WHEN the Lambda instance's Python process stops reading (an event larger than a pipe
            # holds is being written to it) and dies
            os.kill(runtimes[0], signal.SIGSTOP)
            large = seal_v2(keys, tensors=features((ROWS * 40)[:1024])).body  # ~170 KB as an event
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    httpx.post,
                    f"{started.spec.base_url}/predict",
                    content=large,
                    headers=ENCRYPTED_V2,
                    timeout=30,
                )
                time.sleep(1)
                os.kill(runtimes[0], signal.SIGKILL)
                answer = pending.result()
            # THEN that event is answered by the function's timeout, and the host is still there
            assert started.process.poll() is None, started.log
            assert "timeout" in answer.text.lower(), answer.text
            # AND the next request is served by a new process, rightly
            np.testing.assert_array_equal(client.predict(rows).outputs, expected)
        assert runtimes[0] not in started.group()
    finally:
        started.stop()


RUNNER = ROOT / "node_modules/serverless-offline/src/lambda/handler-runner/python-runner/PythonRunner.js"
APPLY_HOOK = """
const [hook, target] = process.argv.slice(1)
const { load } = await import(hook)
const { readFile } = await import("node:fs/promises")
const result = await load(target, {}, async (url) => ({ format: "module", source: await readFile(new URL(url)) }))
process.stdout.write(typeof result.source === "string" ? result.source : "")
"""


def test_the_runner_guard_applies_to_the_installed_serverless_offline():
    """A Python process that dies while an event is written to it makes that write fail with EPIPE
    (a race under load; make reliability kills one mid-load): the guard's listener must be in
    serverless-offline's runner, else that one failure stops the whole host."""
    # GIVEN the installed serverless-offline's Python runner, loaded through the guard's hook
    patched = subprocess.run(
        ["node", "--input-type=module", "-e", APPLY_HOOK, OFFLINE_HOOKS.as_uri(), RUNNER.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # THEN its Python process's stdin has an error listener, set as the process is spawned
    original = RUNNER.read_text(encoding="utf-8")
    assert patched.stderr == "" and 'stdin.on("error"' not in original
    assert patched.stdout.count('this.#handlerProcess.stdin.on("error", () => {})') == 1
    assert patched.stdout.index("stdin.on(") < patched.stdout.index("stdout.readline = createInterface")
    assert patched.stdout.replace('this.#handlerProcess.stdin.on("error", () => {})\n\n    ', "") == original
