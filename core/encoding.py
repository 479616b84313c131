"""base64url without padding, as the protocol's encoding rules define it."""

from __future__ import annotations

import base64
import binascii
import re

_B64U_CHARS = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


def b64u_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def b64u_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding; raise ``ValueError`` on any other character,
    and on unused trailing bits that are not zero (so one text has one meaning)."""
    raw = text.encode("ascii", "strict") if isinstance(text, str) else bytes(text)
    if not _B64U_CHARS.fullmatch(raw):
        raise ValueError("not base64url")
    stripped = raw.rstrip(b"=")
    remainder = len(stripped) % 4
    if remainder == 1:
        raise ValueError("not base64url")
    if remainder and _ALPHABET.index(stripped[-1]) & _UNUSED_BITS[remainder]:
        raise ValueError("not canonical base64url")
    try:
        return base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
