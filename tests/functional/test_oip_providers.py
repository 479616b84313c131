"""The Open Inference Protocol through every provider in process: the core entry, AWS Lambda for
each event source (REST v1 single- and multi-value, HTTP API v2, Function URL, ALB single- and
multi-value, a routed direct invoke), functions-framework's real app (GCP) and the real
``function_app.py`` (Azure): the same status, media type and answer everywhere, equal to the engine's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.oip import (
    HEADER_LENGTH,
    INFER,
    SEED,
    SEED_VERSION,
    binary_request,
    json_request,
    read_response,
)
from fixtures.providers_gcp_azure import provider_targets
from fixtures.requests import ROWS

from core.engine import Engine
from model.digits import DEFAULT_OUT as DIGITS_DIR
from model.digits import INPUT, OUTPUT, digits_split, render, through_images

PLAINTEXT_ON = {"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def providers(engine):
    return provider_targets(PLAINTEXT_ON, engine)


@pytest.fixture(scope="module")
def closed_providers(engine, keys):
    return provider_targets(
        {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "WARNING"}, engine
    )


def features(rows):
    return {"features": np.asarray(rows, dtype=np.float32)}


def _everywhere(providers, method, path, headers, body):
    answers = {}
    for name, call in providers.items():
        status, response_headers, response_body = call(method, path, headers, body)
        answers[name] = (status, response_headers.get("content-type"), response_headers, response_body)
    return answers


REQUESTS = {
    "server metadata": ("GET", "/v2", {}, b""),
    "live": ("GET", "/v2/health/live", {}, b""),
    "ready": ("GET", "/v2/health/ready", {}, b""),
    "model metadata": ("GET", f"/v2/models/{SEED}", {}, b""),
    "model metadata, versioned": ("GET", f"/v2/models/{SEED}/versions/{SEED_VERSION}", {}, b""),
    "model ready": ("GET", f"/v2/models/{SEED}/ready", {}, b""),
    "json infer": ("POST", INFER, *json_request(features(ROWS[:3]), request_id="r-1")),
    "json infer, nested": ("POST", INFER, *json_request(features(ROWS[:3]), nested=True)),
    "binary infer": ("POST", INFER, *binary_request(features(ROWS[:4]))),
    "binary in, json out": ("POST", INFER, *binary_request(features(ROWS[:4]), binary_outputs=False)),
    "binary, outputs named": ("POST", INFER, *binary_request(features(ROWS[:2]), outputs=["probability"])),
    "model ready, its name percent-encoded": ("GET", f"/v2/models/{SEED.replace('_', '%5F')}/ready", {}, b""),
    "model ready, a percent in its name": ("GET", f"/v2/models/{SEED.replace('_', '%255F')}/ready", {}, b""),
    "unknown model": ("POST", "/v2/models/other/infer", *json_request(features(ROWS[:1]))),
    "unknown version": ("GET", f"/v2/models/{SEED}/versions/7", {}, b""),
    "unknown OIP route": ("GET", "/v2/repository/index", {}, b""),
    "wrong method": ("GET", INFER, {}, b""),
    "bad shape": (
        "POST",
        INFER,
        {},
        json.dumps(
            {"inputs": [{"name": "features", "shape": [1, 29], "datatype": "FP32", "data": [0] * 29}]}
        ).encode(),
    ),
    "header length past the body": ("POST", INFER, {HEADER_LENGTH: "100000"}, b'{"inputs":[]}'),
}
EXPECTED_STATUS = {
    "model ready, a percent in its name": 404,  # the path decoded once on every provider: "…%5F…"
    "unknown model": 404,
    "unknown version": 404,
    "unknown OIP route": 404,
    "wrong method": 405,
    "bad shape": 400,
    "header length past the body": 400,
}


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_every_provider_answers_alike(providers, engine, case):
    # GIVEN one OIP request WHEN every provider answers it
    answers = _everywhere(providers, *REQUESTS[case])
    # THEN the status, media type and body are the core's on every provider
    reference = answers["core"]
    status = EXPECTED_STATUS.get(case, 200)
    assert {name: a[0] for name, a in answers.items()} == {name: status for name in answers}
    assert {name: a[1] for name, a in answers.items()} == {name: reference[1] for name in answers}
    assert {name: a[3] for name, a in answers.items()} == {name: reference[3] for name in answers}
    if status != 200:
        assert isinstance(json.loads(reference[3])["error"], str)
    if "infer" in case or case.startswith("binary"):
        header, outputs = read_response(reference[2], reference[3])
        count = header["outputs"][0]["shape"][0]
        np.testing.assert_array_equal(
            outputs["probability"], engine.predict(features(ROWS[:count]))["probability"]
        )


def test_every_oip_route_is_403_where_plaintext_is_off(closed_providers):
    for method, path, headers, body in (REQUESTS["server metadata"], REQUESTS["json infer"]):
        answers = _everywhere(closed_providers, method, path, headers, body)
        assert {name: a[0] for name, a in answers.items()} == {name: 403 for name in answers}
        assert {json.loads(a[3])["error"] for a in answers.values()} == {
            "plaintext requests are disabled on this function"
        }


@pytest.fixture(scope="module")
def digit_providers():
    engine = Engine.from_dir(DIGITS_DIR)
    return engine, provider_targets({**PLAINTEXT_ON, "LITEFAAS_MODEL_DIR": str(DIGITS_DIR)}, engine)


@pytest.mark.parametrize("form", ["json", "binary"])
def test_bytes_images_as_base64_json_or_length_prefixed_binary(digit_providers, form):
    # GIVEN the digits model and three digits drawn as PNG files
    engine, providers = digit_providers
    pixels = digits_split().test.inputs[INPUT][:3]
    files = [render(row, 64, "PNG") for row in pixels]
    make = json_request if form == "json" else binary_request
    headers, body = make({INPUT: files})
    expected = engine.predict({INPUT: through_images(pixels, "PNG", 64)})[OUTPUT]
    # WHEN every provider answers the files as OIP BYTES
    for name, (status, _, response_headers, response_body) in _everywhere(
        providers, "POST", "/v2/models/digits_cnn/infer", headers, body
    ).items():
        # THEN each reads them as the function reads images, and answers what the engine answers
        assert status == 200, (name, response_body[:200])
        np.testing.assert_array_equal(read_response(response_headers, response_body)[1][OUTPUT], expected)
