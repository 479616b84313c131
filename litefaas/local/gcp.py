"""Google Cloud Functions, locally: functions-framework serving ``handlers/gcp/main.py`` on gunicorn."""

from __future__ import annotations

import sys
from pathlib import Path

from litefaas.local.server import LaunchSpec
from litefaas.paths import ROOT

SOURCE = Path("handlers") / "gcp" / "main.py"
TARGET = "predict"


def launch_spec(port: int, env: dict[str, str]) -> LaunchSpec:
    """``functions-framework --target predict`` on 127.0.0.1:``port``, from this Python's environment."""
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
        env=dict(env),
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}",
        description=f"functions-framework (gunicorn) serving {SOURCE.as_posix()}, target {TARGET}",
    )
