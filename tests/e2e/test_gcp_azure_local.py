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

LAUNCHERS = {
    "gcp": serve_gcp.launch_spec,
    "gcp-wsgi": serve_gcp.launch_spec,
    "azure": serve_azure.launch_spec,
}
"""``gcp`` is functions-framework's ASGI server (gunicorn + uvicorn, as deployed); ``gcp-wsgi`` its
WSGI default (gunicorn threads + Flask), for a user who turns ``FUNCTION_USE_ASGI`` off."""


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
    env.pop("FUNCTION_USE_ASGI", None)
    if request.param == "gcp-wsgi":
        env["FUNCTION_USE_ASGI"] = "false"
    spec = LAUNCHERS[request.param](free_port(), env)
    local = LocalServer(request.param.split("-")[0], spec).start()
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


def test_what_the_server_would_answer_itself_is_the_protocols_json(server):
    import http.client
    import json
    from urllib.parse import urlsplit

    if server.name != "gcp":
        pytest.skip("Azure's host hands the function only its /api routes; the rest is the platform's")
    # GIVEN functions-framework's own routes, and methods its router does not list
    address = urlsplit(server.spec.base_url)
    answers = {}
    # (a lowercase or unknown method never reaches the app: uvicorn's parser answers it 400, not HTTP)
    for method, path in (
        ("GET", "/robots.txt"),
        ("GET", "/favicon.ico"),
        ("TRACE", "/predict"),
        ("PATCH", "/keys"),
    ):
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        try:
            # WHEN each is sent as it is
            connection.request(method, path)
            response = connection.getresponse()
            answers[(method, path)] = (response.status, response.getheader("Content-Type"), response.read())
        finally:
            connection.close()
    # THEN every answer is the protocol's JSON (a 404 or 405 with its code), never a page of the server's
    for (method, path), (status, content_type, body) in answers.items():
        assert status in (404, 405), (method, path, status, body[:100])
        assert content_type is not None, (server.name, method, path, status, body[:100])
        assert content_type.startswith("application/json"), (method, path, content_type)
        assert json.loads(body)["error"]["code"] in {"not_found", "method_not_allowed"}, (method, path)


def test_launch_specs_describe_their_hosts():
    # GIVEN the launch specs for a port
    gcp = serve_gcp.launch_spec(18080, {})
    azure = serve_azure.launch_spec(18081, {})
    # WHEN they are read
    # THEN they say what runs and where it listens: GCP on functions-framework's ASGI server unless told
    assert gcp.argv[1:3] == ["--target", "predict"]
    assert gcp.env["FUNCTION_USE_ASGI"] == "true" and "ASGI" in gcp.description
    wsgi = serve_gcp.launch_spec(18080, {"FUNCTION_USE_ASGI": "0"})
    assert "WSGI" in wsgi.description
    assert gcp.base_url == "http://127.0.0.1:18080"
    assert azure.base_url == "http://127.0.0.1:18081/api"
    if shutil.which("func"):
        assert azure.argv[1:2] == ["start"]
    else:
        assert azure.argv[1:3] == ["-m", "litefaas.local.azure_host"]
        assert "litefaas local Azure host" in azure.description
