"""Azure Functions, locally: Core Tools' ``func start`` when installed, else the litefaas local host."""

from __future__ import annotations

import shutil
import sys

from litefaas.local.server import LaunchSpec
from litefaas.paths import ROOT

APP_DIR = ROOT / "handlers" / "azure"


def launch_spec(port: int, env: dict[str, str]) -> LaunchSpec:
    """``func start`` in ``handlers/azure`` if ``func`` is on PATH, else the litefaas local Azure host."""
    func = shutil.which("func", path=env.get("PATH"))
    if func:
        return LaunchSpec(
            argv=[func, "start", "--port", str(port)],
            env={"FUNCTIONS_WORKER_RUNTIME": "python", **env},
            cwd=APP_DIR,
            base_url=f"http://127.0.0.1:{port}/api",
            description="Azure Functions Core Tools (func start) serving handlers/azure/function_app.py",
        )
    return LaunchSpec(
        argv=[sys.executable, "-m", "litefaas.local.azure_host", "--port", str(port), "--host", "127.0.0.1"],
        env=dict(env),
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}/api",
        description=(
            "litefaas local Azure host (func is not installed) running the real "
            "handlers/azure/function_app.py with azure.functions request and response types"
        ),
    )
