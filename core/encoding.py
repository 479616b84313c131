"""base64url without padding, as the protocol's encoding rules define it; compact JSON."""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any

_string = json.encoder.encode_basestring_ascii
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64u_bytes(data: bytes) -> bytes:
    """``data`` as base64url without padding, in ASCII bytes (for a body built of bytes)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64u_encode(data: bytes) -> str:
    """Encode ``data`` as base64url without padding."""
    return b64u_bytes(data).decode("ascii")


# base64url's two characters become standard base64's; standard base64's own two become a
# character the strict decoder refuses, so one translation both converts and checks the alphabet.
_FROM_URLSAFE = bytes.maketrans(b"-_+/", b"+/!!")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_UNUSED_BITS = {2: 0b1111, 3: 0b11}


def _nonzero_unused_bits(mask: int) -> bytes:
    """A table over bytes: 1 where the character's value has bits of ``mask`` set."""
    return bytes(1 if char in _ALPHABET and _ALPHABET.index(char) & mask else 0 for char in range(256))


_LAST_BITS = {remainder: _nonzero_unused_bits(mask) for remainder, mask in _UNUSED_BITS.items()}


def b64u_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding; raise ``ValueError`` on any other character,
    and on unused trailing bits that are not zero (so one text has one meaning)."""
    try:
        raw = (text.encode("ascii") if isinstance(text, str) else bytes(text)).translate(_FROM_URLSAFE)
    except UnicodeEncodeError:
        raise ValueError("not base64url") from None
    stripped = raw.rstrip(b"=")
    remainder = len(stripped) % 4
    if remainder:
        padding = len(raw) - len(stripped)
        if remainder == 1 or (padding and padding != 4 - remainder):
            raise ValueError("not base64url")
        if _LAST_BITS[remainder][stripped[-1]]:
            raise ValueError("not canonical base64url")
        stripped += b"=" * (4 - remainder)
    elif len(raw) != len(stripped):
        raise ValueError("not base64url")
    try:
        return binascii.a2b_base64(stripped, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def compact_json(
    default: Callable[[Any], Any] | None = None, *, allow_nan: bool = False
) -> Callable[[Any], str]:
    """A compact JSON encoder (no spaces) that reuses one C encoder, where ``JSONEncoder.encode``
    builds one per call (a third of the time of a small document). ``default`` turns what JSON
    cannot hold into what it can (None: ``TypeError``); NaN and inf raise ``ValueError`` unless
    ``allow_nan``."""
    fallback = json.JSONEncoder(separators=(",", ":"), allow_nan=allow_nan, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return fallback.encode
    iterencode = make(
        None, fallback.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, allow_nan
    )
    return lambda value: "".join(iterencode(value, 0))


_QUICK_FORMS = {
    int: "{v} if type({v}) is int else _json({v})",
    bool: '"true" if {v} is True else "false" if {v} is False else _json({v})',
    str: "_string({v}) if type({v}) is str else _json({v})",
}
"""A value's expression by the type it holds when its writer is made (``_string`` and ``_json`` in
the expression's globals): that type by itself, anything else (then or later) by ``_json``."""


def member_pieces(names: tuple[Any, ...], values: tuple[Any, ...]) -> list[tuple[str, str]] | None:
    """``,"name":value…`` as pairs of the text before each value and its expression, from locals
    ``v0``, ``v1``, …: what the encoder ``_json`` writes for these members while each value has the
    type it has now (each int, bool and str by itself, not by the encoder). None where a name is not
    a string."""
    if not all(type(name) is str for name in names):
        return None
    return [
        (f",{_string(name)}:", _QUICK_FORMS.get(type(value), "_json({v})").format(v=f"v{index}"))
        for index, (name, value) in enumerate(zip(names, values, strict=True))
    ]


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("duplicate field")
    return fields


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_parser(decoder: json.JSONDecoder) -> Callable[[str], Any]:
    """``decoder.decode``, with its two whitespace scans (and two Python frames) skipped where the
    text has no whitespace around its value, as clients write it; anything else is decoded as ever."""
    scan, decode = decoder.scan_once, decoder.decode  # type: ignore[attr-defined]

    def parse(text: str) -> Any:
        try:
            value, end = scan(text, 0)
        except StopIteration:
            return decode(text)  # its own error, or a value after whitespace
        return value if end == len(text) else decode(text)

    return parse


strict_json = json_parser(json.JSONDecoder(object_pairs_hook=_unique_fields, parse_constant=_no_constant))
"""Parse JSON with no duplicate field in any object and no NaN or Infinity; ``ValueError`` (or
``RecursionError``) otherwise. One decoder for every call (``json.loads`` with arguments builds one
per call)."""
