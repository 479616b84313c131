"""Binary HTTP (RFC 9292): the messages Oblivious HTTP encapsulates, both sides, bounded.

Requests and responses in known-length (framing 0 and 1) and indeterminate-length (2 and 3) form,
truncated sections (§3.8) and zero padding. Parsing never allocates more than the message holds:
every declared length is checked against what is left before it is read, each field section is
bounded in bytes and lines, and anything malformed is :class:`MalformedMessage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

KNOWN_REQUEST, KNOWN_RESPONSE, INDETERMINATE_REQUEST, INDETERMINATE_RESPONSE = 0, 1, 2, 3
MAX_SECTION_BYTES = 16 * 1024
MAX_FIELD_LINES = 128
MAX_CONTENT_CHUNKS = 65_536
_MAX_CONTROL_BYTES = 8 * 1024
_MAX_INFORMATIONAL = 8
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_VISIBLE = re.compile(rb"[^\x21-\x7e]")
_LINE_BREAK = re.compile(rb"[\r\n\x00]")
_EDGE_SPACE = (b" ", b"\t")
"""What a field value may not start or end with: RFC 9292 section 3.6 makes a message invalid whose
field values would make an HTTP/2 message malformed (RFC 9113 section 8.2.1)."""

Fields = list[tuple[str, str]]


class MalformedMessage(ValueError):
    """Bytes that are not a Binary HTTP message within the bounds; the message says where."""


def encode_varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16)."""
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x4000_0000:
        return (value | 0x8000_0000).to_bytes(4, "big")
    if value < 0x4000_0000_0000_0000:
        return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")
    raise ValueError("a varint holds at most 2**62 - 1")


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data).cast("B")
        self.end = len(self.data)
        self.offset = 0

    @property
    def left(self) -> int:
        return self.end - self.offset

    def varint(self, what: str) -> int:
        offset = self.offset
        if offset >= self.end:
            raise MalformedMessage(f"{what}: the message ends")
        first = self.data[offset]
        if first < 0x40:
            self.offset = offset + 1
            return first
        size = 1 << (first >> 6)
        if offset + size > self.end:
            raise MalformedMessage(f"{what}: the message ends inside a variable-length integer")
        value = int.from_bytes(self.data[offset : offset + size], "big") & ((1 << (8 * size - 2)) - 1)
        self.offset = offset + size
        return value

    def take(self, length: int, what: str) -> bytes:
        offset = self.offset
        if length > self.end - offset:
            raise MalformedMessage(f"{what}: {length} bytes declared, {self.end - offset} left")
        self.offset = offset + length
        return self.data[offset : offset + length].tobytes()

    def prefixed(self, what: str, limit: int) -> bytes:
        length = self.varint(what)
        if length > limit:
            raise MalformedMessage(f"{what}: {length} bytes is over the limit of {limit}")
        return self.take(length, what)

    def padding(self) -> None:
        tail = self.data[self.offset :]
        if len(tail) and tail.tobytes().count(0) != len(tail):
            raise MalformedMessage("the padding after the message is not all zeros")
        self.offset = self.end


def _field_line(reader: _Reader, fields: Fields, budget: list[int], name: bytes) -> None:
    value = reader.prefixed("field value", MAX_SECTION_BYTES)
    budget[0] -= len(name) + len(value)
    if budget[0] < 0 or len(fields) >= MAX_FIELD_LINES:
        raise MalformedMessage(
            f"a field section is over {MAX_SECTION_BYTES} bytes or {MAX_FIELD_LINES} lines"
        )
    if not _TOKEN.fullmatch(name):
        raise MalformedMessage("a field name is not a token")
    if _LINE_BREAK.search(value):
        raise MalformedMessage("a field value holds CR, LF or NUL")
    if value[:1] in _EDGE_SPACE or value[-1:] in _EDGE_SPACE:
        raise MalformedMessage("a field value starts or ends with a space or a tab")
    fields.append((name.decode("ascii").lower(), value.decode("latin-1")))


def _known_fields(reader: _Reader) -> Fields:
    if reader.left == 0:
        return []
    section = _Reader(reader.prefixed("field section", MAX_SECTION_BYTES))
    fields: Fields = []
    budget = [MAX_SECTION_BYTES]
    while section.left:
        _field_line(section, fields, budget, section.prefixed("field name", MAX_SECTION_BYTES))
    return fields


def _indeterminate_fields(reader: _Reader) -> Fields:
    if reader.left == 0:
        return []
    fields: Fields = []
    budget = [MAX_SECTION_BYTES]
    while True:
        name = reader.prefixed("field name", MAX_SECTION_BYTES)
        if not name:
            return fields
        _field_line(reader, fields, budget, name)


def _known_content(reader: _Reader, limit: int) -> bytes:
    if reader.left == 0:
        return b""
    return reader.prefixed("content", limit)


def _indeterminate_content(reader: _Reader, limit: int) -> bytes:
    """Chunks joined into one buffer as they are read (no object per chunk), at most
    ``MAX_CONTENT_CHUNKS`` of them: a body of one-byte chunks costs no more than its bytes."""
    if reader.left == 0:
        return b""
    content = bytearray()
    for _ in range(MAX_CONTENT_CHUNKS):
        length = reader.varint("content chunk")
        if length == 0:
            return bytes(content)
        if length > reader.left:
            raise MalformedMessage(f"content chunk: {length} bytes declared, {reader.left} left")
        if len(content) + length > limit:
            raise MalformedMessage(f"content: over the limit of {limit} bytes")
        content += reader.data[reader.offset : reader.offset + length]
        reader.offset += length
    raise MalformedMessage(f"content: more than {MAX_CONTENT_CHUNKS} chunks")


@dataclass(frozen=True)
class Request:
    """A Binary HTTP request: control data, header fields (lower-case names), content, trailers."""

    method: str
    scheme: str
    authority: str
    path: str
    headers: Fields = field(default_factory=list)
    content: bytes = b""
    trailers: Fields = field(default_factory=list)

    def header_map(self) -> dict[str, str]:
        """Header fields as one value per name (repeated fields joined as HTTP joins them)."""
        joined: dict[str, str] = {}
        for name, value in self.headers:
            separator = "; " if name == "cookie" else ", "
            joined[name] = f"{joined[name]}{separator}{value}" if name in joined else value
        return joined


@dataclass(frozen=True)
class Response:
    """A Binary HTTP response: its final status, header fields, content and trailers."""

    status: int
    headers: Fields = field(default_factory=list)
    content: bytes = b""
    trailers: Fields = field(default_factory=list)


def _control(reader: _Reader, what: str) -> str:
    value = reader.prefixed(what, _MAX_CONTROL_BYTES)
    if _NOT_VISIBLE.search(value):
        raise MalformedMessage(f"{what} holds a space or a control character, or is not ASCII")
    return value.decode("ascii")


def parse_request(message: bytes | memoryview, max_content: int) -> Request:
    """A Binary HTTP request; :class:`MalformedMessage` unless it is one within the bounds."""
    reader = _Reader(message)
    framing = reader.varint("framing indicator")
    if framing not in (KNOWN_REQUEST, INDETERMINATE_REQUEST):
        raise MalformedMessage(f"framing indicator {framing} is not a request's")
    method = _control(reader, "method")
    if not _TOKEN.fullmatch(method.encode()):
        raise MalformedMessage("the method is not a token")
    scheme, authority, path = (_control(reader, what) for what in ("scheme", "authority", "path"))
    if not path.startswith("/"):
        raise MalformedMessage("the path is not an absolute path")
    known = framing == KNOWN_REQUEST
    headers = _known_fields(reader) if known else _indeterminate_fields(reader)
    content = _known_content(reader, max_content) if known else _indeterminate_content(reader, max_content)
    trailers = _known_fields(reader) if known else _indeterminate_fields(reader)
    reader.padding()
    return Request(method, scheme, authority, path, headers, content, trailers)


def parse_response(message: bytes | memoryview, max_content: int) -> Response:
    """A Binary HTTP response (informational responses skipped); :class:`MalformedMessage` otherwise."""
    reader = _Reader(message)
    framing = reader.varint("framing indicator")
    if framing not in (KNOWN_RESPONSE, INDETERMINATE_RESPONSE):
        raise MalformedMessage(f"framing indicator {framing} is not a response's")
    known = framing == KNOWN_RESPONSE
    for _ in range(_MAX_INFORMATIONAL + 1):
        status = reader.varint("status")
        if not 100 <= status <= 599:
            raise MalformedMessage(f"status {status} is not an HTTP status")
        headers = _known_fields(reader) if known else _indeterminate_fields(reader)
        if status >= 200:
            break
    else:
        raise MalformedMessage(f"more than {_MAX_INFORMATIONAL} informational responses")
    content = _known_content(reader, max_content) if known else _indeterminate_content(reader, max_content)
    trailers = _known_fields(reader) if known else _indeterminate_fields(reader)
    reader.padding()
    return Response(status, headers, content, trailers)


def _section(fields: Iterable[tuple[str, str]]) -> bytes:
    """A known-length field section; each value without the spaces and tabs around it, which are no
    part of it (RFC 9110 section 5.5) and which a binary message may not carry."""
    lines = []
    for name, value in fields:
        name_bytes, value_bytes = name.lower().encode("ascii"), value.strip(" \t").encode("latin-1")
        lines += [encode_varint(len(name_bytes)), name_bytes, encode_varint(len(value_bytes)), value_bytes]
    encoded = b"".join(lines)
    return encode_varint(len(encoded)) + encoded


def _prefixed(value: bytes) -> bytes:
    return encode_varint(len(value)) + value


def encode_request(request: Request, pad_to: int = 0) -> bytes:
    """A known-length request, zero-padded to ``pad_to`` bytes where it is shorter."""
    control = [request.method, request.scheme, request.authority, request.path]
    message = b"".join(
        [
            encode_varint(KNOWN_REQUEST),
            *(_prefixed(part.encode("ascii")) for part in control),
            _section(request.headers),
            _prefixed(request.content),
            _section(request.trailers),
        ]
    )
    return message + bytes(max(0, pad_to - len(message)))


def encode_response(
    status: int, headers: Mapping[str, str] | Fields, content: bytes, pad_to: int = 0
) -> bytes:
    """A known-length response, zero-padded to ``pad_to`` bytes where it is shorter."""
    fields = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    message = b"".join(
        [
            encode_varint(KNOWN_RESPONSE),
            encode_varint(status),
            _section(fields),
            _prefixed(content),
            _section([]),
        ]
    )
    return message + bytes(max(0, pad_to - len(message)))
