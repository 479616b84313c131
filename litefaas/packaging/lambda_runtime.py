"""An unpacked AWS bundle run as Lambda's Python runtime runs it: ``awslambdaric`` (the runtime
interface client AWS publishes, the loop of Lambda's own python3.12 image) against a Runtime API
served here on 127.0.0.1, in a mount namespace where the function's code, the runtime client and the
interpreter are read-only, only ``/tmp`` is writable, the process is ``nobody`` with no ``HOME``, the
environment is the one Lambda sets, and its address space is the configured memory size.

The Runtime API (``/2018-06-01/runtime``) is the documented one: ``GET invocation/next`` hands out
an event with its ``Lambda-Runtime-*`` headers, ``POST invocation/{id}/response`` and ``…/error``
take its outcome, ``POST init/error`` an initialization failure. Every call the client makes is
recorded, so a test checks what it was asked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from litefaas.packaging.targets import PackageError, Target, pinned, read_pins
from litefaas.packaging.wheels import fetch_wheels

RUNTIME_PACKAGES = ("awslambdaric",)
API_PREFIX = "/2018-06-01/runtime"
HANDLER = "handlers.aws.handler.handler"
NOBODY = 65534
SANDBOX = "/mnt"
SERVICE_FILE = Path(__file__).resolve().parents[2] / "serverless.yml"


def configured_memory_mb(service: Path = SERVICE_FILE) -> int:
    """The function's memory as ``serverless.yml`` configures it (``params.default.memorySize``)."""
    import re

    found = re.search(r"^\s+memorySize:\s*(\d+)", service.read_text(encoding="utf-8"), re.MULTILINE)
    if found is None:
        raise PackageError(f"{service.name} sets no memorySize")
    return int(found.group(1))


TASK_ROOT, RUNTIME_DIR, LANG_DIR = f"{SANDBOX}/task", f"{SANDBOX}/runtime", f"{SANDBOX}/lang"


@dataclasses.dataclass
class Call:
    """One request the runtime client made of the Runtime API."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RuntimeApi:
    """Lambda's Runtime API for one sandboxed process: events in, responses and errors out."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:litefaas") -> None:
        self.function_arn = function_arn
        self.calls: list[Call] = []
        self.responses: dict[str, bytes] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.init_error: dict[str, Any] | None = None
        self.answered = threading.Condition()
        self._events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(
                self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.calls.append(Call("GET", self.path, dict(self.headers), b""))
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._reply(404)
                    return
                request_id, event = api._events.get()
                deadline = int((time.time() + 30) * 1000)
                self._reply(
                    200,
                    event,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                api.calls.append(Call("POST", self.path, dict(self.headers), body))
                parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
                with api.answered:
                    if parts == ["init", "error"]:
                        api.init_error = _json(body)
                    elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
                        api.responses[parts[1]] = body
                    elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
                        api.errors[parts[1]] = _json(body)
                    else:
                        self._reply(404)
                        return
                    api.answered.notify_all()
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Mapping[str, Any], timeout: float = 60.0) -> tuple[str, bytes | dict[str, Any]]:
        """Queue ``event`` and wait for its response (bytes) or its error (the runtime's JSON)."""
        request_id = str(uuid.uuid4())
        self._events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        with self.answered:
            while request_id not in self.responses and request_id not in self.errors:
                left = deadline - time.monotonic()
                if left <= 0 or self.init_error is not None:
                    raise TimeoutError(f"no answer to {request_id} within {timeout:.0f} s")
                self.answered.wait(min(left, 0.5))
        if request_id in self.responses:
            return request_id, self.responses[request_id]
        return request_id, self.errors[request_id]

    def wait_init_error(self, timeout: float = 60.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self.answered:
            while self.init_error is None and time.monotonic() < deadline:
                self.answered.wait(0.5)
        return self.init_error


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return {"raw": body.decode(errors="replace")}
    return document if isinstance(document, dict) else {"value": document}


def runtime_layer(target: Target, destination: Path) -> Path:
    """awslambdaric and its dependencies for ``target``, unpacked into ``destination`` (Lambda's
    ``/var/runtime``: the runtime's own packages, not the function's)."""
    import zipfile

    wheels = fetch_wheels(pinned(RUNTIME_PACKAGES, read_pins()), target, with_dependencies=True)
    destination.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(destination)
    return destination


def lambda_environment(
    api_address: str, memory_mb: int, function_env: Mapping[str, str], handler: str = HANDLER
) -> dict[str, str]:
    """The variables Lambda's python3.12 runtime sets (no ``HOME``), and the function's own."""
    return {
        "PATH": f"{LANG_DIR}/bin:/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": f"{LANG_DIR}/lib:/lib64:/usr/lib64:{RUNTIME_DIR}:{TASK_ROOT}:{TASK_ROOT}/lib",
        "PYTHONPATH": RUNTIME_DIR,
        "LAMBDA_TASK_ROOT": TASK_ROOT,
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
        "_HANDLER": handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_LAMBDA_RUNTIME_API": api_address,
        "AWS_LAMBDA_FUNCTION_NAME": "litefaas",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/litefaas",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        **function_env,
    }


_SANDBOX_SCRIPT = """
set -e
mount -t tmpfs -o mode=755 litefaas-lambda {sandbox}
mkdir -p {lang} {task} {runtime}
for pair in "$LANG_SRC:{lang}" "$TASK_SRC:{task}" "$RUNTIME_SRC:{runtime}"; do
  mount --bind "${{pair%%:*}}" "${{pair#*:}}"
  mount -o remount,bind,ro "${{pair#*:}}"
done
mount -t tmpfs -o size=512m,mode=1777 litefaas-tmp /tmp
cd {task}
exec setpriv --reuid={uid} --regid={uid} --clear-groups --no-new-privs \\
  prlimit --as="$MEMORY_BYTES" -- env -i "$@"
"""


def sandbox_argv(environment: Mapping[str, str], handler: str = HANDLER) -> list[str]:
    """The command that runs awslambdaric in the sandbox (see the module's docstring); the sources
    come from ``LANG_SRC``, ``TASK_SRC``, ``RUNTIME_SRC`` and the limit from ``MEMORY_BYTES``."""
    script = _SANDBOX_SCRIPT.format(
        sandbox=SANDBOX, lang=LANG_DIR, task=TASK_ROOT, runtime=RUNTIME_DIR, uid=NOBODY
    )
    variables = [f"{name}={value}" for name, value in environment.items()]
    command = [f"{LANG_DIR}/bin/python3.12", "-m", "awslambdaric", handler]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *variables, *command]


@dataclasses.dataclass
class LambdaProcess:
    """The sandboxed runtime process and its output."""

    process: subprocess.Popen[bytes]
    started: float

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.kill()
        out, _ = self.process.communicate(timeout=30)
        return out.decode(errors="replace")


def start_lambda(
    task_root: Path,
    runtime_dir: Path,
    python_home: Path,
    api: RuntimeApi,
    function_env: Mapping[str, str],
    *,
    memory_mb: int | None = None,
    handler: str = HANDLER,
) -> LambdaProcess:
    """Start awslambdaric on ``task_root`` (the unpacked bundle) in the sandbox, against ``api``, with
    an address space of ``memory_mb`` (default: the configured memory size)."""
    memory_mb = configured_memory_mb() if memory_mb is None else memory_mb
    environment = lambda_environment(api.address, memory_mb, function_env, handler)
    sources = {
        "LANG_SRC": str(python_home),
        "TASK_SRC": str(task_root),
        "RUNTIME_SRC": str(runtime_dir),
        "MEMORY_BYTES": str(memory_mb * 1024 * 1024),
        "PATH": os.environ.get("PATH", os.defpath),
    }
    argv = sandbox_argv(environment, handler)
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - our own command
        argv, env=sources, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    return LambdaProcess(process, started)


def python_home(python: str) -> Path:
    """The prefix of ``python`` (its ``bin/`` and ``lib/``), mounted where Lambda has ``/var/lang``."""
    result = subprocess.run(  # noqa: S603
        [python, "-c", "import sys; print(sys.base_prefix)"], capture_output=True, text=True, check=True
    )
    return Path(result.stdout.strip())


def can_sandbox() -> str | None:
    """Why the sandbox cannot run here (None: it can): it needs root for a mount namespace."""
    if sys.platform != "linux":
        return "the Lambda sandbox needs Linux mount namespaces"
    if os.geteuid() != 0:
        return "the Lambda sandbox needs root (a mount namespace, then it drops to nobody)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],  # noqa: S607 - util-linux's, on PATH
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount failed: {probe.stderr.decode(errors='replace').strip()}"
    return None


def describe(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def answer_direct(
    bundle_root: Path, target: Target, python: str, body: bytes, function_env: Mapping[str, str], work: Path
) -> tuple[bytes, float]:
    """One request body answered by the unpacked bundle under awslambdaric in the sandbox, as a
    direct invoke; the answer's body and the seconds from the process's start to that answer."""
    import platform
    import shutil as _shutil

    if platform.machine() != target.machine:
        raise PackageError(f"a {target.machine} bundle cannot run on this {platform.machine()} machine")
    _shutil.rmtree(work, ignore_errors=True)
    bundle_root.chmod(0o755)  # a temporary folder is the owner's alone; the sandbox runs as nobody
    runtime = runtime_layer(target, work / "runtime")
    api = RuntimeApi().start()
    sandboxed = start_lambda(bundle_root, runtime, python_home(python), api, function_env)
    try:
        _, result = api.invoke(json.loads(body))
        seconds = time.perf_counter() - sandboxed.started
    except TimeoutError:
        raise PackageError(f"no answer under awslambdaric:\n{sandboxed.stop()[-2000:]}") from None
    finally:
        output = sandboxed.stop()
        api.stop()
        _shutil.rmtree(work, ignore_errors=True)
    if not isinstance(result, bytes):
        raise PackageError(f"awslambdaric reported an error: {result}\n{output[-2000:]}")
    document = json.loads(result)
    answer = document.get("body", "") if isinstance(document, dict) else ""
    return (answer if isinstance(answer, str) else json.dumps(answer)).encode(), seconds
