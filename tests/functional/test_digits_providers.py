"""digits_cnn served through every provider in process (the core entry, AWS Lambda's HTTP API and
direct invoke, GCP's functions-framework, Azure's function app): PNG, JPEG and WebP files sent
as ``BYTES`` read as the digits they show, and a corrupt file is a sealed 422 naming its row."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from fixtures.aws_events import aws_event, aws_response
from fixtures.binary import ENCRYPTED_V2, seal_v2
from fixtures.providers_gcp_azure import (
    azure_call,
    azure_function_app,
    function_environment,
    gcp_call,
    gcp_client,
)
from fixtures.requests import make_keys

from core.app import App
from core.config import Settings
from core.engine import Engine
from model.digits import DEFAULT_OUT, INPUT, LABELS, OUTPUT, digits_split, render, through_images

FORMATS = ("PNG", "JPEG", "WEBP")


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def providers(keys):
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_MODEL_DIR": str(DEFAULT_OUT),
        "LITEFAAS_LOG_LEVEL": "WARNING",
    }
    engine = Engine.from_dir(DEFAULT_OUT)
    core_app = App(Settings.from_env(env), engine)
    with function_environment(env):
        create_handler = importlib.import_module("handlers.aws.handler").create_handler
    handler = create_handler(App(Settings.from_env(env), engine))
    client = gcp_client(env)
    function_app = azure_function_app(env)
    return {
        "core": lambda m, p, h, b: (lambda r: (r.status, r.headers, r.body))(core_app.handle(m, p, h, b)),
        "aws:http_api_v2": lambda m, p, h, b: aws_response(
            "http_api_v2", handler(aws_event("http_api_v2", m, p, h, b), None)
        ),
        "aws:direct": lambda m, p, h, b: aws_response(
            "direct", handler(aws_event("direct", m, p, h, b), None)
        ),
        "gcp": lambda m, p, h, b: gcp_call(client, m, p, h, b),
        "azure": lambda m, p, h, b: azure_call(function_app, m, p, h, b),
    }


@pytest.fixture(scope="module")
def digits():
    test = digits_split().test
    return test.inputs[INPUT][:8], np.asarray(test.labels).astype(int)[:8]


def test_every_provider_reads_png_jpeg_and_webp_files_as_the_digits_they_show(keys, providers, digits):
    pixels, labels = digits
    files = {fmt: [render(row, 128, fmt) for row in pixels] for fmt in FORMATS}
    engine = Engine.from_dir(DEFAULT_OUT)
    expected = {fmt: engine.predict({INPUT: through_images(pixels, fmt, 128)})[OUTPUT] for fmt in FORMATS}
    for provider, call in providers.items():
        for fmt in FORMATS:
            sealed = seal_v2(keys, tensors={INPUT: files[fmt]})
            status, _, body = call("POST", "/predict", ENCRYPTED_V2, sealed.body)
            assert status == 200, (provider, fmt, body[:200])
            header, outputs = sealed.open(body)
            assert header["model"] == engine.manifest.public_info()
            assert np.array_equal(outputs[OUTPUT], expected[fmt]), (provider, fmt)
            assert np.mean(np.argmax(outputs[OUTPUT], axis=1) == labels) >= 7 / 8, (provider, fmt)
        if provider != "aws:direct":  # a direct invoke carries a prediction request only
            status, _, body = call("GET", "/health", {}, b"")
            model = json.loads(body)["model"]
            assert status == 200 and model["labels"] == LABELS and model["inputs"][0]["image"]["invert"]


def test_a_corrupt_file_is_a_sealed_422_naming_its_row_on_every_provider(keys, providers, digits):
    good = render(digits[0][0], 64, "JPEG")
    for provider, call in providers.items():
        sealed = seal_v2(keys, tensors={INPUT: [good, good[:40]]})
        status, _, body = call("POST", "/predict", ENCRYPTED_V2, sealed.body)
        assert status == 422, provider
        header, outputs = sealed.open(body)
        assert header["error"]["code"] == "invalid_payload" and outputs == {}, provider
        assert f"{INPUT}[1]" in header["error"]["message"], provider
