"""The wire contract's constants (``docs/PROTOCOL.md``): one home for every name and number.

Imported by ``core``, the handlers, the clients and the tooling alike; it imports nothing
from the project, so anything may import it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

PROVIDERS: Final = ("aws", "gcp", "azure")
"""The clouds a function is served on, in the order every table lists them."""

SERVER_NAME: Final = "litefaas"
SERVER_VERSION: Final = "0.1.0"
"""The project's version: the package's, and what ``GET /v2`` reports."""

VERSION_JSON: Final = 1
"""The JSON envelope's ``v``."""
VERSION_BINARY: Final = 2
"""The first byte of a binary request or answer, and a direct invoke's ``"litefaas"``."""

# Media types: version 1 (JSON) and version 2 (binary tensors).
ENCRYPTED_TYPE: Final = "application/litefaas+json"
PLAINTEXT_TYPE: Final = "application/json"
ENCRYPTED_TYPE_V2: Final = "application/litefaas"
PLAINTEXT_TYPE_V2: Final = "application/vnd.litefaas.tensors"

# Routes and the one method each answers.
ROUTES: Final[dict[str, str]] = {"predict": "POST", "keys": "GET", "health": "GET"}

# The Open Inference Protocol (KServe v2 / Triton HTTP) and Triton's binary tensor data extension.
OIP_PREFIX: Final = "v2"
OIP_PLATFORM: Final = "tflite"
OIP_EXTENSIONS: Final = ("binary_tensor_data",)
OIP_HEADER_LENGTH: Final = "Inference-Header-Content-Length"
OIP_BINARY_TYPE: Final = "application/octet-stream"

# Oblivious HTTP (RFC 9458): the gateway's media types, padding buckets and problem types (RFC 9457).
OHTTP_KEYS_TYPE: Final = "application/ohttp-keys"
OHTTP_REQUEST_TYPE: Final = "message/ohttp-req"
OHTTP_RESPONSE_TYPE: Final = "message/ohttp-res"
PROBLEM_TYPE: Final = "application/problem+json"
PROBLEM_DATE: Final = "https://iana.org/assignments/http-problem-types#date"
PROBLEM_OHTTP_KEY: Final = "https://iana.org/assignments/http-problem-types#ohttp-key"
PADDING_MIN_BYTES: Final = 1024
PADDING_STEP_BYTES: Final = 64 * 1024
"""Padded sizes: powers of two from 1 KiB to 64 KiB, then multiples of 64 KiB."""

# Suites (version 1 names) and their RFC 9180 identifiers (kem_id, kdf_id, aead_id) for version 2.
X25519_AES128: Final = "x25519-sha256-aes128gcm"
X25519_CHACHA20: Final = "x25519-sha256-chacha20poly1305"
MLKEM768_X25519_AES256: Final = "mlkem768x25519-sha256-aes256gcm"
DEFAULT_SUITE: Final = X25519_AES128
SUITE_IDS: Final[dict[str, tuple[int, int, int]]] = {
    X25519_AES128: (0x0020, 0x0001, 0x0001),
    X25519_CHACHA20: (0x0020, 0x0001, 0x0003),
    MLKEM768_X25519_AES256: (0x647A, 0x0001, 0x0002),
}

# Sizes.
REQUEST_ID_BYTES: Final = 16
RESPONSE_KEY_BYTES: Final = (16, 32)
RESPONSE_NONCE_BYTES: Final = 12
KID_MAX_CHARS: Final = 64
KID_PATTERN_TEXT: Final = r"[A-Za-z0-9._-]{1,64}"

# Field sets: unknown fields are refused, never ignored.
ENVELOPE_FIELDS: Final = frozenset({"v", "kid", "suite", "ct"})
RESPONSE_FIELDS: Final = frozenset({"v", "nonce", "ct"})
REQUEST_FIELDS: Final = frozenset({"inputs", "response_key", "ts", "id"})
KEY_ENTRY_FIELDS: Final = frozenset({"kid", "suite", "private_key"})
OHTTP_KEY_ID_FIELD: Final = "ohttp_key_id"
"""A private key entry's optional field: its Oblivious HTTP ``key_id`` (0-255)."""

# HPKE info and AES-GCM associated-data prefixes.
REQUEST_INFO_V1: Final = b"litefaas/1 request\x00"
RESPONSE_AAD_V1: Final = b"litefaas/1 response\x00"
REQUEST_INFO_V2: Final = b"litefaas/2 request\x00"
RESPONSE_AAD_V2: Final = b"litefaas/2 response\x00"

# Default limits (the function's LITEFAAS_* variables; clients split batches to fit them).
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_MAX_BATCH: Final = 1024
DEFAULT_REPLAY_WINDOW_S: Final = 300
DEFAULT_REPLAY_CACHE_SIZE: Final = 100_000


def default_key_id(kid: str) -> int:
    """A key's Oblivious HTTP ``key_id`` where the key set gives none: SHA-256 of its ``kid``, first byte."""
    return hashlib.sha256(kid.encode()).digest()[0]


def private_keyset_json(entries: list[tuple[str, str, str]]) -> str:
    """The ``LITEFAAS_PRIVATE_KEYS`` JSON for ``(kid, suite, b64u private key)`` entries, current first."""
    return json.dumps(
        [{"kid": kid, "suite": suite, "private_key": private} for kid, suite, private in entries]
    )
