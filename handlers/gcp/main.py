"""Google Cloud Functions (gen2, functions-framework) entrypoint: ``--target predict``.

functions-framework hands every path and method to the one function; the core routes
``/predict``, ``/keys`` and ``/health`` and answers anything else with the protocol's 404/405.
"""

from __future__ import annotations

from collections.abc import Callable

import flask
import functions_framework

from core.app import App, cold_start


def create_function(app: App) -> Callable[[flask.Request], flask.Response]:
    """The HTTP function serving ``app``: flask request in, flask response out."""

    def predict(request: flask.Request) -> flask.Response:
        headers = request.headers
        request_id = headers.get("Function-Execution-Id") or headers.get("X-Cloud-Trace-Context")
        reply = app.handle(request.method, request.path, dict(headers), request.get_data(), request_id)
        return flask.Response(reply.body, status=reply.status, headers=reply.headers)

    return predict


APP = cold_start()
predict = functions_framework.http(create_function(APP))
