"""Sample rows, fresh key sets and hand-sealed requests: what the benchmarks send, and the tests too.

``ROWS`` and ``LABELS`` are rows of scikit-learn's breast-cancer set (``litefaas/data``), so
nothing here needs scikit-learn. :func:`seal` builds a request by hand (any ``ts``, or a whole
replacement request), unlike :func:`litefaas.client.build_request`, which only builds valid ones.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import crypto
from core.encoding import b64u_decode, b64u_encode
from core.protocol import ENCRYPTED_TYPE, PLAINTEXT_TYPE, REQUEST_ID_BYTES, private_keyset_json

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = json.loads((DATA / "breast_cancer_rows.json").read_text(encoding="utf-8"))
ROWS: list[list[float]] = SAMPLE["rows"]
LABELS: list[int] = SAMPLE["labels"]
ALL_SUITES = tuple(crypto.SUITES)
ENCRYPTED = {"Content-Type": ENCRYPTED_TYPE}
PLAINTEXT = {"Content-Type": PLAINTEXT_TYPE}


@dataclass(frozen=True)
class TestKeys:
    """A private key set (as LITEFAAS_PRIVATE_KEYS wants it) and its public key set."""

    __test__ = False  # not a test class, wherever a test module imports it

    private_json: str
    public: dict[str, list[dict[str, str]]]
    private_b64: tuple[str, ...]

    def public_key(self, kid: str) -> tuple[bytes, str]:
        entry = next(k for k in self.public["keys"] if k["kid"] == kid)
        return b64u_decode(entry["public_key"]), entry["suite"]


def make_keys(*suites: str) -> TestKeys:
    """One fresh key per suite, kids ``k0``, ``k1``…; the first is current."""
    entries = [
        (f"k{index}", suite, b64u_encode(crypto.generate_private_key(suite)))
        for index, suite in enumerate(suites or (crypto.DEFAULT_SUITE,))
    ]
    text = private_keyset_json(entries)
    return TestKeys(
        text,
        crypto.KeyRing.from_json(text).public_keyset(),
        tuple(private for _, _, private in entries),
    )


@dataclass(frozen=True)
class Sealed:
    """An encrypted request body and what the caller keeps to read the answer."""

    body: bytes
    response_key: bytes
    request_id: bytes

    def open(self, response_body: bytes) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            crypto.open_response(self.response_key, self.request_id, response_body)
        )
        return result


def seal(
    keys: TestKeys,
    kid: str = "k0",
    *,
    inputs: Any = None,
    ts: Any = None,
    request: dict[str, Any] | None = None,
    response_key_bytes: int = 16,
    suite: str | None = None,
) -> Sealed:
    """Encrypt a request for ``kid``; ``request`` replaces the whole decrypted JSON when given."""
    public, key_suite = keys.public_key(kid)
    response_key = secrets.token_bytes(response_key_bytes)
    request_id = secrets.token_bytes(REQUEST_ID_BYTES)
    if request is None:
        request = {
            "inputs": ROWS[:1] if inputs is None else inputs,
            "response_key": b64u_encode(response_key),
            "ts": int(time.time()) if ts is None else ts,
            "id": b64u_encode(request_id),
        }
    envelope = crypto.seal_request(public, kid, key_suite, json.dumps(request).encode())
    if suite is not None:
        envelope["suite"] = suite
    return Sealed(json.dumps(envelope).encode(), response_key, request_id)
