"""The GCP and Azure bundles as their platforms build and load them, from the bundle alone: a fresh
Python 3.12 virtualenv made from the bundle's requirements.txt (PyPI), then functions-framework as the
buildpack starts it, or the FunctionApp indexed as Flex Consumption's worker indexes it."""

from __future__ import annotations

import json
import os
import signal
import zipfile

import httpx
import numpy as np
import pytest
from fixtures.requests import ENCRYPTED, ROWS, make_keys, seal

from core.engine import Engine
from litefaas.local.process import free_port
from litefaas.packaging import bundle as bundler
from litefaas.packaging import platform_env, proof
from litefaas.packaging.targets import PLATFORM_INSTALLED, Target
from litefaas.paths import ROOT

PYTHON312 = proof.find_python("3.12")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(PYTHON312 is None, reason="no working python3.12 here")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    return {cloud: bundler.build_bundle(Target(cloud), dist) for cloud in ("gcp", "azure")}


def test_gcp_source_folder_answers_as_the_buildpack_runs_it(built, tmp_path):
    # GIVEN the deployed source folder alone and a fresh Python 3.12 virtualenv from its requirements
    source = bundler.unpack(built["gcp"].path, tmp_path / "source")
    requirements = (source / "requirements.txt").read_text()
    assert [line.split("==")[0] for line in requirements.splitlines() if "==" in line] == list(
        PLATFORM_INSTALLED["gcp"]
    )
    venv_python = platform_env.fresh_venv(PYTHON312, tmp_path / "venv", source / "requirements.txt")
    # WHEN functions-framework starts in that folder with the variables Cloud Run sets
    keys = make_keys()
    port = free_port(1)
    process = platform_env.start_buildpack_function(
        source, venv_python, port, {"LITEFAAS_PRIVATE_KEYS": keys.private_json}
    )
    try:
        platform_env.wait_healthy(f"http://127.0.0.1:{port}", process)
        sealed = seal(keys, inputs=ROWS[:3])
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", content=sealed.body, headers=ENCRYPTED)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    # THEN it answers sealed, the model's own output, on the ASGI server deploy selects
    assert answer.status_code == 200, output
    expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:3], dtype=np.float32)})["probability"]
    np.testing.assert_allclose(sealed.open(answer.content)["outputs"], expected, rtol=1e-6)
    assert answer.headers.get("server") == "uvicorn", (
        answer.headers
    )  # the ASGI worker, not gunicorn's sync one


def test_azure_zip_is_laid_out_for_flex_and_indexes_as_the_worker_does(built, tmp_path):
    # GIVEN the zip alone
    names = platform_env.check_flex_layout(built["azure"].path)
    assert "function_app.py" in names
    root = tmp_path / "app"
    with zipfile.ZipFile(built["azure"].path) as archive:
        archive.extractall(root)
    # WHEN its FunctionApp is indexed in a fresh Python 3.12 made from the zip's requirements
    venv_python = platform_env.fresh_venv(PYTHON312, tmp_path / "venv", root / "requirements.txt")
    indexed = platform_env.index_function_app(
        root, venv_python, {"LITEFAAS_PRIVATE_KEYS": make_keys().private_json}
    )
    # THEN the worker finds every route as an anonymous HTTP trigger, and the indexed function answers
    functions = {entry["name"]: entry["bindings"] for entry in indexed["functions"]}
    assert set(functions) == {"predict", "keys", "health", "oip", "ohttp_gateway", "unmatched_route"}
    for bindings in functions.values():
        trigger = next(b for b in bindings if b["direction"] == "IN")
        assert trigger["type"] == "httpTrigger" and trigger["authLevel"] == "ANONYMOUS"
    status, body = indexed["health"]
    assert status == 200 and json.loads(body)["status"] == "ok"
    # AND through the local host, in that environment, a sealed request is answered
    keys = make_keys()
    port = free_port(1)
    host = platform_env.start_local_azure_host(
        root, venv_python, port, {"LITEFAAS_PRIVATE_KEYS": keys.private_json}, ROOT
    )
    try:
        platform_env.wait_healthy(f"http://127.0.0.1:{port}/api", host)
        sealed = seal(keys, inputs=ROWS[:2])
        answer = httpx.post(f"http://127.0.0.1:{port}/api/predict", content=sealed.body, headers=ENCRYPTED)
    finally:
        os.killpg(host.pid, signal.SIGTERM)
        output = host.communicate(timeout=30)[0].decode(errors="replace")
    assert answer.status_code == 200, output[-2000:]
    assert len(sealed.open(answer.content)["outputs"]) == 2


def test_a_misplaced_package_is_refused_for_flex(built, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(built["azure"].path) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            name = item.filename.replace(".python_packages/lib/site-packages/numpy/", "numpy/")
            target.writestr(name, source.read(item))
    with pytest.raises(Exception, match="packages outside"):
        platform_env.check_flex_layout(broken)
