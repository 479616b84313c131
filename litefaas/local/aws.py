"""AWS Lambda, locally: serverless-offline on osls, running ``handlers/aws/handler.py`` in one warm Python.

serverless-offline serves the HTTP API events of ``serverless.yml`` on 127.0.0.1 and hands each
request to one long-lived ``python3 invoke.py`` process (never ``--reloadHandler``: a process per
request, and it leaks them). It takes ``python3`` from ``VIRTUAL_ENV``, so the spec points that at
the virtualenv litefaas runs in. Stop it with SIGINT to the node process: it ends its Python child.

``aws_offline_hooks.mjs``, beside this file, is a Node module hook that :func:`launch_spec` registers
(``NODE_OPTIONS=--import …``). It makes serverless-offline honour ``binaryMediaTypes`` (it would
decode a version-2, binary, body as UTF-8 text), with the media types :func:`binary_media_types`
reads from ``serverless.yml``; and it keeps a Python process that died from taking the whole host
down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

from core.protocol import ENCRYPTED_TYPE_V2, PLAINTEXT_TYPE_V2
from litefaas.local.server import LaunchSpec, ServerError
from litefaas.paths import OSLS_BIN, ROOT

__all__ = [
    "OFFLINE_HOOKS",
    "OSLS_BIN",
    "binary_media_types",
    "lambda_port",
    "launch_spec",
    "python_env",
]
OFFLINE_HOOKS = Path(__file__).resolve().with_name("aws_offline_hooks.mjs")
LAMBDA_PORT_OFFSET = 1000
IDLE_SECONDS = 86400
LOCAL_TIMEOUT_S = 30
"""The function's timeout on the local host (serverless.yml's is 10 s). serverless-offline starts a
Python process for each request in flight: 64 starting at once on two cores outlast 10 s, which
in the cloud, where each instance has its own CPU, they do not, and serverless-offline answers a
timeout with a plaintext HTTP 200. Not unlimited: a function whose cold start fails is answered
only by the timeout."""


def lambda_port(port: int) -> int:
    """serverless-offline's second listener (the Lambda invoke API), kept clear of other servers."""
    return port + LAMBDA_PORT_OFFSET if port + LAMBDA_PORT_OFFSET <= 65535 else port - LAMBDA_PORT_OFFSET


def python_env() -> Path:
    """The virtualenv whose ``python3`` runs the handler: this interpreter's, else the project's ``.venv``."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix)
    return ROOT / ".venv"


def binary_media_types(service_file: Path | None = None) -> list[str]:
    """``apiGateway.binaryMediaTypes`` of ``providers/aws.yml`` (serverless.yml's
    ``provider.apiGateway`` when CLOUD is aws); the protocol's two binary media types where the
    file has none (or cannot be read)."""
    fallback = [ENCRYPTED_TYPE_V2, PLAINTEXT_TYPE_V2]
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]

        path = service_file or ROOT / "providers" / "aws.yml"
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        types = document["apiGateway"]["binaryMediaTypes"]
    except (ImportError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return fallback
    if not isinstance(types, list) or not all(isinstance(item, str) for item in types) or not types:
        return fallback
    return list(types)


def _version(package: str) -> str:
    manifest = ROOT / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "?"


def launch_spec(port: int, env: dict[str, str], *, timeout_s: int = LOCAL_TIMEOUT_S) -> LaunchSpec:
    """``osls offline start`` on 127.0.0.1:``port`` (Lambda API on :func:`lambda_port`) with ``env``.

    ``env`` goes on top of this process's environment minus its ``LITEFAAS_*`` variables. The
    function's timeout is ``timeout_s`` (:data:`LOCAL_TIMEOUT_S`) here, not serverless.yml's.
    """
    if not OSLS_BIN.is_file():
        raise ServerError(
            f"{OSLS_BIN.relative_to(ROOT).as_posix()} is missing: run `npm ci` (or `make setup`) first"
        )
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    child = inherited | env
    venv = python_env()
    child["VIRTUAL_ENV"] = str(venv)
    child["PATH"] = os.pathsep.join([str(venv / "bin"), child.get("PATH", os.defpath)])
    child["SLS_TELEMETRY_DISABLED"] = "1"
    child["CLOUD"] = "aws"
    child["OFFLINE_BINARY_MEDIA_TYPES"] = json.dumps(binary_media_types())
    hooks = f"--import={OFFLINE_HOOKS.as_uri()}"
    child["NODE_OPTIONS"] = " ".join(filter(None, [child.get("NODE_OPTIONS", ""), hooks]))
    node = shutil.which("node", path=child["PATH"]) or "node"
    argv = [
        node,
        str(OSLS_BIN),
        "offline",
        "start",
        "--host",
        "127.0.0.1",
        "--httpPort",
        str(port),
        "--lambdaPort",
        str(lambda_port(port)),
        "--terminateIdleLambdaTime",
        str(IDLE_SECONDS),
        f"--param=timeout={timeout_s}",
    ]
    return LaunchSpec(
        argv=argv,
        env=child,
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}",
        description=(
            f"serverless-offline {_version('serverless-offline')} on osls {_version('osls')} "
            f"serving handlers/aws/handler.py (python3 of {venv.name})"
        ),
        kill_signal=signal.SIGINT,
    )
