"""Google Cloud Functions, locally: functions-framework serving ``handlers/gcp/main.py`` on gunicorn,
with one uvicorn worker (ASGI, as deployed) unless ``FUNCTION_USE_ASGI`` says otherwise (then
gunicorn's threads and Flask, the framework's WSGI default)."""

from __future__ import annotations

import sys
from pathlib import Path

from litefaas.local.server import LaunchSpec
from litefaas.paths import ROOT

SOURCE = Path("handlers") / "gcp" / "main.py"
TARGET = "predict"


ASGI_VARIABLE = "FUNCTION_USE_ASGI"
"""functions-framework's switch to its ASGI server (its ``--asgi`` flag); ``litefaas deploy`` sets it."""


def launch_spec(port: int, env: dict[str, str]) -> LaunchSpec:
    """``functions-framework --target predict`` on 127.0.0.1:``port``, from this Python's environment;
    ASGI unless ``env`` sets ``FUNCTION_USE_ASGI`` to something false."""
    env = dict(env)
    env.setdefault(ASGI_VARIABLE, "true")
    asgi = env[ASGI_VARIABLE].strip().lower() in {"1", "true", "t", "yes", "y", "on"}
    server = "ASGI: gunicorn + uvicorn" if asgi else "WSGI: gunicorn threads + Flask"
    executable = Path(sys.executable).parent / "functions-framework"
    argv = [
        str(executable),
        "--target",
        TARGET,
        "--source",
        str(SOURCE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return LaunchSpec(
        argv=argv,
        env=env,
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}",
        description=f"functions-framework ({server}) serving {SOURCE.as_posix()}, target {TARGET}",
    )
