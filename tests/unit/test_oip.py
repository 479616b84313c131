"""The Open Inference Protocol through the provider-neutral entry: routes, metadata, JSON and binary
tensor data, and every rule a request can break (a 400 naming the input, never a 500)."""

from __future__ import annotations

import json
import struct

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
from fixtures.requests import ROWS

from core.app import App
from core.config import Settings
from core.engine import Engine
from core.routing import route_of
from model.digits import DEFAULT_OUT as DIGITS_DIR
from model.digits import INPUT, render


def make_app(engine, **env):
    return App(Settings.from_env({"LITEFAAS_LOG_LEVEL": "WARNING", **env}), engine)


@pytest.fixture(scope="module")
def app(engine):
    return make_app(engine, LITEFAAS_ALLOW_PLAINTEXT="1")


def features(rows):
    return {"features": np.asarray(rows, dtype=np.float32)}


def expected(engine, rows):
    return engine.predict(features(rows))["probability"]


def error_of(response):
    assert response.headers["Content-Type"] == "application/json"
    document = json.loads(response.body)
    assert document.keys() == {"error"} and isinstance(document["error"], str)
    return response.status, document["error"]


@pytest.mark.parametrize(
    ("path", "name", "model", "version"),
    [
        ("/v2", "v2", None, None),
        ("/api/v2/", "v2", None, None),
        ("/v2/health/live", "v2/health/live", None, None),
        ("/dev/v2/health/ready", "v2/health/ready", None, None),
        ("/v2/models/m", "v2/models", "m", None),
        ("/v2/models/m/versions/1.0.0", "v2/models", "m", "1.0.0"),
        ("/v2/models/m%20x/ready", "v2/models/ready", "m x", None),
        ("/stage/v2/models/m/versions/2/infer?x=1", "v2/models/infer", "m", "2"),
        ("/v2/models/predict", "v2/models", "predict", None),
        ("/v2/repository/index", "v2/unknown", None, None),
        ("/v2/models/m/config", "v2/unknown", None, None),
        ("/predict", "predict", None, None),
        ("/api/keys", "keys", None, None),
        ("/v2/predict", "predict", None, None),
    ],
)
def test_routes_under_any_prefix(path, name, model, version):
    # GIVEN a path WHEN it is routed THEN it names the route, and the model and version it names
    route = route_of(path)
    assert (route.name, route.model, route.version) == (name, model, version)


def test_paths_that_name_no_route():
    assert route_of("/") is None
    assert route_of("/nothing") is None
    assert route_of("/V2/health/live") is None


def test_server_and_model_metadata(app, engine):
    # GIVEN a function serving the seed model WHEN its metadata routes are read
    server = app.handle("GET", "/v2", {}, b"")
    model = app.handle("GET", f"/v2/models/{SEED}", {}, b"")
    versioned = app.handle("GET", f"/v2/models/{SEED}/versions/{SEED_VERSION}", {}, b"")
    # THEN the server names itself and the extension, the model its tensors with -1 for the batch
    assert json.loads(server.body) == {
        "name": "litefaas",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    assert json.loads(model.body) == {
        "name": SEED,
        "versions": [SEED_VERSION],
        "platform": "tflite",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}],
        "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
    }
    assert versioned.body == model.body


def test_health_routes(app):
    for path, body in [
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        (f"/v2/models/{SEED}/ready", {"name": SEED, "ready": True}),
        (f"/v2/models/{SEED}/versions/{SEED_VERSION}/ready", {"name": SEED, "ready": True}),
    ]:
        response = app.handle("GET", path, {}, b"")
        assert (response.status, json.loads(response.body)) == (200, body)


@pytest.mark.parametrize("nested", [False, True])
def test_json_inference_flat_or_nested(app, engine, nested):
    # GIVEN a JSON request with an id, its data flat or nested as its shape
    headers, body = json_request(features(ROWS[:3]), request_id="call-7", nested=nested)
    # WHEN the function answers it
    response = app.handle("POST", INFER, headers, body)
    header, outputs = read_response(response.headers, response.body)
    # THEN the answer names the model, echoes the id and equals the engine's, as JSON
    assert response.status == 200 and response.headers["Content-Type"] == "application/json"
    assert HEADER_LENGTH not in response.headers
    assert (header["model_name"], header["model_version"], header["id"]) == (SEED, SEED_VERSION, "call-7")
    assert header["outputs"][0].keys() == {"name", "datatype", "shape", "data"}
    np.testing.assert_array_equal(outputs["probability"], expected(engine, ROWS[:3]))


def test_binary_tensor_data_both_ways(app, engine):
    # GIVEN a request whose input follows its JSON header as raw bytes, outputs asked for as binary
    headers, body = binary_request(features(ROWS[:5]))
    # WHEN the function answers it
    response = app.handle("POST", f"/v2/models/{SEED}/versions/{SEED_VERSION}/infer", headers, body)
    header, outputs = read_response(response.headers, response.body)
    # THEN the outputs come back as raw bytes after a JSON header of the stated length
    assert response.status == 200 and response.headers["Content-Type"] == "application/octet-stream"
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 5 * 4}
    np.testing.assert_array_equal(outputs["probability"], expected(engine, ROWS[:5]))
    assert len(response.body) == int(response.headers[HEADER_LENGTH]) + 20


def test_binary_input_json_output_and_the_other_way_round(app, engine):
    headers, body = binary_request(features(ROWS[:2]), binary_outputs=False)
    response = app.handle("POST", INFER, headers, body)
    assert response.headers["Content-Type"] == "application/json"
    np.testing.assert_array_equal(
        read_response(response.headers, response.body)[1]["probability"], expected(engine, ROWS[:2])
    )
    headers, body = json_request(features(ROWS[:2]), parameters={"binary_data_output": True})
    response = app.handle("POST", INFER, headers, body)
    assert HEADER_LENGTH in response.headers
    np.testing.assert_array_equal(
        read_response(response.headers, response.body)[1]["probability"], expected(engine, ROWS[:2])
    )


def test_output_selection_and_parameters_kept(app):
    # GIVEN a request naming its output, with parameters the spec allows and litefaas does not use
    headers, body = json_request(
        features(ROWS[:1]), outputs=["probability"], parameters={"priority": 1, "timeout": 5000, "tag": "x"}
    )
    # WHEN it is answered THEN it is accepted and answers the named output
    response = app.handle("POST", INFER, headers, body)
    assert response.status == 200
    assert [entry["name"] for entry in json.loads(response.body)["outputs"]] == ["probability"]


def _input(**changes):
    entry = {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": ROWS[0]}
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"inputs": [_input(datatype="FP64")]}, "input features: datatype FP64, the model takes FP32"),
        ({"inputs": [_input(shape=[1, 29], data=ROWS[0][:29])]}, "does not match [N, 30] at axis 1"),
        ({"inputs": [_input(shape=[2, 30])]}, "data has neither 60 elements nor the shape [2, 30]"),
        ({"inputs": [_input(data=[*ROWS[0][:29], "1"])]}, "input features: FP32 data must be numbers"),
        ({"inputs": [_input(data=[*ROWS[0][:29], True])]}, "FP32 data must be numbers"),
        ({"inputs": [_input(data=[*ROWS[0][:29], 1e300])]}, "a value is out of range for FP32"),
        ({"inputs": [_input(data=[[ROWS[0]]])]}, "data has neither 30 elements"),
        ({"inputs": [_input(data=None)]}, "input features: no data"),
        ({"inputs": [_input(name="other")]}, "the model has no input 'other'"),
        ({"inputs": [_input(), _input()]}, "input features: given twice"),
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": [_input(extra=1)]}, "a tensor has the fields"),
        ({"inputs": [_input()], "extra": 1}, "unknown field(s) extra"),
        ({"inputs": [_input()], "id": 7}, "id must be a string"),
        ({"inputs": [_input()], "model_name": "other"}, "model_name is not this route's model"),
        ({"inputs": [_input()], "model_version": 1}, "model_version is not this route's model"),
        ({"inputs": [_input()], "outputs": [{"name": "nope"}]}, "the model has no output 'nope'"),
        ({"inputs": [_input()], "outputs": [{"name": "probability"}] * 2}, "asked for twice"),
        ({"inputs": [_input()], "parameters": {"sequence_id": 3}}, "keeps no state between requests"),
        ({"inputs": [_input()], "parameters": {"binary_data_output": "yes"}}, "must be true or false"),
        ({"inputs": [_input()], "parameters": {"nested": {"a": 1}}}, "parameters must be an object of"),
        (
            {"inputs": [_input(parameters={"shared_memory_region": "r"})]},
            "shared memory is not available",
        ),
        (
            {"inputs": [_input()], "outputs": [{"name": "probability", "parameters": {"classification": 2}}]},
            "classification extension is not supported",
        ),
    ],
)
def test_json_requests_that_break_a_rule_are_400_naming_the_problem(app, document, message):
    # GIVEN a JSON request wrong in one way WHEN it is answered THEN a 400 OIP error says what is wrong
    status, error = error_of(app.handle("POST", INFER, {}, json.dumps(document).encode()))
    assert status == 400 and message in error, error


def _binary(size=120, header_length=None, tail=b"", data=None):
    document = {
        "inputs": [
            {
                "name": "features",
                "shape": [1, 30],
                "datatype": "FP32",
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    header = json.dumps(document).encode()
    raw = np.asarray(ROWS[:1], dtype=np.float32).tobytes() if data is None else data
    length = str(len(header)) if header_length is None else header_length
    return {HEADER_LENGTH: length}, header + raw + tail


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_binary(size=116, data=bytes(116)), "binary_data_size 116, but FP32 of shape [1, 30] is 120 bytes"),
        (_binary(size=124, data=bytes(124)), "binary_data_size 124, but FP32"),
        (_binary(size=10**12), "binary_data_size 1000000000000 runs past the body"),
        (_binary(size=-1), "binary_data_size must be a byte count"),
        (_binary(tail=b"\x00"), "1 bytes are left over after the inputs' binary data"),
        (_binary(header_length="99999999"), "is not within the body's"),
        (_binary(header_length="0"), "is not within the body's"),
        (_binary(header_length="-5"), "must be a byte count"),
        (_binary(header_length="1e3"), "must be a byte count"),
        (_binary(header_length="9" * 40), "must be a byte count"),
        (_binary(header_length="10"), "not a UTF-8 JSON object"),
    ],
)
def test_binary_requests_that_break_a_rule_are_400(app, request_, message):
    headers, body = request_
    status, error = error_of(app.handle("POST", INFER, headers, body))
    assert status == 400 and message in error, error


def test_wrong_model_or_version_is_404(app):
    for path in ("/v2/models/other/infer", f"/v2/models/{SEED}/versions/9/infer", "/v2/models/other"):
        status, error = error_of(app.handle("POST" if path.endswith("infer") else "GET", path, {}, b"{}"))
        assert status == 404 and ("unknown model 'other'" in error or "has no version '9'" in error)
    status, error = error_of(app.handle("GET", "/v2/repository/index", {}, b""))
    assert status == 404


def test_wrong_method_is_405_with_allow(app):
    response = app.handle("GET", INFER, {}, b"")
    assert error_of(response)[0] == 405 and response.headers["Allow"] == "POST"
    response = app.handle("POST", "/v2/health/live", {}, b"")
    assert error_of(response)[0] == 405 and response.headers["Allow"] == "GET"


def test_limits_are_413(engine):
    app = make_app(
        engine, LITEFAAS_ALLOW_PLAINTEXT="1", LITEFAAS_MAX_BATCH="4", LITEFAAS_MAX_BODY_BYTES="4096"
    )
    headers, body = json_request(features(ROWS[:5]))
    assert error_of(app.handle("POST", INFER, headers, body))[0] == 413
    headers, body = binary_request(features(ROWS[:4] * 3))
    assert error_of(app.handle("POST", INFER, headers, body))[0] == 413


def test_compressed_bodies_are_415(app):
    headers, body = json_request(features(ROWS[:1]))
    status, error = error_of(app.handle("POST", INFER, {**headers, "Content-Encoding": "gzip"}, body))
    assert status == 415 and "Content-Encoding gzip" in error


def test_every_oip_route_is_403_where_plaintext_is_off(engine, keys):
    # GIVEN a function holding keys, with plaintext off
    app = make_app(engine, LITEFAAS_PRIVATE_KEYS=keys.private_json)
    headers, body = json_request(features(ROWS[:1]))
    # WHEN any OIP route is asked THEN it is the OIP error 403, and the model is never run
    for method, path in [
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", f"/v2/models/{SEED}"),
        ("POST", INFER),
    ]:
        status, error = error_of(app.handle(method, path, headers, body))
        assert status == 403 and "plaintext" in error


def test_cors_for_oip_names_and_exposes_the_header_length(engine):
    app = make_app(engine, LITEFAAS_ALLOW_PLAINTEXT="1", LITEFAAS_CORS_ORIGINS="http://page.test")
    preflight = app.handle(
        "OPTIONS", INFER, {"Origin": "http://page.test", "Access-Control-Request-Method": "POST"}, b""
    )
    assert preflight.status == 204
    assert HEADER_LENGTH in preflight.headers["Access-Control-Allow-Headers"]
    headers, body = binary_request(features(ROWS[:1]))
    response = app.handle("POST", INFER, {**headers, "Origin": "http://page.test"}, body)
    assert response.headers["Access-Control-Expose-Headers"] == HEADER_LENGTH


def test_bytes_are_refused_for_an_input_that_is_not_an_image(app):
    headers, body = binary_request({"features": [b"\x89PNG"]})
    status, error = error_of(app.handle("POST", INFER, headers, body))
    assert status == 400 and "datatype BYTES, the model takes FP32" in error


def test_length_prefixed_bytes_must_fill_their_binary_data_size():
    # GIVEN the digits model, whose input takes encoded images as BYTES
    app = make_app(
        Engine.from_dir(DIGITS_DIR), LITEFAAS_ALLOW_PLAINTEXT="1", LITEFAAS_MODEL_DIR=str(DIGITS_DIR)
    )
    image = render(np.zeros(64), 32, "PNG")
    raw = struct.pack("<I", len(image)) + image
    document = {
        "inputs": [
            {
                "name": INPUT,
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(raw) + 3},
            }
        ]
    }
    header = json.dumps(document).encode()
    # WHEN the declared size runs three bytes past the one element
    response = app.handle(
        "POST", "/v2/models/digits_cnn/infer", {HEADER_LENGTH: str(len(header))}, header + raw + b"abc"
    )
    # THEN it is a 400 saying so
    status, error = error_of(response)
    assert status == 400 and "3 bytes of binary_data_size are past its elements" in error


def test_inspect_shows_the_oip_metadata(app, artifact_dir, capsys):
    # GIVEN the seed artifact WHEN `litefaas inspect` describes it, as JSON and as tables
    from litefaas.cli.main import main

    assert main(["inspect", str(artifact_dir), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert main(["inspect", str(artifact_dir)]) == 0
    text = capsys.readouterr().out
    # THEN it gives what GET /v2/models/{name} answers, and the inference route
    assert described["oip"] == json.loads(app.handle("GET", f"/v2/models/{SEED}", {}, b"").body)
    assert f"POST /v2/models/{SEED}/infer" in text and "[-1, 30]" in text


def test_the_benchmark_sends_three_forms_of_one_image_that_answer_alike():
    # GIVEN the OIP benchmark's three requests (OIP JSON, OIP binary, version 2) for a batch of digits
    from litefaas.benchmark.oip_speed import _outputs, _requests

    engine = Engine.from_dir(DIGITS_DIR)
    app = make_app(engine, LITEFAAS_ALLOW_PLAINTEXT="1", LITEFAAS_MODEL_DIR=str(DIGITS_DIR))
    pixels = np.random.default_rng(3).random((2, 8, 8, 1), dtype=np.float32)
    answers = {}
    for form, (path, headers, body) in _requests("digits_cnn", INPUT, pixels).items():
        # WHEN the function answers each
        response = app.handle("POST", path, headers, body)
        assert response.status == 200, (form, response.body[:200])
        answers[form] = _outputs(form, response.headers, response.body)
    # THEN the three answers are the engine's
    for value in answers.values():
        np.testing.assert_array_equal(value, engine.predict({INPUT: pixels})["probabilities"])
