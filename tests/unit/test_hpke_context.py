"""HPKE with the exporter (``core.crypto.hpke_context``) against RFC 9180's test vectors, as the
``cryptography-vectors`` wheel ships them: every base-mode vector of the KEMs and KDF litefaas uses
(DHKEM X25519 with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 and export-only; X-Wing), shared
secret, key schedule, every encryption and every exported value."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from core.crypto.hpke_context import (
    AEAD_EXPORT_ONLY,
    KDF_HKDF_SHA256,
    KEM_X25519,
    KEM_XWING,
    OpenError,
    X25519Kem,
    XWingKem,
    setup_receiver,
    setup_sender,
)

vectors_module = pytest.importorskip(
    "cryptography_vectors", reason="the dev extra installs cryptography-vectors"
)


def _load(name: str) -> list[dict]:
    with vectors_module.open_vector_file(f"HPKE/{name}", "r") as file:
        return json.load(file)


VECTORS = [
    vector
    for vector in _load("test-vectors.json") + _load("hpke-pq-test-vectors.json")
    if int(vector["mode"]) == 0
    and int(vector["kem_id"]) in (KEM_X25519, KEM_XWING)
    and int(vector["kdf_id"]) == KDF_HKDF_SHA256
]
SUITES_COVERED = {(int(v["kem_id"]), int(v["kdf_id"]), int(v["aead_id"])) for v in VECTORS}


def test_the_vectors_cover_every_suite_litefaas_uses():
    # the KEM of each suite with HKDF-SHA256, and each AEAD (X-Wing's AES-256-GCM key schedule is
    # the same code as X25519's, checked by its own vector)
    assert {(0x20, 1, 1), (0x20, 1, 2), (0x20, 1, 3), (0x647A, 1, 3)} <= SUITES_COVERED


@pytest.mark.parametrize(
    "vector", VECTORS, ids=lambda v: f"kem{int(v['kem_id']):#x}-aead{int(v['aead_id']):#x}"
)
def test_receiver_matches_the_rfc_9180_vector(vector):
    # GIVEN a vector's receiver key and encapsulated key
    hex_ = bytes.fromhex
    kem_id, aead_id = int(vector["kem_id"]), int(vector["aead_id"])
    kem = (X25519Kem if kem_id == KEM_X25519 else XWingKem).from_bytes(hex_(vector["skRm"]))
    assert kem.public_bytes == hex_(vector["pkRm"])
    # WHEN the receiver decapsulates and runs the key schedule
    assert kem.decap(hex_(vector["enc"])) == hex_(vector["shared_secret"])
    context = setup_receiver(kem, hex_(vector["enc"]), hex_(vector["info"]), KDF_HKDF_SHA256, aead_id)
    # THEN every secret, plaintext and exported value is the vector's
    assert context.exporter_secret == hex_(vector["exporter_secret"])
    if aead_id != AEAD_EXPORT_ONLY:
        assert (context.key, context.base_nonce) == (hex_(vector["key"]), hex_(vector["base_nonce"]))
        for encryption in vector["encryptions"]:
            assert context.open(hex_(encryption["ct"]), hex_(encryption["aad"])) == hex_(encryption["pt"])
    for export in vector["exports"]:
        assert context.export(hex_(export["exporter_context"]), export["L"]) == hex_(export["exported_value"])


@pytest.mark.parametrize("vector", [v for v in VECTORS if int(v["kem_id"]) == KEM_X25519][:1])
def test_sender_matches_the_vector_with_its_ephemeral_key(vector):
    hex_ = bytes.fromhex
    ephemeral = X25519Kem.derive_private(hex_(vector["ikmE"]))
    shared, enc = X25519Kem.encap(hex_(vector["pkRm"]), ephemeral)
    assert (shared, enc) == (hex_(vector["shared_secret"]), hex_(vector["enc"]))


@pytest.mark.parametrize("kem_id", [KEM_X25519, KEM_XWING])
def test_sender_and_receiver_agree_and_a_changed_byte_does_not_open(kem_id):
    # GIVEN a fresh receiver key of each KEM
    if kem_id == KEM_X25519:
        kem = X25519Kem(X25519PrivateKey.generate())
    else:
        kem = XWingKem.from_bytes(bytes(range(32)))
    # WHEN a sender seals to it
    enc, sender = setup_sender(
        kem_id, kem.public_bytes, b"info", KDF_HKDF_SHA256, 1 if kem_id == KEM_X25519 else 2
    )
    ciphertext = sender.seal(b"hello", b"aad")
    receiver = setup_receiver(kem, enc, b"info", KDF_HKDF_SHA256, 1 if kem_id == KEM_X25519 else 2)
    # THEN it opens, both export the same secret, and any changed byte fails with the one error
    assert receiver.open(ciphertext, b"aad") == b"hello"
    assert receiver.export(b"ctx", 32) == sender.export(b"ctx", 32)
    damaged = bytearray(enc)
    damaged[-1] ^= 1
    with pytest.raises(OpenError):
        setup_receiver(kem, bytes(damaged), b"info", KDF_HKDF_SHA256, 1 if kem_id == KEM_X25519 else 2).open(
            ciphertext, b"aad"
        )
    with pytest.raises(OpenError):
        kem.decap(bytes(enc[:-1]) if kem_id == KEM_XWING else bytes(31))
