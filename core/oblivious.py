"""What the Oblivious HTTP gateway route adds around an inner request: freshness by its ``Date``,
replay by its ``enc``, and the padded Binary HTTP answer (``PROTOCOL.md``, "Oblivious HTTP gateway").

The route itself is :class:`core.app.App`'s: it decapsulates with the key ring's
:class:`core.crypto.ohttp.Gateway`, parses the inner request with :mod:`core.bhttp` and answers it
through the same dispatch as a plaintext request.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime

from core import bhttp
from core.http import Response
from core.protocol import PADDING_MIN_BYTES, PADDING_STEP_BYTES, PROBLEM_DATE, PROBLEM_OHTTP_KEY, PROBLEM_TYPE

_ANSWER_HEADERS = ("content-type", "cache-control", "allow", "inference-header-content-length")
SEAL_OVERHEAD = 32 + 16
"""What sealing adds to a Binary HTTP answer: the response nonce (at most 32 bytes) and the tag."""
FRAMING_RESERVE = 1024
"""Room kept for an answer's Binary HTTP framing and fields, so that its content fits the limit."""
DATE_PROBLEM = json.dumps({"type": PROBLEM_DATE, "title": "date"}).encode()
KEY_PROBLEM = json.dumps({"type": PROBLEM_OHTTP_KEY, "title": "ohttp key"}).encode()


def padded_size(length: int) -> int:
    """The bucket a message of ``length`` bytes is padded to."""
    if length <= PADDING_MIN_BYTES:
        return PADDING_MIN_BYTES
    if length <= PADDING_STEP_BYTES:
        return 1 << (length - 1).bit_length()
    return -(-length // PADDING_STEP_BYTES) * PADDING_STEP_BYTES


def fresh_date(headers: Mapping[str, str], now: float, window_s: int) -> int | None:
    """The inner request's ``Date`` in Unix seconds where it is within the window; else None."""
    value = headers.get("date")
    seconds = None if value is None or len(value) > 64 else _http_date(value)
    return seconds if seconds is not None and abs(now - seconds) <= window_s else None


@functools.lru_cache(maxsize=64)
def _http_date(value: str) -> int | None:
    """An HTTP date in Unix seconds (one string comes in every request of the same second); one
    without a zone (``-0000``) is UTC, whatever the server's own time zone."""
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return int(parsed.timestamp())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def replay_id(enc: bytes) -> bytes:
    """The 16 bytes the replay cache keeps for an encapsulated request (its ``enc`` is unique to it)."""
    return hashlib.sha256(b"ohttp enc\x00" + enc).digest()[:16]


def date_problem(now: float) -> Response:
    """RFC 9458 §6.5.2: the inner answer to a request whose ``Date`` is missing or stale."""
    headers = {
        "Content-Type": PROBLEM_TYPE,
        "Cache-Control": "no-store",
        "Date": formatdate(now, usegmt=True),
    }
    return Response(400, headers, DATE_PROBLEM)


def bare_400() -> Response:
    """A body that is not an encapsulated request or does not decapsulate: ``400`` and nothing more
    (an empty body; the type is named so that no host picks one of its own)."""
    return Response(400, {"Content-Type": "text/plain", "Cache-Control": "no-store"}, b"")


def key_problem() -> Response:
    """RFC 9458 §5.3: an encapsulated request for a key or algorithms the gateway does not offer."""
    return Response(400, {"Content-Type": PROBLEM_TYPE, "Cache-Control": "no-store"}, KEY_PROBLEM)


def encode_answer(response: Response, padding: bool, limit: int | None = None) -> bytes:
    """The inner answer as a known-length Binary HTTP response, padded to its bucket unless told not
    (and never past ``limit``, the largest message the front door still carries once sealed)."""
    fields = [
        (name.lower(), value) for name, value in response.headers.items() if name.lower() in _ANSWER_HEADERS
    ]
    fields += [(name.lower(), value) for name, value in response.headers.items() if name.lower() == "date"]
    message = bhttp.encode_response(response.status, fields, response.body)
    if not padding:
        return message
    size = padded_size(len(message))
    if limit is not None:
        size = max(len(message), min(size, limit))
    return message + bytes(size - len(message))
