"""base64url as the protocol writes it: no padding on the way out, one meaning per text on the way in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.encoding import b64u_decode, b64u_encode


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
