"""The Cloud Functions entrypoint in functions-framework's ASGI mode (``FUNCTION_USE_ASGI``, as
deployed): the app functions-framework builds is the core's own ASGI app; where it would build its
Starlette app instead, that one answers in the protocol's terms too."""

from __future__ import annotations

import asyncio
import json
import sys

import functions_framework.aio as aio
from fixtures.providers_gcp_azure import gcp_asgi
from fixtures.requests import ENCRYPTED, seal

from litefaas.benchmark.wsgi import AsgiCaller


def lifespan(app):
    """The messages ``app`` sends through the lifespan protocol, as uvicorn drives it."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    return sent


def test_functions_framework_serves_the_core_app_directly(keys):
    # GIVEN functions-framework's ASGI app for the entrypoint, cold-started as deployed
    call = gcp_asgi({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    module = sys.modules["main"]
    # THEN it is the entrypoint's own ASGI app, not a Starlette app around the function
    assert call.app is module.predict.asgi_app
    # AND it answers the lifespan protocol and sealed requests
    assert lifespan(call.app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    request = seal(keys)
    status, headers, body = call("POST", "/predict", ENCRYPTED, request.body)
    assert status == 200 and headers["content-length"] == str(len(body))
    assert len(request.open(body)["outputs"]) == 1
    status, headers, body = call("GET", "/robots.txt", {}, b"")
    assert (status, json.loads(body)["error"]["code"]) == (404, "not_found")


def test_where_functions_framework_builds_starlette_its_own_answers_are_the_protocols(keys):
    # GIVEN the entrypoint loaded, and functions-framework's Starlette app built around the function
    # (what it serves for a function without the direct app)
    gcp_asgi({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    module = sys.modules["main"]
    starlette_app = aio._create_asgi_app_with_function(module.create_asgi_function(module.APP), "http", False)
    call = AsgiCaller(starlette_app)
    assert type(starlette_app).__name__ == "Starlette"
    # WHEN it is asked what Starlette would answer itself, and a sealed request
    answers = {
        (method, path): call(method, path, {}, b"")
        for method, path in [("GET", "/robots.txt"), ("GET", "/favicon.ico"), ("TRACE", "/predict")]
    }
    request = seal(keys)
    status, _, body = call("POST", "/predict", ENCRYPTED, request.body)
    # THEN every answer is the core's
    assert status == 200 and len(request.open(body)["outputs"]) == 1
    codes = {key: (status, json.loads(body)["error"]["code"]) for key, (status, _, body) in answers.items()}
    assert codes == {
        ("GET", "/robots.txt"): (404, "not_found"),
        ("GET", "/favicon.ico"): (404, "not_found"),
        ("TRACE", "/predict"): (405, "method_not_allowed"),
    }


def request_ids(capsys) -> list[str]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line["request_id"] for line in lines if line.get("event") == "request"]


def test_the_execution_id_becomes_the_request_id_on_both_asgi_apps(keys, capsys):
    # GIVEN the app functions-framework serves (the entrypoint's own) and the Starlette app it would
    # build around the function (with its execution id middleware)
    served = gcp_asgi({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    module = sys.modules["main"]
    starlette = AsgiCaller(
        aio._create_asgi_app_with_function(module.create_asgi_function(module.APP), "http", False)
    )
    trace_header = {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}
    capsys.readouterr()
    for call in (served, starlette):
        # WHEN Cloud Run's front end tags a request with an execution id, then two with its trace
        # header only, and one comes with neither
        call("GET", "/health", {"Function-Execution-Id": "exec-1234"}, b"")
        for _ in range(2):
            call("GET", "/health", trace_header, b"")
        call("GET", "/health", {}, b"")
        # THEN the first line carries the execution id; each other its own id (never the trace
        # header, which two requests share): the request's own span id, or where
        # functions-framework's middleware runs the id it gives each
        tagged, *traced, untagged = request_ids(capsys)
        assert tagged == "exec-1234"
        if call is served:
            given = [*traced, untagged]
            assert len(set(given)) == 3 and all(len(id_) == 16 and int(id_, 16) > 0 for id_ in given)
        else:
            given = [*traced, untagged]
            assert len(set(given)) == 3 and all(len(id_) == 12 and id_.isalnum() for id_ in given)


def test_a_repeated_header_reaches_the_core_with_every_value_it_was_sent_with(keys):
    """uvicorn hands a repeated name over once per value; the core sees them joined, as a WSGI
    server joins them (a Content-Type sent twice is then the protocol's 415 on both servers)."""
    gcp_asgi({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    module = sys.modules["main"]
    scope = {
        "headers": [(b"content-type", b"text/plain"), (b"x-a", b"1"), (b"content-type", b"application/json")]
    }
    headers, _ = module._request(scope)
    assert headers == {"content-type": "text/plain,application/json", "x-a": "1"}
    alone = {"headers": [(b"content-type", b"application/json"), (b"function-execution-id", b"e-1")]}
    assert module._request(alone) == (
        {"content-type": "application/json", "function-execution-id": "e-1"},
        "e-1",
    )
