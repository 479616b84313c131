"""Lambda event sources: one small adapter each, the first whose ``infer`` accepts the event wins.

1. ALB -- ``requestContext.elb``. Answer: ``statusCode``, ``statusDescription`` ("200 OK"),
   ``headers`` or ``multiValueHeaders`` (the mode the request came in), ``body``, ``isBase64Encoded``.
   ALB carries at most 1 MB back, so larger answers become the protocol's 413.
2. Lambda Function URL -- ``version`` "2.0" and ``requestContext.domainName`` of the form
   ``<id>.lambda-url.<region>.on.aws``. Answer: ``statusCode``, ``headers``, ``body``, ``isBase64Encoded``.
3. API Gateway HTTP API, payload 2.0 -- any other ``version`` "2.0" (method from
   ``requestContext.http``, ``rawPath``; ``cookies`` go back into a ``cookie`` header). Answer: as 2.
4. API Gateway REST API (and HTTP API payload 1.0) -- ``httpMethod``. Answer: ``statusCode``,
   ``headers``, ``multiValueHeaders`` (when the request had them), ``body``, ``isBase64Encoded``.
5. Direct invoke -- version 2: ``{"litefaas": 2, "body": "<base64>"}``, answered with a base64 body
   (with ``method``, ``path`` and ``headers`` beside them, any route, such as the Open Inference
   Protocol's: answered as a Function URL answers, ``body`` base64 unless it is JSON); version 1:
   the event is the request body itself (an object with any of the envelope's fields, or with
   ``inputs``), answered ``{"statusCode", "headers", "body"}`` where ``body`` is the
   protocol's JSON object itself, not a string.

Bodies whose media type is not JSON (version 2's binary bodies) travel base64-encoded both ways.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar, Protocol

from core.http import Request, Response, media_type
from core.protocol import (
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    ENVELOPE_FIELDS,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
    VERSION_BINARY,
)

Event = Mapping[str, Any]
Result = dict[str, Any]

LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
"""A synchronous invoke's event and its answer, each, base64 and JSON included."""
ALB_RESPONSE_BYTES = 1024 * 1024
_ENVELOPE_ALLOWANCE = 16 * 1024
_FUNCTION_URL_SUFFIX = ".on.aws"


def raw_limit(encoded_limit: int) -> int:
    """The largest raw body that still fits ``encoded_limit`` once base64-encoded inside its JSON."""
    return (encoded_limit - _ENVELOPE_ALLOWANCE) * 3 // 4


class BadEvent(ValueError):
    """An event of a known source whose fields are not what that source sends."""


class EventSource(Protocol):
    """What every adapter provides."""

    name: ClassVar[str]
    response_limit: ClassVar[int]

    @staticmethod
    def infer(event: Event) -> bool: ...

    @classmethod
    def request(cls, event: Event) -> Request: ...

    @classmethod
    def response(cls, event: Event, response: Response) -> Result: ...


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


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadEvent("body is not base64") from None


def _body(event: Event) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    text = _text(body, "body")
    if event.get("isBase64Encoded") is True:
        return _decode_base64(text)
    return text.encode("utf-8", "surrogatepass")


def body_fields(response: Response) -> Result:
    """``body`` and ``isBase64Encoded``: JSON as text, anything else base64."""
    if media_type(response.headers) in (PLAINTEXT_TYPE, ENCRYPTED_TYPE):
        try:
            return {"body": response.body.decode("utf-8"), "isBase64Encoded": False}
        except UnicodeDecodeError:
            pass
    return {"body": base64.b64encode(response.body).decode("ascii"), "isBase64Encoded": True}


def proxy_result(response: Response) -> Result:
    return {"statusCode": response.status, "headers": dict(response.headers)} | body_fields(response)


def _multi_value(headers: Mapping[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in headers.items()}


def _request_context(event: Event) -> Mapping[str, Any]:
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


def _proxy_v1_request(event: Event, headers: dict[str, str]) -> Request:
    """REST API and ALB requests: ``httpMethod``, ``path``, ``body``."""
    return Request(
        _text(event.get("httpMethod"), "httpMethod"),
        _text(event.get("path") or "/", "path"),
        headers,
        _body(event),
    )


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class RestApiV1:
    """API Gateway REST API proxy integration (and HTTP API payload format 1.0)."""

    name: ClassVar[str] = "apigw_v1"
    response_limit: ClassVar[int] = raw_limit(LAMBDA_PAYLOAD_BYTES)

    @staticmethod
    def infer(event: Event) -> bool:
        return "httpMethod" in event

    @classmethod
    def request(cls, event: Event) -> Request:
        headers = _single_headers(event.get("headers"))  # API Gateway puts a repeated name's last value here
        headers.update(_joined_headers(event.get("multiValueHeaders")))  # and all of them here
        return _proxy_v1_request(event, headers)

    @classmethod
    def response(cls, event: Event, response: Response) -> Result:
        result = proxy_result(response)
        if event.get("multiValueHeaders") is not None:
            result["multiValueHeaders"] = _multi_value(response.headers)
        return result


class HttpApiV2:
    """API Gateway HTTP API, payload format 2.0."""

    name: ClassVar[str] = "http_api_v2"
    response_limit: ClassVar[int] = raw_limit(LAMBDA_PAYLOAD_BYTES)

    @staticmethod
    def infer(event: Event) -> bool:
        return event.get("version") == "2.0"

    @classmethod
    def request(cls, event: Event) -> Request:
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
    def response(cls, event: Event, response: Response) -> Result:
        return proxy_result(response)


class FunctionUrl(HttpApiV2):
    """Lambda Function URL: the HTTP API 2.0 shape on ``<id>.lambda-url.<region>.on.aws``."""

    name: ClassVar[str] = "function_url"

    @staticmethod
    def infer(event: Event) -> bool:
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
    response_limit: ClassVar[int] = raw_limit(ALB_RESPONSE_BYTES)

    @staticmethod
    def infer(event: Event) -> bool:
        return "elb" in _request_context(event)

    @classmethod
    def request(cls, event: Event) -> Request:
        if "multiValueHeaders" in event:
            return _proxy_v1_request(event, _joined_headers(event.get("multiValueHeaders")))
        return _proxy_v1_request(event, _single_headers(event.get("headers")))

    @classmethod
    def response(cls, event: Event, response: Response) -> Result:
        result: Result = {"statusCode": response.status, "statusDescription": _status_line(response.status)}
        if "multiValueHeaders" in event:
            result["multiValueHeaders"] = _multi_value(response.headers)
        else:
            result["headers"] = dict(response.headers)
        return result | body_fields(response)


_HTTP_FIELDS = frozenset({"method", "path", "headers"})
_DIRECT_V2 = (
    'a version-2 direct invoke is {"litefaas": 2, "body": "<base64>"},'
    ' with "method", "path" and "headers" for another route'
)


class DirectInvoke:
    """``lambda:InvokeFunction`` with the request body as the event: ``POST /predict`` (or any route)."""

    name: ClassVar[str] = "direct"
    response_limit: ClassVar[int] = raw_limit(LAMBDA_PAYLOAD_BYTES)

    @staticmethod
    def infer(event: Event) -> bool:
        return "litefaas" in event or "inputs" in event or not ENVELOPE_FIELDS.isdisjoint(event)

    @classmethod
    def request(cls, event: Event) -> Request:
        if "litefaas" in event:
            routed = event.keys() - {"litefaas", "body"}
            if "body" not in event or event["litefaas"] != VERSION_BINARY or not routed <= _HTTP_FIELDS:
                raise BadEvent(_DIRECT_V2)
            body = _decode_base64(_text(event["body"], "body"))
            if not routed:
                return Request("POST", "/predict", {"content-type": _binary_type(body)}, body)
            method = _text(event.get("method", "POST"), "method")
            path = _text(event.get("path", "/predict"), "path")
            return Request(method, path, _single_headers(event.get("headers")), body)
        content_type = PLAINTEXT_TYPE if "inputs" in event else ENCRYPTED_TYPE
        try:
            encoded = json.dumps(event, separators=(",", ":")).encode()
        except (TypeError, ValueError, RecursionError):
            raise BadEvent("event is not JSON") from None
        return Request("POST", "/predict", {"content-type": content_type}, encoded)

    @classmethod
    def response(cls, event: Event, response: Response) -> Result:
        if "litefaas" in event and (
            not _HTTP_FIELDS.isdisjoint(event)
            or media_type(response.headers) in (ENCRYPTED_TYPE_V2, PLAINTEXT_TYPE_V2)
        ):
            return proxy_result(response)
        try:
            document = json.loads(response.body)
        except (UnicodeDecodeError, ValueError):
            return proxy_result(response)
        return {"statusCode": response.status, "headers": dict(response.headers), "body": document}


def _binary_type(body: bytes) -> str:
    """A framed plaintext starts with its 4-byte header length (below 16 MiB: a zero byte);
    anything else is taken as sealed, whose first byte is the version."""
    return PLAINTEXT_TYPE_V2 if body[:1] == b"\x00" else ENCRYPTED_TYPE_V2


SOURCES: tuple[type[EventSource], ...] = (Alb, FunctionUrl, HttpApiV2, RestApiV1, DirectInvoke)


def infer_source(event: object) -> type[EventSource] | None:
    """The first source whose ``infer`` accepts ``event``, or None."""
    if not isinstance(event, Mapping):
        return None
    return next((source for source in SOURCES if source.infer(event)), None)
