"""Where an answer goes, and the compact JSON every answer is written in.

A :class:`Reply` is made per request: in clear or sealed to the caller's response key, as version 1's
JSON or version 2's frames, or in the Open Inference Protocol's terms. :func:`dumps`,
:func:`loads` and :func:`encode_values` are the core's JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from core import crypto
from core.encoding import b64u_decode, compact_json, json_parser
from core.errors import InvalidPayload, LitefaasError
from core.http import Response, json_headers
from core.protocol import (
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
    REQUEST_ID_BYTES,
    RESPONSE_KEY_BYTES,
)
from core.tensors import join_frame
from core.trace import TraceContext


class Reply:
    """Where an answer goes: in clear or sealed to the caller's response key, as JSON or framed,
    or as the Open Inference Protocol answers (``oip``); ``inside``: the request came
    decapsulated from Oblivious HTTP, so plaintext is allowed whatever the function's setting."""

    __slots__ = ("binary", "fields", "inside", "limit", "oip", "request_id", "response_key", "trace")

    def __init__(self, *, inside: bool = False, limit: int | None = None) -> None:
        self.limit = limit
        """The largest answer body the provider's front door carries back (None: no limit)."""
        self.response_key: bytes | None = None
        self.request_id = b""
        self.binary = False
        self.oip = False
        self.inside = inside
        self.fields: dict[str, Any] = {}
        self.trace: TraceContext | None = None
        """The trace context the request itself carried (an Oblivious HTTP request's, inside)."""

    def error(self, error: LitefaasError) -> Response:
        """The error in the request's own terms: OIP's ``{"error": message}`` (a bad payload is its
        ``400``), else the protocol's code and message, sealed where the request was."""
        if self.oip:
            status = 400 if isinstance(error, InvalidPayload) else error.status
            response = Response(status, json_headers(), dumps({"error": error.message}))
        else:
            response = self.respond(error.status, error.to_json())
        response.headers.update(error.headers)
        return response

    def respond(self, status: int, payload: Mapping[str, Any]) -> Response:
        if self.binary:
            return self.respond_encoded(status, join_frame(payload))
        return self.respond_encoded(status, dumps(payload))

    def respond_encoded(self, status: int, plaintext: bytes) -> Response:
        if self.response_key is None:
            return Response(
                status, json_headers(PLAINTEXT_TYPE_V2 if self.binary else PLAINTEXT_TYPE), plaintext
            )
        started = time.perf_counter_ns()
        if self.binary:
            body = crypto.seal_binary_response(self.response_key, self.request_id, plaintext)
        else:
            body = crypto.seal_response(self.response_key, self.request_id, plaintext)
        self.fields["seal_us"] = (time.perf_counter_ns() - started) // 1000
        return Response(status, json_headers(ENCRYPTED_TYPE_V2 if self.binary else ENCRYPTED_TYPE), body)

    def take_keys(self, response_key: object, request_id: object) -> None:
        """Seal every later answer to the request's ``response_key``, bound to its ``id``."""
        if not isinstance(response_key, str) or not isinstance(request_id, str) or len(response_key) > 64:
            raise InvalidPayload("the decrypted request is not a litefaas request")
        try:
            key, rid = b64u_decode(response_key), b64u_decode(request_id)
        except ValueError:
            raise InvalidPayload("the decrypted request is not a litefaas request") from None
        if len(key) not in RESPONSE_KEY_BYTES or len(rid) != REQUEST_ID_BYTES:
            raise InvalidPayload("the decrypted request is not a litefaas request")
        self.response_key = key
        self.request_id = rid


_parse = json_parser(json.JSONDecoder())

encode_values = compact_json()
"""Compact JSON of finite numbers, lists and dicts (``ValueError`` on NaN or inf)."""


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes (``ValueError`` on NaN or inf)."""
    return encode_values(payload).encode()


def loads(body: bytes) -> Any:
    """Parse UTF-8 JSON; ``ValueError`` (or ``RecursionError``) when it is not."""
    return _parse(body.decode("utf-8"))
