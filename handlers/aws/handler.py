"""AWS Lambda entrypoint: a Lambda event in, one ``App.handle`` call, the event source's answer out.

Each event source is one small adapter; the first whose ``infer`` accepts the event wins:

1. ALB -- ``requestContext.elb``. Answer: ``statusCode``, ``statusDescription`` ("200 OK"),
   ``headers`` or ``multiValueHeaders`` (the mode the request came in), ``body``, ``isBase64Encoded``.
2. Lambda Function URL -- ``version`` "2.0" and ``requestContext.domainName`` of the form
   ``<id>.lambda-url.<region>.on.aws``. Answer: ``statusCode``, ``headers``, ``body``, ``isBase64Encoded``.
3. API Gateway HTTP API, payload 2.0 -- any other ``version`` "2.0" (method from
   ``requestContext.http``, ``rawPath``; ``cookies`` go back into a ``cookie`` header). Answer: as 2.
4. API Gateway REST API (and HTTP API payload 1.0) -- ``httpMethod``. Answer: ``statusCode``,
   ``headers``, ``multiValueHeaders`` (when the request had them), ``body``, ``isBase64Encoded``.
5. Direct invoke -- the event is the request body itself: an object with any of the envelope's
   fields ``v``, ``kid``, ``suite``, ``ct`` (sent as ``application/litefaas+json``) or with ``inputs``
   (``application/json``), served as ``POST /predict``. Answer: ``{"statusCode", "headers", "body"}``
   where ``body`` is the protocol's JSON object itself, not a string: a boto3 ``invoke`` caller reads
   ``json.loads(Payload)`` and passes ``["body"]`` to ``core.crypto.open_response`` as it is.

Paths go to the core untouched (a stage or base-path prefix is fine); header names are lower-cased.
An event no adapter accepts is answered ``400 invalid_envelope`` in the direct-invoke shape, one
whose fields are not what its source sends (say a body that is not base64 while ``isBase64Encoded``
is true) in its source's shape: the handler never raises. Our bodies are UTF-8 JSON, so
``isBase64Encoded`` is false unless a body is not valid UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

from core import logs
from core.app import ENCRYPTED_TYPE, PLAINTEXT_TYPE, App, Response, cold_start
from core.errors import InvalidEnvelope

Event = Any
Result = dict[str, Any]
LambdaHandler = Callable[[Event, Any], Result]

_ENVELOPE_FIELDS = frozenset({"v", "kid", "suite", "ct"})
_FUNCTION_URL_SUFFIX = ".on.aws"
UNKNOWN_EVENT = "the event is not an API Gateway, ALB or Function URL request, nor a litefaas request body"


class BadEvent(ValueError):
    """An event of a known source whose fields are not what that source sends."""


@dataclass(frozen=True, slots=True)
class Request:
    """What ``App.handle`` takes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _mapping(value: object, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadEvent(f"{name} is not an object")
    return value


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise BadEvent(f"{name} is not a string")
    return value


def _single_headers(value: object) -> dict[str, str]:
    return {
        str(name).lower(): str(text) for name, text in _mapping(value, "headers").items() if text is not None
    }


def _joined_headers(value: object) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, values in _mapping(value, "multiValueHeaders").items():
        if values is not None:
            items = values if isinstance(values, list) else [values]
            headers[str(name).lower()] = ", ".join(str(item) for item in items)
    return headers


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    text = _text(body, "body")
    if event.get("isBase64Encoded") is True:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("body is not base64") from None
    return text.encode("utf-8", "surrogatepass")


def _body_fields(body: bytes) -> Result:
    try:
        return {"body": body.decode("utf-8"), "isBase64Encoded": False}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def _proxy_result(response: Response) -> Result:
    return {"statusCode": response.status, "headers": dict(response.headers)} | _body_fields(response.body)


def _multi_value(headers: Mapping[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in headers.items()}


def _request_context(event: Mapping[str, Any]) -> Mapping[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


class RestApiV1:
    """API Gateway REST API proxy integration (and HTTP API payload format 1.0)."""

    name: ClassVar[str] = "apigw_v1"

    @staticmethod
    def infer(event: Mapping[str, Any]) -> bool:
        return "httpMethod" in event

    @classmethod
    def request(cls, event: Mapping[str, Any]) -> Request:
        headers = _joined_headers(event.get("multiValueHeaders"))
        headers.update(_single_headers(event.get("headers")))
        return Request(
            _text(event.get("httpMethod"), "httpMethod"),
            _text(event.get("path") or "/", "path"),
            headers,
            _body(event),
        )

    @classmethod
    def response(cls, event: Mapping[str, Any], response: Response) -> Result:
        result = _proxy_result(response)
        if event.get("multiValueHeaders") is not None:
            result["multiValueHeaders"] = _multi_value(response.headers)
        return result


class HttpApiV2:
    """API Gateway HTTP API, payload format 2.0."""

    name: ClassVar[str] = "http_api_v2"

    @staticmethod
    def infer(event: Mapping[str, Any]) -> bool:
        return event.get("version") == "2.0"

    @classmethod
    def request(cls, event: Mapping[str, Any]) -> Request:
        http = _mapping(_request_context(event).get("http"), "requestContext.http")
        headers = _single_headers(event.get("headers"))
        cookies = event.get("cookies")
        if isinstance(cookies, list) and cookies:
            headers["cookie"] = "; ".join(str(cookie) for cookie in cookies)
        path = event.get("rawPath") or http.get("path") or "/"
        return Request(
            _text(http.get("method"), "requestContext.http.method"),
            _text(path, "rawPath"),
            headers,
            _body(event),
        )

    @classmethod
    def response(cls, event: Mapping[str, Any], response: Response) -> Result:
        return _proxy_result(response)


class FunctionUrl(HttpApiV2):
    """Lambda Function URL: the HTTP API 2.0 shape on ``<id>.lambda-url.<region>.on.aws``."""

    name: ClassVar[str] = "function_url"

    @staticmethod
    def infer(event: Mapping[str, Any]) -> bool:
        domain = _request_context(event).get("domainName")
        return (
            event.get("version") == "2.0"
            and isinstance(domain, str)
            and ".lambda-url." in domain
            and domain.endswith(_FUNCTION_URL_SUFFIX)
        )


class Alb:
    """Application Load Balancer target group, with or without multi-value headers."""

    name: ClassVar[str] = "alb"

    @staticmethod
    def infer(event: Mapping[str, Any]) -> bool:
        return "elb" in _request_context(event)

    @classmethod
    def request(cls, event: Mapping[str, Any]) -> Request:
        if "multiValueHeaders" in event:
            headers = _joined_headers(event.get("multiValueHeaders"))
        else:
            headers = _single_headers(event.get("headers"))
        return Request(
            _text(event.get("httpMethod"), "httpMethod"),
            _text(event.get("path") or "/", "path"),
            headers,
            _body(event),
        )

    @classmethod
    def response(cls, event: Mapping[str, Any], response: Response) -> Result:
        result: Result = {"statusCode": response.status, "statusDescription": _status_line(response.status)}
        if "multiValueHeaders" in event:
            result["multiValueHeaders"] = _multi_value(response.headers)
        else:
            result["headers"] = dict(response.headers)
        return result | _body_fields(response.body)


class DirectInvoke:
    """``lambda:InvokeFunction`` with the request body as the event: ``POST /predict``."""

    name: ClassVar[str] = "direct"

    @staticmethod
    def infer(event: Mapping[str, Any]) -> bool:
        return "inputs" in event or not _ENVELOPE_FIELDS.isdisjoint(event)

    @classmethod
    def request(cls, event: Mapping[str, Any]) -> Request:
        content_type = PLAINTEXT_TYPE if "inputs" in event else ENCRYPTED_TYPE
        try:
            body = json.dumps(event, separators=(",", ":")).encode()
        except (TypeError, ValueError, RecursionError):
            raise BadEvent("event is not JSON") from None
        return Request("POST", "/predict", {"content-type": content_type}, body)

    @classmethod
    def response(cls, event: Mapping[str, Any], response: Response) -> Result:
        try:
            document = json.loads(response.body)
        except (UnicodeDecodeError, ValueError):
            return _proxy_result(response)
        return {"statusCode": response.status, "headers": dict(response.headers), "body": document}


Source = type[RestApiV1] | type[HttpApiV2] | type[Alb] | type[DirectInvoke]
SOURCES: tuple[Source, ...] = (Alb, FunctionUrl, HttpApiV2, RestApiV1, DirectInvoke)


def infer_source(event: Event) -> Source | None:
    """The first source whose ``infer`` accepts ``event``, or None."""
    if not isinstance(event, Mapping):
        return None
    return next((source for source in SOURCES if source.infer(event)), None)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _error_response(error: InvalidEnvelope) -> Response:
    body = json.dumps(error.to_json(), separators=(",", ":")).encode()
    return Response(error.status, {"Content-Type": PLAINTEXT_TYPE, "Cache-Control": "no-store"}, body)


def _request_id(context: object) -> str | None:
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) else None


def create_handler(app: App) -> LambdaHandler:
    """A Lambda handler ``(event, context) -> result`` answering every request with ``app``."""

    def reject(
        source: str, shape: Source, event: Mapping[str, Any], problem: str, request_id: str | None
    ) -> Result:
        error = InvalidEnvelope(problem)
        logs.log_event(
            app.logger,
            logging.INFO,
            "request",
            request_id=request_id,
            source=source,
            route="unknown",
            status=error.status,
            code=error.code,
        )
        return shape.response(event, _error_response(error))

    def handler(event: Event, context: Any) -> Result:
        request_id = _request_id(context)
        source = infer_source(event)
        if source is None:
            return reject("unknown", DirectInvoke, {}, UNKNOWN_EVENT, request_id)
        try:
            request = source.request(event)
        except BadEvent as exc:
            return reject(source.name, source, event, f"{source.name} event: {exc}", request_id)
        response = app.handle(
            request.method, request.path, request.headers, request.body, request_id=request_id
        )
        return source.response(event, response)

    return handler


APP = cold_start()
handler = create_handler(APP)
