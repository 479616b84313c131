"""base64url as the protocol writes it: no padding on the way out, one meaning per text on the way in."""

from __future__ import annotations

import base64
import enum
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.encoding import MembersEncoder, b64u_bytes, b64u_decode, b64u_encode, json_parser
from core.logs import encode_fields


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


class Level(enum.IntEnum):
    LOW = 1


def members_by_encode(fields):
    return "," + encode_fields(fields)[1:-1] if fields else ""


field_names = st.sampled_from(["decrypt_us", "kid", "encrypted", "rows", "code", "_x9"]) | st.text(max_size=6)
field_values = (
    st.integers()
    | st.booleans()
    | st.text(max_size=6)
    | st.floats()
    | st.none()
    | st.lists(st.integers(), max_size=3)
    | st.just(Level.LOW)
    | st.just(b"\x00")
)


@given(st.lists(st.dictionaries(field_names, field_values, max_size=6), max_size=12))
def test_members_are_written_as_the_encoder_writes_them(records):
    """Every record's members are exactly the encoder's (names that are not identifiers, quotes, NaN…)."""
    members = MembersEncoder(encode_fields)
    for fields in records:
        assert members(fields) == members_by_encode(fields)
        assert members(dict(reversed(fields.items()))) == members_by_encode(dict(reversed(fields.items())))


@given(
    st.lists(field_names, min_size=1, max_size=5, unique=True).flatmap(
        lambda names: st.lists(st.tuples(*[field_values] * len(names)), min_size=3, max_size=8).map(
            lambda rows: [dict(zip(names, row, strict=True)) for row in rows]
        )
    )
)
def test_a_set_of_names_met_again_is_written_rightly_whatever_its_values_now_are(records):
    """The same names with other types than they first held (a bool where an int was, a str, None…)."""
    members = MembersEncoder(encode_fields)
    for fields in records:
        assert members(fields) == members_by_encode(fields)


def test_a_set_of_names_gets_its_own_f_string_the_second_time_it_is_seen():
    """The first sight (an instance's first request) is written by the encoder, without compiling."""
    members = MembersEncoder(encode_fields)
    fields = {"encrypted": True, "kid": "k0", "decrypt_us": 45, "rows": 1}
    assert members(fields) == members_by_encode(fields)
    assert tuple(fields) not in members._by_names
    assert members(fields) == members_by_encode(fields)
    assert members._by_names[tuple(fields)] != members._by_encode


def test_past_its_limit_a_new_set_of_names_is_written_by_the_encoder_and_not_kept():
    members = MembersEncoder(encode_fields, limit=4)
    for count in range(1, 12):
        fields = {f"n{index}": index for index in range(count)} | {"flag": count % 2 == 0, "kid": "k0"}
        for _ in range(3):
            assert members(fields) == members_by_encode(fields)
    assert len(members._by_names) <= 4 + 1
    assert len(members._seen_once) <= 4


def test_a_name_that_is_not_an_identifier_never_reaches_the_source_it_makes():
    members = MembersEncoder(encode_fields)
    hostile = {"a'}; import os; f'{": 1, 'b"': "x"}
    assert members(hostile) == ',"a\'}; import os; f\'{":1,"b\\"":"x"'
    assert members(hostile) == members_by_encode(hostile)
