"""Open Inference Protocol conformance with clients no one here wrote: Triton's ``tritonclient.http``
and KServe's ``InferenceRESTClient``, against every provider's real local host on 127.0.0.1
(serverless-offline for AWS, functions-framework for GCP, the Azure host), for the seed model and
for the digits model's images as ``BYTES``. Every answer equals LiteRT's on the artifact."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil

import numpy as np
import pytest
from fixtures.requests import ROWS

from core.engine import Engine
from core.protocol import PROVIDERS
from litefaas.local.aws import OSLS_BIN
from litefaas.local.process import free_port, group_alive
from litefaas.local.serving import function_env, serving
from litefaas.paths import ROOT
from model.digits import DEFAULT_OUT as DIGITS_DIR
from model.digits import INPUT, OUTPUT, digits_split, render, through_images

tritonhttp = pytest.importorskip("tritonclient.http", reason="the dev extra installs tritonclient[http]")
kserve = pytest.importorskip("kserve", reason="the dev extra installs kserve")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / OSLS_BIN).is_file() or shutil.which("node") is None,
        reason="node and node_modules (osls, serverless-offline) are needed: run `make setup`",
    ),
]

SEED = "breast_cancer_mlp"
DIGITS = "digits_cnn"


def _hosts(model_dir=None):
    base = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    if model_dir is not None:
        base["LITEFAAS_MODEL_DIR"] = str(model_dir)
    base["LITEFAAS_LOG_LEVEL"] = "WARNING"
    env, _ = function_env(base, allow_plaintext=True)
    with serving(PROVIDERS, free_port(span=len(PROVIDERS)), env, timeout=120) as servers:
        yield {server.name: server.spec.base_url for server in servers}
        groups = [server.pid for server in servers]
    assert not any(group_alive(group) for group in groups if group is not None)


@pytest.fixture(scope="module")
def seed_hosts():
    yield from _hosts()


@pytest.fixture(scope="module")
def digit_hosts():
    yield from _hosts(DIGITS_DIR)


def triton(base_url: str):
    """``tritonclient.http`` takes ``host:port/base-path``, without the scheme."""
    return tritonhttp.InferenceServerClient(url=base_url.removeprefix("http://"), connection_timeout=30)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tritonclient_reads_health_and_metadata(seed_hosts, engine, provider):
    # GIVEN a provider's local host WHEN tritonclient asks for health and metadata
    client = triton(seed_hosts[provider])
    try:
        # THEN the server is live and ready, and the metadata is the model's
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(SEED) and client.is_model_ready(SEED, model_version="1.0.0")
        server = client.get_server_metadata()
        assert server["name"] == "litefaas" and "binary_tensor_data" in server["extensions"]
        model = client.get_model_metadata(SEED)
        assert model["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}]
        assert model["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}]
        assert not client.is_model_ready("another_model")
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tritonclient_infers_what_litert_answers(seed_hosts, engine, provider, binary):
    # GIVEN five rows as a tritonclient input, sent as binary data or as JSON
    rows = np.asarray(ROWS[:5], dtype=np.float32)
    tensor = tritonhttp.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [tritonhttp.InferRequestedOutput("probability", binary_data=binary)]
    client = triton(seed_hosts[provider])
    try:
        # WHEN tritonclient infers through the provider's host
        result = client.infer(SEED, [tensor], outputs=wanted, request_id="call-1")
        plain = client.infer(SEED, [tensor])
    finally:
        client.close()
    # THEN the outputs equal LiteRT's, the id is echoed, and asking for nothing gets every output
    expected = engine.predict({"features": rows})["probability"]
    np.testing.assert_array_equal(result.as_numpy("probability"), expected)
    np.testing.assert_array_equal(plain.as_numpy("probability"), expected)
    response = result.get_response()
    assert (response["model_name"], response["id"]) == (SEED, "call-1")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tritonclient_errors_are_oip_errors(seed_hosts, provider):
    # GIVEN a request whose shape breaks the model's signature
    tensor = tritonhttp.InferInput("features", [1, 29], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 29), dtype=np.float32))
    client = triton(seed_hosts[provider])
    try:
        # WHEN tritonclient sends it, and asks for a model the function does not serve
        with pytest.raises(tritonhttp.InferenceServerException) as bad_shape:
            client.infer(SEED, [tensor])
        with pytest.raises(tritonhttp.InferenceServerException) as unknown:
            client.get_model_metadata("another_model")
    finally:
        client.close()
    # THEN tritonclient reads the OIP error messages and statuses
    assert "does not match [N, 30] at axis 1" in bad_shape.value.message()
    assert bad_shape.value.status() == "400"
    assert "unknown model" in unknown.value.message() and unknown.value.status() == "404"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-base64"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tritonclient_sends_images_as_bytes(digit_hosts, provider, binary):
    # GIVEN four digits drawn as PNG files, as tritonclient's BYTES (raw, or base64 text in JSON)
    pixels = digits_split().test.inputs[INPUT][:4]
    files = [render(row, 64, "PNG") for row in pixels]
    values = files if binary else [base64.b64encode(item) for item in files]
    tensor = tritonhttp.InferInput(INPUT, [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    client = triton(digit_hosts[provider])
    try:
        # WHEN tritonclient infers through the provider's host
        result = client.infer(DIGITS, [tensor])
    finally:
        client.close()
    # THEN the function decodes them as it decodes every image, and answers what LiteRT answers
    expected = Engine.from_dir(DIGITS_DIR).predict({INPUT: through_images(pixels, "PNG", 64)})[OUTPUT]
    np.testing.assert_array_equal(result.as_numpy(OUTPUT), expected)


async def _kserve_calls(base_url: str, rows: np.ndarray, binary: bool):
    from kserve import InferenceRESTClient, RESTConfig
    from kserve.protocol.infer_type import InferInput, InferRequest

    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        live = await client.is_server_live(base_url)
        ready = await client.is_server_ready(base_url)
        model_ready = await client.is_model_ready(base_url, SEED)
        tensor = InferInput("features", list(rows.shape), "FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        request = InferRequest(SEED, [tensor], request_id="kserve-1")
        response = await client.infer(base_url, request, model_name=SEED)
    finally:
        await client.close()
    return live, ready, model_ready, response


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_kserve_rest_client_infers_what_litert_answers(seed_hosts, engine, provider, binary):
    # GIVEN three rows WHEN KServe's InferenceRESTClient reads health and infers through the host
    rows = np.asarray(ROWS[:3], dtype=np.float32)
    live, ready, model_ready, response = asyncio.run(_kserve_calls(seed_hosts[provider], rows, binary))
    # THEN it finds the function live and ready, and its answer equals LiteRT's
    assert (live, ready, model_ready) == (True, True, True)
    assert (response.model_name, response.id) == (SEED, "kserve-1")
    output = response.outputs[0]
    assert output.name == "probability"
    np.testing.assert_array_equal(output.as_numpy(), engine.predict({"features": rows})["probability"])
