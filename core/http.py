"""The provider-neutral HTTP shapes every handler converts to and from, and the helpers they share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import LitefaasError
from core.protocol import PLAINTEXT_TYPE

NO_STORE = "no-store"


@dataclass(frozen=True, slots=True)
class Request:
    """What :meth:`core.app.App.handle` takes: a provider's request, stripped to what the protocol reads."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class Response:
    """What a handler turns into its provider's response."""

    status: int
    headers: dict[str, str]
    body: bytes


def json_headers(content_type: str = PLAINTEXT_TYPE, cache: str = NO_STORE) -> dict[str, str]:
    """Response headers for a body of ``content_type``."""
    return {"Content-Type": content_type, "Cache-Control": cache}


def error_response(error: LitefaasError) -> Response:
    """The protocol's plaintext JSON error, with the error's own headers (``Allow`` on a 405)."""
    body = json.dumps(error.to_json(), separators=(",", ":")).encode()
    return Response(error.status, json_headers() | error.headers, body)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def media_type(headers: Mapping[str, str]) -> str:
    """The Content-Type's media type, lower case, without parameters (the name looked up as the
    providers spell it before a scan of every header: a request carries a dozen or more)."""
    value = headers.get("content-type") or headers.get("Content-Type") or header(headers, "content-type")
    return (value or "").split(";", 1)[0].strip().lower()
