"""Version 2 of the wire format (binary tensors, ``PROTOCOL.md``) without any HTTP.

:func:`build_tensor_request` frames named tensors (numpy arrays of any datatype the protocol names,
or lists of encoded files as ``BYTES``) and seals them to a public key; :func:`read_tensor_response`
judges an answer: the outputs by name, or the error it carries, mapped exactly as version 1 maps
them (a sealed error is a :class:`RemoteError` with ``encrypted=True``; an error before decryption
is version 1's plaintext JSON; a plaintext version-2 request's error is a framed header in clear).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from core import crypto
from core.encoding import b64u_encode
from core.errors import ERRORS_BY_CODE, DecryptionFailed, InvalidPayload
from core.protocol import (
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
)
from core.tensors import BYTES, datatype_of, frame_tensors, read_tensors, split_frame
from litefaas.client.errors import ClientError, ProtocolError, remote_error
from litefaas.client.keysets import KeyInfo
from litefaas.client.sharding import ShardFailure, gather_shards
from litefaas.client.wire import RequestSecrets, fresh_secrets, read_document

Tensor: TypeAlias = npt.NDArray[Any] | Sequence[bytes]
Tensors: TypeAlias = Mapping[str, Tensor]

_MAX_MESSAGE_CHARS = 500
REQUEST_OVERHEAD_BYTES = 2048
"""Room kept in a request for the framed header, the envelope's header, HPKE's enc (1,120 bytes for
the hybrid suite) and tag: a version-2 request is its tensors' bytes plus at most this much."""
TENSOR_HEADER_BYTES = 160
"""Room for one tensor's entry in the header (its name, datatype and shape)."""


class TensorResult(dict[str, Any]):
    """The outputs of a version-2 request by name (numpy arrays in the datatype the model answers,
    or lists of bytes for ``BYTES``), in the order asked for; ``model`` is the model's identity, as
    version 1's :class:`~litefaas.client.wire.PredictResult` carries it."""

    def __init__(self, outputs: Mapping[str, Any], model: Mapping[str, Any]) -> None:
        super().__init__(outputs)
        self.model: dict[str, Any] = dict(model)

    @property
    def outputs(self) -> dict[str, Any]:
        """The outputs as a plain dict (the result itself is one)."""
        return dict(self)

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{name}: {getattr(value, 'dtype', 'bytes')}{list(getattr(value, 'shape', [len(value)]))}"
            for name, value in self.items()
        )
        return f"TensorResult({{{shapes}}}, model={self.model.get('name')!r})"


def normalize_tensors(tensors: Tensors) -> dict[str, npt.NDArray[Any] | list[bytes]]:
    """Check ``{name: array | [bytes, …]}``: names are strings, arrays have a protocol datatype and a
    batch axis, byte lists hold bytes; every tensor has the same batch. Arrays keep their dtype."""
    if not isinstance(tensors, Mapping) or not tensors:
        raise ClientError("tensors must be a non-empty mapping of input name to array (or list of bytes)")
    normalized: dict[str, npt.NDArray[Any] | list[bytes]] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise ClientError("every input name must be a non-empty string")
        if isinstance(value, np.ndarray):
            try:
                datatype_of(value.dtype)
            except ValueError:
                raise ClientError(f"input {name}: dtype {value.dtype} has no version-2 datatype") from None
            if value.ndim < 1:
                raise ClientError(f"input {name}: a tensor needs a batch axis (shape [N, …])")
            normalized[name] = value
        elif isinstance(value, list | tuple) and all(isinstance(item, bytes | bytearray) for item in value):
            normalized[name] = [bytes(item) for item in value]
        else:
            raise ClientError(f"input {name}: expected a numpy array or a list of bytes (encoded files)")
    batches = {len(value) for value in normalized.values()}
    if len(batches) != 1:
        raise ClientError("every input must have the same batch (shape[0])")
    if batches == {0}:
        raise ClientError("the batch is empty")
    return normalized


def _check_outputs(outputs: Sequence[str] | None) -> list[str] | None:
    if outputs is None:
        return None
    if isinstance(outputs, str) or not outputs or not all(isinstance(n, str) and n for n in outputs):
        raise ClientError("outputs must be a non-empty list of output names")
    return list(outputs)


def frame_request(tensors: Tensors, outputs: Sequence[str] | None = None, **fields: Any) -> bytes:
    """A framed request message: ``fields`` (and ``outputs``), then the tensors' bytes."""
    header: dict[str, Any] = dict(fields)
    wanted = _check_outputs(outputs)
    if wanted is not None:
        header["outputs"] = wanted
    return frame_tensors(header, "inputs", normalize_tensors(tensors))


def build_plaintext_tensor_request(tensors: Tensors, outputs: Sequence[str] | None = None) -> bytes:
    """The ``application/vnd.litefaas.tensors`` body of a plaintext version-2 request."""
    return frame_request(tensors, outputs)


def build_tensor_request(
    tensors: Tensors,
    public_key: KeyInfo | Mapping[str, Any],
    *,
    outputs: Sequence[str] | None = None,
    response_key_bytes: int = 16,
    now: float | None = None,
) -> tuple[bytes, RequestSecrets]:
    """Seal ``tensors`` to ``public_key``: the ``application/litefaas`` body and the secrets of its answer.

    Each call draws a fresh response key and request id; ``ts`` is ``now`` (default: the clock).
    """
    key, secrets = fresh_secrets(public_key, response_key_bytes)
    message = frame_request(
        tensors,
        outputs,
        response_key=b64u_encode(secrets.response_key),
        ts=int(time.time() if now is None else now),
        id=b64u_encode(secrets.id),
    )
    try:
        body = crypto.seal_binary_request(key.public_key, key.kid, key.suite, message)
    except ValueError as exc:
        raise ClientError(f"key {key.kid!r}: {exc}") from None
    return body, secrets


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decrypt_tensor_response(body: bytes, secrets: RequestSecrets, status: int | None = None) -> bytes:
    """Open a sealed version-2 answer into its framed message, without judging it."""
    try:
        return crypto.open_binary_response(secrets.response_key, secrets.id, body)
    except DecryptionFailed:
        raise ProtocolError(
            "the response does not decrypt with this request's response key", status
        ) from None


def read_framed_answer(message: bytes, status: int | None, *, encrypted: bool) -> TensorResult:
    """A framed answer's outputs, or the :class:`RemoteError` its error header carries.

    ``status`` None (an answer read from a file, without its HTTP status) takes the status the
    protocol gives the error's code."""
    try:
        header, payload = split_frame(message)
    except InvalidPayload as exc:
        raise ProtocolError(f"the answer is not a framed message ({exc.message})", status) from None
    error = header.get("error")
    if error is not None or (status is not None and status != 200):
        if not isinstance(error, Mapping) or (status is not None and status < 400):
            raise ProtocolError(f"HTTP {status} answer is not a litefaas error", status)
        code, text = error.get("code"), error.get("message")
        if not isinstance(code, str) or not isinstance(text, str):
            raise ProtocolError(f"HTTP {status} error has no code and message", status)
        if status is None:
            status = ERRORS_BY_CODE[code].status if code in ERRORS_BY_CODE else 500
        raise remote_error(status, code, text[:_MAX_MESSAGE_CHARS], encrypted=encrypted)
    model = header.get("model")
    if not isinstance(model, dict) or header.keys() != {"outputs", "model"}:
        raise ProtocolError("the answer's header has no outputs and model", status)
    try:
        outputs = read_tensors(header, "outputs", payload)
    except InvalidPayload as exc:
        raise ProtocolError(f"the answer's tensors do not match its header ({exc.message})", status) from None
    return TensorResult(outputs, model)


def read_tensor_response(
    status: int, content_type: str | None, body: bytes, secrets: RequestSecrets | None
) -> TensorResult:
    """Judge one version-2 ``POST /predict`` answer: its outputs, or raise.

    ``secrets`` is None for a plaintext request. A protocol error, sealed or in clear, raises its
    :class:`RemoteError` subclass; anything the protocol does not allow raises :class:`ProtocolError`.
    """
    kind = _media_type(content_type)
    if kind == ENCRYPTED_TYPE_V2:
        if secrets is None:
            raise ProtocolError("a plaintext request was answered sealed", status)
        return read_framed_answer(decrypt_tensor_response(body, secrets, status), status, encrypted=True)
    if kind == PLAINTEXT_TYPE_V2:
        result = read_framed_answer(body, status, encrypted=False)
        if secrets is not None:
            raise ProtocolError("an encrypted request was answered in plaintext", status)
        return result
    if kind in (PLAINTEXT_TYPE, ENCRYPTED_TYPE):
        # Errors before decryption are version 1's plaintext JSON; nothing else in JSON answers v2.
        read_document(status, PLAINTEXT_TYPE if kind == PLAINTEXT_TYPE else kind, body, None)
        raise ProtocolError(f"a version-2 request was answered with {kind}", status)
    raise ProtocolError(f"HTTP {status} answer of type {kind or 'none'!r} is not a litefaas answer", status)


def row_bytes(tensors: Mapping[str, npt.NDArray[Any] | list[bytes]]) -> int:
    """The most bytes one row (one index along axis 0, across every input) puts into a request."""
    total = 0
    for value in tensors.values():
        if isinstance(value, np.ndarray):
            total += math.prod(value.shape[1:]) * value.dtype.itemsize
        else:
            total += 4 + max((len(item) for item in value), default=0)
    return total


def tensor_rows_per_request(
    tensors: Mapping[str, npt.NDArray[Any] | list[bytes]], max_batch: int, max_body_bytes: int
) -> int:
    """The most rows one version-2 request may carry: at most ``max_batch``, and few enough that the
    body (the tensors' raw bytes plus :data:`REQUEST_OVERHEAD_BYTES`) stays under ``max_body_bytes``."""
    budget = max_body_bytes - REQUEST_OVERHEAD_BYTES - TENSOR_HEADER_BYTES * len(tensors)
    by_body = budget // max(row_bytes(tensors), 1)
    return max(1, min(max_batch, by_body))


def slice_tensors(
    tensors: Mapping[str, npt.NDArray[Any] | list[bytes]], start: int, stop: int
) -> dict[str, npt.NDArray[Any] | list[bytes]]:
    """Rows ``start:stop`` of every tensor (axis 0)."""
    return {name: value[start:stop] for name, value in tensors.items()}


def join_tensor_results(shards: Sequence[tuple[int, int]], parts: Sequence[TensorResult]) -> TensorResult:
    """One result from the shards' results, rows in order (axis 0); all from the same model."""
    models = {tuple(sorted(part.model.items())) for part in parts}
    if len(models) > 1:
        raise ProtocolError("the shards were answered by different models (a deployment in progress?)")
    names = list(parts[0])
    for (start, stop), part in zip(shards, parts, strict=True):
        if list(part) != names:
            raise ProtocolError("the shards' answers do not have the same outputs")
        if any(len(value) != stop - start for value in part.values()):
            raise ProtocolError(f"rows {start}-{stop - 1}: the answer has not one output per row")
    joined: dict[str, Any] = {}
    for name in names:
        values = [part[name] for part in parts]
        if isinstance(values[0], np.ndarray):
            joined[name] = np.concatenate(values)
        else:
            joined[name] = [item for value in values for item in value]
    return TensorResult(joined, parts[0].model)


def gather_tensor_shards(
    rows: int, shards: Sequence[tuple[int, int]], outcomes: Sequence[TensorResult | ShardFailure]
) -> TensorResult:
    """Join a version-2 fan-out's outcomes, as :func:`~litefaas.client.sharding.gather_shards` does."""
    return gather_shards(rows, shards, outcomes, join=join_tensor_results, outputs_of=dict)


__all__ = [
    "BYTES",
    "REQUEST_OVERHEAD_BYTES",
    "TensorResult",
    "Tensors",
    "build_plaintext_tensor_request",
    "build_tensor_request",
    "decrypt_tensor_response",
    "frame_request",
    "gather_tensor_shards",
    "join_tensor_results",
    "normalize_tensors",
    "read_framed_answer",
    "read_tensor_response",
    "row_bytes",
    "slice_tensors",
    "tensor_rows_per_request",
]
