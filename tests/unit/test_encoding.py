"""base64url as the protocol writes it: no padding on the way out, one meaning per text on the way in."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.encoding import b64u_bytes, b64u_decode, b64u_encode, json_parser


@given(st.binary(max_size=200))
def test_round_trip_with_and_without_padding(data):
    """Encoding never pads, and decoding accepts the text with or without padding."""
    text = b64u_encode(data)
    assert "=" not in text
    assert b64u_decode(text) == data
    assert b64u_decode(text + "=" * (-len(text) % 4)) == data


@pytest.mark.parametrize(
    "text", ["YR", "YWJ", "a+b/", "YQ==x", "Y", "YQ!", "é", "YWJj==", "YQ=", "YQ===", "Y=Q=", "YW\nJj"]
)
def test_refuses_other_characters_and_non_canonical_texts(text):
    """A text with a foreign character, impossible length or non-zero trailing bits is a ValueError."""
    with pytest.raises(ValueError):
        b64u_decode(text)


@given(st.binary(max_size=200))
def test_encoding_is_base64s_url_alphabet_without_padding(data):
    assert b64u_bytes(data) == base64.urlsafe_b64encode(data).rstrip(b"=")
    assert b64u_encode(data) == b64u_bytes(data).decode()


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


def decoded_or_error(decode, text):
    try:
        return ("value", decode(text))
    except ValueError as exc:
        return ("error", type(exc), str(exc))


@given(
    st.one_of(
        json_documents.map(lambda document: json.dumps(document, separators=(",", ":"))),
        json_documents.map(json.dumps),
        st.text(alphabet='{}[]",: \t\n\r0123456789.eE-+truefalsnIy\\u', max_size=30),
    ),
    st.sampled_from(["", " ", "\n", " \t", "x"]),
    st.sampled_from(["", " ", "\r\n"]),
)
def test_the_parser_answers_as_the_decoder_does_with_or_without_whitespace_around(text, after, before):
    """Values, errors and their messages, for documents and for junk, wrapped in whitespace or not."""
    decoder = json.JSONDecoder()
    for whole in (text, before + text + after):
        assert decoded_or_error(json_parser(decoder), whole) == decoded_or_error(decoder.decode, whole)
