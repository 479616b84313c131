"""Version 1 of the wire format (``PROTOCOL.md``) without any HTTP: seal a request, judge an answer.

:func:`build_request` returns the ``POST /predict`` body and the :class:`RequestSecrets` that open
its answer; :func:`read_response` turns a status, content type and body into the answer's document
or raises the error it carries. No message raised here carries key material or the caller's inputs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from core import crypto
from core.encoding import b64u_decode, b64u_encode
from core.errors import DecryptionFailed
from core.protocol import ENCRYPTED_TYPE, PLAINTEXT_TYPE, REQUEST_ID_BYTES, RESPONSE_KEY_BYTES
from litefaas.client.errors import ClientError, ProtocolError, remote_error
from litefaas.client.keysets import KeyInfo

_MAX_MESSAGE_CHARS = 500
_PLAIN_NUMBERS = frozenset({int, float})


Inputs: TypeAlias = Sequence[Any] | npt.NDArray[Any] | Mapping[str, Any]
Outputs: TypeAlias = npt.NDArray[np.float32] | dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True, repr=False)
class RequestSecrets:
    """What the caller keeps to read the answer to one encrypted request. Never log it."""

    response_key: bytes
    id: bytes

    def __post_init__(self) -> None:
        if len(self.response_key) not in RESPONSE_KEY_BYTES or len(self.id) != REQUEST_ID_BYTES:
            raise ClientError("request secrets need a 16- or 32-byte response key and a 16-byte id")

    def __repr__(self) -> str:
        return "RequestSecrets(<hidden>)"

    def to_json(self) -> dict[str, str]:
        return {"response_key": b64u_encode(self.response_key), "id": b64u_encode(self.id)}

    @classmethod
    def from_json(cls, document: object) -> RequestSecrets:
        if not isinstance(document, Mapping) or set(document) != {"response_key", "id"}:
            raise ClientError('request secrets must be {"response_key": …, "id": …}')
        try:
            return cls(b64u_decode(document["response_key"]), b64u_decode(document["id"]))
        except (TypeError, ValueError):
            raise ClientError("request secrets are not base64url") from None


def wire_inputs(inputs: Inputs) -> Any:
    """``inputs`` as JSON-ready lists: numpy arrays (anywhere in the batch) become lists."""
    if isinstance(inputs, np.ndarray | np.generic):
        return inputs.tolist()
    if isinstance(inputs, Mapping):
        return {str(name): wire_inputs(batch) for name, batch in inputs.items()}
    if isinstance(inputs, list | tuple):
        if set(map(type, inputs)) <= _PLAIN_NUMBERS:
            return inputs if isinstance(inputs, list) else list(inputs)  # a row: nothing to convert
        return [wire_inputs(item) for item in inputs]
    return inputs


def _dump_request(request: Mapping[str, Any]) -> bytes:
    if not isinstance(request["inputs"], list | dict):
        raise ClientError("inputs must be a list of rows, an array, or a mapping of input name to batch")
    try:
        return json.dumps(request, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ClientError("inputs must be finite numbers (NaN and Infinity have no JSON form)") from None
    except TypeError:
        raise ClientError("inputs must be numbers in nested lists or numpy arrays") from None


def build_plaintext_request(inputs: Inputs) -> bytes:
    """The ``application/json`` body of a plaintext request."""
    return _dump_request({"inputs": wire_inputs(inputs)})


def fresh_secrets(
    public_key: KeyInfo | Mapping[str, Any], response_key_bytes: int
) -> tuple[KeyInfo, RequestSecrets]:
    """The key to seal to, and a fresh response key and request id for one request."""
    key = public_key if isinstance(public_key, KeyInfo) else KeyInfo.from_json(public_key)
    if response_key_bytes not in RESPONSE_KEY_BYTES:
        raise ClientError("response_key_bytes must be 16 or 32")
    return key, RequestSecrets(os.urandom(response_key_bytes), os.urandom(REQUEST_ID_BYTES))


def build_request(
    inputs: Inputs,
    public_key: KeyInfo | Mapping[str, Any],
    *,
    response_key_bytes: int = 16,
    now: float | None = None,
) -> tuple[bytes, RequestSecrets]:
    """Seal ``inputs`` to ``public_key``: the ``POST /predict`` body and the secrets that open its answer.

    Each call draws a fresh response key and request id; ``ts`` is ``now`` (default: the clock).
    """
    key, secrets = fresh_secrets(public_key, response_key_bytes)
    plaintext = _dump_request(
        {
            "inputs": wire_inputs(inputs),
            "response_key": b64u_encode(secrets.response_key),
            "ts": int(time.time() if now is None else now),
            "id": b64u_encode(secrets.id),
        }
    )
    try:
        envelope = crypto.seal_request(key.public_key, key.kid, key.suite, plaintext)
    except ValueError as exc:
        raise ClientError(f"key {key.kid!r}: {exc}") from None
    return json.dumps(envelope, separators=(",", ":")).encode(), secrets


def _json_object(body: bytes | str, what: str, status: int | None) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ProtocolError(f"{what} is not a JSON object", status)
    return document


def decrypt_response(body: bytes | str, secrets: RequestSecrets, status: int | None = None) -> dict[str, Any]:
    """Open a sealed answer into its JSON document (outputs or error), without judging it."""
    try:
        plaintext = crypto.open_response(secrets.response_key, secrets.id, body)
    except DecryptionFailed:
        raise ProtocolError(
            "the response does not decrypt with this request's response key", status
        ) from None
    return _json_object(plaintext, "the decrypted response", status)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def read_document(
    status: int, content_type: str | None, body: bytes, secrets: RequestSecrets | None
) -> dict[str, Any]:
    """The answer's JSON document (decrypted if sealed); raise the error it carries."""
    kind = _media_type(content_type)
    if kind == ENCRYPTED_TYPE and secrets is not None:
        document, encrypted = decrypt_response(body, secrets, status), True
    elif kind == ENCRYPTED_TYPE:
        raise ProtocolError("a plaintext request was answered sealed", status)
    elif kind == PLAINTEXT_TYPE:
        document, encrypted = _json_object(body, f"the HTTP {status} answer", status), False
    else:
        raise ProtocolError(
            f"HTTP {status} answer of type {kind or 'none'!r} is not a litefaas answer", status
        )
    error = document.get("error")
    if error is not None or status != 200:
        if not isinstance(error, Mapping) or status < 400:
            hint = document.get("message")
            detail = f": {hint[:200]}" if isinstance(hint, str) else ""
            raise ProtocolError(f"HTTP {status} answer is not a litefaas error{detail}", status)
        code, message = error.get("code"), error.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            raise ProtocolError(f"HTTP {status} error has no code and message", status)
        raise remote_error(status, code, message[:_MAX_MESSAGE_CHARS], encrypted=encrypted)
    if secrets is not None and not encrypted:
        raise ProtocolError("an encrypted request was answered in plaintext", status)
    return document


def read_response(
    status: int, content_type: str | None, body: bytes, secrets: RequestSecrets | None
) -> dict[str, Any]:
    """Judge one ``POST /predict`` answer: return its ``{"outputs", "model"}`` document or raise.

    ``secrets`` is None for a plaintext request. A protocol error, sealed or in clear, raises its
    :class:`RemoteError` subclass; anything the protocol does not allow raises :class:`ProtocolError`.
    """
    document = read_document(status, content_type, body, secrets)
    if "outputs" not in document or not isinstance(document.get("model"), dict):
        raise ProtocolError("the answer has no outputs and model", status)
    return document


def _float32(batch: object) -> npt.NDArray[np.float32]:
    try:
        return np.asarray(batch, dtype=np.float32)
    except (TypeError, ValueError):
        raise ProtocolError("the outputs are not numbers") from None


@dataclass(frozen=True)
class PredictResult:
    """The model's outputs (float32; a dict by output name when there are several) and its identity."""

    outputs: Outputs
    model: dict[str, Any]

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> PredictResult:
        outputs = document["outputs"]
        if isinstance(outputs, dict):
            return cls({name: _float32(batch) for name, batch in outputs.items()}, document["model"])
        return cls(_float32(outputs), document["model"])
