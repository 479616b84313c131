"""AWS Lambda entrypoint: a Lambda event in, one ``App.handle`` call, the event source's answer out.

The event sources (API Gateway REST and HTTP APIs, Function URL, ALB, direct invoke) are the
adapters of :mod:`handlers.aws.sources`. Paths go to the core untouched (a stage or base-path
prefix is fine); header names are lower-cased. An event no adapter accepts is answered
``400 invalid_envelope`` in the direct-invoke shape, one whose fields are not what its source
sends (say a body that is not base64 while ``isBase64Encoded`` is true) in its source's shape:
the handler never raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from core.app import App
from core.errors import InvalidEnvelope
from core.trace import XRAY_TRACE
from handlers.aws.sources import BadEvent, DirectInvoke, Event, EventSource, Result, infer_source

LambdaHandler = Callable[[Any, Any], Result]
XRAY_ENV = "_X_AMZN_TRACE_ID"
"""Where Lambda's runtime puts each invocation's X-Ray trace header."""
UNKNOWN_EVENT = "the event is not an API Gateway, ALB or Function URL request, nor a litefaas request body"


def _request_id(context: object) -> str | None:
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) else None


def _with_xray(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers, with this invocation's X-Ray trace (set by the runtime client) where they name none."""
    xray = os.environ.get(XRAY_ENV)
    if xray and XRAY_TRACE not in headers:
        return {**headers, XRAY_TRACE: xray}
    return headers


def create_handler(app: App) -> LambdaHandler:
    """A Lambda handler ``(event, context) -> result`` answering every request with ``app``."""

    def reject(
        source: str, shape: type[EventSource], event: Event, problem: str, request_id: str | None
    ) -> Result:
        refused = app.refuse(InvalidEnvelope(problem), request_id, _with_xray({}), source=source)
        return shape.response(event, refused)

    def handler(event: Any, context: Any) -> Result:
        request_id = _request_id(context)
        source = infer_source(event)
        if source is None:
            return reject("unknown", DirectInvoke, {}, UNKNOWN_EVENT, request_id)
        try:
            request = source.request(event)
        except BadEvent as exc:
            return reject(source.name, source, event, f"{source.name} event: {exc}", request_id)
        response = app.handle(
            request.method,
            request.path,
            _with_xray(request.headers),
            request.body,
            request_id=request_id,
            response_limit=source.response_limit,
        )
        return source.response(event, response)

    return handler


# A wrong setting is raised from the import itself (not as an exit): Lambda's runtime client then
# reports it as the function's init error, with the variable named in its message.
APP = App.from_env(provider="aws")
handler = create_handler(APP)


def register_snapstart_hooks(app: App, environ: Mapping[str, str] = os.environ) -> bool:
    """Under Lambda SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``), run ``app``'s
    before-snapshot and after-restore steps through the runtime's ``snapshot_restore_py``."""
    if environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "snap-start":
        return False
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    register_before_snapshot(app.before_snapshot)
    register_after_restore(app.after_restore)
    return True


register_snapstart_hooks(APP)
