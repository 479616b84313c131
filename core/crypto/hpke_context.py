"""HPKE (RFC 9180) base mode with its secret export interface, on ``cryptography``'s primitives.

``cryptography`` offers single-shot HPKE only; Oblivious HTTP needs the context's ``Export``
(RFC 9180 §5.3) to derive the response key. This module builds the key schedule (§5.1) over
two KEMs: DHKEM(X25519, HKDF-SHA256) (§4.1) and X-Wing (ML-KEM-768 + X25519, KEM id 0x647A,
draft-connolly-cfrg-xwing-kem), with HKDF-SHA256 and the three AEADs litefaas uses. Every
failure to open is :class:`OpenError`; nothing here logs, and key material stays in
``core.crypto``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

KEM_X25519 = 0x0020
KEM_XWING = 0x647A
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
AEAD_CHACHA20_POLY1305 = 0x0003
AEAD_EXPORT_ONLY = 0xFFFF

_VERSION_LABEL = b"HPKE-v1"
_HASH_LEN = 32
_X25519_LEN = 32
_MLKEM_SEED_LEN = 64
_MLKEM_PUBLIC_LEN = 1184
_MLKEM_CIPHERTEXT_LEN = 1088
_XWING_LABEL = b"\\.//^\\"
_AEADS: dict[int, tuple[type[AESGCM] | type[ChaCha20Poly1305], int]] = {
    AEAD_AES_128_GCM: (AESGCM, 16),
    AEAD_AES_256_GCM: (AESGCM, 32),
    AEAD_CHACHA20_POLY1305: (ChaCha20Poly1305, 32),
}
_NONCE_LEN = 12


class OpenError(Exception):
    """An encapsulated key or ciphertext that does not open: one error for every reason."""


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt or bytes(_HASH_LEN), ikm, "sha256")


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    if length <= _HASH_LEN:
        return hmac.digest(prk, info + b"\x01", "sha256")[:length]
    blocks, block = [], b""
    for counter in range(1, -(-length // _HASH_LEN) + 1):
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, _VERSION_LABEL + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + _VERSION_LABEL + suite_id + label + info, length)


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract with SHA-256 (RFC 5869), as Oblivious HTTP's response keys use it."""
    return _extract(salt, ikm)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand with SHA-256 (RFC 5869)."""
    return _expand(prk, info, length)


class Kem(Protocol):
    """A KEM's receiver key: its id, encapsulated key length and public key; ``decap`` opens an ``enc``."""

    kem_id: int
    enc_len: int
    public_bytes: bytes

    def decap(self, enc: bytes) -> bytes: ...


def _kem_suite_id(kem_id: int) -> bytes:
    return b"KEM" + struct.pack(">H", kem_id)


class X25519Kem:
    """DHKEM(X25519, HKDF-SHA256): a receiver's private key."""

    kem_id = KEM_X25519
    enc_len = _X25519_LEN

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public_bytes = private.public_key().public_bytes_raw()

    @classmethod
    def from_bytes(cls, private: bytes) -> X25519Kem:
        return cls(X25519PrivateKey.from_private_bytes(private))

    @staticmethod
    def _shared_secret(dh: bytes, kem_context: bytes) -> bytes:
        suite_id = _kem_suite_id(KEM_X25519)
        prk = labeled_extract(suite_id, b"", b"eae_prk", dh)
        return labeled_expand(suite_id, prk, b"shared_secret", kem_context, _HASH_LEN)

    def decap(self, enc: bytes) -> bytes:
        try:
            dh = self._private.exchange(X25519PublicKey.from_public_bytes(enc))
        except ValueError:
            raise OpenError() from None
        return self._shared_secret(dh, enc + self.public_bytes)

    @classmethod
    def encap(cls, public: bytes, ephemeral: X25519PrivateKey | None = None) -> tuple[bytes, bytes]:
        """Sender side: ``(shared_secret, enc)`` for a receiver's public key."""
        ephemeral = ephemeral or X25519PrivateKey.generate()
        enc = ephemeral.public_key().public_bytes_raw()
        dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
        return cls._shared_secret(dh, enc + public), enc

    @staticmethod
    def derive_private(ikm: bytes) -> X25519PrivateKey:
        """DeriveKeyPair (RFC 9180 §7.1.3), for test vectors."""
        suite_id = _kem_suite_id(KEM_X25519)
        prk = labeled_extract(suite_id, b"", b"dkp_prk", ikm)
        return X25519PrivateKey.from_private_bytes(labeled_expand(suite_id, prk, b"sk", b"", _X25519_LEN))


def _xwing_combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + _XWING_LABEL).digest()


class XWingKem:
    """X-Wing (ML-KEM-768 + X25519): a receiver's private key, from its 96 expanded bytes
    (ML-KEM-768 seed ‖ X25519 private, litefaas's form) or its 32-byte seed."""

    kem_id = KEM_XWING
    enc_len = _MLKEM_CIPHERTEXT_LEN + _X25519_LEN

    def __init__(self, mlkem: MLKEM768PrivateKey, x25519: X25519PrivateKey) -> None:
        self._mlkem = mlkem
        self._x25519 = x25519
        self._public_x = x25519.public_key().public_bytes_raw()
        self.public_bytes = mlkem.public_key().public_bytes_raw() + self._public_x

    @classmethod
    def from_bytes(cls, private: bytes) -> XWingKem:
        if len(private) == _X25519_LEN:
            private = hashlib.shake_256(private).digest(_MLKEM_SEED_LEN + _X25519_LEN)
        if len(private) != _MLKEM_SEED_LEN + _X25519_LEN:
            raise ValueError("an X-Wing private key is a 32-byte seed or its 96 expanded bytes")
        return cls(
            MLKEM768PrivateKey.from_seed_bytes(private[:_MLKEM_SEED_LEN]),
            X25519PrivateKey.from_private_bytes(private[_MLKEM_SEED_LEN:]),
        )

    def decap(self, enc: bytes) -> bytes:
        if len(enc) != self.enc_len:
            raise OpenError()
        ct_m, ct_x = enc[:_MLKEM_CIPHERTEXT_LEN], enc[_MLKEM_CIPHERTEXT_LEN:]
        try:
            ss_m = self._mlkem.decapsulate(ct_m)
            ss_x = self._x25519.exchange(X25519PublicKey.from_public_bytes(ct_x))
        except ValueError:
            raise OpenError() from None
        return _xwing_combine(ss_m, ss_x, ct_x, self._public_x)

    @staticmethod
    def encap(public: bytes) -> tuple[bytes, bytes]:
        """Sender side: ``(shared_secret, enc)`` for a receiver's public key."""
        if len(public) != _MLKEM_PUBLIC_LEN + _X25519_LEN:
            raise ValueError("an X-Wing public key is 1,216 bytes")
        pk_m, pk_x = public[:_MLKEM_PUBLIC_LEN], public[_MLKEM_PUBLIC_LEN:]
        ss_m, ct_m = MLKEM768PublicKey.from_public_bytes(pk_m).encapsulate()
        ephemeral = X25519PrivateKey.generate()
        ct_x = ephemeral.public_key().public_bytes_raw()
        ss_x = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_x))
        return _xwing_combine(ss_m, ss_x, ct_x, pk_x), ct_m + ct_x


@dataclass
class Context:
    """An HPKE context after the key schedule: seal or open in sequence, and export secrets."""

    aead_id: int
    key: bytes = field(repr=False)
    base_nonce: bytes = field(repr=False)
    exporter_secret: bytes = field(repr=False)
    suite_id: bytes
    sequence: int = 0

    def _nonce(self) -> bytes:
        """The nonce of the current sequence number (RFC 9180 §5.2: it advances only on success)."""
        counter = self.sequence.to_bytes(_NONCE_LEN, "big")
        return bytes(a ^ b for a, b in zip(self.base_nonce, counter, strict=True))

    def _cipher(self) -> AESGCM | ChaCha20Poly1305:
        if self.aead_id not in _AEADS:
            raise OpenError()
        return aead(self.aead_id, self.key)

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        sealed = self._cipher().encrypt(self._nonce(), plaintext, aad)
        self.sequence += 1
        return sealed

    def open(self, ciphertext: bytes | memoryview, aad: bytes = b"") -> bytes:
        try:
            opened = self._cipher().decrypt(self._nonce(), ciphertext, aad)
        except (InvalidTag, ValueError, OverflowError):
            raise OpenError() from None
        self.sequence += 1
        return opened

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """RFC 9180 §5.3: a secret of ``length`` bytes bound to this context."""
        return labeled_expand(self.suite_id, self.exporter_secret, b"sec", exporter_context, length)


def suite_id(kem_id: int, kdf_id: int, aead_id: int) -> bytes:
    return b"HPKE" + struct.pack(">HHH", kem_id, kdf_id, aead_id)


@functools.lru_cache(maxsize=256)
def _schedule_context(sid: bytes, info: bytes) -> bytes:
    """``mode || psk_id_hash || info_hash``: the same for every request to one key configuration."""
    psk_id_hash = labeled_extract(sid, b"", b"psk_id_hash", b"")
    return b"\x00" + psk_id_hash + labeled_extract(sid, b"", b"info_hash", info)


def key_schedule(shared_secret: bytes, info: bytes, kem_id: int, kdf_id: int, aead_id: int) -> Context:
    """RFC 9180 §5.1, base mode (no PSK)."""
    if kdf_id != KDF_HKDF_SHA256 or (aead_id not in _AEADS and aead_id != AEAD_EXPORT_ONLY):
        raise OpenError()
    sid = suite_id(kem_id, kdf_id, aead_id)
    context = _schedule_context(sid, bytes(info))
    secret = labeled_extract(sid, shared_secret, b"secret", b"")
    key_len = _AEADS[aead_id][1] if aead_id in _AEADS else 0
    return Context(
        aead_id,
        labeled_expand(sid, secret, b"key", context, key_len) if key_len else b"",
        labeled_expand(sid, secret, b"base_nonce", context, _NONCE_LEN) if key_len else b"",
        labeled_expand(sid, secret, b"exp", context, _HASH_LEN),
        sid,
    )


def setup_receiver(kem: Kem, enc: bytes, info: bytes, kdf_id: int, aead_id: int) -> Context:
    """SetupBaseR: the receiver's context for an encapsulated key; :class:`OpenError` if it fails."""
    return key_schedule(kem.decap(bytes(enc)), info, kem.kem_id, kdf_id, aead_id)


def setup_sender(kem_id: int, public: bytes, info: bytes, kdf_id: int, aead_id: int) -> tuple[bytes, Context]:
    """SetupBaseS: ``(enc, context)`` for a receiver's public key."""
    if kem_id == KEM_X25519:
        shared, enc = X25519Kem.encap(public)
    elif kem_id == KEM_XWING:
        shared, enc = XWingKem.encap(public)
    else:
        raise ValueError(f"KEM 0x{kem_id:04x} is not offered")
    return enc, key_schedule(shared, info, kem_id, kdf_id, aead_id)


def aead(aead_id: int, key: bytes) -> AESGCM | ChaCha20Poly1305:
    """The AEAD of an id litefaas offers, keyed (``KeyError`` for another id)."""
    return _AEADS[aead_id][0](key)


AEAD_IDS = frozenset(_AEADS)
"""The AEADs litefaas seals with (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305)."""


def aead_key_length(aead_id: int) -> int:
    """Nk of an AEAD litefaas offers."""
    return _AEADS[aead_id][1]


NONCE_LENGTH = _NONCE_LEN
