"""The Cloud Functions entrypoint through functions-framework's real Flask app, in process."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fixtures.conformance import PROTOCOL_STATUSES
from fixtures.providers_gcp_azure import gcp_call, gcp_client
from fixtures.requests import ENCRYPTED, PLAINTEXT, ROWS, seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def client(keys):
    return gcp_client({"LITEFAAS_PRIVATE_KEYS": keys.private_json})


@pytest.fixture(scope="module")
def open_client(keys):
    return gcp_client({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"})


def expected_outputs(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"].tolist()


def error_code(answer):
    status, headers, body = answer
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)["error"]["code"]


def test_encrypted_round_trip_matches_the_engine(client, keys, engine):
    # GIVEN a batch sealed to the function's public key
    sealed = seal(keys, inputs=ROWS[:5])
    # WHEN functions-framework delivers it to the function
    status, headers, body = gcp_call(client, "POST", "/predict", ENCRYPTED, sealed.body)
    # THEN the sealed answer opens to the local engine's outputs
    assert status == 200
    assert headers["content-type"] == "application/litefaas+json"
    assert headers["cache-control"] == "no-store"
    answer = sealed.open(body)
    assert answer["outputs"] == expected_outputs(engine, ROWS[:5])
    assert answer["model"] == engine.manifest.public_info()


def test_plaintext_only_where_allowed(client, open_client, engine):
    # GIVEN a plaintext request
    request = json.dumps({"inputs": ROWS[:3]}).encode()
    # WHEN it reaches a function started without and with LITEFAAS_ALLOW_PLAINTEXT=1
    refused = gcp_call(client, "POST", "/predict", PLAINTEXT, request)
    status, _, body = gcp_call(open_client, "POST", "/predict", PLAINTEXT, request)
    # THEN the first refuses it with 403 and the second answers in clear
    assert error_code(refused) == (403, "plaintext_disabled")
    assert status == 200
    assert json.loads(body)["outputs"] == expected_outputs(engine, ROWS[:3])


def test_keys_and_health(client, keys, engine):
    # GIVEN a cold-started function
    # WHEN its key set and health are read
    keys_status, keys_headers, keys_body = gcp_call(client, "GET", "/keys", {}, b"")
    health_status, _, health_body = gcp_call(client, "GET", "/health", {}, b"")
    # THEN they carry the public keys and the model, nothing secret
    assert (keys_status, json.loads(keys_body)) == (200, keys.public)
    assert keys_headers["cache-control"] == "max-age=60"
    assert health_status == 200
    health = json.loads(health_body)
    assert (health["status"], health["backend"]) == ("ok", engine.backend)
    assert health["model"].items() >= engine.manifest.public_info().items()
    assert keys.private_b64[0].encode() not in keys_body + health_body


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/", (404, "not_found")),
        ("POST", "/robots", (404, "not_found")),
        ("GET", "/robots.txt", (404, "not_found")),
        ("GET", "/favicon.ico", (404, "not_found")),
        ("DELETE", "/api/health", (405, "method_not_allowed")),
    ],
)
def test_unknown_routes_and_methods(client, method, path, expected):
    """The framework's own routes and prefixed paths; the full 404/405 table is in the conformance cases."""
    # GIVEN a path or method the protocol does not serve
    # WHEN functions-framework passes it to the function
    answer = gcp_call(client, method, path, {}, b"")
    # THEN the function answers with the protocol's JSON error
    assert error_code(answer) == expected
    if expected[0] == 405:
        assert answer[1]["allow"] in ("GET", "POST")


def test_header_case_charset_and_prefix(client, keys):
    # GIVEN an upper-case header name, a mixed-case type with a charset and a path prefix
    sealed = seal(keys)
    headers = {"CONTENT-TYPE": "Application/LiteFaaS+JSON; charset=utf-8"}
    # WHEN it is sent
    status, _, body = gcp_call(client, "POST", "/v1/predict", headers, sealed.body)
    # THEN it is an ordinary encrypted request
    assert status == 200
    assert "outputs" in sealed.open(body)


def test_oversize_body_is_413(client):
    # GIVEN a body one byte over the default 4 MiB limit
    body = b" " * (4 * 1024 * 1024 + 1)
    # WHEN it is posted
    answer = gcp_call(client, "POST", "/predict", ENCRYPTED, body)
    # THEN the function refuses it before reading it as JSON
    assert error_code(answer) == (413, "payload_too_large")


class Trickle(io.BytesIO):
    """A request body that arrives at most 700 bytes per sized read, as from a slow socket."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(size if size is None or size < 0 else min(size, 700))

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return super().readinto(memoryview(buffer)[:700])


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_read_in_short_pieces_arrives_whole(client, keys, engine, declared):
    # GIVEN a sealed batch whose body the server reads a few hundred bytes at a time
    sealed = seal(keys, inputs=(ROWS * 8)[:64])
    length = {"Content-Length": str(len(sealed.body))} if declared else {"Transfer-Encoding": "chunked"}
    environ = {} if declared else {"wsgi.input_terminated": True}  # the server de-chunks it
    # WHEN functions-framework delivers it to the function
    response = client.open(
        "/predict",
        method="POST",
        headers={**ENCRYPTED, **length},
        input_stream=Trickle(sealed.body),
        environ_overrides=environ,
    )
    # THEN the function read every byte: its sealed answer is the engine's
    assert response.status_code == 200, response.get_data()[:200]
    assert sealed.open(response.get_data())["outputs"] == expected_outputs(engine, (ROWS * 8)[:64])


def test_execution_id_becomes_the_request_id(client, capsys):
    # GIVEN a request that Cloud Functions tagged with an execution id
    headers = {"Function-Execution-Id": "exec-1234"}
    # WHEN the function answers it
    gcp_call(client, "GET", "/health", headers, b"")
    # THEN its log line carries that id
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line["request_id"] == "exec-1234" for line in lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
    content_type=st.one_of(
        st.sampled_from(["application/json", "application/litefaas+json; charset=utf-8", "text/plain", ""]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=st.sampled_from(["/predict", "/keys", "/health", "/x/predict", "/"]),
)
def test_fuzzed_requests_never_500(open_client, body, content_type, method, path):
    # GIVEN any body, content type, method and path
    # WHEN functions-framework delivers it
    status, headers, response_body = gcp_call(open_client, method, path, {"Content-Type": content_type}, body)
    # THEN the answer is a protocol status, and a JSON error when it is not 200
    assert status in PROTOCOL_STATUSES
    if status != 200:
        assert headers["content-type"] == "application/json"
        assert json.loads(response_body)["error"]["code"]
