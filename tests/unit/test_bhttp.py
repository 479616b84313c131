"""Binary HTTP (RFC 9292): both framings, truncation, padding, and bounded parsing of bad bytes."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import bhttp
from core.bhttp import MalformedMessage, Request, encode_varint, parse_request, parse_response

LIMIT = 1 << 20


def _prefixed(data: bytes) -> bytes:
    return encode_varint(len(data)) + data


def test_rfc_9292_example_request_parses():
    # GIVEN the known-length request of RFC 9292 §5.1 (GET https://www.example.com/hello.txt)
    message = bytes.fromhex(
        "0003474554056874747073000a2f68656c6c6f2e747874406c0a757365722d6167656e74346375726c2f372e31362e33"
        "206c69626375726c2f372e31362e33204f70656e53534c2f302e392e376c207a6c69622f312e322e330468"
        "6f73740f7777772e6578616d706c652e636f6d0f6163636570742d6c616e67756167650665"
        "6e2c206d690000"
    )
    # WHEN it is parsed THEN its control data and fields are the example's
    request = parse_request(message, LIMIT)
    assert (request.method, request.scheme, request.authority, request.path) == (
        "GET",
        "https",
        "",
        "/hello.txt",
    )
    assert request.header_map()["host"] == "www.example.com"
    assert request.header_map()["accept-language"] == "en, mi"
    assert request.content == b""


@pytest.mark.parametrize("pad", [0, 1, 700])
def test_known_length_round_trip_with_padding(pad):
    request = Request(
        "POST",
        "https",
        "fn.example",
        "/v2/models/m/infer",
        [("date", "x"), ("a", "1"), ("a", "2")],
        b"\x00body\xff",
    )
    message = bhttp.encode_request(request, pad_to=len(bhttp.encode_request(request)) + pad)
    parsed = parse_request(message, LIMIT)
    assert parsed == request
    assert parsed.header_map()["a"] == "1, 2"


def test_indeterminate_length_request_with_chunks_and_truncation():
    # GIVEN an indeterminate-length request: fields, two content chunks, then nothing (trailers cut)
    fields = _prefixed(b"content-type") + _prefixed(b"application/json") + b"\x00"
    content = _prefixed(b'{"a"') + _prefixed(b":1}") + b"\x00"
    message = (
        b"\x02"
        + _prefixed(b"POST")
        + _prefixed(b"https")
        + _prefixed(b"")
        + _prefixed(b"/predict")
        + fields
        + content
    )
    # WHEN it is parsed THEN the chunks are joined and the missing trailers are empty
    request = parse_request(message, LIMIT)
    assert request.content == b'{"a":1}' and request.trailers == []
    assert request.header_map() == {"content-type": "application/json"}


def test_a_request_truncated_after_its_control_data_has_no_fields_or_content():
    message = b"\x00" + _prefixed(b"GET") + _prefixed(b"https") + _prefixed(b"") + _prefixed(b"/health")
    assert parse_request(message, LIMIT) == Request("GET", "https", "", "/health")


def test_responses_skip_informational_ones():
    informational = encode_varint(103) + _prefixed(_prefixed(b"link") + _prefixed(b"</a>"))
    final = (
        encode_varint(200)
        + _prefixed(_prefixed(b"content-type") + _prefixed(b"text/plain"))
        + _prefixed(b"ok")
    )
    response = parse_response(b"\x01" + informational + final + b"\x00" * 5, LIMIT)
    assert (response.status, response.headers, response.content) == (
        200,
        [("content-type", "text/plain")],
        b"ok",
    )
    encoded = bhttp.encode_response(404, {"Content-Type": "application/json"}, b"{}", pad_to=1024)
    assert len(encoded) == 1024
    assert parse_response(encoded, LIMIT).status == 404


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (b"\x05", "is not a request's"),
        (b"\x00" + encode_varint(2**40) + b"GET", "over the limit"),
        (b"\x00\x03GE", "3 bytes declared, 2 left"),
        (b"\x00\xc0", "inside a variable-length integer"),
        (
            b"\x00"
            + _prefixed(b"GET")
            + _prefixed(b"https")
            + _prefixed(b"")
            + _prefixed(b"/x")
            + b"\x00\x00\x00\x01",
            "padding",
        ),
        (
            b"\x00" + _prefixed(b"G T") + _prefixed(b"") + _prefixed(b"") + _prefixed(b"/"),
            "space or a control",
        ),
        (
            b"\x00" + _prefixed(b"GET") + _prefixed(b"") + _prefixed(b"") + _prefixed(b"x"),
            "not an absolute path",
        ),
        (
            b"\x00"
            + _prefixed(b"GET")
            + _prefixed(b"")
            + _prefixed(b"")
            + _prefixed(b"/")
            + _prefixed(_prefixed(b"bad name") + _prefixed(b"v")),
            "not a token",
        ),
        (
            b"\x00"
            + _prefixed(b"GET")
            + _prefixed(b"")
            + _prefixed(b"")
            + _prefixed(b"/")
            + _prefixed(_prefixed(b"x") + _prefixed(b"a\r\nb")),
            "CR, LF or NUL",
        ),
        *(
            (
                b"\x00"
                + _prefixed(b"GET")
                + _prefixed(b"")
                + _prefixed(b"")
                + _prefixed(b"/")
                + _prefixed(_prefixed(b"date") + _prefixed(value)),
                "starts or ends with a space or a tab",
            )
            for value in (b" x", b"x ", b"\tx", b"x\t", b" ")
        ),
        (
            b"\x02"
            + _prefixed(b"GET")
            + _prefixed(b"")
            + _prefixed(b"")
            + _prefixed(b"/")
            + (_prefixed(b"x") + _prefixed(b"y" * 200)) * 100,
            "over 16384 bytes",
        ),
        (
            b"\x02"
            + _prefixed(b"GET")
            + _prefixed(b"")
            + _prefixed(b"")
            + _prefixed(b"/")
            + (_prefixed(b"x") + _prefixed(b"y")) * 200,
            "or 128 lines",
        ),
    ],
)
def test_malformed_requests_say_why(message, problem):
    with pytest.raises(MalformedMessage, match=problem):
        parse_request(message, LIMIT)


def test_content_over_the_limit_is_refused_before_it_is_read():
    message = (
        b"\x00"
        + _prefixed(b"POST")
        + _prefixed(b"")
        + _prefixed(b"")
        + _prefixed(b"/")
        + b"\x00"
        + encode_varint(2**30)
    )
    with pytest.raises(MalformedMessage, match="over the limit"):
        parse_request(message, 1024)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_malformed(data):
    # GIVEN any bytes WHEN parsed as a request and as a response THEN a message or MalformedMessage
    for parse in (parse_request, parse_response):
        try:
            parse(data, 4096)
        except MalformedMessage:
            pass


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    path=st.text(alphabet="abcdefghij/?=&0123456789", max_size=30).map(lambda p: "/" + p),
    headers=st.lists(
        st.tuples(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
            st.text(alphabet="abc ;,=1\t", max_size=20),
        ),
        max_size=8,
    ),
    content=st.binary(max_size=500),
    pad=st.integers(0, 300),
)
def test_round_trip_of_any_request(method, path, headers, content, pad):
    request = Request(method, "https", "example", path, headers, content)
    encoded = bhttp.encode_request(request)
    # a value's spaces around it are no part of it: not sent, as a binary message may not carry them
    sent = [(name, value.strip(" \t")) for name, value in headers]
    assert parse_request(encoded + bytes(pad), LIMIT) == dataclasses.replace(request, headers=sent)


def test_chunked_content_is_joined_without_an_object_per_chunk_and_bounded_in_chunks():
    head = b"\x02" + _prefixed(b"POST") + _prefixed(b"") + _prefixed(b"") + _prefixed(b"/") + b"\x00"
    many = head + b"\x01x" * 5000 + b"\x00"
    assert parse_request(many, LIMIT).content == b"x" * 5000
    too_many = head + b"\x01x" * (bhttp.MAX_CONTENT_CHUNKS + 1) + b"\x00"
    with pytest.raises(MalformedMessage, match="more than 65536 chunks"):
        parse_request(too_many, LIMIT)
