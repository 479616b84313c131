"""HPKE request envelopes and AES-GCM response envelopes, as ``PROTOCOL.md`` defines them.

Server side: :class:`KeyRing` (loaded once at cold start), :func:`parse_envelope`,
:meth:`KeyRing.open`, :func:`seal_response`. Client side: :func:`seal_request`,
:func:`open_response`. Nothing here logs, and no error message carries key material.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.encoding import b64u_bytes, b64u_decode, b64u_encode, strict_json
from core.errors import DecryptionFailed, InvalidEnvelope
from core.protocol import (
    DEFAULT_SUITE,
    ENVELOPE_FIELDS,
    KEY_ENTRY_FIELDS,
    KID_PATTERN_TEXT,
    MLKEM768_X25519_AES256,
    OHTTP_KEY_ID_FIELD,
    REQUEST_INFO_V1,
    REQUEST_INFO_V2,
    RESPONSE_AAD_V1,
    RESPONSE_AAD_V2,
    RESPONSE_FIELDS,
    RESPONSE_KEY_BYTES,
    RESPONSE_NONCE_BYTES,
    SUITE_IDS,
    VERSION_BINARY,
    VERSION_JSON,
    X25519_AES128,
    X25519_CHACHA20,
    default_key_id,
)

if TYPE_CHECKING:
    from core.crypto.hpke_context import Kem
    from core.crypto.ohttp import Gateway

PROTOCOL_VERSION = VERSION_JSON
BINARY_VERSION = VERSION_BINARY

__all__ = ["DEFAULT_SUITE", "MLKEM768_X25519_AES256", "X25519_AES128", "X25519_CHACHA20"]

SUITES: dict[str, hpke.Suite] = {
    X25519_AES128: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    X25519_CHACHA20: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
    MLKEM768_X25519_AES256: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}
SUITE_BY_IDS: dict[tuple[int, int, int], str] = {ids: name for name, ids in SUITE_IDS.items()}

KID_PATTERN = re.compile(KID_PATTERN_TEXT)

PrivateKey = X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
PublicKey = X25519PublicKey | hpke.MLKEM768X25519PublicKey

_X25519_LEN = 32
_MLKEM_SEED_LEN = 64
_MLKEM768_PUBLIC_LEN = 1184
_HYBRID_SUITES = frozenset({MLKEM768_X25519_AES256})
_PRIVATE_LEN = {
    suite: _MLKEM_SEED_LEN + _X25519_LEN if suite in _HYBRID_SUITES else _X25519_LEN for suite in SUITES
}
_PUBLIC_LEN = {
    suite: _MLKEM768_PUBLIC_LEN + _X25519_LEN if suite in _HYBRID_SUITES else _X25519_LEN for suite in SUITES
}
_SAFE_FIELD_NAME = re.compile(r"[A-Za-z_]{1,32}")


class KeyRingError(ValueError):
    """A key ring that does not parse; the message names the entry, never key material."""


def _check_suite(suite: str) -> None:
    if suite not in SUITES:
        raise ValueError(f"unknown suite; expected one of {', '.join(SUITES)}")


def _load_private_key(suite: str, private: bytes) -> tuple[PrivateKey, bytes, tuple[Any, ...]]:
    """Return the loaded key, its raw public bytes, and its parts (X25519, and ML-KEM for the hybrid)."""
    _check_suite(suite)
    if len(private) != _PRIVATE_LEN[suite]:
        raise ValueError(f"{suite} private key must be {_PRIVATE_LEN[suite]} bytes")
    try:
        x25519 = X25519PrivateKey.from_private_bytes(private[-_X25519_LEN:])
        x25519_public = x25519.public_key().public_bytes_raw()
        if suite not in _HYBRID_SUITES:
            return x25519, x25519_public, (x25519,)
        mlkem = MLKEM768PrivateKey.from_seed_bytes(private[:_MLKEM_SEED_LEN])
        mlkem_public = mlkem.public_key().public_bytes_raw()
        hybrid = hpke.MLKEM768X25519PrivateKey(mlkem, x25519)
        return hybrid, mlkem_public + x25519_public, (mlkem, x25519)
    except ValueError:
        raise ValueError(f"{suite} private key does not load") from None


@functools.lru_cache(maxsize=64)
def _load_public_key(suite: str, public: bytes) -> PublicKey:
    _check_suite(suite)
    if len(public) != _PUBLIC_LEN[suite]:
        raise ValueError(f"{suite} public key must be {_PUBLIC_LEN[suite]} bytes")
    if suite in _HYBRID_SUITES:
        return hpke.MLKEM768X25519PublicKey(
            MLKEM768PublicKey.from_public_bytes(public[:_MLKEM768_PUBLIC_LEN]),
            X25519PublicKey.from_public_bytes(public[_MLKEM768_PUBLIC_LEN:]),
        )
    return X25519PublicKey.from_public_bytes(public)


def generate_private_key(suite: str = DEFAULT_SUITE) -> bytes:
    """Return fresh raw private key bytes for ``suite`` (32, or 64-byte seed ‖ 32 for the hybrid)."""
    _check_suite(suite)
    x25519 = X25519PrivateKey.generate().private_bytes_raw()
    if suite in _HYBRID_SUITES:
        return os.urandom(_MLKEM_SEED_LEN) + x25519
    return x25519


def public_key_bytes(suite: str, private: bytes) -> bytes:
    """Return the raw public key (``PROTOCOL.md``'s table) for raw ``private`` key bytes."""
    return _load_private_key(suite, private)[1]


def request_info(kid: str, suite: str) -> bytes:
    """HPKE ``info`` binding a request to its ``kid`` and ``suite``."""
    return REQUEST_INFO_V1 + kid.encode() + b"\x00" + suite.encode()


@dataclass(frozen=True, repr=False)
class PrivateKeyEntry:
    """One loaded private key of a :class:`KeyRing`."""

    kid: str
    suite: str
    private_key: PrivateKey
    public_key_raw: bytes
    parts: tuple[Any, ...] = field(repr=False)
    ohttp_key_id: int

    @functools.cached_property
    def kem(self) -> Kem:
        """The key as an HPKE KEM with the exporter (Oblivious HTTP), made on first use."""
        from core.crypto.hpke_context import X25519Kem, XWingKem

        return X25519Kem(*self.parts) if len(self.parts) == 1 else XWingKem(*self.parts)

    @classmethod
    def from_raw(
        cls, kid: str, suite: str, private: bytes, ohttp_key_id: int | None = None
    ) -> PrivateKeyEntry:
        """Load raw private key bytes; ``ValueError`` (without key material) if they do not fit."""
        if not KID_PATTERN.fullmatch(kid):
            raise ValueError("kid must be 1-64 characters of [A-Za-z0-9._-]")
        private_key, public_key_raw, parts = _load_private_key(suite, private)
        key_id = default_key_id(kid) if ohttp_key_id is None else ohttp_key_id
        return cls(kid, suite, private_key, public_key_raw, parts, key_id)

    def __repr__(self) -> str:
        return f"PrivateKeyEntry(kid={self.kid!r}, suite={self.suite!r})"


class Envelope(NamedTuple):
    """A parsed encrypted request; ``ct`` is ``enc || ciphertext``; ``info`` set for version 2.
    (A tuple: a frozen dataclass's fields cost a request 1 µs to set.)"""

    kid: str
    suite: str
    ct: bytes | memoryview
    info: bytes | None = None

    def __repr__(self) -> str:
        return f"Envelope(kid={self.kid!r}, suite={self.suite!r})"


def _loads(text: str | bytes) -> Any:
    return strict_json(text.decode("utf-8") if isinstance(text, bytes) else text)


def _describe_fields(names: Iterable[str]) -> str:
    """Name the fields, unless a name might be a pasted key."""
    ordered = sorted(names)
    if all(_SAFE_FIELD_NAME.fullmatch(name) for name in ordered):
        return " " + ", ".join(repr(name) for name in ordered)
    return ""


def _parse_key_entry(index: int, item: object) -> PrivateKeyEntry:
    where = f"key {index}"
    if not isinstance(item, dict):
        raise KeyRingError(f"{where}: must be an object with kid, suite, private_key")
    missing = KEY_ENTRY_FIELDS - item.keys()
    if missing:
        raise KeyRingError(f"{where}: missing field(s){_describe_fields(missing)}")
    extra = item.keys() - KEY_ENTRY_FIELDS - {OHTTP_KEY_ID_FIELD}
    if extra:
        raise KeyRingError(f"{where}: unexpected field(s){_describe_fields(extra)}")
    kid, suite, private_b64 = item["kid"], item["suite"], item["private_key"]
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise KeyRingError(f"{where}: kid must be 1-64 characters of [A-Za-z0-9._-]")
    if not isinstance(suite, str) or suite not in SUITES:
        raise KeyRingError(f"{where} ({kid}): unknown suite; expected one of {', '.join(SUITES)}")
    if not isinstance(private_b64, str):
        raise KeyRingError(f"{where} ({kid}): private_key must be a base64url string")
    try:
        private = b64u_decode(private_b64)
    except ValueError:
        raise KeyRingError(f"{where} ({kid}): private_key is not valid base64url") from None
    if len(private) != _PRIVATE_LEN[suite]:
        raise KeyRingError(
            f"{where} ({kid}): {suite} private_key must decode to {_PRIVATE_LEN[suite]} bytes,"
            f" got {len(private)}"
        )
    key_id = item.get(OHTTP_KEY_ID_FIELD)
    if key_id is not None and (type(key_id) is not int or not 0 <= key_id <= 255):
        raise KeyRingError(f"{where} ({kid}): {OHTTP_KEY_ID_FIELD} must be an integer from 0 to 255")
    try:
        return PrivateKeyEntry.from_raw(kid, suite, private, key_id)
    except ValueError:
        raise KeyRingError(f"{where} ({kid}): private_key does not load") from None


class KeyRing:
    """The function's private keys; the first is current, the others still open requests."""

    def __init__(self, entries: Iterable[PrivateKeyEntry]) -> None:
        self._entries = tuple(entries)
        if not self._entries:
            raise KeyRingError("key ring is empty")
        self._by_kid: dict[str, tuple[PrivateKeyEntry, hpke.Suite, bytes]] = {}
        for index, entry in enumerate(self._entries):
            if entry.kid in self._by_kid:
                raise KeyRingError(f"key {index}: duplicate kid {entry.kid!r}")
            info = request_info(entry.kid, entry.suite)
            self._by_kid[entry.kid] = (entry, SUITES[entry.suite], info)
        by_key_id: dict[int, str] = {}
        for entry in self._entries:
            other = by_key_id.setdefault(entry.ohttp_key_id, entry.kid)
            if other != entry.kid:
                raise KeyRingError(
                    f"keys {other!r} and {entry.kid!r} have the same ohttp key_id {entry.ohttp_key_id}"
                )

    @functools.cached_property
    def gateway(self) -> Gateway:
        """The ring's keys as an Oblivious HTTP gateway, made by the first request that needs it."""
        from core.crypto.ohttp import Gateway

        return Gateway([(entry.kid, entry.ohttp_key_id, entry.kem) for entry in self._entries])

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """Parse ``[{"kid", "suite", "private_key"}, …]``; ``ValueError`` names the bad entry."""
        try:
            items = _loads(text)
        except (ValueError, RecursionError):
            raise KeyRingError("key ring is not valid JSON") from None
        if not isinstance(items, list):
            raise KeyRingError("key ring must be a JSON list of keys")
        return cls(_parse_key_entry(index, item) for index, item in enumerate(items))

    @property
    def current(self) -> PrivateKeyEntry:
        """The key clients should encrypt to."""
        return self._entries[0]

    def get(self, kid: str) -> PrivateKeyEntry | None:
        found = self._by_kid.get(kid)
        return found[0] if found else None

    def __iter__(self) -> Iterator[PrivateKeyEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"KeyRing(kids={[entry.kid for entry in self._entries]!r})"

    def public_keyset(self) -> dict[str, list[dict[str, str]]]:
        """The ``GET /keys`` body, in ring order."""
        return {
            "keys": [
                {
                    "kid": entry.kid,
                    "suite": entry.suite,
                    "public_key": b64u_encode(entry.public_key_raw),
                }
                for entry in self._entries
            ]
        }

    def open(self, envelope: Envelope) -> bytes:
        """Decrypt a request; :class:`DecryptionFailed` for every kind of failure."""
        found = self._by_kid.get(envelope.kid)
        if found is None or found[0].suite != envelope.suite:
            raise DecryptionFailed()
        entry, suite, info = found
        try:
            return suite.decrypt(envelope.ct, entry.private_key, info=envelope.info or info)
        except Exception:  # noqa: BLE001 -- every failure is the same DecryptionFailed
            raise DecryptionFailed() from None


_COMPACT_ENVELOPE = re.compile(
    rb'\{"v": ?1, ?"kid": ?"(' + KID_PATTERN_TEXT.encode() + rb')", ?"suite": ?"([a-z0-9-]{1,64})", ?"ct": ?"'
)
"""The start of an envelope as clients write it (compact, or Python's default separators), in
the protocol's field order, up to the ct's opening quote."""


def parse_envelope(body: bytes) -> Envelope:
    """Parse a request body; :class:`InvalidEnvelope` unless it is exactly the v1 envelope.

    An envelope as clients write it is read without the JSON parser: its start matched, its ct the
    base64url up to the closing ``"}``. Anything else (another order, whitespace, escapes, an
    error) takes the parser, so both ways give one answer."""
    head = _COMPACT_ENVELOPE.match(body)
    if head is not None and len(body) >= head.end() + 2 and body.endswith(b'"}'):  # a quote of its own
        try:
            ciphertext = b64u_decode(body[head.end() : -2])
        except ValueError:
            pass  # the parser says what is wrong
        else:
            return Envelope(kid=head[1].decode("ascii"), suite=head[2].decode("ascii"), ct=ciphertext)
    return parse_envelope_json(body)


def parse_envelope_json(body: bytes) -> Envelope:
    """:func:`parse_envelope` by the strict JSON parser alone."""
    try:
        document = _loads(body)
    except (ValueError, RecursionError):
        raise InvalidEnvelope("body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise InvalidEnvelope("body must be a JSON object")
    if document.keys() != ENVELOPE_FIELDS:
        raise InvalidEnvelope("envelope fields must be exactly v, kid, suite, ct")
    version, kid, suite, ct = document["v"], document["kid"], document["suite"], document["ct"]
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise InvalidEnvelope("unsupported envelope version; expected v = 1")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise InvalidEnvelope("kid must be 1-64 characters of [A-Za-z0-9._-]")
    if not isinstance(suite, str):
        raise InvalidEnvelope("suite must be a string")
    if not isinstance(ct, str):
        raise InvalidEnvelope("ct must be a base64url string")
    try:
        ciphertext = b64u_decode(ct)
    except ValueError:
        raise InvalidEnvelope("ct is not valid base64url") from None
    return Envelope(kid=kid, suite=suite, ct=ciphertext)


def seal_request(public_key_raw: bytes, kid: str, suite: str, plaintext: bytes) -> dict[str, Any]:
    """Client side: encrypt ``plaintext`` to a server key; returns the envelope object."""
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError("kid must be 1-64 characters of [A-Za-z0-9._-]")
    public_key = _load_public_key(suite, bytes(public_key_raw))
    ct = SUITES[suite].encrypt(plaintext, public_key, info=request_info(kid, suite))
    return {"v": PROTOCOL_VERSION, "kid": kid, "suite": suite, "ct": b64u_encode(ct)}


def _response_cipher(response_key: bytes) -> AESGCM:
    if len(response_key) not in RESPONSE_KEY_BYTES:
        raise ValueError("response_key must be 16 or 32 bytes")
    return AESGCM(response_key)


_RESPONSE_START = b'{"v":%d,"nonce":"' % PROTOCOL_VERSION


def seal_response(response_key: bytes, request_id: bytes, plaintext: bytes) -> bytes:
    """Encrypt a response body to the request's ``response_key``, bound to its ``id``: the
    ``{"v","nonce","ct"}`` body, compact JSON built as bytes."""
    cipher = _response_cipher(response_key)
    nonce = os.urandom(RESPONSE_NONCE_BYTES)
    ct = cipher.encrypt(nonce, plaintext, RESPONSE_AAD_V1 + request_id)
    return b"".join((_RESPONSE_START, b64u_bytes(nonce), b'","ct":"', b64u_bytes(ct), b'"}'))


def open_response(response_key: bytes, request_id: bytes, body: bytes | str | Mapping[str, Any]) -> bytes:
    """Client side: decrypt a response; :class:`DecryptionFailed` if anything about it is wrong."""
    cipher = _response_cipher(response_key)
    try:
        document = body if isinstance(body, Mapping) else _loads(body)
    except (ValueError, RecursionError):
        raise DecryptionFailed() from None
    if not isinstance(document, Mapping) or set(document.keys()) != RESPONSE_FIELDS:
        raise DecryptionFailed()
    version, nonce_b64, ct_b64 = document["v"], document["nonce"], document["ct"]
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise DecryptionFailed()
    if not isinstance(nonce_b64, str) or not isinstance(ct_b64, str):
        raise DecryptionFailed()
    try:
        nonce, ct = b64u_decode(nonce_b64), b64u_decode(ct_b64)
    except ValueError:
        raise DecryptionFailed() from None
    if len(nonce) != RESPONSE_NONCE_BYTES:
        raise DecryptionFailed()
    try:
        return cipher.decrypt(nonce, ct, RESPONSE_AAD_V1 + request_id)
    except (InvalidTag, ValueError, OverflowError):
        raise DecryptionFailed() from None


def binary_header(kid: str, suite: str) -> bytes:
    """Version 2's clear request header: ``0x02 || len(kid) || kid || kem_id kdf_id aead_id``."""
    if not KID_PATTERN.fullmatch(kid):
        raise ValueError("kid must be 1-64 characters of [A-Za-z0-9._-]")
    _check_suite(suite)
    return bytes([BINARY_VERSION, len(kid)]) + kid.encode("ascii") + struct.pack(">HHH", *SUITE_IDS[suite])


def parse_binary_envelope(body: bytes) -> Envelope:
    """Parse a version-2 request body ``hdr || enc || ct`` without copying the ciphertext twice.

    :class:`InvalidEnvelope` for a body shorter than its header or a version other than 2;
    :class:`DecryptionFailed` for identifiers that name no suite or a malformed kid (the server
    cannot hold such a key).
    """
    if len(body) < 2 or body[0] != BINARY_VERSION:
        raise InvalidEnvelope("unsupported envelope version; expected the byte 0x02")
    kid_len = body[1]
    end = 2 + kid_len + 6
    if kid_len < 1 or len(body) < end:
        raise InvalidEnvelope("body is shorter than its header")
    try:
        kid = body[2 : 2 + kid_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionFailed() from None
    suite = SUITE_BY_IDS.get(struct.unpack(">HHH", body[end - 6 : end]))
    if suite is None or not KID_PATTERN.fullmatch(kid):
        raise DecryptionFailed()
    header = bytes(body[:end])
    ciphertext = memoryview(body)[end:]  # no copy of a body that may hold megabytes of tensors
    return Envelope(kid=kid, suite=suite, ct=ciphertext, info=REQUEST_INFO_V2 + header)


def seal_binary_request(public_key_raw: bytes, kid: str, suite: str, plaintext: bytes) -> bytes:
    """Client side: a version-2 request body ``hdr || enc || ct``."""
    header = binary_header(kid, suite)
    public_key = _load_public_key(suite, bytes(public_key_raw))
    return header + SUITES[suite].encrypt(plaintext, public_key, info=REQUEST_INFO_V2 + header)


def seal_binary_response(response_key: bytes, request_id: bytes, plaintext: bytes) -> bytes:
    """A version-2 response body ``0x02 || nonce || ciphertext||tag``."""
    cipher = _response_cipher(response_key)
    nonce = os.urandom(RESPONSE_NONCE_BYTES)
    return bytes([BINARY_VERSION]) + nonce + cipher.encrypt(nonce, plaintext, RESPONSE_AAD_V2 + request_id)


def open_binary_response(response_key: bytes, request_id: bytes, body: bytes) -> bytes:
    """Client side: decrypt a version-2 response; :class:`DecryptionFailed` if anything is wrong."""
    cipher = _response_cipher(response_key)
    if len(body) < 1 + RESPONSE_NONCE_BYTES + 16 or body[0] != BINARY_VERSION:
        raise DecryptionFailed()
    nonce = bytes(body[1 : 1 + RESPONSE_NONCE_BYTES])
    try:
        return cipher.decrypt(nonce, bytes(body[1 + RESPONSE_NONCE_BYTES :]), RESPONSE_AAD_V2 + request_id)
    except (InvalidTag, ValueError, OverflowError):
        raise DecryptionFailed() from None
