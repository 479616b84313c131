"""Protocol version 2 through the provider-neutral entry: binary envelopes, framed tensors, CORS."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fixtures.binary import ENCRYPTED_V2, PLAINTEXT_V2, features, plain_v2, read_answer, seal_v2
from fixtures.requests import ALL_SUITES, ENCRYPTED, ROWS, seal

from core import crypto
from core.app import App
from core.config import Settings


def make_app(keys, engine, **env):
    return App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, **env}), engine)


@pytest.fixture
def app(keys, engine):
    return make_app(keys, engine)


@pytest.fixture
def open_app(keys, engine):
    return make_app(keys, engine, LITEFAAS_ALLOW_PLAINTEXT="1")


def expected(engine, rows):
    return engine.predict(features(rows))["probability"]


def plain_error(response):
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.body)["error"]["code"]


@pytest.mark.parametrize("suite_index", range(len(ALL_SUITES)))
def test_round_trip_every_suite(app, keys, engine, suite_index):
    # GIVEN a version-2 request sealed to the key of one suite
    sealed = seal_v2(keys, f"k{suite_index}", tensors=features(ROWS[:5]))
    # WHEN the app answers it
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
    # THEN the sealed binary answer holds the model's own outputs, as raw float32
    assert (response.status, response.headers["Content-Type"]) == (200, "application/litefaas")
    assert response.body[0] == 2
    header, tensors = sealed.open(response.body)
    assert header["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": [5, 1]}]
    assert header["model"] == engine.manifest.public_info()
    assert np.array_equal(tensors["probability"], expected(engine, ROWS[:5]))


def test_version_2_answers_what_version_1_answers(app, keys):
    """The same rows give the same numbers either way (v1 rounds through JSON text, exactly)."""
    v1 = seal(keys, inputs=ROWS[:7])
    v2 = seal_v2(keys, tensors=features(ROWS[:7]))
    answer_v1 = v1.open(app.handle("POST", "/predict", ENCRYPTED, v1.body).body)["outputs"]
    _, answer_v2 = v2.open(app.handle("POST", "/predict", ENCRYPTED_V2, v2.body).body)
    assert answer_v2["probability"].tolist() == answer_v1


def test_overhead_is_a_few_hundred_bytes(app, keys):
    """Request and response carry their tensor bytes plus well under 2 KB (X25519 suites)."""
    rows = np.asarray(ROWS[:64], dtype=np.float32)
    sealed = seal_v2(keys, tensors={"features": rows})
    assert len(sealed.body) - rows.nbytes < 2048
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
    assert len(response.body) - 64 * 4 < 2048


@pytest.mark.parametrize(
    ("kind", "message", "status", "code"),
    [
        ("frame", b"\x00\x00\x00\x09{}", 422, "invalid_payload"),
        ("datatype", {"features": np.asarray(ROWS[:2], dtype=np.float64)}, 422, "invalid_payload"),
        ("shape", {"features": np.zeros((2, 29), dtype=np.float32)}, 422, "invalid_payload"),
        ("name", {"other": np.zeros((2, 30), dtype=np.float32)}, 422, "invalid_payload"),
        ("batch", {"features": np.zeros((1025, 30), dtype=np.float32)}, 413, "payload_too_large"),
    ],
)
def test_bad_frames_get_a_sealed_error(app, keys, kind, message, status, code):
    # GIVEN a request that decrypts but whose frame breaks the rules
    if isinstance(message, bytes):
        frame_bytes = message
        sealed = seal_v2(keys, message=frame_bytes)
        response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
        # THEN without a readable header there is no key to seal to: a plaintext 422
        assert (response.status, plain_error(response)) == (status, code)
        return
    sealed = seal_v2(keys, tensors=message)
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
    # THEN the answer is sealed, with the protocol's status and code
    assert response.status == status
    header, tensors = sealed.open(response.body)
    assert header["error"]["code"] == code and tensors == {}


def test_fields_and_replay(app, keys):
    sealed = seal_v2(keys, tensors=features(ROWS[:1]), header={"extra": 1})
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
    assert response.status == 422
    stale = seal_v2(keys, tensors=features(ROWS[:1]), ts=int(time.time()) - 10_000)
    assert app.handle("POST", "/predict", ENCRYPTED_V2, stale.body).status == 408
    once = seal_v2(keys, tensors=features(ROWS[:1]))
    assert app.handle("POST", "/predict", ENCRYPTED_V2, once.body).status == 200
    again = app.handle("POST", "/predict", ENCRYPTED_V2, once.body)
    assert again.status == 409
    assert once.open(again.body)[0]["error"]["code"] == "replayed_request"


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda body: b"\x01" + body[1:], 400, "invalid_envelope"),
        (lambda body: body[:5], 400, "invalid_envelope"),
        (lambda body: body[:2] + b"zz" + body[4:], 400, "decryption_failed"),  # another kid
        (lambda body: body[:-1] + bytes([body[-1] ^ 1]), 400, "decryption_failed"),
        (lambda body: body[:-40], 400, "decryption_failed"),
        (lambda body: body[:4] + b"\x00\x21" + body[6:], 400, "decryption_failed"),  # KEM id of no suite
        (lambda body: body[:8] + b"\x00\x03" + body[10:], 400, "decryption_failed"),  # another key's suite
    ],
)
def test_envelope_errors_are_plaintext_json(app, keys, mutate, status, code):
    sealed = seal_v2(keys, tensors=features(ROWS[:1]))
    response = app.handle("POST", "/predict", ENCRYPTED_V2, mutate(sealed.body))
    assert (response.status, plain_error(response)) == (status, code)


def test_outputs_asked_for_by_name(keys, engine):
    app = make_app(keys, engine)
    sealed = seal_v2(keys, tensors=features(ROWS[:1]), header={"outputs": ["probability"]})
    header, _ = sealed.open(app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body).body)
    assert [entry["name"] for entry in header["outputs"]] == ["probability"]
    unknown = seal_v2(keys, tensors=features(ROWS[:1]), header={"outputs": ["nope"]})
    response = app.handle("POST", "/predict", ENCRYPTED_V2, unknown.body)
    assert response.status == 422


def test_plaintext_v2_only_where_allowed(app, open_app, engine):
    body = plain_v2(features(ROWS[:3]))
    refused = app.handle("POST", "/predict", PLAINTEXT_V2, body)
    assert (refused.status, plain_error(refused)) == (403, "plaintext_disabled")
    allowed = open_app.handle("POST", "/predict", PLAINTEXT_V2, body)
    assert (allowed.status, allowed.headers["Content-Type"]) == (200, "application/vnd.litefaas.tensors")
    _, tensors = read_answer(allowed.body)
    assert np.array_equal(tensors["probability"], expected(engine, ROWS[:3]))
    bad = open_app.handle("POST", "/predict", PLAINTEXT_V2, plain_v2(features(ROWS[:3]), response_key="x"))
    assert bad.status == 422 and read_answer(bad.body)[0]["error"]["code"] == "invalid_payload"


def test_answer_over_the_front_doors_limit_is_a_sealed_413(app, keys):
    sealed = seal_v2(keys, tensors=features(ROWS[:50]))
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body, response_limit=100)
    assert response.status == 413
    assert sealed.open(response.body)[0]["error"]["code"] == "payload_too_large"


def test_default_body_limit_is_4_mib(app):
    assert app.settings.max_body_bytes == 4 * 1024 * 1024
    response = app.handle("POST", "/predict", ENCRYPTED_V2, b"\x02" * (4 * 1024 * 1024 + 1))
    assert (response.status, plain_error(response)) == (413, "payload_too_large")


def test_cors_preflight_and_headers(keys, engine):
    # GIVEN a function that allows one origin
    app = make_app(keys, engine, LITEFAAS_CORS_ORIGINS="http://127.0.0.1:8000, https://app.example")
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    # WHEN that origin sends a preflight, THEN it gets 204 naming the method and Content-Type
    allowed = app.handle("OPTIONS", "/predict", preflight, b"")
    assert allowed.status == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST"
    assert allowed.headers["Access-Control-Allow-Headers"] == "Content-Type, traceparent"
    # AND its requests carry the origin back
    health = app.handle("GET", "/health", {"Origin": "https://app.example"}, b"")
    assert health.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # WHEN another origin asks, THEN the answer is the protocol's 405 with no CORS header
    refused = app.handle("OPTIONS", "/predict", {**preflight, "Origin": "https://evil.example"}, b"")
    assert (refused.status, plain_error(refused)) == (405, "method_not_allowed")
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.headers["Allow"] == "POST"


def test_no_cors_headers_by_default(app):
    response = app.handle(
        "OPTIONS", "/keys", {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}, b""
    )
    assert response.status == 405 and "Access-Control-Allow-Origin" not in response.headers


def test_a_bad_cors_origin_is_a_config_error():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="LITEFAAS_CORS_ORIGINS"):
        Settings.from_env({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_CORS_ORIGINS": "app.example"})


def test_binary_header_names_the_suite():
    header = crypto.binary_header("kid-1", "x25519-sha256-chacha20poly1305")
    assert header == b"\x02\x05kid-1\x00\x20\x00\x01\x00\x03"
