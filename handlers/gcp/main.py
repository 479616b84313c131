"""Google Cloud Functions (gen2, functions-framework) entrypoint: ``--target predict``.

functions-framework hands every path and method to the one function; the core routes
``/predict``, ``/keys``, ``/health`` and the standard routes, and answers anything else with the
protocol's 404/405. Two servers, as functions-framework offers them:

- **ASGI** (``FUNCTION_USE_ASGI=true``, which ``litefaas deploy`` sets): gunicorn with one uvicorn
  worker serving the core's own ASGI app (:func:`create_asgi_app`, in place of the Starlette app
  functions-framework would build around the function), on the event loop, with no thread hand-off
  (measured: a hand-off to Starlette's thread pool cost a 224×224×3 image 1.1 ms, more than its
  inference; one process is one CPU's worth of work either way).
- **WSGI** (the framework's default): gunicorn's threads and Flask.

The framework's own answers (its ``/robots.txt`` and ``/favicon.ico`` 404s, Starlette's 405 for a
method it does not route) are the protocol's on every server instead of a page of their own (found
by fuzzing).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import functions_framework
from functions_framework.execution_id import EXECUTION_ID_REQUEST_HEADER as EXECUTION_ID

from core.app import App, cold_start
from core.errors import NotFound
from core.http import error_response

RESPONSE_LIMIT = 32 * 1024 * 1024
"""Cloud Run functions answer at most 32 MiB over HTTP/1."""
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})  # what click's flag takes from FUNCTION_USE_ASGI


def uses_asgi(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether functions-framework serves ASGI (``--asgi`` or ``FUNCTION_USE_ASGI``)."""
    return environ.get("FUNCTION_USE_ASGI", "").strip().lower() in _TRUE


# ------------------------------------------------------------------------------------------ WSGI


def _body(request: Any, limit: int) -> bytes:
    """The raw body, read once and not kept. A declared length within ``limit`` is read in one call
    (werkzeug's ``get_data`` reads 64 KB chunks into a growing buffer and copies it: twice the time
    on a 600 KB tensor); anything else takes the framework's path, and the core refuses it by size.
    functions-framework's own read after the answer then finds the stream spent."""
    length = request.content_length
    if length is None or length > limit:
        data: bytes = request.get_data(cache=False)
        return data
    parts = [request.stream.read(length)]
    received = len(parts[0])
    while received < length and (part := request.stream.read(length - received)):
        parts.append(part)
        received += len(part)
    return b"".join(parts)


def raw_path(path: str, request_target: object) -> str:
    """The path as the request line carried it (the core decodes it, once): the server's raw
    request target (gunicorn's ``RAW_URI``, uvicorn's ``raw_path``) without its query, else the
    decoded ``path`` encoded again."""
    if isinstance(request_target, bytes):
        request_target = request_target.decode("latin-1")
    if isinstance(request_target, str) and request_target.startswith("/"):
        return request_target.split("?", 1)[0]
    return quote(path, safe="/:@!$&'()*+,;=-._~")


def create_function(app: App) -> Callable[[Any], Any]:
    """The WSGI HTTP function serving ``app``: flask request in, flask response out."""
    import flask

    def predict(request: flask.Request) -> flask.Response:
        headers = request.headers
        environ = request.environ
        reply = app.handle(
            request.method,
            raw_path(request.path, environ.get("RAW_URI") or environ.get("REQUEST_URI")),
            dict(headers),
            _body(request, app.settings.max_body_bytes),
            headers.get(EXECUTION_ID),
            response_limit=RESPONSE_LIMIT,
        )
        return flask.Response(reply.body, status=reply.status, headers=reply.headers)

    return predict


def protocol_answers_only(flask_app: Any) -> None:
    """The Flask app's own 404s in the protocol's JSON."""
    import flask

    not_found = error_response(NotFound())

    def answer_not_found(_: Exception) -> flask.Response:
        return flask.Response(not_found.body, status=not_found.status, headers=not_found.headers)

    flask_app.register_error_handler(404, answer_not_found)


# ------------------------------------------------------------------------------------------ ASGI


async def read_body(receive: Callable[[], Any], limit: int) -> bytes:
    """An ASGI request's body, but never more than ``limit + 1`` bytes: past the limit the core
    refuses it by size, and the rest is not read into memory."""
    parts: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        part = message.get("body", b"")
        parts.append(part)
        received += len(part)
        if received > limit or not message.get("more_body", False):
            break
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    return body[: limit + 1]


def _request(scope: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """The headers (a repeated name's values joined), and the request id: the execution id Cloud
    Run's front end gives, else None (the core's own span id; a trace header is not one, for a
    caller sends one trace with many requests)."""
    raw = scope["headers"]
    headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in raw}
    if len(headers) < len(raw):  # a name sent more than once: its values joined, as WSGI servers join them
        headers = {}
        for key, value in raw:
            name, text = key.decode("latin-1"), value.decode("latin-1")
            headers[name] = f"{headers[name]},{text}" if name in headers else text
    return headers, headers.get(EXECUTION_ID.lower())


def create_asgi_app(app: App) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """The ASGI application serving ``app`` on the server's own messages, every path and method to
    the core (which routes and answers them all in the protocol's terms); the lifespan protocol
    answered. What functions-framework's Starlette app adds on the way (its middleware, router,
    request and response objects) cost a sealed request 41 µs here, a quarter of its own time, and
    adds nothing the core does not do."""
    limit = app.settings.max_body_bytes

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            headers, request_id = _request(scope)
            body = await read_body(receive, limit)
            reply = app.handle(
                scope["method"],
                raw_path(scope["path"], scope.get("raw_path")),
                headers,
                body,
                request_id,
                response_limit=RESPONSE_LIMIT,
            )
            raw = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in reply.headers.items()
            ]
            raw.append((b"content-length", str(len(reply.body)).encode()))
            await send({"type": "http.response.start", "status": reply.status, "headers": raw})
            await send({"type": "http.response.body", "body": reply.body})
        elif kind == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})

    return asgi


def create_asgi_function(app: App) -> Callable[[Any], Any]:
    """The ASGI HTTP function serving ``app`` through Starlette (request in, response out): what
    functions-framework serves where its app is not built through :func:`serve_directly`'s hook."""
    from starlette.responses import Response

    limit = app.settings.max_body_bytes

    async def predict(request: Any) -> Response:
        headers, request_id = _request(request.scope)
        body = await read_body(request.receive, limit)
        reply = app.handle(
            request.scope["method"],
            raw_path(request.scope["path"], request.scope.get("raw_path")),
            headers,
            body,
            request_id,
            response_limit=RESPONSE_LIMIT,
        )
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    return predict


def serve_directly() -> None:
    """functions-framework builds its ASGI app from the loaded function (looked up when the app is
    built, after this module): a function that carries an ``asgi_app`` (this module's) is served as
    that app. For any other, and for ours if a later functions-framework builds its app another
    way, its Starlette app stays, with its own answers (its ``/robots.txt`` and ``/favicon.ico``
    404s, the 405 Starlette gives a method outside its route's list) handed to the function
    instead, so that they are the protocol's."""
    import functions_framework.aio as aio

    build = getattr(aio, "_create_asgi_app_with_function", None)
    if build is None or getattr(build, "litefaas", False):
        return

    def build_for(function: Callable[[Any], Any], *args: Any, **kwargs: Any) -> Any:
        direct = getattr(function, "asgi_app", None)
        if direct is not None:
            return direct
        asgi_app = build(function, *args, **kwargs)

        async def answer(request: Any, _: Exception) -> Any:
            return await function(request)

        for status in (404, 405):
            asgi_app.add_exception_handler(status, answer)
        return asgi_app

    build_for.litefaas = True  # type: ignore[attr-defined]
    aio._create_asgi_app_with_function = build_for


APP = cold_start(provider="gcp")
predict: Callable[[Any], Any]
if uses_asgi():
    import functions_framework.aio

    predict = functions_framework.aio.http(create_asgi_function(APP))
    predict.asgi_app = create_asgi_app(APP)  # type: ignore[attr-defined]
    serve_directly()
else:
    import flask

    predict = functions_framework.http(create_function(APP))
    if flask.has_app_context():  # functions-framework runs this module inside its app's context
        protocol_answers_only(flask.current_app)
