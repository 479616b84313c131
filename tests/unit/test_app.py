"""The provider-neutral entry, end to end in process: every route, suite and error of the protocol."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest
from fixtures.conformance import PROTOCOL_STATUSES
from fixtures.requests import ALL_SUITES, ENCRYPTED, PLAINTEXT, ROWS, seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.app import App
from core.config import Settings
from core.errors import ConfigError


@pytest.fixture
def app(keys, engine):
    settings = Settings(keyring=Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}).keyring)
    return App(settings, engine)


@pytest.fixture
def open_app(keys, engine):
    env = {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"}
    return App(Settings.from_env(env), engine)


def expected_outputs(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"].tolist()


def error_of(response):
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.body)["error"]["code"]


def sealed_error(sealed, response):
    assert response.headers["Content-Type"] == "application/litefaas+json"
    return sealed.open(response.body)["error"]


@pytest.mark.parametrize("suite_index", range(len(ALL_SUITES)))
def test_round_trip_every_suite(app, keys, engine, suite_index):
    # GIVEN a request encrypted to the key of one suite
    sealed = seal(keys, f"k{suite_index}", inputs=ROWS[:5])
    # WHEN the app answers it
    response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
    # THEN the answer decrypts to the model's own outputs
    assert response.status == 200
    answer = sealed.open(response.body)
    assert answer["outputs"] == expected_outputs(engine, ROWS[:5])
    assert answer["model"] == engine.manifest.public_info()


@pytest.mark.parametrize("key_bytes", [16, 32])
def test_response_key_sizes(app, keys, key_bytes):
    """A 16- or 32-byte response key is accepted."""
    sealed = seal(keys, response_key_bytes=key_bytes)
    assert app.handle("POST", "/predict", ENCRYPTED, sealed.body).status == 200


def test_batches_of_any_size(app, keys, engine):
    """Batches of 1 to 1024 rows get the model's own outputs."""
    for rows in (ROWS[:1], ROWS[:32], (ROWS * 16)[:1024], ROWS[:3]):
        sealed = seal(keys, inputs=rows)
        response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
        assert sealed.open(response.body)["outputs"] == expected_outputs(engine, rows)


def test_route_prefixes_and_header_case(app, keys):
    """Stage prefixes, a trailing slash, a query string, and any case of method and Content-Type reach /predict."""
    for path in ("/predict", "/api/predict", "/prod/predict/", "/predict?x=1"):
        sealed = seal(keys)
        headers = {"CONTENT-TYPE": "Application/LiteFaaS+JSON; charset=utf-8"}
        assert app.handle("post", path, headers, sealed.body).status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/predict", 405, "method_not_allowed"),
        ("POST", "/keys", 405, "method_not_allowed"),
        ("DELETE", "/health", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_methods(app, method, path, status, code):
    """An unknown path is 404 and a known path with the wrong method is 405, each with its error code."""
    response = app.handle(method, path, {}, b"")
    assert (response.status, error_of(response)) == (status, code)


def test_health_and_keys(app, keys, engine):
    """/health reports the backend and the public model info with datatypes; /keys is the public key set."""
    health = app.handle("GET", "/health", {}, b"")
    document = json.loads(health.body)
    assert (document["status"], document["backend"]) == ("ok", "ai_edge_litert")
    assert engine.manifest.public_info().items() <= document["model"].items()
    assert document["model"]["inputs"] == [
        {"name": "features", "shape": [None, 30], "dtype": "float32", "datatype": "FP32"}
    ]
    assert json.loads(app.handle("GET", "/keys", {}, b"").body) == keys.public


def test_rotation_accepts_every_key(keys, engine):
    # GIVEN a ring whose current key is new and whose second key is the old one
    rotated = json.loads(keys.private_json)
    rotated.reverse()
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": json.dumps(rotated)}), engine)
    # THEN /keys lists the new key first and both still decrypt
    assert json.loads(app.handle("GET", "/keys", {}, b"").body)["keys"][0]["kid"] == rotated[0]["kid"]
    for kid in ("k0", "k1", "k2"):
        assert app.handle("POST", "/predict", ENCRYPTED, seal(keys, kid).body).status == 200


def test_tampered_ciphertext_is_one_error(app, keys):
    """A tampered or truncated ciphertext is one 400 decryption_failed, whatever was changed."""
    sealed = seal(keys)
    envelope = json.loads(sealed.body)
    from core.encoding import b64u_decode, b64u_encode

    ct = b64u_decode(envelope["ct"])
    for position in range(0, len(ct), 7):
        flipped = bytearray(ct)
        flipped[position] ^= 0x01
        body = json.dumps({**envelope, "ct": b64u_encode(bytes(flipped))}).encode()
        response = app.handle("POST", "/predict", ENCRYPTED, body)
        assert (response.status, error_of(response)) == (400, "decryption_failed")
    truncated = json.dumps({**envelope, "ct": b64u_encode(ct[:-1])}).encode()
    assert error_of(app.handle("POST", "/predict", ENCRYPTED, truncated)) == "decryption_failed"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"kid": "nobody"}, "decryption_failed"),
        ({"suite": "x25519-sha256-chacha20poly1305"}, "decryption_failed"),
        ({"suite": "rot13"}, "decryption_failed"),
        ({"ct": "not base64!"}, "invalid_envelope"),
        ({"extra": 1}, "invalid_envelope"),
        ({"v": 2}, "invalid_envelope"),
        ({"v": True}, "invalid_envelope"),
        ({"kid": "bad kid"}, "invalid_envelope"),
    ],
)
def test_bad_envelopes(app, keys, change, code):
    """An envelope with an unknown kid or suite is 400 decryption_failed; a malformed one is 400 invalid_envelope."""
    envelope = {**json.loads(seal(keys).body), **change}
    response = app.handle("POST", "/predict", ENCRYPTED, json.dumps(envelope).encode())
    assert (response.status, error_of(response)) == (400, code)


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b'{"v":1}'])
def test_malformed_bodies(app, body):
    """A body that is not an envelope is 400 invalid_envelope."""
    response = app.handle("POST", "/predict", ENCRYPTED, body)
    assert (response.status, error_of(response)) == (400, "invalid_envelope")


def test_stale_requests_get_a_sealed_408(app, keys):
    """A request outside the replay window gets 408 stale_request, sealed to its response key."""
    for offset in (-301, 301, -10_000):
        sealed = seal(keys, ts=int(time.time()) + offset)
        response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
        assert response.status == 408
        assert sealed_error(sealed, response)["code"] == "stale_request"


def test_replays_get_a_sealed_409(app, keys):
    """A second delivery of the same request gets 409 replayed_request, sealed to its response key."""
    sealed = seal(keys)
    assert app.handle("POST", "/predict", ENCRYPTED, sealed.body).status == 200
    response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
    assert response.status == 409
    assert sealed_error(sealed, response)["code"] == "replayed_request"


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([ROWS[0][:29]], "row 0: expected 30 features, got 29"),
        ([ROWS[0], ROWS[1] + [1.0]], "row 1: expected 30 features, got 31"),
        ([[*ROWS[0][:29], "1.0"]], "found a string"),
        ([[*ROWS[0][:29], True]], "found a boolean"),
        ([[*ROWS[0][:29], None]], "found null"),
        ([[*ROWS[0][:29], [1.0]]], "row 0"),
        ([[*ROWS[0][:29], {"a": 1}]], "row 0"),
        ([ROWS[0], [*ROWS[0][:29], 1e39]], "row 1: values must be finite"),
        ([], "empty"),
        ({"features": ROWS[:1]}, "expected a list of rows"),
        ([1.0] * 30, "row 0"),
        ("rows", "expected a list of rows"),
    ],
)
def test_invalid_inputs_get_a_sealed_422(app, keys, inputs, fragment):
    """Inputs of the wrong shape or type get a sealed 422 invalid_payload whose message names the row or fault."""
    sealed = seal(keys, inputs=inputs)
    response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
    assert response.status == 422
    error = sealed_error(sealed, response)
    assert error["code"] == "invalid_payload"
    assert fragment in error["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_422(app, keys, constant):
    """NaN and Infinity in the decrypted JSON get a sealed 422 saying values must be finite."""
    sealed = seal(keys, inputs=[ROWS[0]])
    # json.dumps writes NaN/Infinity as bare constants; rebuild the request with one in it
    from core import crypto
    from core.encoding import b64u_encode

    request = {
        "inputs": [[*ROWS[0][:29], float(constant.replace("Infinity", "inf"))]],
        "response_key": b64u_encode(sealed.response_key),
        "ts": int(time.time()),
        "id": b64u_encode(sealed.request_id),
    }
    text = json.dumps(request)
    assert constant in text
    public, suite = keys.public_key("k0")
    body = json.dumps(crypto.seal_request(public, "k0", suite, text.encode())).encode()
    response = app.handle("POST", "/predict", ENCRYPTED, body)
    assert response.status == 422
    assert "finite" in sealed_error(sealed, response)["message"]


def test_unknown_and_missing_request_fields_are_sealed_422(app, keys):
    """An extra field, a missing field or a non-integer ts gets a sealed 422 invalid_payload."""
    from core.encoding import b64u_encode

    sealed = seal(keys)
    base = {
        "inputs": ROWS[:1],
        "response_key": b64u_encode(sealed.response_key),
        "ts": int(time.time()),
        "id": b64u_encode(sealed.request_id),
    }
    for request in (
        {**base, "extra": 1},
        {k: v for k, v in base.items() if k != "inputs"},
        {**base, "ts": "now"},
        {**base, "ts": 1.5},
    ):
        resealed = seal(keys, request=request)
        response = app.handle("POST", "/predict", ENCRYPTED, resealed.body)
        assert response.status == 422
        assert sealed_error(sealed, response)["code"] == "invalid_payload"


def test_undecodable_plaintext_gets_a_plain_422(app, keys):
    """A decrypted request without a usable response key or id gets an unsealed 422 invalid_payload."""
    for request in ({"inputs": ROWS[:1]}, {"response_key": "short", "id": "x", "inputs": []}):
        response = app.handle("POST", "/predict", ENCRYPTED, seal(keys, request=request).body)
        assert (response.status, error_of(response)) == (422, "invalid_payload")


def test_limits(keys, engine):
    """More rows than LITEFAAS_MAX_BATCH is a sealed 413; a body over LITEFAAS_MAX_BODY_BYTES is a plain 413."""
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_MAX_BATCH": "8",
        "LITEFAAS_MAX_BODY_BYTES": "20000",
    }
    app = App(Settings.from_env(env), engine)
    over_batch = seal(keys, inputs=ROWS[:9])
    response = app.handle("POST", "/predict", ENCRYPTED, over_batch.body)
    assert response.status == 413
    assert sealed_error(over_batch, response)["code"] == "payload_too_large"
    assert app.handle("POST", "/predict", ENCRYPTED, seal(keys, inputs=ROWS[:8]).body).status == 200
    too_big = app.handle("POST", "/predict", ENCRYPTED, b" " * 20001)
    assert (too_big.status, error_of(too_big)) == (413, "payload_too_large")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml", "application/litefaas+xml"])
def test_unsupported_media_types(open_app, keys, content_type):
    """A missing or unknown Content-Type is 415, even when plaintext is allowed."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = open_app.handle("POST", "/predict", headers, seal(keys).body)
    assert (response.status, error_of(response)) == (415, "unsupported_media_type")


def test_plaintext_only_where_allowed(app, open_app, engine):
    """Plaintext JSON is 403 unless allowed; when allowed it gets the model's outputs and the usual 422 and 400 errors."""
    body = json.dumps({"inputs": ROWS[:4]}).encode()
    refused = app.handle("POST", "/predict", PLAINTEXT, body)
    assert (refused.status, error_of(refused)) == (403, "plaintext_disabled")
    allowed = open_app.handle("POST", "/predict", {"content-type": "application/json; charset=utf-8"}, body)
    assert allowed.status == 200
    assert json.loads(allowed.body)["outputs"] == expected_outputs(engine, ROWS[:4])
    extra = open_app.handle("POST", "/predict", PLAINTEXT, json.dumps({"inputs": ROWS[:1], "x": 1}).encode())
    assert (extra.status, error_of(extra)) == (422, "invalid_payload")
    broken = open_app.handle("POST", "/predict", PLAINTEXT, b"{")
    assert (broken.status, error_of(broken)) == (400, "invalid_envelope")


def test_internal_errors_say_nothing(keys, engine, caplog):
    """An engine failure is a sealed 500 internal_error with no detail."""

    class Exploding:
        manifest = engine.manifest
        backend = engine.backend

        def predict(self, inputs):
            raise RuntimeError("secret detail 12.345")

    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}), Exploding())
    sealed = seal(keys)
    response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
    assert response.status == 500
    assert sealed_error(sealed, response) == {"code": "internal_error", "message": "internal error"}


def test_threads_share_the_engine_safely(app, keys, engine):
    """Concurrent requests on one app each get their own correct outputs."""
    failures = []

    def worker(size):
        for _ in range(20):
            sealed = seal(keys, inputs=ROWS[:size])
            response = app.handle("POST", "/predict", ENCRYPTED, sealed.body)
            if sealed.open(response.body)["outputs"] != expected_outputs(engine, ROWS[:size]):
                failures.append(size)

    threads = [threading.Thread(target=worker, args=(size,)) for size in (1, 2, 7, 32, 64, 3, 5, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


class TestColdStart:
    """Configuration is checked once, at cold start, and a wrong setting names its variable."""

    def test_no_keys_and_no_plaintext(self, capsys):
        """With neither keys nor plaintext allowed, cold start fails with one JSON log line naming LITEFAAS_PRIVATE_KEYS."""
        with pytest.raises(ConfigError) as error:
            App.from_env({})
        assert error.value.variable == "LITEFAAS_PRIVATE_KEYS"
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        assert len(lines) == 1
        assert json.loads(lines[0])["variable"] == "LITEFAAS_PRIVATE_KEYS"

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({"LITEFAAS_PRIVATE_KEYS": "[]"}, "LITEFAAS_PRIVATE_KEYS"),
            (
                {
                    "LITEFAAS_PRIVATE_KEYS": '[{"kid":"a","suite":"x25519-sha256-aes128gcm","private_key":"AAAA"}]'
                },
                "LITEFAAS_PRIVATE_KEYS",
            ),
            (
                {"LITEFAAS_PRIVATE_KEYS": '[{"kid":"a","suite":"rot13","private_key":"AAAA"}]'},
                "LITEFAAS_PRIVATE_KEYS",
            ),
            ({"LITEFAAS_PRIVATE_KEYS_FILE": "/nonexistent/keys.json"}, "LITEFAAS_PRIVATE_KEYS_FILE"),
            ({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_MODEL_DIR": "/nonexistent"}, "LITEFAAS_MODEL_DIR"),
            ({"LITEFAAS_ALLOW_PLAINTEXT": "maybe"}, "LITEFAAS_ALLOW_PLAINTEXT"),
            ({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_MAX_BATCH": "0"}, "LITEFAAS_MAX_BATCH"),
            ({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_REPLAY_WINDOW_S": "5m"}, "LITEFAAS_REPLAY_WINDOW_S"),
        ],
    )
    def test_wrong_settings(self, env, variable):
        """Each wrong setting is a ConfigError naming its variable."""
        with pytest.raises(ConfigError) as error:
            App.from_env(env)
        assert error.value.variable == variable

    def test_corrupt_model(self, tmp_path, artifact_dir):
        """A model file failing its sha256 is a ConfigError naming LITEFAAS_MODEL_DIR."""
        for item in artifact_dir.iterdir():
            (tmp_path / item.name).write_bytes(item.read_bytes())
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        (tmp_path / manifest["file"]).write_bytes(b"garbage")
        with pytest.raises(ConfigError) as error:
            App.from_env({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_MODEL_DIR": str(tmp_path)})
        assert error.value.variable == "LITEFAAS_MODEL_DIR"
        assert "sha256" in error.value.problem

    def test_key_file_and_both_sources(self, tmp_path, keys):
        """Keys load from LITEFAAS_PRIVATE_KEYS_FILE; setting both key sources is a ConfigError."""
        path = tmp_path / "keys.json"
        path.write_text(keys.private_json)
        app = App.from_env({"LITEFAAS_PRIVATE_KEYS_FILE": str(path)})
        assert json.loads(app.handle("GET", "/keys", {}, b"").body) == keys.public
        with pytest.raises(ConfigError) as error:
            App.from_env(
                {"LITEFAAS_PRIVATE_KEYS_FILE": str(path), "LITEFAAS_PRIVATE_KEYS": keys.private_json}
            )
        assert error.value.variable == "LITEFAAS_PRIVATE_KEYS_FILE"

    def test_key_problems_never_echo_the_key(self, capsys):
        """A bad private key appears neither in the error nor in the logs."""
        secret = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtbG9n"
        with pytest.raises(ConfigError) as error:
            App.from_env(
                {
                    "LITEFAAS_PRIVATE_KEYS": json.dumps(
                        [{"kid": "a", "suite": "x25519-sha256-aes128gcm", "private_key": secret}]
                    )
                }
            )
        assert secret not in str(error.value)
        assert secret not in capsys.readouterr().err


def test_logs_carry_no_payload_plaintext_or_key(keys, engine, capsys):
    # GIVEN an app that logs every request as JSON
    app = App.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"})
    secrets_seen: list[str] = list(keys.private_b64)
    # WHEN it answers successes and every kind of error
    for inputs in (ROWS[:3], [ROWS[0][:29]], [[*ROWS[0][:29], "leak-me"]]):
        sealed = seal(keys, inputs=inputs)
        app.handle("POST", "/predict", ENCRYPTED, sealed.body)
        app.handle("POST", "/predict", ENCRYPTED, sealed.body)
        envelope = json.loads(sealed.body)
        secrets_seen += [envelope["ct"][:40], sealed.response_key.hex()]
        from core.encoding import b64u_encode

        secrets_seen.append(b64u_encode(sealed.response_key))
    app.handle("POST", "/predict", PLAINTEXT, json.dumps({"inputs": [ROWS[5]]}).encode())
    app.handle("POST", "/predict", ENCRYPTED, b'{"v":1,"kid":"k0","suite":"x","ct":"leak-me-too"}')
    # THEN the log lines are JSON and none carries an input value, a key or a ciphertext
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(lines) >= 8
    assert all(line["event"] in {"cold_start", "request"} for line in lines)
    for needle in [*secrets_seen, "leak-me", str(ROWS[0][3]), str(ROWS[5][3])]:
        assert needle not in err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    ),
    content_type=st.sampled_from(["application/json", "application/litefaas+json", "text/plain"]),
    path=st.sampled_from(["/predict", "/keys", "/health", "/x"]),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_fuzzed_requests_never_500(open_app, body, content_type, path, method):
    """Any method, path, Content-Type and body gets a protocol status, and every error has a code."""
    response = open_app.handle(method, path, {"Content-Type": content_type}, body)
    assert response.status in PROTOCOL_STATUSES
    if response.status != 200:
        assert json.loads(response.body)["error"]["code"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    inputs=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=31) | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=80,
    )
)
def test_fuzzed_decrypted_inputs_never_500(open_app, keys, inputs):
    """Any decrypted inputs get 200, 413 or 422, sealed to the response key."""
    sealed = seal(keys, inputs=inputs)
    response = open_app.handle("POST", "/predict", ENCRYPTED, sealed.body)
    assert response.status in {200, 413, 422}
    sealed.open(response.body)


def test_logger_is_json_only(keys, engine):
    """The litefaas logger does not propagate to the root logger."""
    logger = logging.getLogger("litefaas")
    App.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    assert logger.propagate is False
