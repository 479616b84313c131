"""Google Cloud Functions (gen2, functions-framework) entrypoint: ``--target predict``.

functions-framework hands every path and method to the one function; the core routes
``/predict``, ``/keys`` and ``/health`` and answers anything else with the protocol's 404/405.
The framework's own ``/robots.txt`` and ``/favicon.ico`` routes answer the protocol's JSON 404
instead of an HTML page (found by fuzzing).
"""

from __future__ import annotations

from collections.abc import Callable

import flask
import functions_framework

from core.app import App, cold_start
from core.errors import NotFound
from core.http import error_response

RESPONSE_LIMIT = 32 * 1024 * 1024
"""Cloud Run functions answer at most 32 MiB over HTTP/1."""


def _body(request: flask.Request, limit: int) -> bytes:
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


def create_function(app: App) -> Callable[[flask.Request], flask.Response]:
    """The HTTP function serving ``app``: flask request in, flask response out."""

    def predict(request: flask.Request) -> flask.Response:
        headers = request.headers
        request_id = headers.get("Function-Execution-Id") or headers.get("X-Cloud-Trace-Context")
        reply = app.handle(
            request.method,
            request.path,
            dict(headers),
            _body(request, app.settings.max_body_bytes),
            request_id,
            response_limit=RESPONSE_LIMIT,
        )
        return flask.Response(reply.body, status=reply.status, headers=reply.headers)

    return predict


def protocol_answers_only(app: flask.Flask) -> None:
    """The framework's own 404s in the protocol's JSON."""
    not_found = error_response(NotFound())

    def answer_not_found(_: Exception) -> flask.Response:
        return flask.Response(not_found.body, status=not_found.status, headers=not_found.headers)

    app.register_error_handler(404, answer_not_found)


APP = cold_start()
predict = functions_framework.http(create_function(APP))
if flask.has_app_context():  # functions-framework runs this module inside its app's context
    protocol_answers_only(flask.current_app)
