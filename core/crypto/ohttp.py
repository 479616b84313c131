"""Oblivious HTTP (RFC 9458): key configurations, and requests and responses encapsulated both ways.

The gateway side (:class:`Gateway`) decapsulates a ``message/ohttp-req`` with a key of the ring and
seals the answer with keys exported from the same HPKE context (§4.4); the client side
(:func:`encapsulate`) does the reverse for a key configuration it fetched or pinned. Errors:
:class:`UnknownKey` for a ``key_id`` or algorithm pair the gateway does not offer (§5.3's
``ohttp-key`` problem), :class:`core.errors.DecryptionFailed` for everything else that does not open.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from core.crypto.hpke_context import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AEAD_CHACHA20_POLY1305,
    AEAD_IDS,
    KDF_HKDF_SHA256,
    KEM_X25519,
    KEM_XWING,
    NONCE_LENGTH,
    Context,
    Kem,
    OpenError,
    aead,
    aead_key_length,
    hkdf_expand,
    hkdf_extract,
    setup_receiver,
    setup_sender,
)
from core.errors import DecryptionFailed
from core.protocol import default_key_id

__all__ = ["ClientContext", "Gateway", "KeyConfig", "UnknownKey", "default_key_id", "encapsulate"]

REQUEST_LABEL = b"message/bhttp request"
RESPONSE_LABEL = b"message/bhttp response"
_HEADER = struct.Struct(">BHHH")
ALGORITHMS: dict[int, tuple[tuple[int, int], ...]] = {
    KEM_X25519: ((KDF_HKDF_SHA256, AEAD_AES_128_GCM), (KDF_HKDF_SHA256, AEAD_CHACHA20_POLY1305)),
    KEM_XWING: ((KDF_HKDF_SHA256, AEAD_AES_256_GCM),),
}
"""The (KDF, AEAD) pairs a key of each KEM offers."""
_ENC_LENGTH = {KEM_X25519: 32, KEM_XWING: 1120}


class UnknownKey(Exception):
    """An encapsulated request for a ``key_id``, KEM or algorithm pair the gateway does not offer."""


class MalformedKeyConfig(ValueError):
    """Bytes that are not ``application/ohttp-keys``."""


@dataclass(frozen=True)
class KeyConfig:
    """One key configuration (RFC 9458 §3): key id, KEM, public key, the (KDF, AEAD) pairs offered."""

    key_id: int
    kem_id: int
    public_key: bytes = field(repr=False)
    algorithms: tuple[tuple[int, int], ...]

    def encode(self) -> bytes:
        pairs = b"".join(struct.pack(">HH", kdf, aead) for kdf, aead in self.algorithms)
        return (
            struct.pack(">BH", self.key_id, self.kem_id)
            + self.public_key
            + struct.pack(">H", len(pairs))
            + pairs
        )

    @classmethod
    def decode(cls, data: bytes) -> KeyConfig:
        if len(data) < 3:
            raise MalformedKeyConfig("a key configuration is shorter than its header")
        key_id, kem_id = struct.unpack_from(">BH", data)
        public_length = {KEM_X25519: 32, KEM_XWING: 1216}.get(kem_id)
        if public_length is None:
            raise MalformedKeyConfig(f"KEM 0x{kem_id:04x} is not one litefaas clients speak")
        end = 3 + public_length
        if len(data) < end + 2:
            raise MalformedKeyConfig("a key configuration ends inside its public key")
        (pairs_length,) = struct.unpack_from(">H", data, end)
        pairs = data[end + 2 :]
        if pairs_length != len(pairs) or pairs_length % 4 or not pairs_length:
            raise MalformedKeyConfig("a key configuration's algorithm list does not match its length")
        algorithms = tuple(struct.unpack_from(">HH", pairs, offset) for offset in range(0, len(pairs), 4))
        return cls(key_id, kem_id, bytes(data[3:end]), algorithms)


def encode_key_configs(configs: Iterable[KeyConfig]) -> bytes:
    """``application/ohttp-keys`` (RFC 9458 §3.2): each configuration after its 2-byte length."""
    return b"".join(struct.pack(">H", len(encoded)) + encoded for encoded in (c.encode() for c in configs))


def decode_key_configs(data: bytes) -> list[KeyConfig]:
    """Every configuration of an ``application/ohttp-keys`` body that litefaas can use, in order
    (one of a KEM it does not speak is skipped: each is length-prefixed, RFC 9458 §3.2)."""
    configs, offset = [], 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise MalformedKeyConfig("the key configurations end inside a length")
        (length,) = struct.unpack_from(">H", data, offset)
        if length > len(data) - offset - 2:
            raise MalformedKeyConfig("a key configuration runs past the end")
        entry = bytes(data[offset + 2 : offset + 2 + length])
        offset += 2 + length
        if len(entry) >= 3 and struct.unpack_from(">H", entry, 1)[0] not in _ENC_LENGTH:
            continue
        configs.append(KeyConfig.decode(entry))
    if not configs:
        raise MalformedKeyConfig("no key configuration")
    return configs


def _response_keys(context: Context, enc: bytes, response_nonce: bytes, aead_id: int) -> tuple[bytes, bytes]:
    key_length = aead_key_length(aead_id)
    secret = context.export(RESPONSE_LABEL, max(key_length, NONCE_LENGTH))
    prk = hkdf_extract(enc + response_nonce, secret)
    return hkdf_expand(prk, b"key", key_length), hkdf_expand(prk, b"nonce", NONCE_LENGTH)


def _nonce_length(aead_id: int) -> int:
    return max(aead_key_length(aead_id), NONCE_LENGTH)


@dataclass(repr=False)
class ResponseSealer:
    """Seals the one answer to a decapsulated request (RFC 9458 §4.4)."""

    context: Context
    enc: bytes
    aead_id: int

    def seal(self, response: bytes) -> bytes:
        response_nonce = os.urandom(_nonce_length(self.aead_id))
        key, nonce = _response_keys(self.context, self.enc, response_nonce, self.aead_id)
        return response_nonce + aead(self.aead_id, key).encrypt(nonce, response, b"")


@dataclass(frozen=True, repr=False)
class GatewayKey:
    kid: str
    config: KeyConfig
    kem: Kem


@dataclass(frozen=True)
class Decapsulated:
    """A decapsulated request: the Binary HTTP message, the sealer of its answer, and its ``enc``."""

    message: bytes = field(repr=False)
    sealer: ResponseSealer = field(repr=False)
    enc: bytes = field(repr=False)
    key_id: int


class Gateway:
    """The ring's keys as Oblivious HTTP key configurations, current key first."""

    def __init__(self, keys: Sequence[tuple[str, int, Kem]]) -> None:
        self._keys: dict[int, GatewayKey] = {}
        for kid, key_id, kem in keys:
            if key_id in self._keys:
                other = self._keys[key_id].kid
                raise ValueError(f"keys {other!r} and {kid!r} have the same ohttp key_id {key_id}")
            config = KeyConfig(key_id, kem.kem_id, kem.public_bytes, ALGORITHMS[kem.kem_id])
            self._keys[key_id] = GatewayKey(kid, config, kem)
        self.key_configs = encode_key_configs(key.config for key in self._keys.values())

    def kid(self, key_id: int) -> str | None:
        found = self._keys.get(key_id)
        return found.kid if found else None

    def decapsulate(self, body: bytes | memoryview) -> Decapsulated:
        """Open ``message/ohttp-req``; :class:`UnknownKey` or :class:`DecryptionFailed`."""
        data = bytes(body)
        if len(data) < _HEADER.size:
            raise DecryptionFailed()
        key_id, kem_id, kdf_id, aead_id = _HEADER.unpack_from(data)
        key = self._keys.get(key_id)
        if key is None or kem_id != key.config.kem_id or (kdf_id, aead_id) not in key.config.algorithms:
            raise UnknownKey()
        enc_end = _HEADER.size + key.kem.enc_len
        if len(data) < enc_end:
            raise DecryptionFailed()
        header, enc = data[: _HEADER.size], data[_HEADER.size : enc_end]
        try:
            context = setup_receiver(key.kem, enc, REQUEST_LABEL + b"\x00" + header, kdf_id, aead_id)
            message = context.open(memoryview(data)[enc_end:])
        except OpenError:
            raise DecryptionFailed() from None
        return Decapsulated(message, ResponseSealer(context, enc, aead_id), enc, key_id)


@dataclass(repr=False)
class ClientContext:
    """What a client keeps to open the answer to the request it encapsulated."""

    context: Context
    enc: bytes
    aead_id: int

    def open(self, body: bytes) -> bytes:
        """The Binary HTTP answer of ``message/ohttp-res``; :class:`DecryptionFailed` if it does not open."""
        length = _nonce_length(self.aead_id)
        if len(body) < length + 16:
            raise DecryptionFailed()
        response_nonce = bytes(body[:length])
        key, nonce = _response_keys(self.context, self.enc, response_nonce, self.aead_id)
        try:
            return aead(self.aead_id, key).decrypt(nonce, bytes(body[length:]), b"")
        except (InvalidTag, ValueError, OverflowError):
            raise DecryptionFailed() from None


def encapsulate(
    config: KeyConfig, message: bytes, algorithm: tuple[int, int] | None = None
) -> tuple[bytes, ClientContext]:
    """Client side: ``message/ohttp-req`` for a Binary HTTP message, and the context to open its answer."""
    usable = [pair for pair in config.algorithms if pair[0] == KDF_HKDF_SHA256 and pair[1] in AEAD_IDS]
    chosen = algorithm or (usable[0] if usable else None)
    if chosen is None or chosen not in usable:
        raise ValueError("the key configuration offers no algorithm pair this client speaks")
    kdf_id, aead_id = chosen
    header = _HEADER.pack(config.key_id, config.kem_id, kdf_id, aead_id)
    enc, context = setup_sender(
        config.kem_id, config.public_key, REQUEST_LABEL + b"\x00" + header, kdf_id, aead_id
    )
    return header + enc + context.seal(message), ClientContext(context, enc, aead_id)


ENC_LENGTH = _ENC_LENGTH
