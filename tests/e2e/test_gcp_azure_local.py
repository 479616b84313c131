"""functions-framework and the Azure local host, started for real on 127.0.0.1 and called with the client."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from fixtures.requests import ROWS, make_keys

from core.engine import Engine
from litefaas.client import Client, PlaintextDisabledError
from litefaas.local import azure as serve_azure
from litefaas.local import gcp as serve_gcp
from litefaas.local.process import free_port, group_alive
from litefaas.local.server import LocalServer

pytestmark = pytest.mark.e2e

LAUNCHERS = {"gcp": serve_gcp.launch_spec, "azure": serve_azure.launch_spec}


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def engine(artifact_dir):
    return Engine.from_dir(artifact_dir)


@pytest.fixture(scope="module", params=sorted(LAUNCHERS))
def server(request, keys):
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    env["LITEFAAS_PRIVATE_KEYS"] = keys.private_json
    spec = LAUNCHERS[request.param](free_port(), env)
    local = LocalServer(request.param, spec).start()
    try:
        local.wait_healthy(timeout=60)
        yield local
    finally:
        group = local.pid
        local.stop()
        assert group is not None and not group_alive(group), f"{request.param} left a process behind"


def test_encrypted_predictions_match_the_local_engine(server, keys, engine):
    # GIVEN a provider's local server holding a fresh key ring
    # WHEN the client seals batches of several sizes to its published key
    with Client(server.spec.base_url) as client:
        assert client.key().kid == keys.public["keys"][0]["kid"]
        results = [client.predict(ROWS[:size]) for size in (1, 7, 32)]
    # THEN every answer opens to the local engine's outputs for the same rows
    for size, result in zip((1, 7, 32), results, strict=True):
        expected = engine.predict({"features": np.asarray(ROWS[:size], dtype=np.float32)})["probability"]
        np.testing.assert_array_equal(result.outputs, expected)
        assert result.model == engine.manifest.public_info()


def test_plaintext_is_refused_and_health_is_public(server, engine):
    # GIVEN the same server, started without LITEFAAS_ALLOW_PLAINTEXT
    with Client(server.spec.base_url, plaintext=True) as client:
        # WHEN a plaintext request and a health check are sent
        with pytest.raises(PlaintextDisabledError):
            client.predict(ROWS[:1])
        health = client.health()
    # THEN plaintext is refused with 403 and health names the model
    assert health["model"].items() >= engine.manifest.public_info().items()


def test_launch_specs_describe_their_hosts():
    # GIVEN the launch specs for a port
    gcp = serve_gcp.launch_spec(18080, {})
    azure = serve_azure.launch_spec(18081, {})
    # WHEN they are read
    # THEN they say what runs and where it listens
    assert gcp.argv[1:3] == ["--target", "predict"]
    assert gcp.base_url == "http://127.0.0.1:18080"
    assert azure.base_url == "http://127.0.0.1:18081/api"
    if shutil.which("func"):
        assert azure.argv[1:2] == ["start"]
    else:
        assert azure.argv[1:3] == ["-m", "litefaas.local.azure_host"]
        assert "litefaas local Azure host" in azure.description
