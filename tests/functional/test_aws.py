"""The Lambda handler over every AWS event source, fed the documented event shapes in fixtures/events/aws."""

from __future__ import annotations

import base64
import importlib
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from fixtures.aws_events import HTTP_KINDS, KINDS, aws_event, aws_response, template
from fixtures.conformance import PROTOCOL_STATUSES
from fixtures.emf import assert_valid_emf
from fixtures.requests import ENCRYPTED, PLAINTEXT, ROWS, seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.app import App, Response
from core.config import Settings
from core.errors import ERRORS_BY_CODE

HANDLER_MODULE = "handlers.aws.handler"
PROTOCOL_CODES = set(ERRORS_BY_CODE) - {"internal_error"}


@pytest.fixture(scope="module")
def lambda_module(keys):
    """``handlers.aws.handler`` imported (its cold start run) with a fresh key ring in LITEFAAS_*."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LITEFAAS_PRIVATE_KEYS", keys.private_json)
        patch.delenv("LITEFAAS_PRIVATE_KEYS_FILE", raising=False)
        patch.delenv("LITEFAAS_ALLOW_PLAINTEXT", raising=False)
        patch.delenv("LITEFAAS_MODEL_DIR", raising=False)
        sys.modules.pop(HANDLER_MODULE, None)
        module = importlib.import_module(HANDLER_MODULE)
    yield module
    sys.modules.pop(HANDLER_MODULE, None)


def make_app(keys, engine, **env):
    return App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, **env}), engine)


@pytest.fixture(scope="module")
def app(keys, engine):
    return make_app(keys, engine)


@pytest.fixture(scope="module")
def handler(lambda_module, app):
    return lambda_module.create_handler(app)


@pytest.fixture(scope="module")
def open_handler(lambda_module, keys, engine):
    return lambda_module.create_handler(make_app(keys, engine, LITEFAAS_ALLOW_PLAINTEXT="1"))


def call(handler, kind, method, path, headers, body=b"", *, base64=False, context=None):
    result = handler(aws_event(kind, method, path, headers, body, base64=base64), context)
    return result, aws_response(kind, result)


def error_code(headers, body):
    assert headers["content-type"] == "application/json"
    return json.loads(body)["error"]["code"]


def expected_outputs(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"].tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_encrypted_round_trip_equals_core(handler, app, keys, engine, kind):
    # GIVEN an encrypted request as this event source delivers it
    sealed = seal(keys, inputs=ROWS[:3])
    # WHEN the handler answers it
    _, (status, headers, body) = call(handler, kind, "POST", "/predict", ENCRYPTED, sealed.body)
    # THEN the answer is what the core itself answers: sealed, and the model's outputs inside
    twin = seal(keys, inputs=ROWS[:3])
    core = app.handle("POST", "/predict", ENCRYPTED, twin.body)
    assert (
        (status, headers["content-type"])
        == (core.status, core.headers["Content-Type"])
        == (
            200,
            "application/litefaas+json",
        )
    )
    answer = sealed.open(body)
    assert answer == twin.open(core.body)
    assert answer["outputs"] == expected_outputs(engine, ROWS[:3])


@pytest.mark.parametrize("kind", KINDS)
def test_plaintext_on_and_off(handler, open_handler, engine, kind):
    # GIVEN a plaintext request
    body = json.dumps({"inputs": ROWS[:2]}).encode()
    # WHEN a function with plaintext on, then one with plaintext off, answers it
    _, (open_status, _, open_body) = call(open_handler, kind, "POST", "/predict", PLAINTEXT, body)
    _, (closed_status, closed_headers, closed_body) = call(handler, kind, "POST", "/predict", PLAINTEXT, body)
    # THEN the first answers in clear, the second refuses with 403
    assert open_status == 200
    assert json.loads(open_body)["outputs"] == expected_outputs(engine, ROWS[:2])
    assert (closed_status, error_code(closed_headers, closed_body)) == (403, "plaintext_disabled")


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_base64_bodies(handler, keys, kind):
    # GIVEN an encrypted request whose body the event source passed base64-encoded
    sealed = seal(keys)
    event = aws_event(kind, "POST", "/predict", ENCRYPTED, sealed.body, base64=True)
    assert event["isBase64Encoded"] is True
    # WHEN the handler answers it
    status, _, body = aws_response(kind, handler(event, None))
    # THEN the body was decoded first
    assert status == 200
    assert "outputs" in sealed.open(body)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_body_that_is_not_base64_is_a_protocol_error(handler, keys, kind):
    # GIVEN an event that says its body is base64 when it is not
    event = aws_event(kind, "POST", "/predict", ENCRYPTED, seal(keys).body)
    event["isBase64Encoded"] = True
    # WHEN the handler answers it
    status, headers, body = aws_response(kind, handler(event, None))
    # THEN it is a 400 invalid_envelope in the source's own shape
    assert (status, error_code(headers, body)) == (400, "invalid_envelope")


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize("path", ["/prod/predict", "/v1/predict/", "/dev/litefaas/predict"])
def test_stage_and_base_path_prefixes(handler, keys, kind, path):
    # GIVEN a request whose path carries a stage or a custom-domain base path
    sealed = seal(keys)
    # WHEN the handler answers it
    _, (status, _, body) = call(handler, kind, "POST", path, ENCRYPTED, sealed.body)
    # THEN the route is still /predict
    assert status == 200
    assert "outputs" in sealed.open(body)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_keys_and_health(handler, keys, engine, kind):
    _, (status, headers, body) = call(handler, kind, "GET", "/prod/keys", {})
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", keys.public)
    _, (status, _, body) = call(handler, kind, "GET", "/health", {})
    assert status == 200
    health = json.loads(body)
    assert (health["status"], health["backend"]) == ("ok", engine.backend)
    assert health["model"].items() >= engine.manifest.public_info().items()


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize(
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/prod/nope", 404, "not_found", None),
        ("DELETE", "/prod/health", 405, "method_not_allowed", "GET"),
    ],
)
def test_unknown_routes_and_methods(handler, kind, method, path, status, code, allow):
    """Paths behind a stage prefix; the full 404/405 table is in the conformance cases."""
    # GIVEN a wrong route or method, WHEN the handler answers
    _, (got_status, headers, body) = call(handler, kind, method, path, {})
    # THEN it is the protocol's error, with an Allow header on a 405
    assert (got_status, error_code(headers, body)) == (status, code)
    assert headers.get("allow") == allow


@pytest.mark.parametrize(("kind", "multi"), [("alb", False), ("alb_multivalue", True)])
@pytest.mark.parametrize(("path", "status_line"), [("/predict", "200 OK"), ("/nope", "404 Not Found")])
def test_alb_answers_in_the_header_mode_of_the_request(handler, keys, kind, multi, path, status_line):
    # GIVEN an ALB request in single- or multi-value header mode
    sealed = seal(keys)
    # WHEN the handler answers it
    result, (_, headers, _) = call(handler, kind, "POST", path, ENCRYPTED, sealed.body)
    # THEN the answer uses the same mode, and says its status in words
    assert result["statusDescription"] == status_line
    assert ("multiValueHeaders" in result, "headers" in result) == (multi, not multi)
    if multi:
        assert all(isinstance(values, list) for values in result["multiValueHeaders"].values())
    assert result["isBase64Encoded"] is False
    assert isinstance(result["body"], str)
    assert headers["content-type"].startswith("application/")


@pytest.mark.parametrize("kind", ["apigw_v1", "apigw_v1_multivalue"])
def test_rest_api_answers_multi_value_headers_too(handler, keys, kind):
    # GIVEN a REST API request carrying repeated headers, WHEN the handler answers it
    sealed = seal(keys)
    headers = {**ENCRYPTED, "X-Litefaas-Trace": ["one", "two"]}
    result, (status, _, _) = call(handler, kind, "POST", "/predict", headers, sealed.body)
    # THEN it answers in both header maps, consistently
    assert status == 200
    assert result["multiValueHeaders"] == {name: [value] for name, value in result["headers"].items()}


@pytest.mark.parametrize("kind", ["http_api_v2", "function_url"])
def test_v2_shape_and_cookies(handler, keys, kind):
    # GIVEN a payload-2.0 request with cookies, WHEN the handler answers it
    sealed = seal(keys)
    headers = {**ENCRYPTED, "cookie": "session=abc; theme=dark"}
    event = aws_event(kind, "POST", "/predict", headers, sealed.body)
    assert event["cookies"] == ["session=abc", "theme=dark"]
    result = handler(event, None)
    # THEN the answer is the 2.0 response shape
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert result["statusCode"] == 200


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/litefaas+json; charset=utf-8",
        "Application/LiteFaaS+JSON",
        "APPLICATION/LITEFAAS+JSON;charset=UTF-8",
    ],
)
@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE"])
def test_header_names_and_media_types_in_any_case(handler, keys, kind, name, content_type):
    sealed = seal(keys)
    _, (status, _, body) = call(handler, kind, "POST", "/predict", {name: content_type}, sealed.body)
    assert status == 200
    assert "outputs" in sealed.open(body)


def test_event_source_detection(lambda_module):
    # GIVEN the documented event of each source, THEN each is told apart by its own check
    expected = {
        "apigw_v1": "apigw_v1",
        "apigw_v1_multivalue": "apigw_v1",
        "http_api_v2": "http_api_v2",
        "function_url": "function_url",
        "alb": "alb",
        "alb_multivalue": "alb",
    }
    for kind, name in expected.items():
        assert lambda_module.infer_source(template(kind)).name == name
    assert lambda_module.infer_source({"v": 1, "kid": "k0", "suite": "s", "ct": "x"}).name == "direct"
    assert lambda_module.infer_source({"inputs": [[1.0]]}).name == "direct"
    assert lambda_module.infer_source({"Records": []}) is None


def test_direct_invoke_answers_the_protocol_object(handler, keys, engine):
    # GIVEN a direct invoke whose event is the encrypted envelope itself
    sealed = seal(keys, inputs=ROWS[:2])
    event = json.loads(sealed.body)
    # WHEN the handler answers it
    result = handler(event, SimpleNamespace(aws_request_id="req-1"))
    # THEN the result carries the status and the sealed answer as a JSON object, ready to open
    assert set(result) == {"statusCode", "headers", "body"}
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/litefaas+json"
    assert set(result["body"]) == {"v", "nonce", "ct"}
    assert sealed.open(result["body"])["outputs"] == expected_outputs(engine, ROWS[:2])
    json.dumps(result)  # what the Lambda runtime does with it


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        ({"v": 1, "kid": "k0", "suite": "x25519-sha256-aes128gcm"}, 400, "invalid_envelope"),
        (
            {"v": 1, "kid": "nobody", "suite": "x25519-sha256-aes128gcm", "ct": "AAAA"},
            400,
            "decryption_failed",
        ),
        ({"inputs": [[1.0, 2.0]]}, 403, "plaintext_disabled"),
    ],
)
def test_direct_invoke_errors(handler, event, status, code):
    result = handler(event, None)
    assert (result["statusCode"], result["body"]["error"]["code"]) == (status, code)


def test_a_routed_direct_invoke_reaches_the_oip_routes(open_handler):
    # GIVEN a direct invoke in the routed form: method, path, headers and a base64 body
    document = {"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": ROWS[0]}]}
    event = {
        "litefaas": 2,
        "method": "POST",
        "path": "/v2/models/breast_cancer_mlp/infer",
        "headers": {"Content-Type": "application/json"},
        "body": base64.b64encode(json.dumps(document).encode()).decode(),
    }
    # WHEN the handler answers it, and a metadata read with no headers
    result = open_handler(event, None)
    metadata = open_handler({"litefaas": 2, "method": "GET", "path": "/v2", "body": ""}, None)
    # THEN both are answered as a Function URL answers: the body as text where it is JSON
    assert (result["statusCode"], result["isBase64Encoded"]) == (200, False)
    assert json.loads(result["body"])["outputs"][0]["name"] == "probability"
    assert json.loads(metadata["body"])["name"] == "litefaas"


@pytest.mark.parametrize(
    "event",
    [
        {"litefaas": 2, "path": "/v2", "body": "", "query": "x"},
        {"litefaas": 2, "path": "/v2"},
        {"litefaas": 2, "path": 7, "body": ""},
        {"litefaas": 2, "path": "/v2", "headers": ["x"], "body": ""},
        {"litefaas": 1, "path": "/v2", "body": ""},
    ],
)
def test_a_routed_direct_invoke_with_wrong_fields_is_a_clear_error(open_handler, event):
    result = open_handler(event, None)
    assert (result["statusCode"], json.loads(result["body"])["error"]["code"]) == (400, "invalid_envelope")


@pytest.mark.parametrize(
    "event",
    [None, [], "POST /predict", 42, {}, {"Records": [{"eventSource": "aws:sqs"}]}, {"source": "aws.events"}],
)
def test_unknown_event_is_a_clear_protocol_error(handler, event):
    # GIVEN an event of no supported source, WHEN the handler answers it
    result = handler(event, None)
    # THEN it is a 400 invalid_envelope that says what was expected, never an exception or a 500
    assert result["statusCode"] == 400
    error = result["body"]["error"]
    assert error["code"] == "invalid_envelope"
    assert "API Gateway" in error["message"]


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("apigw_v1", "httpMethod", 7),
        ("apigw_v1", "headers", ["content-type"]),
        ("apigw_v1_multivalue", "body", {"v": 1}),
        ("http_api_v2", "requestContext", {"http": None}),
        ("function_url", "rawPath", 3),
        ("alb", "path", ["/predict"]),
        ("alb_multivalue", "multiValueHeaders", "content-type"),
    ],
)
def test_malformed_events_of_known_sources(handler, kind, field, value):
    event = aws_event(kind, "POST", "/predict", ENCRYPTED, b"{}")
    event[field] = value
    status, headers, body = aws_response(kind, handler(event, None))
    assert (status, error_code(headers, body)) == (400, "invalid_envelope")


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_repeated_header_is_every_value_it_was_sent_with(handler, kind):
    """A Content-Type sent twice: REST's ``headers`` holds only its last value and
    ``multiValueHeaders`` both, HTTP APIs join them; each source that carries both values sees both
    (the protocol's 415). An ALB without multi-value headers hands on the last alone."""
    plaintext = json.dumps({"inputs": ROWS[:1]}).encode()
    twice = {"Content-Type": ["text/plain", PLAINTEXT["Content-Type"]]}
    status, headers, body = aws_response(
        kind, handler(aws_event(kind, "POST", "/predict", twice, plaintext), None)
    )
    if kind == "alb":  # the last value alone: a plaintext request, where plaintext is off
        assert (status, error_code(headers, body)) == (403, "plaintext_disabled")
    else:
        assert (status, error_code(headers, body)) == (415, "unsupported_media_type")


def test_request_id_comes_from_the_lambda_context(handler, capsys):
    call(handler, "http_api_v2", "GET", "/health", {}, context=SimpleNamespace(aws_request_id="abc-123"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "abc-123" and line.get("route") == "health" for line in lines)


class _BinaryApp:
    """Stands in for the core: answers with a body that is not UTF-8."""

    logger = None

    def handle(self, method, path, headers, body, request_id=None, response_limit=None):
        return Response(200, {"Content-Type": "application/octet-stream"}, b"\xff\x00\xfe")


@pytest.mark.parametrize("kind", KINDS)
def test_bodies_that_are_not_utf8_go_back_base64(lambda_module, kind):
    handler = lambda_module.create_handler(_BinaryApp())
    event = aws_event(kind, "POST", "/predict", PLAINTEXT, b'{"inputs": [[1.0]]}')
    result = handler(event, None)
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\xff\x00\xfe"


def test_module_handler_cold_starts_from_the_environment(lambda_module, keys):
    # GIVEN the module-level handler, imported with LITEFAAS_PRIVATE_KEYS set
    sealed = seal(keys)
    # WHEN Lambda calls it
    _, (status, _, body) = call(
        lambda_module.handler, "function_url", "POST", "/predict", ENCRYPTED, sealed.body
    )
    # THEN it serves with that key ring, plaintext off
    assert status == 200
    assert "outputs" in sealed.open(body)
    assert lambda_module.APP.keyring.public_keyset() == keys.public
    assert lambda_module.APP.settings.allow_plaintext is False


header_names = st.sampled_from(
    ["Content-Type", "content-type", "X-Forwarded-For", "Accept", "cookie", "Host"]
)
header_values = st.one_of(
    st.sampled_from(
        ["application/litefaas+json", "application/json; charset=utf-8", "text/plain", "", "a=b; c=d"]
    ),
    st.text(max_size=40),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(HTTP_KINDS),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "post"]),
    path=st.sampled_from(["/predict", "/keys", "/health", "/prod/predict", "/", "", "/x/y"]),
    headers=st.dictionaries(
        header_names, st.one_of(header_values, st.lists(header_values, max_size=3)), max_size=4
    ),
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps({"inputs": value}).encode()),
    ),
    as_base64=st.booleans(),
)
def test_fuzzed_requests_get_protocol_answers(open_handler, kind, method, path, headers, body, as_base64):
    # GIVEN any body and headers through an event source
    event = aws_event(kind, method, path, headers, body, base64=as_base64)
    # WHEN the handler answers, THEN it is a protocol status, and any error carries a protocol code
    status, response_headers, response_body = aws_response(kind, open_handler(event, None))
    assert status in PROTOCOL_STATUSES
    if status != 200:
        assert error_code(response_headers, response_body) in PROTOCOL_CODES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
event_keys = st.sampled_from(
    [
        "httpMethod",
        "path",
        "headers",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
        "version",
        "rawPath",
        "requestContext",
        "cookies",
        "v",
        "kid",
        "suite",
        "ct",
        "inputs",
        "elb",
        "http",
        "method",
        "domainName",
    ]
)
events = st.recursive(
    json_values,
    lambda children: st.dictionaries(event_keys, children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events)
def test_fuzzed_events_never_raise(handler, event):
    result = handler(event, None)
    assert result["statusCode"] in PROTOCOL_STATUSES
    json.dumps(result)


def test_a_refused_event_is_recorded_as_every_request_is(lambda_module, keys, engine, capsys, monkeypatch):
    # GIVEN a fresh function writing CloudWatch EMF, in an invocation that X-Ray traces
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )
    handler = lambda_module.create_handler(make_app(keys, engine, LITEFAAS_LOG_FORMAT="emf"))
    capsys.readouterr()
    # WHEN its first event is of no source it reads, and a request follows
    result = handler({"source": "aws.events"}, SimpleNamespace(aws_request_id="req-1"))
    call(handler, "http_api_v2", "GET", "/health", {}, context=SimpleNamespace(aws_request_id="req-2"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    records = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    # THEN the refusal is answered as before and is a request record, valid EMF: its status, error
    # metric and code, the invocation's trace, the model, and the instance's cold start
    assert result["statusCode"] == 400 and result["body"]["error"]["code"] == "invalid_envelope"
    refused = records["req-1"]
    assert_valid_emf(refused)
    assert (refused["route"], refused["status"], refused["error"], refused["fault"]) == ("unknown", 400, 1, 0)
    assert (refused["code"], refused["source"], refused["cold_start"]) == (
        "invalid_envelope",
        "unknown",
        True,
    )
    assert (refused["trace_id"], refused["parent_span_id"]) == (
        "5759e988bd862e3fe1be46a994272793",
        "53995c3f42cd8ad8",
    )
    assert refused["model"] == engine.manifest.name and refused["bytes_in"] == 0
    assert any(line.get("ColdStart") == 1 for line in lines)
    # AND the request after it is not the cold start
    assert records["req-2"]["cold_start"] is False
