"""The GCP and Azure bundles as their platforms build and load them, from the bundle alone.

- **GCP, as the Python buildpack builds it**: the deployed source folder (the bundle's files) and a
  fresh Python 3.12 virtualenv made from its ``requirements.txt`` (PyPI), then ``functions-framework``
  started from that folder with the variables Cloud Run sets (``PORT``, ``K_SERVICE``, ``K_REVISION``,
  ``K_CONFIGURATION``, ``FUNCTION_TARGET``) and the ASGI server ``litefaas deploy`` selects.
- **Azure, as Flex Consumption loads it**: the zip's layout as one-deploy expects it
  (``function_app.py`` and ``host.json`` at the root, the packages under
  ``.python_packages/lib/site-packages``, a ``requirements.txt``), and the ``FunctionApp`` indexed in a
  fresh Python 3.12 virtualenv made from the zip's requirements, as the worker indexes it (its
  functions, routes and bindings), with one request answered by the indexed function, and sealed
  requests answered through litefaas's local Functions host run in that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path

from litefaas.packaging.targets import AZURE_SITE_PACKAGES, PackageError

PIP_TIMEOUT_S = 600


def fresh_venv(python: str, where: Path, requirements: Path) -> Path:
    """A new virtualenv at ``where`` with ``requirements`` installed from the package index;
    its interpreter."""
    subprocess.run([python, "-m", "venv", str(where)], check=True, capture_output=True)  # noqa: S603
    interpreter = where / "bin" / "python"
    installed = subprocess.run(  # noqa: S603
        [
            str(interpreter),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    if installed.returncode != 0:
        tail = "\n".join(installed.stderr.strip().splitlines()[-8:])
        raise PackageError(f"pip could not install {requirements.name} into a fresh Python:\n{tail}")
    return interpreter


def cloud_run_environment(port: int, function_env: Mapping[str, str]) -> dict[str, str]:
    """What Cloud Run sets for a function (and what ``litefaas deploy`` adds: the ASGI server)."""
    return {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "K_SERVICE": "litefaas",
        "K_REVISION": "litefaas-00001-abc",
        "K_CONFIGURATION": "litefaas",
        "FUNCTION_TARGET": "predict",
        "FUNCTION_SIGNATURE_TYPE": "http",
        "FUNCTION_USE_ASGI": "true",
        "HOME": "/home/www-data",
        **function_env,
    }


def start_buildpack_function(
    source: Path, venv_python: Path, port: int, function_env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``functions-framework`` from the venv, in the source folder, on 127.0.0.1:``port``."""
    framework = venv_python.parent / "functions-framework"
    env = cloud_run_environment(port, function_env)
    return subprocess.Popen(  # noqa: S603
        [str(framework), "--target", env["FUNCTION_TARGET"], "--host", "127.0.0.1", "--port", str(port)],
        cwd=source,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until ``GET /health`` answers 200; :class:`PackageError` if the process exits first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise PackageError(f"the function exited with {process.returncode}:\n{out[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    raise PackageError(f"{base_url}/health did not answer within {timeout:.0f} s")


FLEX_ROOT_FILES = ("function_app.py", "host.json", "requirements.txt")


def check_flex_layout(bundle: Path) -> list[str]:
    """The zip's names, refused (:class:`PackageError`) unless laid out as Flex's one-deploy expects."""
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        host = json.loads(archive.read("host.json")) if "host.json" in names else {}
    missing = [name for name in FLEX_ROOT_FILES if name not in names]
    if missing:
        raise PackageError(f"{bundle.name}: Flex Consumption needs {', '.join(missing)} at the zip's root")
    site = f"{AZURE_SITE_PACKAGES}/"
    stray = [
        n for n in names if "/" in n and not n.startswith((site, "model/", "core/")) and n != "host.json"
    ]
    if stray:
        raise PackageError(f"{bundle.name}: packages outside {site}: {', '.join(stray[:5])}")
    if host.get("version") != "2.0":
        raise PackageError(f"{bundle.name}: host.json must be version 2.0 (the Functions v4 host)")
    return names


INDEX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    root = sys.argv[1]
    sys.path[:0] = [root, root + "/.python_packages/lib/site-packages"]  # as the worker extends it
    import azure.functions as func
    import function_app

    functions = function_app.app.get_functions()  # once: the worker's one indexing
    indexed = []
    for function in functions:
        bindings = json.loads(function.get_function_json())["bindings"]  # what the worker sends the host
        indexed.append({"name": function.get_function_name(), "bindings": bindings})
    health = next(f for f in functions if f.get_function_name() == "health")
    request = func.HttpRequest("GET", "https://fn.azurewebsites.net/api/health", headers={}, body=b"")

    class Context:
        invocation_id = "index-check"
        trace_context = None

    answer = health.get_user_function()(req=request, context=Context())
    print(json.dumps({"functions": indexed, "health": [answer.status_code, answer.get_body().decode()]}))
    """
)


def index_function_app(root: Path, venv_python: Path, function_env: Mapping[str, str]) -> dict[str, object]:
    """Index the unzipped app's ``FunctionApp`` in the fresh env, as the Python worker does, and
    answer ``GET /api/health`` with the indexed function."""
    result = subprocess.run(  # noqa: S603
        [str(venv_python), "-c", INDEX_SCRIPT, str(root)],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath, "LANG": "C.UTF-8", **function_env},
        cwd=root,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise PackageError(f"the FunctionApp did not index in a fresh Python:\n{tail}")
    document: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def start_local_azure_host(
    root: Path, venv_python: Path, port: int, function_env: Mapping[str, str], repo: Path
) -> subprocess.Popen[bytes]:
    """litefaas's local Functions host (werkzeug, installed into the fresh env for it) serving the
    unzipped app on 127.0.0.1:``port``, its packages on the path where the worker puts them."""
    installed = subprocess.run(  # noqa: S603
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"werkzeug=={_pin('werkzeug')}",
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    if installed.returncode != 0:
        raise PackageError(f"pip could not install werkzeug for the local host:\n{installed.stderr[-1000:]}")
    path = os.pathsep.join([str(root), str(root / AZURE_SITE_PACKAGES), str(repo)])
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "PYTHONPATH": path, **function_env}
    return subprocess.Popen(  # noqa: S603
        [str(venv_python), "-m", "litefaas.local.azure_host", "--app-dir", str(root), "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _pin(name: str) -> str:
    from litefaas.packaging.targets import read_pins

    return read_pins()[name]
