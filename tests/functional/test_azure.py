"""The Azure Functions entrypoint: the real function_app.py with real ``azure.functions`` types, in process."""

from __future__ import annotations

import json

import azure.functions as func
import numpy as np
import pytest
from fixtures.conformance import PROTOCOL_STATUSES
from fixtures.providers_gcp_azure import AZURE_APP_DIR, azure_call, azure_function_app
from fixtures.requests import ENCRYPTED, PLAINTEXT, ROWS, seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client as WsgiClient

from litefaas.local.azure_host import AzureHost, InvocationContext, compile_route, http_routes, route_prefix


@pytest.fixture(scope="module")
def function_app(keys):
    return azure_function_app({"LITEFAAS_PRIVATE_KEYS": keys.private_json})


@pytest.fixture(scope="module")
def open_function_app(keys):
    return azure_function_app({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"})


def expected_outputs(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"].tolist()


def error_code(answer):
    status, headers, body = answer
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)["error"]["code"]


def call_function(function_app, name, method, path, headers, body, invocation_id=None):
    """Call one registered function directly, as the Python worker does, with a real HttpRequest."""
    route = {route.function_name: route for route in http_routes(function_app)}[name]
    request = func.HttpRequest(
        method, f"https://example.azurewebsites.net/api{path}", headers=headers, body=body
    )
    response = route.user_function(
        req=request, context=InvocationContext(name, str(AZURE_APP_DIR), invocation_id)
    )
    assert isinstance(response, func.HttpResponse)
    return response


def test_route_table(function_app):
    # GIVEN the function app as the Python worker indexes it
    routes = http_routes(function_app)
    # WHEN its HTTP triggers are read
    table = [(route.function_name, route.template, route.methods) for route in routes]
    # THEN each protocol route is its own anonymous function and the catch-all is tried last
    assert table == [
        ("health", "health", frozenset({"GET"})),
        ("keys", "keys", frozenset({"GET"})),
        ("ohttp_gateway", ".well-known/ohttp-gateway", frozenset({"GET", "POST"})),
        ("oip", "v2/{*oip_path}", frozenset({"GET", "POST"})),
        ("predict", "predict", frozenset({"POST"})),
        ("unmatched_route", "{*path}", None),
    ]
    assert all(route.takes_context and route.trigger_arg == "req" for route in routes)


def test_host_json(function_app):
    # GIVEN the app's host.json
    settings_ = json.loads((AZURE_APP_DIR / "host.json").read_text())
    # WHEN its version, bundle and prefix are read
    # THEN it is a Functions v4 host with the default /api prefix
    assert settings_["version"] == "2.0"
    assert settings_["extensionBundle"]["version"].startswith("[4.")
    assert route_prefix(AZURE_APP_DIR) == "api"


def test_functions_called_directly(function_app, keys, engine):
    # GIVEN real HttpRequests for each function
    sealed = seal(keys, inputs=ROWS[:4])
    # WHEN the worker would call predict, keys and health with them
    predicted = call_function(function_app, "predict", "POST", "/predict", ENCRYPTED, sealed.body)
    keyset = call_function(function_app, "keys", "GET", "/keys", {}, b"")
    health = call_function(function_app, "health", "GET", "/health", {}, b"")
    # THEN each answers with its status, headers and body
    assert predicted.status_code == 200
    assert predicted.headers["Content-Type"] == "application/litefaas+json"
    assert sealed.open(predicted.get_body())["outputs"] == expected_outputs(engine, ROWS[:4])
    assert json.loads(keyset.get_body()) == keys.public
    assert json.loads(health.get_body())["status"] == "ok"


def test_invocation_id_becomes_the_request_id(function_app, capsys):
    # GIVEN an invocation with a known id
    # WHEN the function answers it
    call_function(function_app, "health", "GET", "/health", {}, b"", invocation_id="inv-42")
    # THEN its log line carries that id
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line["request_id"] == "inv-42" for line in lines)


def test_encrypted_round_trip_matches_the_engine(function_app, keys, engine):
    # GIVEN a batch sealed to the function's public key
    sealed = seal(keys, inputs=ROWS[:5])
    # WHEN the route table sends it to its function
    status, headers, body = azure_call(function_app, "POST", "/predict", ENCRYPTED, sealed.body)
    # THEN the sealed answer opens to the local engine's outputs
    assert (status, headers["content-type"]) == (200, "application/litefaas+json")
    answer = sealed.open(body)
    assert answer["outputs"] == expected_outputs(engine, ROWS[:5])
    assert answer["model"] == engine.manifest.public_info()


def test_plaintext_only_where_allowed(function_app, open_function_app, engine):
    # GIVEN a plaintext request
    request = json.dumps({"inputs": ROWS[:3]}).encode()
    # WHEN it reaches a function started without and with LITEFAAS_ALLOW_PLAINTEXT=1
    refused = azure_call(function_app, "POST", "/predict", PLAINTEXT, request)
    status, _, body = azure_call(open_function_app, "POST", "/predict", PLAINTEXT, request)
    # THEN the first refuses it with 403 and the second answers in clear
    assert error_code(refused) == (403, "plaintext_disabled")
    assert status == 200
    assert json.loads(body)["outputs"] == expected_outputs(engine, ROWS[:3])


def test_keys_and_health(function_app, keys, engine):
    # GIVEN a cold-started function app
    # WHEN its key set and health are read
    keys_status, keys_headers, keys_body = azure_call(function_app, "GET", "/keys", {}, b"")
    health_status, _, health_body = azure_call(function_app, "GET", "/health", {}, b"")
    # THEN they carry the public keys and the model, nothing secret
    assert (keys_status, json.loads(keys_body)) == (200, keys.public)
    assert keys_headers["cache-control"] == "max-age=60"
    assert health_status == 200
    assert json.loads(health_body)["model"].items() >= engine.manifest.public_info().items()
    assert keys.private_b64[0].encode() not in keys_body + health_body


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "", (404, "not_found")),
        ("POST", "/a/b/c", (404, "not_found")),
        ("PUT", "/predict", (405, "method_not_allowed")),
    ],
)
def test_unknown_routes_and_methods_reach_the_catch_all(function_app, method, path, expected):
    """Paths only Azure's route table sees; the full 404/405 table is in the conformance cases."""
    # GIVEN a path or method that no protocol route takes
    # WHEN the route table picks a function for it
    answer = azure_call(function_app, method, path, {}, b"")
    # THEN the catch-all answers with the protocol's JSON error, not Azure's empty 404
    assert error_code(answer) == expected
    if expected[0] == 405:
        assert answer[1]["allow"] in ("GET", "POST")


def test_header_case_and_charset(function_app, keys):
    # GIVEN an upper-case header name and a mixed-case type with a charset
    sealed = seal(keys)
    headers = {"CONTENT-TYPE": "Application/LiteFaaS+JSON; charset=utf-8"}
    # WHEN it is sent
    status, _, body = azure_call(function_app, "POST", "/predict", headers, sealed.body)
    # THEN it is an ordinary encrypted request
    assert status == 200
    assert "outputs" in sealed.open(body)


def test_oversize_body_is_413(function_app):
    # GIVEN a body one byte over the default 4 MiB limit
    body = b" " * (4 * 1024 * 1024 + 1)
    # WHEN it is posted
    answer = azure_call(function_app, "POST", "/predict", ENCRYPTED, body)
    # THEN the function refuses it
    assert error_code(answer) == (413, "payload_too_large")


def test_wsgi_host_serves_the_function_app(open_function_app, keys, engine):
    # GIVEN the local host's WSGI application for the real function app
    host = AzureHost(open_function_app, "api", AZURE_APP_DIR)
    client = WsgiClient(host)
    sealed = seal(keys, inputs=ROWS[:2])
    # WHEN HTTP requests go through WSGI
    predicted = client.post("/api/predict", data=sealed.body, headers=ENCRYPTED)
    plaintext = client.post("/api/predict?debug=1", data=json.dumps({"inputs": ROWS[:2]}), headers=PLAINTEXT)
    wrong_method = client.get("/API/pre%64ict/")
    outside_prefix = client.get("/health")
    # THEN the functions answer under /api, and Azure's own empty 404 is outside it
    assert predicted.status_code == 200
    assert sealed.open(predicted.get_data())["outputs"] == expected_outputs(engine, ROWS[:2])
    assert json.loads(plaintext.get_data())["outputs"] == expected_outputs(engine, ROWS[:2])
    assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")
    assert (outside_prefix.status_code, outside_prefix.get_data()) == (404, b"")
    assert "Content-Type" not in outside_prefix.headers


def test_host_reports_a_failing_function_as_500(capsys):
    # GIVEN a function app whose function raises
    broken = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @broken.route(route="boom")
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    # WHEN it is called through the host
    answer = AzureHost(broken).invoke("GET", "http://localhost/api/boom", {}, b"")
    # THEN the host answers an empty 500 and logs the traceback, as the Functions host does
    assert (answer.status, answer.body) == (500, b"")
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_host_turns_string_results_and_mimetypes_into_responses():
    # GIVEN functions returning a str and an HttpResponse with only a mimetype
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="text/{name}")
    def text(req: func.HttpRequest) -> str:
        return f"hello {req.route_params['name']} {req.params['q']}"

    @app.route(route="typed")
    def typed(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(b"{}", status_code=201, mimetype="application/json")

    host = AzureHost(app)
    # WHEN they are called
    text_answer = host.invoke("GET", "http://localhost/api/text/ada?q=1&q=2", {}, b"")
    typed_answer = host.invoke("GET", "http://localhost/api/typed", {}, b"")
    # THEN the converter's rules apply: str is 200 text/plain, the mimetype becomes Content-Type
    assert (text_answer.status, text_answer.body) == (200, b"hello ada 1,2")
    assert dict(text_answer.headers)["Content-Type"].startswith("text/plain")
    assert (typed_answer.status, dict(typed_answer.headers)["content-type"]) == (201, "application/json")


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("predict", "/predict", {}),
        ("predict", "/PREDICT/", {}),
        ("predict", "/predict/x", None),
        ("{*path}", "", {}),
        ("{*path}", "/a/b", {"path": "a/b"}),
        ("items/{id:int}", "/items/12", {"id": "12"}),
        ("items/{id:int}", "/items/x", None),
        ("files/{name}.{ext}", "/files/a.txt", {"name": "a", "ext": "txt"}),
        ("users/{name?}", "/users", {}),
        ("users/{name?}", "/users/bo", {"name": "bo"}),
    ],
)
def test_route_templates(template, path, params):
    # GIVEN an ASP.NET-style route template
    # WHEN a path relative to the prefix is matched
    found = compile_route(template).fullmatch(path)
    # THEN it matches as the Functions host would, with its route values
    if params is None:
        assert found is None
    else:
        assert found is not None
        assert {k: v for k, v in found.groupdict().items() if v is not None} == params


@pytest.mark.parametrize("template", ["{*rest}/x", "items/{id:regex(x)}", "a{b?}"])
def test_unsupported_route_templates_are_refused(template):
    with pytest.raises(ValueError, match="route"):
        compile_route(template)


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
    path=st.sampled_from(["/predict", "/keys", "/health", "/x/predict", ""]),
)
def test_fuzzed_requests_never_500(open_function_app, body, content_type, method, path):
    # GIVEN any body, content type, method and path under /api
    # WHEN the route table delivers it
    status, headers, response_body = azure_call(
        open_function_app, method, path, {"Content-Type": content_type}, body
    )
    # THEN the answer is a protocol status, and a JSON error when it is not 200
    assert status in PROTOCOL_STATUSES
    if status != 200:
        assert headers["content-type"] == "application/json"
        assert json.loads(response_body)["error"]["code"]


def test_application_insights_without_its_package_stops_the_cold_start_naming_it(monkeypatch, keys):
    # GIVEN a connection string, and azure-monitor-opentelemetry not importable
    import importlib
    import sys

    monkeypatch.setenv("LITEFAAS_PRIVATE_KEYS", keys.private_json)
    monkeypatch.delitem(sys.modules, "handlers.azure.function_app", raising=False)
    entry = importlib.import_module("handlers.azure.function_app")
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)
    # WHEN the entry point configures monitoring
    with pytest.raises(SystemExit) as stopped:
        entry.configure_monitoring({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"})
    # THEN it stops with one line naming the variable and the package
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in str(stopped.value)
    assert "azure-monitor-opentelemetry" in str(stopped.value)
    assert entry.configure_monitoring({}) is False
