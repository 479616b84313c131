from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.crypto as crypto_module
from core.crypto import (
    DEFAULT_SUITE,
    KID_PATTERN,
    SUITES,
    Envelope,
    KeyRing,
    KeyRingError,
    PrivateKeyEntry,
    generate_private_key,
    open_response,
    parse_envelope,
    parse_envelope_json,
    public_key_bytes,
    request_info,
    seal_request,
    seal_response,
)
from core.encoding import b64u_decode, b64u_encode
from core.errors import DecryptionFailed, InvalidEnvelope

X25519_SUITES = ["x25519-sha256-aes128gcm", "x25519-sha256-chacha20poly1305"]
HYBRID = "mlkem768x25519-sha256-aes256gcm"
ALL_SUITES = [*X25519_SUITES, HYBRID]
PRIVATE_LEN = {X25519_SUITES[0]: 32, X25519_SUITES[1]: 32, HYBRID: 96}
PUBLIC_LEN = {X25519_SUITES[0]: 32, X25519_SUITES[1]: 32, HYBRID: 1216}
PLAINTEXT = b'{"inputs": [[0.1, 0.2]], "ts": 1764000000}'


@pytest.fixture(scope="module")
def private_keys() -> dict[str, bytes]:
    return {suite: generate_private_key(suite) for suite in ALL_SUITES}


@pytest.fixture(scope="module")
def ring_json(private_keys: dict[str, bytes]) -> str:
    return json.dumps(
        [
            {"kid": f"k-{suite}", "suite": suite, "private_key": b64u_encode(private)}
            for suite, private in private_keys.items()
        ]
    )


@pytest.fixture(scope="module")
def ring(ring_json: str) -> KeyRing:
    return KeyRing.from_json(ring_json)


def seal_to(ring: KeyRing, suite: str, plaintext: bytes = PLAINTEXT) -> dict[str, Any]:
    entry = ring.get(f"k-{suite}")
    assert entry is not None
    return seal_request(entry.public_key_raw, entry.kid, entry.suite, plaintext)


def body_of(document: object) -> bytes:
    return json.dumps(document).encode()


def open_body(ring: KeyRing, document: object) -> bytes:
    return ring.open(parse_envelope(body_of(document)))


def with_ct(envelope: dict[str, Any], ct: bytes) -> dict[str, Any]:
    return {**envelope, "ct": b64u_encode(ct)}


# --- suites and keys ---------------------------------------------------------


def test_suite_table() -> None:
    """The suite table holds exactly the three supported suites, x25519 with AES-128-GCM the default."""
    assert set(SUITES) == set(ALL_SUITES)
    assert DEFAULT_SUITE == "x25519-sha256-aes128gcm"


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_key_lengths(suite: str) -> None:
    """Each suite's keys have their fixed lengths; the public key is deterministic and private keys are fresh."""
    private = generate_private_key(suite)
    assert len(private) == PRIVATE_LEN[suite]
    assert len(public_key_bytes(suite, private)) == PUBLIC_LEN[suite]
    assert public_key_bytes(suite, private) == public_key_bytes(suite, private)
    assert generate_private_key(suite) != private


def test_hybrid_public_key_is_mlkem_then_x25519(private_keys: dict[str, bytes]) -> None:
    """A hybrid public key is the ML-KEM key followed by the X25519 key of the private key's last 32 bytes."""
    hybrid_public = public_key_bytes(HYBRID, private_keys[HYBRID])
    x25519_public = public_key_bytes(DEFAULT_SUITE, private_keys[HYBRID][64:])
    assert hybrid_public[1184:] == x25519_public


@pytest.mark.parametrize("suite", ["x25519", "", "X25519-SHA256-AES128GCM"])
def test_unknown_suite_for_keys(suite: str) -> None:
    """Key generation and derivation reject any suite name not in the table, case included."""
    with pytest.raises(ValueError, match="unknown suite"):
        generate_private_key(suite)
    with pytest.raises(ValueError, match="unknown suite"):
        public_key_bytes(suite, bytes(32))


def test_public_key_bytes_wrong_length() -> None:
    """Deriving a public key from a private key of the wrong length is a ValueError naming the expected length."""
    with pytest.raises(ValueError, match="32 bytes"):
        public_key_bytes(DEFAULT_SUITE, bytes(31))
    with pytest.raises(ValueError, match="96 bytes"):
        public_key_bytes(HYBRID, bytes(32))


@pytest.mark.parametrize(
    ("kid", "ok"),
    [("a", True), ("2026-11-a", True), ("A.b_c-9", True), ("x" * 64, True), ("", False),
     ("x" * 65, False), ("a b", False), ("a/b", False), ("é", False), ("a\n", False)],
)  # fmt: skip
def test_kid_pattern(kid: str, ok: bool) -> None:
    """A kid is 1 to 64 ASCII letters, digits, '.', '_' or '-', and nothing else."""
    assert bool(KID_PATTERN.fullmatch(kid)) is ok


def test_request_info() -> None:
    """The HPKE info is the request label, the kid and the suite, separated by NUL bytes."""
    assert request_info("k1", DEFAULT_SUITE) == (b"litefaas/1 request\x00k1\x00x25519-sha256-aes128gcm")


# --- request round trip --------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_round_trip(ring: KeyRing, suite: str) -> None:
    """A request sealed to a ring key is a four-field, version-1, unpadded envelope that opens to the plaintext."""
    envelope = seal_to(ring, suite)
    assert set(envelope) == {"v", "kid", "suite", "ct"}
    assert envelope["v"] == 1
    assert envelope["suite"] == suite
    assert "=" not in envelope["ct"]
    assert open_body(ring, envelope) == PLAINTEXT


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_wire_format_is_plain_hpke(ring: KeyRing, private_keys: dict[str, bytes], suite: str) -> None:
    """An envelope's ct is plain HPKE single-shot output with the documented info string."""
    envelope = seal_to(ring, suite)
    entry = ring.get(envelope["kid"])
    assert entry is not None
    info = b"litefaas/1 request\x00" + f"k-{suite}".encode() + b"\x00" + suite.encode()
    ct = b64u_decode(envelope["ct"])
    assert SUITES[suite].decrypt(ct, entry.private_key, info=info) == PLAINTEXT


def test_empty_plaintext_round_trip(ring: KeyRing) -> None:
    """An empty plaintext round-trips."""
    assert open_body(ring, seal_to(ring, DEFAULT_SUITE, b"")) == b""


def test_padded_ct_is_accepted(ring: KeyRing) -> None:
    """A ct with base64 '=' padding opens like the unpadded one."""
    envelope = seal_to(ring, DEFAULT_SUITE)
    padded = envelope["ct"] + "=" * (-len(envelope["ct"]) % 4)
    assert open_body(ring, {**envelope, "ct": padded}) == PLAINTEXT


def test_public_keyset(ring: KeyRing, private_keys: dict[str, bytes]) -> None:
    """The public key set lists each key in ring order as kid, suite and matching public key, and is JSON-safe."""
    keyset = ring.public_keyset()
    assert list(keyset) == ["keys"]
    assert [key["kid"] for key in keyset["keys"]] == [f"k-{suite}" for suite in ALL_SUITES]
    for key, suite in zip(keyset["keys"], ALL_SUITES, strict=True):
        assert set(key) == {"kid", "suite", "public_key"}
        assert key["suite"] == suite
        assert b64u_decode(key["public_key"]) == public_key_bytes(suite, private_keys[suite])
    assert json.loads(json.dumps(keyset)) == keyset


def test_current_and_get(ring: KeyRing) -> None:
    """The current key is the first; an unknown kid gets None; len counts every key."""
    assert ring.current.kid == f"k-{ALL_SUITES[0]}"
    assert ring.get("nope") is None
    assert len(ring) == 3


# --- decryption failures -------------------------------------------------------


def assert_fails(ring: KeyRing, document: object) -> None:
    with pytest.raises(DecryptionFailed) as caught:
        open_body(ring, document)
    assert str(caught.value) == "decryption failed"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


@pytest.mark.parametrize("suite", X25519_SUITES)
def test_every_flipped_byte_fails_x25519(ring: KeyRing, suite: str) -> None:
    """Flipping any bit of any ct byte of an x25519 envelope is one DecryptionFailed."""
    envelope = seal_to(ring, suite)
    ct = b64u_decode(envelope["ct"])
    for index in range(len(ct)):
        for mask in (0x01, 0x80):
            tampered = bytearray(ct)
            tampered[index] ^= mask
            assert_fails(ring, with_ct(envelope, bytes(tampered)))


def test_sampled_flipped_bytes_fail_hybrid(ring: KeyRing) -> None:
    """Flipping a byte of a hybrid ct, at field boundaries or sampled positions, is one DecryptionFailed."""
    envelope = seal_to(ring, HYBRID)
    ct = b64u_decode(envelope["ct"])
    boundaries = [0, 1, 1087, 1088, 1119, 1120, len(ct) - 17, len(ct) - 16, len(ct) - 1]
    sampled = {*boundaries, *random.Random(0).sample(range(len(ct)), 48)}
    for index in sorted(sampled):
        tampered = bytearray(ct)
        tampered[index] ^= 0x01
        assert_fails(ring, with_ct(envelope, bytes(tampered)))


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_truncated_or_extended_fails(ring: KeyRing, suite: str) -> None:
    """A ct shortened or lengthened by any amount is one DecryptionFailed."""
    envelope = seal_to(ring, suite)
    ct = b64u_decode(envelope["ct"])
    for shorter in (ct[:-1], ct[:-16], ct[:32], ct[:1], b""):
        assert_fails(ring, with_ct(envelope, shorter))
    assert_fails(ring, with_ct(envelope, ct + b"\x00"))


def test_unknown_kid_fails(ring: KeyRing) -> None:
    """An envelope naming a kid the ring lacks is one DecryptionFailed."""
    assert_fails(ring, {**seal_to(ring, DEFAULT_SUITE), "kid": "unknown"})


def test_suite_mismatch_fails(ring: KeyRing) -> None:
    """An envelope whose suite differs from its key's suite is one DecryptionFailed."""
    envelope = seal_to(ring, X25519_SUITES[0])
    assert_fails(ring, {**envelope, "suite": X25519_SUITES[1]})
    assert_fails(ring, {**envelope, "suite": HYBRID})


def test_unknown_suite_string_fails_at_open(ring: KeyRing) -> None:
    """An unknown suite string parses, then fails at open as one DecryptionFailed."""
    envelope = {**seal_to(ring, DEFAULT_SUITE), "suite": "x25519-sha256-aes256gcm"}
    assert parse_envelope(body_of(envelope)).suite == "x25519-sha256-aes256gcm"
    assert_fails(ring, envelope)
    assert_fails(ring, {**envelope, "suite": ""})


def test_ct_from_another_kid_fails(ring: KeyRing) -> None:
    """A ct sealed to one key does not open under another key's kid."""
    a = seal_to(ring, X25519_SUITES[0])
    b = seal_to(ring, X25519_SUITES[1])
    assert_fails(ring, {**a, "ct": b["ct"]})


def test_info_binds_kid() -> None:
    """The kid is bound into the ciphertext: two kids sharing one private key do not accept each other's requests."""
    private = b64u_encode(generate_private_key())
    twin = KeyRing.from_json(
        json.dumps(
            [
                {"kid": "a", "suite": DEFAULT_SUITE, "private_key": private},
                {"kid": "b", "suite": DEFAULT_SUITE, "private_key": private},
            ]
        )
    )
    envelope = seal_request(twin.current.public_key_raw, "a", DEFAULT_SUITE, PLAINTEXT)
    assert open_body(twin, envelope) == PLAINTEXT
    assert_fails(twin, {**envelope, "kid": "b"})


def test_rotation(private_keys: dict[str, bytes]) -> None:
    """After rotation the new key is current, old requests still open, and new requests do not open with the old ring."""
    old = {
        "kid": "old",
        "suite": DEFAULT_SUITE,
        "private_key": b64u_encode(private_keys[DEFAULT_SUITE]),
    }
    new_private = generate_private_key()
    new = {"kid": "new", "suite": DEFAULT_SUITE, "private_key": b64u_encode(new_private)}
    before = KeyRing.from_json(json.dumps([old]))
    after = KeyRing.from_json(json.dumps([new, old]))
    sealed_before = seal_request(before.current.public_key_raw, "old", DEFAULT_SUITE, PLAINTEXT)
    assert after.current.kid == "new"
    assert [key["kid"] for key in after.public_keyset()["keys"]] == ["new", "old"]
    assert open_body(after, sealed_before) == PLAINTEXT
    sealed_after = seal_request(after.current.public_key_raw, "new", DEFAULT_SUITE, PLAINTEXT)
    assert open_body(after, sealed_after) == PLAINTEXT
    assert_fails(before, sealed_after)


# --- seal_request arguments ----------------------------------------------------------


def test_seal_request_rejects_bad_arguments(ring: KeyRing) -> None:
    """seal_request rejects a bad kid, an unknown suite or a public key of the wrong length with a ValueError."""
    public = ring.current.public_key_raw
    with pytest.raises(ValueError, match="kid"):
        seal_request(public, "bad kid", DEFAULT_SUITE, PLAINTEXT)
    with pytest.raises(ValueError, match="unknown suite"):
        seal_request(public, "k", "nope", PLAINTEXT)
    with pytest.raises(ValueError, match="1216 bytes"):
        seal_request(public, "k", HYBRID, PLAINTEXT)
    with pytest.raises(ValueError, match="32 bytes"):
        seal_request(public[:31], "k", DEFAULT_SUITE, PLAINTEXT)


# --- envelope parsing ----------------------------------------------------------


VALID = {"v": 1, "kid": "k1", "suite": DEFAULT_SUITE, "ct": "AAAA"}


def test_parse_valid_envelope() -> None:
    """A valid envelope parses to its kid, suite and decoded ct."""
    envelope = parse_envelope(body_of(VALID))
    assert envelope == Envelope(kid="k1", suite=DEFAULT_SUITE, ct=b"\x00\x00\x00")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        json.dumps(VALID).encode("utf-16"),
        b"\xef\xbb\xbf" + body_of(VALID),
        b"[" * 100_000,
        b'{"v": 1, "v": 1, "kid": "k1", "suite": "s", "ct": "AAAA"}',
        body_of([VALID]),
        body_of("envelope"),
        body_of(None),
        body_of(1),
        *(body_of({k: v for k, v in VALID.items() if k != field}) for field in VALID),
        body_of({**VALID, "extra": 1}),
        body_of({**VALID, "aad": ""}),
        body_of({**VALID, "v": True}),
        body_of({**VALID, "v": 1.0}),
        body_of({**VALID, "v": 2}),
        body_of({**VALID, "v": 0}),
        body_of({**VALID, "v": "1"}),
        body_of({**VALID, "v": None}),
        body_of({**VALID, "kid": ""}),
        body_of({**VALID, "kid": "x" * 65}),
        body_of({**VALID, "kid": "a b"}),
        body_of({**VALID, "kid": "ключ"}),
        body_of({**VALID, "kid": 1}),
        body_of({**VALID, "kid": None}),
        body_of({**VALID, "suite": 1}),
        body_of({**VALID, "suite": None}),
        body_of({**VALID, "suite": [DEFAULT_SUITE]}),
        body_of({**VALID, "ct": 1}),
        body_of({**VALID, "ct": None}),
        body_of({**VALID, "ct": ["AAAA"]}),
        body_of({**VALID, "ct": "AA+A"}),
        body_of({**VALID, "ct": "AA/A"}),
        body_of({**VALID, "ct": "AAA!"}),
        body_of({**VALID, "ct": "A"}),
        body_of({**VALID, "ct": "AAAA==="}),
        body_of({**VALID, "ct": "AA AA"}),
        body_of({**VALID, "ct": "Ä"}),
    ],
)
def test_invalid_envelopes(body: bytes) -> None:
    """Any body that is not exactly one well-typed version-1 envelope object is InvalidEnvelope."""
    with pytest.raises(InvalidEnvelope):
        parse_envelope(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_parse_envelope_fuzz_bytes(body: bytes) -> None:
    """Arbitrary bytes either parse or raise InvalidEnvelope, never another exception."""
    try:
        parse_envelope(body)
    except InvalidEnvelope:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
near_envelopes = st.dictionaries(
    st.sampled_from(["v", "kid", "suite", "ct", "x"]),
    json_values | st.sampled_from([1, "k1", DEFAULT_SUITE, "AAAA", "A", ""]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_envelopes)
def test_parse_envelope_fuzz_objects(document: dict[str, object]) -> None:
    """A JSON object parses only if it has exactly the four fields, v == 1, and keeps its kid."""
    try:
        envelope = parse_envelope(json.dumps(document).encode())
    except InvalidEnvelope:
        return
    assert set(document) == {"v", "kid", "suite", "ct"}
    assert document["v"] == 1
    assert envelope.kid == document["kid"]


def parsed_or_error(parse: Any, body: bytes) -> object:
    try:
        return parse(body)
    except InvalidEnvelope as exc:
        return ("InvalidEnvelope", str(exc))


separators = st.sampled_from([(",", ":"), (", ", ": "), (",", ": "), (" ,", " :"), (",\n", ":\t")])
base64url_texts = st.binary(max_size=64).map(b64u_encode)
mostly_valid_envelopes = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 1.0, 2, True, "1"]),
        "kid": st.sampled_from(["k0", "k0", "k-1.a_B", "", "k" * 65, 'k"0', "k\u00e9"]),
        "suite": st.sampled_from([DEFAULT_SUITE, DEFAULT_SUITE, HYBRID, "", "X", "a" * 65, "x\\y"]),
        "ct": st.one_of(
            base64url_texts,
            base64url_texts.map(lambda text: text + "="),
            base64url_texts.map(lambda text: text + "=="),
            st.sampled_from(["A", "AB", "AA+/", 'AA"', "AA\\u0041"]),
        ),
    }
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(mostly_valid_envelopes, mostly_valid_envelopes, near_envelopes),
    separators,
    st.sampled_from(["", "", " ", "\n"]),
    st.booleans(),
)
def test_an_envelope_as_clients_write_it_parses_as_the_json_parser_says(
    document: dict[str, object], separator: tuple[str, str], trailing: str, ascii_only: bool
) -> None:
    """The fast way through a client's envelope gives what the strict parser gives, or defers to it:
    the same envelope or the same error, for any fields, order, separators and escapes."""
    body = (json.dumps(document, separators=separator, ensure_ascii=ascii_only) + trailing).encode()
    assert parsed_or_error(parse_envelope, body) == parsed_or_error(parse_envelope_json, body)


@settings(max_examples=300, deadline=None)
@given(
    base64url_texts,
    st.sampled_from([b'"}', b'=="}', b'"} ', b'","x":1}', b'"}"}', b"", b'\\"}', b'"]}']),
    st.binary(max_size=4),
)
def test_any_ending_after_an_envelopes_start_parses_as_the_json_parser_says(
    ct: str, ending: bytes, noise: bytes
) -> None:
    start = b'{"v":1,"kid":"k0","suite":"x25519-sha256-aes128gcm","ct":"'
    for body in (start + ct.encode() + ending, start + ct.encode() + noise + ending):
        assert parsed_or_error(parse_envelope, body) == parsed_or_error(parse_envelope_json, body)


def test_an_envelope_ending_at_its_cts_opening_quote_is_no_envelope() -> None:
    """``…"ct":"}``: the body ends in ``"}`` with the ct's own opening quote (found by hypothesis)."""
    body = b'{"v":1,"kid":"k0","suite":"x25519-sha256-aes128gcm","ct":"}'
    with pytest.raises(InvalidEnvelope):
        parse_envelope(body)


def test_a_clients_envelope_takes_the_fast_way_with_its_ciphertext_whole() -> None:
    for separator in ((",", ":"), (", ", ": ")):
        document = {"v": 1, "kid": "k0", "suite": DEFAULT_SUITE, "ct": b64u_encode(b"\x01\x02\x03\x04\x05")}
        body = json.dumps(document, separators=separator).encode()
        assert crypto_module._COMPACT_ENVELOPE.match(body) is not None
        assert parse_envelope(body) == Envelope("k0", DEFAULT_SUITE, b"\x01\x02\x03\x04\x05")


@settings(max_examples=100, deadline=None)
@given(ct=st.binary(max_size=200), suite=st.sampled_from([*ALL_SUITES, "other"]))
def test_open_fuzz_only_decryption_failed(ring: KeyRing, ct: bytes, suite: str) -> None:
    """Opening arbitrary ct under any suite raises DecryptionFailed and nothing else."""
    with pytest.raises(DecryptionFailed):
        ring.open(Envelope(kid=f"k-{DEFAULT_SUITE}", suite=suite, ct=ct))


# --- key ring parsing ------------------------------------------------------------


SECRET = generate_private_key()
SECRET_B64 = b64u_encode(SECRET)
HYBRID_SECRET_B64 = b64u_encode(generate_private_key(HYBRID))


def key(**fields: object) -> dict[str, object]:
    return {"kid": "k", "suite": DEFAULT_SUITE, "private_key": SECRET_B64, **fields}


def good(kid: str) -> dict[str, object]:
    return {"kid": kid, "suite": DEFAULT_SUITE, "private_key": b64u_encode(generate_private_key())}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("not json " + SECRET_B64, "not valid JSON"),
        (json.dumps({"kid": "k", "private_key": SECRET_B64}), "JSON list"),
        ("[]", "empty"),
        ([good("a"), SECRET_B64], "key 1: must be an object"),
        ([good("a"), {"kid": "k", "suite": DEFAULT_SUITE}], "key 1: missing field(s) 'private_key'"),
        ([good("a"), key(extra=1)], "key 1: unexpected field(s) 'extra'"),
        ([good("a"), key(**{SECRET_B64: 1})], "key 1: unexpected field(s)"),
        ([good("a"), key(kid="bad kid")], "key 1: kid"),
        ([good("a"), key(kid=7)], "key 1: kid"),
        ([good("a"), key(suite="x25519")], "key 1 (k): unknown suite"),
        ([good("a"), key(suite=None)], "key 1 (k): unknown suite"),
        ([good("a"), key(private_key=list(SECRET))], "key 1 (k): private_key must be a base64url"),
        ([good("a"), key(private_key=SECRET_B64 + "!")], "key 1 (k): private_key is not valid base64url"),
        ([good("a"), key(private_key=SECRET_B64.replace("-", "+").replace("_", "/") + "+")], "not valid base64url"),
        ([good("a"), key(private_key=b64u_encode(SECRET[:29]))], "must decode to 32 bytes, got 29"),
        ([good("a"), key(private_key=HYBRID_SECRET_B64)], "must decode to 32 bytes, got 96"),
        ([good("a"), key(suite=HYBRID)], "must decode to 96 bytes, got 32"),
        ([good("k"), key()], "key 1: duplicate kid 'k'"),
    ],
)  # fmt: skip
def test_key_ring_errors(document: object, fragment: str) -> None:
    """Each malformed key set is one KeyRingError (a ValueError) that names the fault and never echoes key material."""
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(KeyRingError) as caught:
        KeyRing.from_json(text)
    message = str(caught.value)
    assert fragment in message
    assert SECRET_B64[:16] not in message
    assert HYBRID_SECRET_B64[:16] not in message
    assert caught.value.__cause__ is None
    assert isinstance(caught.value, ValueError)


def test_key_ring_accepts_padded_base64_and_bytes() -> None:
    """A key set given as bytes with padded base64url private keys loads."""
    padded = SECRET_B64 + "=" * (-len(SECRET_B64) % 4)
    ring = KeyRing.from_json(json.dumps([key(private_key=padded)]).encode())
    assert ring.current.public_key_raw == public_key_bytes(DEFAULT_SUITE, SECRET)


def test_reprs_hide_key_material(ring: KeyRing, private_keys: dict[str, bytes]) -> None:
    """No repr or str of a key entry or ring contains private key material."""
    entry = PrivateKeyEntry.from_raw("k", DEFAULT_SUITE, SECRET)
    for text in (repr(entry), str(entry), repr(ring), repr(ring.current)):
        assert SECRET_B64 not in text
        assert SECRET.hex() not in text
        for private in private_keys.values():
            assert b64u_encode(private) not in text
            assert private.hex()[:16] not in text
    assert "k" in repr(entry)


def test_private_key_entry_from_raw_rejects_bad_input() -> None:
    """PrivateKeyEntry.from_raw rejects an empty kid or a private key of the wrong length."""
    with pytest.raises(ValueError, match="kid"):
        PrivateKeyEntry.from_raw("", DEFAULT_SUITE, SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        PrivateKeyEntry.from_raw("k", DEFAULT_SUITE, SECRET[:-1])


# --- responses ---------------------------------------------------------------------


REQUEST_ID = bytes(range(16))


@pytest.mark.parametrize("key_len", [16, 32])
def test_response_round_trip(key_len: int) -> None:
    """A sealed response has v, nonce (12 bytes) and ct, and opens from a dict, a str or bytes."""
    response_key = os.urandom(key_len)
    sealed = json.loads(seal_response(response_key, REQUEST_ID, b'{"outputs": [[0.93]]}'))
    assert set(sealed) == {"v", "nonce", "ct"}
    assert sealed["v"] == 1
    assert len(b64u_decode(sealed["nonce"])) == 12
    for body in (sealed, json.dumps(sealed), json.dumps(sealed).encode()):
        assert open_response(response_key, REQUEST_ID, body) == b'{"outputs": [[0.93]]}'


def test_a_sealed_response_is_compact_json_with_exactly_its_three_fields() -> None:
    body = seal_response(os.urandom(16), REQUEST_ID, b"hello")
    document = json.loads(body)
    assert list(document) == ["v", "nonce", "ct"]
    assert body == json.dumps(document, separators=(",", ":")).encode()
    assert b64u_encode(b64u_decode(document["ct"])) == document["ct"]


def test_response_wire_format() -> None:
    """A response is AES-GCM under the response key with the response label and request id as AAD."""
    response_key = os.urandom(16)
    sealed = json.loads(seal_response(response_key, REQUEST_ID, b"hello"))
    aad = b"litefaas/1 response\x00" + REQUEST_ID
    nonce, ct = b64u_decode(sealed["nonce"]), b64u_decode(sealed["ct"])
    assert AESGCM(response_key).decrypt(nonce, ct, aad) == b"hello"


def test_response_nonces_are_fresh() -> None:
    """Every sealed response gets a fresh nonce."""
    response_key = os.urandom(16)
    nonces = {json.loads(seal_response(response_key, REQUEST_ID, b"x"))["nonce"] for _ in range(50)}
    assert len(nonces) == 50


@pytest.mark.parametrize("key_len", [0, 15, 24, 33])
def test_response_key_length(key_len: int) -> None:
    """Sealing or opening a response with a key that is not 16 or 32 bytes is a ValueError."""
    with pytest.raises(ValueError, match="16 or 32"):
        seal_response(bytes(key_len), REQUEST_ID, b"x")
    with pytest.raises(ValueError, match="16 or 32"):
        open_response(bytes(key_len), REQUEST_ID, {"v": 1, "nonce": "", "ct": ""})


def tampered_responses(sealed: dict[str, Any]) -> list[object]:
    ct = b64u_decode(sealed["ct"])
    nonce = b64u_decode(sealed["nonce"])
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    return [
        {**sealed, "ct": b64u_encode(flipped)},
        {**sealed, "ct": b64u_encode(ct[:-1])},
        {**sealed, "ct": ""},
        {**sealed, "nonce": b64u_encode(bytes([nonce[0] ^ 1]) + nonce[1:])},
        {**sealed, "nonce": b64u_encode(nonce[:11])},
        {**sealed, "nonce": b64u_encode(nonce + b"\x00")},
        {**sealed, "v": True},
        {**sealed, "v": 2},
        {**sealed, "ct": "!!"},
        {**sealed, "nonce": 1},
        {**sealed, "extra": 1},
        {"v": 1, "ct": sealed["ct"]},
        [sealed],
        b"not json",
        b"\xff",
        "[" * 100_000,
    ]


def test_response_tampering_fails() -> None:
    """Any tampered or malformed response is one DecryptionFailed with no chained cause."""
    response_key = os.urandom(32)
    sealed = json.loads(seal_response(response_key, REQUEST_ID, b"payload"))
    for body in tampered_responses(sealed):
        with pytest.raises(DecryptionFailed) as caught:
            open_response(
                response_key,
                REQUEST_ID,
                body if isinstance(body, str | bytes | dict) else json.dumps(body),
            )
        assert caught.value.__cause__ is None


def test_response_wrong_id_or_key_fails() -> None:
    """A response opened with another request id or key is DecryptionFailed."""
    response_key = os.urandom(16)
    sealed = json.loads(seal_response(response_key, REQUEST_ID, b"payload"))
    with pytest.raises(DecryptionFailed):
        open_response(response_key, bytes(16), sealed)
    with pytest.raises(DecryptionFailed):
        open_response(response_key, REQUEST_ID[:-1], sealed)
    with pytest.raises(DecryptionFailed):
        open_response(os.urandom(16), REQUEST_ID, sealed)
