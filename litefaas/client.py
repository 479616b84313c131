"""Call a litefaas function: seal each request to its public key, open the sealed answer.

:func:`build_request` and :func:`read_response` speak ``PROTOCOL.md`` without any
HTTP; :class:`Client` and :class:`AsyncClient` put ``httpx`` around them, and can fan
a large batch out over concurrent requests (``predict(rows, fan_out=K)``);
:class:`ChainClient` runs a batch through a model cut into segments, one function
each. No message raised here carries key material or the caller's inputs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import httpx
import numpy as np
import numpy.typing as npt

from core import crypto
from core.encoding import b64u_decode, b64u_encode
from core.errors import DecryptionFailed

ENCRYPTED_TYPE = "application/litefaas+json"
PLAINTEXT_TYPE = "application/json"
RESPONSE_KEY_SIZES = (16, 32)
REQUEST_ID_BYTES = 16
USER_AGENT = "litefaas-client/1"
DEFAULT_MAX_BATCH = 1024
"""The function's ``LITEFAAS_MAX_BATCH`` default: a fan-out never sends more rows in one request."""
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""The function's ``LITEFAAS_MAX_BODY_BYTES`` default: requests are sized to stay under it."""
DEFAULT_RETRIES = 2
_MAX_MESSAGE_CHARS = 500
_PLAIN_NUMBERS = frozenset({int, float})
_JSON_BYTES_PER_VALUE = 25  # the longest JSON number (-2.2250738585072014e-308) and its comma
_ROW_OVERHEAD_BYTES = 8
_REQUEST_OVERHEAD_BYTES = 512  # response key, ts, id, field names; the envelope's own fields

Inputs: TypeAlias = Sequence[Any] | npt.NDArray[Any] | Mapping[str, Any]
Outputs: TypeAlias = npt.NDArray[np.float32] | dict[str, npt.NDArray[np.float32]]


class ClientError(Exception):
    """Base of every error this module raises."""


class NetworkError(ClientError):
    """The function could not be reached or did not answer in time."""


class ProtocolError(ClientError):
    """The answer is not what the protocol says: not JSON, wrong content type, does not decrypt."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteError(ClientError):
    """The function answered with a protocol error; ``encrypted`` if the error came sealed."""

    def __init__(self, status: int, code: str, message: str, *, encrypted: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.encrypted = encrypted


class InvalidEnvelopeError(RemoteError):
    """400: the body is not a litefaas envelope."""


class DecryptionFailedError(RemoteError):
    """400: unknown kid, wrong suite, or a ciphertext the function cannot open."""


class PlaintextDisabledError(RemoteError):
    """403: the function does not accept plaintext requests."""


class NotFoundError(RemoteError):
    """404: no such route (check the base URL and its prefix)."""


class MethodNotAllowedError(RemoteError):
    """405: wrong method on a known route."""


class StaleRequestError(RemoteError):
    """408: the request's timestamp is outside the function's window (check the clock)."""


class ReplayedRequestError(RemoteError):
    """409: the function has already seen this request id."""


class PayloadTooLargeError(RemoteError):
    """413: the body or the batch is over the function's limit."""


class UnsupportedMediaTypeError(RemoteError):
    """415: the function does not take this content type."""


class InvalidPayloadError(RemoteError):
    """422: the inputs do not match the model signature; the message says where."""


class RemoteInternalError(RemoteError):
    """500: the function failed; it says nothing more, by design."""


@dataclass(frozen=True)
class ShardResult:
    """Rows ``start:stop`` of a fan-out, answered."""

    start: int
    stop: int
    outputs: Outputs


@dataclass(frozen=True)
class ShardFailure:
    """Rows ``start:stop`` of a fan-out, still failing after ``attempts`` requests."""

    start: int
    stop: int
    error: ClientError
    attempts: int


class PartialFailure(ClientError):
    """Some rows of a fan-out were answered and some were not, even after retries.

    ``succeeded`` and ``failed`` cover every row exactly once, in order; ``rows`` is the batch size.
    Row numbers in a failure's message count from its shard's first row.
    """

    def __init__(self, rows: int, succeeded: Sequence[ShardResult], failed: Sequence[ShardFailure]) -> None:
        self.rows = rows
        self.succeeded = list(succeeded)
        self.failed = list(failed)
        lost = sum(f.stop - f.start for f in failed)
        shown = "; ".join(
            f"rows {f.start}-{f.stop - 1}: {f.error} ({f.attempts} attempt{'s' if f.attempts > 1 else ''})"
            for f in self.failed[:5]
        )
        more = f"; and {len(self.failed) - 5} more" if len(self.failed) > 5 else ""
        super().__init__(
            f"{len(self.failed)} of {len(self.failed) + len(self.succeeded)} shards failed, "
            f"{lost:,} of {rows:,} rows unanswered: {shown}{more}"
        )

    @property
    def failed_ranges(self) -> list[range]:
        """The row ranges with no answer."""
        return [range(f.start, f.stop) for f in self.failed]


class SegmentError(ClientError):
    """One segment of a chain failed; ``error`` is what its function (or the network) said."""

    def __init__(self, index: int, count: int, name: str, url: str, error: ClientError) -> None:
        super().__init__(f"segment {index} of {count} ({name} at {url}): {error}")
        self.index = index
        self.count = count
        self.name = name
        self.url = url
        self.error = error

    @property
    def code(self) -> str | None:
        """The protocol code when the segment's function answered with an error."""
        return self.error.code if isinstance(self.error, RemoteError) else None

    @property
    def status(self) -> int | None:
        return getattr(self.error, "status", None)


REMOTE_ERRORS: dict[str, type[RemoteError]] = {
    "invalid_envelope": InvalidEnvelopeError,
    "decryption_failed": DecryptionFailedError,
    "plaintext_disabled": PlaintextDisabledError,
    "not_found": NotFoundError,
    "method_not_allowed": MethodNotAllowedError,
    "stale_request": StaleRequestError,
    "replayed_request": ReplayedRequestError,
    "payload_too_large": PayloadTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "invalid_payload": InvalidPayloadError,
    "internal_error": RemoteInternalError,
}


def remote_error(status: int, code: str, message: str, *, encrypted: bool) -> RemoteError:
    """The typed error for a protocol ``code`` (plain :class:`RemoteError` for an unknown one)."""
    return REMOTE_ERRORS.get(code, RemoteError)(status, code, message, encrypted=encrypted)


@dataclass(frozen=True)
class KeyInfo:
    """One public key of a function's key set (``GET /keys``)."""

    kid: str
    suite: str
    public_key: bytes = field(repr=False)

    @classmethod
    def from_json(cls, entry: object) -> KeyInfo:
        """Parse ``{"kid", "suite", "public_key"}``; :class:`ProtocolError` if it is malformed."""
        if not isinstance(entry, Mapping):
            raise ProtocolError("a key set entry must be an object")
        kid, suite, public = entry.get("kid"), entry.get("suite"), entry.get("public_key")
        if not isinstance(kid, str) or not crypto.KID_PATTERN.fullmatch(kid):
            raise ProtocolError("a key set entry has no valid kid")
        if not isinstance(suite, str) or not isinstance(public, str):
            raise ProtocolError(f"key {kid!r}: suite and public_key must be strings")
        try:
            return cls(kid, suite, b64u_decode(public))
        except ValueError:
            raise ProtocolError(f"key {kid!r}: public_key is not base64url") from None

    def to_json(self) -> dict[str, str]:
        return {"kid": self.kid, "suite": self.suite, "public_key": b64u_encode(self.public_key)}


def parse_keyset(document: object) -> list[KeyInfo]:
    """The usable keys of a ``{"keys": […]}`` key set, in order; suites this client lacks are skipped."""
    items = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        raise ProtocolError('a key set must be an object {"keys": [...]}')
    keys = [KeyInfo.from_json(item) for item in items]
    usable = [key for key in keys if key.suite in crypto.SUITES]
    if not usable:
        raise ProtocolError("the key set has no key of a suite this client supports")
    return usable


def select_key(keys: Sequence[KeyInfo], kid: str | None = None, suite: str | None = None) -> KeyInfo:
    """The first key (the function's current one), or the first with ``kid`` and/or ``suite``."""
    for key in keys:
        if kid in (None, key.kid) and suite in (None, key.suite):
            return key
    wanted = " and ".join(f"{name} {value!r}" for name, value in (("kid", kid), ("suite", suite)) if value)
    raise ClientError(f"no key with {wanted} in the function's key set")


@dataclass(frozen=True, repr=False)
class RequestSecrets:
    """What the caller keeps to read the answer to one encrypted request. Never log it."""

    response_key: bytes
    id: bytes

    def __post_init__(self) -> None:
        if len(self.response_key) not in RESPONSE_KEY_SIZES or len(self.id) != REQUEST_ID_BYTES:
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
    key = public_key if isinstance(public_key, KeyInfo) else KeyInfo.from_json(public_key)
    if response_key_bytes not in RESPONSE_KEY_SIZES:
        raise ClientError("response_key_bytes must be 16 or 32")
    secrets = RequestSecrets(os.urandom(response_key_bytes), os.urandom(REQUEST_ID_BYTES))
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


def _read_document(
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
    document = _read_document(status, content_type, body, secrets)
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


def row_count(inputs: Inputs) -> int:
    """The number of rows in a batch (every input of a mapping must have as many)."""
    if isinstance(inputs, Mapping):
        counts = {len(batch) for batch in inputs.values()}
        if len(counts) != 1:
            raise ClientError("every input must have the same number of rows")
        return counts.pop()
    if isinstance(inputs, np.ndarray) and inputs.ndim == 0:
        raise ClientError("inputs must be a batch of rows, not a scalar")
    return len(inputs)


def _values_in(row: Any) -> int:
    if isinstance(row, np.ndarray | np.generic):
        return max(int(np.size(row)), 1)
    if isinstance(row, list | tuple):
        return max(sum(_values_in(item) for item in row), 1)
    return 1


def rows_per_request(
    inputs: Inputs, max_batch: int = DEFAULT_MAX_BATCH, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> int:
    """The most rows one request may carry: at most ``max_batch``, and few enough that the sealed body
    (base64 of the JSON, ~4/3 of it) stays under ``max_body_bytes`` even if every number is 24 characters."""
    batches = list(inputs.values()) if isinstance(inputs, Mapping) else [inputs]
    values = sum(_values_in(batch[0]) for batch in batches if len(batch))
    budget = max_body_bytes * 3 // 4 - _REQUEST_OVERHEAD_BYTES
    by_body = budget // (_JSON_BYTES_PER_VALUE * max(values, 1) + _ROW_OVERHEAD_BYTES)
    return max(1, min(max_batch, by_body))


def plan_shards(rows: int, fan_out: int, max_rows: int) -> list[tuple[int, int]]:
    """Row ranges for a fan-out: ``max(fan_out, ceil(rows / max_rows))`` shards (never more than
    ``rows``), as even as possible, each at most ``max_rows`` rows."""
    if fan_out < 1 or max_rows < 1:
        raise ClientError("fan_out and the rows per request must be at least 1")
    if rows < 1:
        raise ClientError("the batch is empty")
    count = min(rows, max(fan_out, math.ceil(rows / max_rows)))
    bounds = [rows * i // count for i in range(count + 1)]
    return list(itertools.pairwise(bounds))


def slice_rows(inputs: Inputs, start: int, stop: int) -> Inputs:
    """Rows ``start:stop`` of a batch (of every input of a mapping)."""
    if isinstance(inputs, Mapping):
        return {name: batch[start:stop] for name, batch in inputs.items()}
    return inputs[start:stop]


def is_retryable(error: ClientError) -> bool:
    """Worth sending again with a fresh id: the network failed, or the function answered 5xx."""
    if isinstance(error, NetworkError):
        return True
    status = getattr(error, "status", None)
    return isinstance(error, RemoteError | ProtocolError) and status is not None and status >= 500


def join_results(shards: Sequence[tuple[int, int]], parts: Sequence[PredictResult]) -> PredictResult:
    """One result from the shards' results, rows in order; every shard must come from the same model."""
    models = {json.dumps(part.model, sort_keys=True) for part in parts}
    if len(models) > 1:
        raise ProtocolError("the shards were answered by different models (a deployment in progress?)")
    for (start, stop), part in zip(shards, parts, strict=True):
        batches = part.outputs.values() if isinstance(part.outputs, dict) else [part.outputs]
        if any(len(batch) != stop - start for batch in batches):
            raise ProtocolError(f"rows {start}-{stop - 1}: the answer has not one output per row")
    joined: Outputs
    if isinstance(parts[0].outputs, dict):
        named = [p.outputs for p in parts if isinstance(p.outputs, dict)]
        if len(named) != len(parts) or any(b.keys() != named[0].keys() for b in named):
            raise ProtocolError("the shards' answers do not have the same outputs")
        joined = {name: np.concatenate([batches[name] for batches in named]) for name in named[0]}
    else:
        joined = np.concatenate([p.outputs for p in parts])
    return PredictResult(joined, parts[0].model)


def gather_shards(
    rows: int, shards: Sequence[tuple[int, int]], outcomes: Sequence[PredictResult | ShardFailure]
) -> PredictResult:
    """Join a fan-out's outcomes; raise :class:`PartialFailure` if any shard failed (or, if none
    succeeded, the first shard's own error)."""
    failed = [o for o in outcomes if isinstance(o, ShardFailure)]
    answered = [(s, o) for s, o in zip(shards, outcomes, strict=True) if isinstance(o, PredictResult)]
    if not failed:
        return join_results(shards, [o for _, o in answered])
    if not answered:
        raise failed[0].error
    succeeded = [ShardResult(start, stop, result.outputs) for (start, stop), result in answered]
    raise PartialFailure(rows, succeeded, failed)


@dataclass(frozen=True, repr=False)
class _Prepared:
    """One ``POST /predict`` ready to go."""

    body: bytes
    content_type: str
    secrets: RequestSecrets | None
    key: KeyInfo | None


class _ClientBase:
    """What :class:`Client` and :class:`AsyncClient` share; only their I/O differs.

    ``predict`` is prepare → send → finish for one batch. A fan-out splits the rows into shards, runs
    the three per shard concurrently (each request with its own response key, id and timestamp) and
    joins the outputs in order.
    """

    retry_delay_s = 0.05
    """Pause before the first retry of a shard; doubled before each next one."""

    def __init__(
        self,
        base_url: str,
        *,
        kid: str | None,
        suite: str | None,
        plaintext: bool,
        keyset: Mapping[str, Any] | None,
        response_key_bytes: int,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if kid is not None and not crypto.KID_PATTERN.fullmatch(kid):
            raise ClientError("kid must be 1-64 characters of [A-Za-z0-9._-]")
        if suite is not None and suite not in crypto.SUITES:
            raise ClientError(f"unknown suite; expected one of {', '.join(crypto.SUITES)}")
        if response_key_bytes not in RESPONSE_KEY_SIZES:
            raise ClientError("response_key_bytes must be 16 or 32")
        if max_batch < 1 or max_body_bytes < 1024:
            raise ClientError("max_batch must be at least 1 and max_body_bytes at least 1024")
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.base_url = base_url.rstrip("/")
        self.kid = kid
        self.suite = suite
        self.plaintext = plaintext
        self.response_key_bytes = response_key_bytes
        self._pinned = keyset is not None
        self._keys = None if keyset is None else parse_keyset(keyset)

    def _url(self, route: str) -> str:
        return f"{self.base_url}/{route}"

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        return {"Content-Type": content_type} if content_type else {}

    def _selected(self, keys: Sequence[KeyInfo]) -> KeyInfo:
        return select_key(keys, self.kid, self.suite)

    def _prepare(self, inputs: Inputs, key: KeyInfo | None) -> _Prepared:
        if key is None:
            return _Prepared(build_plaintext_request(inputs), PLAINTEXT_TYPE, None, None)
        body, secrets = build_request(inputs, key, response_key_bytes=self.response_key_bytes)
        return _Prepared(body, ENCRYPTED_TYPE, secrets, key)

    @staticmethod
    def _finish(prepared: _Prepared, response: httpx.Response) -> PredictResult:
        content_type = response.headers.get("content-type")
        document = read_response(response.status_code, content_type, response.content, prepared.secrets)
        return PredictResult.from_json(document)

    @staticmethod
    def _document(response: httpx.Response) -> dict[str, Any]:
        return _read_document(
            response.status_code, response.headers.get("content-type"), response.content, None
        )

    def _may_retry(self, used: KeyInfo | None) -> bool:
        """After ``decryption_failed``: worth fetching the key set again (a rotation)?"""
        return used is not None and not self._pinned

    def _shards(self, inputs: Inputs, fan_out: int, retries: int) -> tuple[int, list[tuple[int, int]]]:
        if isinstance(fan_out, bool) or not isinstance(fan_out, int) or fan_out < 1:
            raise ClientError("fan_out must be a positive integer")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ClientError("retries must be a non-negative integer")
        rows = row_count(inputs)
        max_rows = rows_per_request(inputs, self.max_batch, self.max_body_bytes) if rows else 1
        return rows, plan_shards(rows, fan_out, max_rows)

    def _retry_delay(self, attempt: int) -> float:
        return float(min(self.retry_delay_s * 2 ** (attempt - 1), 2.0))


def _network_error(method: str, url: str, exc: Exception) -> NetworkError:
    return NetworkError(f"{method} {url}: {exc.__class__.__name__}: {exc}")


class Client(_ClientBase):
    """A synchronous client for one function. ``keyset`` pins the public keys (no ``GET /keys``);
    ``max_batch`` and ``max_body_bytes`` are the function's limits, which a fan-out respects."""

    def __init__(
        self,
        base_url: str,
        *,
        kid: str | None = None,
        suite: str | None = None,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        plaintext: bool = False,
        http2: bool = False,
        keyset: Mapping[str, Any] | None = None,
        response_key_bytes: int = 16,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(
            base_url,
            kid=kid,
            suite=suite,
            plaintext=plaintext,
            keyset=keyset,
            response_key_bytes=response_key_bytes,
            max_batch=max_batch,
            max_body_bytes=max_body_bytes,
        )
        self._http = httpx.Client(
            timeout=timeout, transport=transport, http2=http2, headers={"User-Agent": USER_AGENT}
        )

    def _send(
        self, method: str, route: str, body: bytes | None = None, content_type: str | None = None
    ) -> httpx.Response:
        url = self._url(route)
        try:
            return self._http.request(method, url, content=body, headers=self._headers(content_type))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _network_error(method, url, exc) from exc

    def keys(self) -> list[KeyInfo]:
        """The function's usable public keys, fetched once and cached."""
        if self._keys is None:
            self._keys = parse_keyset(self._document(self._send("GET", "keys")))
        return self._keys

    def refresh_keys(self) -> list[KeyInfo]:
        """Fetch the key set again (after a rotation)."""
        self._keys = parse_keyset(self._document(self._send("GET", "keys")))
        return self._keys

    def key(self) -> KeyInfo:
        """The key requests are sealed to: the first, or the one matching ``kid``/``suite``."""
        return self._selected(self.keys())

    def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return self._document(self._send("GET", "health"))

    def predict(
        self, inputs: Inputs, *, fan_out: int | None = None, retries: int = DEFAULT_RETRIES
    ) -> PredictResult:
        """Run a batch; each request sealed with a fresh response key, id and timestamp unless ``plaintext``.

        Without ``fan_out``, the batch goes as it is in one request. With ``fan_out=K``, it is split into
        ``max(K, ceil(rows / rows_per_request))`` shards (a request never carries more than
        ``max_batch`` rows nor more than ``max_body_bytes``), at most K in flight at once, and the
        outputs are joined in row order. A shard that meets a network error or a 5xx is sent again, up
        to ``retries`` times, each time as a new request with a new id (the function refuses a replayed
        id; a shard's rows are counted once, whichever attempt answered). A 4xx is never retried.
        If some shards still fail: :class:`PartialFailure`; if all do: the first one's error.

        On ``decryption_failed`` the key set is fetched again, and if it changed the batch is sent once more.
        """
        if fan_out is None:
            return self._predict_once(inputs)
        rows, shards = self._shards(inputs, fan_out, retries)
        if not self.plaintext:
            self.key()  # fetch the key set once, before the shards go out
        if len(shards) == 1 or fan_out == 1:
            outcomes = [self._predict_shard(inputs, shard, retries) for shard in shards]
        else:
            with ThreadPoolExecutor(max_workers=min(fan_out, len(shards))) as pool:
                outcomes = list(pool.map(lambda shard: self._predict_shard(inputs, shard, retries), shards))
        return gather_shards(rows, shards, outcomes)

    def _predict_shard(
        self, inputs: Inputs, shard: tuple[int, int], retries: int
    ) -> PredictResult | ShardFailure:
        part = slice_rows(inputs, *shard)
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._predict_once(part)
            except ClientError as exc:
                if attempt > retries or not is_retryable(exc):
                    return ShardFailure(shard[0], shard[1], exc, attempt)
            time.sleep(self._retry_delay(attempt))

    def _predict_once(self, inputs: Inputs) -> PredictResult:
        key = None if self.plaintext else self.key()
        try:
            return self._predict_batch(inputs, key)
        except DecryptionFailedError:
            if not self._may_retry(key) or self._selected(self.refresh_keys()) == key:
                raise
        return self._predict_batch(inputs, self.key())

    def _predict_batch(self, inputs: Inputs, key: KeyInfo | None) -> PredictResult:
        prepared = self._prepare(inputs, key)
        return self._finish(prepared, self._send("POST", "predict", prepared.body, prepared.content_type))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """:class:`Client` for asyncio: the same API, awaited."""

    def __init__(
        self,
        base_url: str,
        *,
        kid: str | None = None,
        suite: str | None = None,
        timeout: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
        plaintext: bool = False,
        http2: bool = False,
        keyset: Mapping[str, Any] | None = None,
        response_key_bytes: int = 16,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(
            base_url,
            kid=kid,
            suite=suite,
            plaintext=plaintext,
            keyset=keyset,
            response_key_bytes=response_key_bytes,
            max_batch=max_batch,
            max_body_bytes=max_body_bytes,
        )
        self._http = httpx.AsyncClient(
            timeout=timeout, transport=transport, http2=http2, headers={"User-Agent": USER_AGENT}
        )

    async def _send(
        self, method: str, route: str, body: bytes | None = None, content_type: str | None = None
    ) -> httpx.Response:
        url = self._url(route)
        try:
            return await self._http.request(method, url, content=body, headers=self._headers(content_type))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _network_error(method, url, exc) from exc

    async def keys(self) -> list[KeyInfo]:
        """The function's usable public keys, fetched once and cached."""
        if self._keys is None:
            self._keys = parse_keyset(self._document(await self._send("GET", "keys")))
        return self._keys

    async def refresh_keys(self) -> list[KeyInfo]:
        """Fetch the key set again (after a rotation)."""
        self._keys = parse_keyset(self._document(await self._send("GET", "keys")))
        return self._keys

    async def key(self) -> KeyInfo:
        """The key requests are sealed to: the first, or the one matching ``kid``/``suite``."""
        return self._selected(await self.keys())

    async def health(self) -> dict[str, Any]:
        """``GET /health``."""
        return self._document(await self._send("GET", "health"))

    async def predict(
        self, inputs: Inputs, *, fan_out: int | None = None, retries: int = DEFAULT_RETRIES
    ) -> PredictResult:
        """Run a batch, split over ``fan_out`` concurrent requests if given; see :meth:`Client.predict`."""
        if fan_out is None:
            return await self._predict_once(inputs)
        rows, shards = self._shards(inputs, fan_out, retries)
        if not self.plaintext:
            await self.key()
        in_flight = asyncio.Semaphore(fan_out)

        async def run(shard: tuple[int, int]) -> PredictResult | ShardFailure:
            async with in_flight:
                return await self._predict_shard(inputs, shard, retries)

        outcomes = await asyncio.gather(*(run(shard) for shard in shards))
        return gather_shards(rows, shards, outcomes)

    async def _predict_shard(
        self, inputs: Inputs, shard: tuple[int, int], retries: int
    ) -> PredictResult | ShardFailure:
        part = slice_rows(inputs, *shard)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._predict_once(part)
            except ClientError as exc:
                if attempt > retries or not is_retryable(exc):
                    return ShardFailure(shard[0], shard[1], exc, attempt)
            await asyncio.sleep(self._retry_delay(attempt))

    async def _predict_once(self, inputs: Inputs) -> PredictResult:
        key = None if self.plaintext else await self.key()
        try:
            return await self._predict_batch(inputs, key)
        except DecryptionFailedError:
            if not self._may_retry(key) or self._selected(await self.refresh_keys()) == key:
                raise
        return await self._predict_batch(inputs, await self.key())

    async def _predict_batch(self, inputs: Inputs, key: KeyInfo | None) -> PredictResult:
        prepared = self._prepare(inputs, key)
        return self._finish(
            prepared, await self._send("POST", "predict", prepared.body, prepared.content_type)
        )

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()


def load_chain(chain: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A chain manifest (``chain.json`` as ``litefaas partition`` writes it), from a path or as given."""
    if isinstance(chain, Mapping):
        document: object = dict(chain)
    else:
        try:
            document = json.loads(Path(chain).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ClientError(f"cannot read the chain manifest {chain} ({exc.__class__.__name__})") from None
    segments = document.get("segments") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(segments, list) or not segments:
        raise ClientError('a chain manifest is an object with a non-empty "segments" list')
    for entry in segments:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("sha256"), str):
            raise ClientError("every segment of a chain manifest needs its name and sha256")
    return document


class ChainClient:
    """Runs a batch through a model cut into segments, one function per segment, in order.

    Every hop is a fresh request sealed to that segment's own key; the client opens each answer
    with that request's response key and seals the activation anew to the next segment, so an
    intermediate tensor is in clear only here and inside the function computing on it. Plaintext
    is not offered. With ``chain`` (``chain.json``), the client also checks that each function
    serves the segment the chain names (by sha256). A hop that fails raises :class:`SegmentError`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain: Mapping[str, Any] | str | Path | None = None,
        keysets: Sequence[Mapping[str, Any] | None] | None = None,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        response_key_bytes: int = 16,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if isinstance(urls, str) or not urls:
            raise ClientError("a chain needs the URL of every segment's function, in order")
        self.chain = None if chain is None else load_chain(chain)
        if self.chain is not None and len(self.chain["segments"]) != len(urls):
            raise ClientError(
                f"the chain has {len(self.chain['segments'])} segments but {len(urls)} URLs were given"
            )
        if keysets is not None and len(keysets) != len(urls):
            raise ClientError("give one key set (or None) per segment URL")
        self.clients = [
            Client(
                url,
                timeout=timeout,
                transport=transport,
                keyset=None if keysets is None else keysets[index],
                response_key_bytes=response_key_bytes,
                max_batch=max_batch,
                max_body_bytes=max_body_bytes,
            )
            for index, url in enumerate(urls)
        ]

    def segment_name(self, index: int) -> str:
        """The chain manifest's name of segment ``index`` (1-based), or ``segment <index>``."""
        if self.chain is not None:
            return str(self.chain["segments"][index - 1].get("name", f"segment {index}"))
        return f"segment {index}"

    def predict(self, inputs: Inputs, *, fan_out: int = 1, retries: int = DEFAULT_RETRIES) -> PredictResult:
        """The last segment's outputs for ``inputs``. Each hop sends its rows in as many requests as
        the function's limits need (``fan_out`` of them at once) with :meth:`Client.predict`'s retries."""
        count = len(self.clients)
        current: Inputs = inputs
        result: PredictResult | None = None
        for index, function in enumerate(self.clients, start=1):
            try:
                result = function.predict(current, fan_out=fan_out, retries=retries)
                self._check_hop(index, result)
            except ClientError as exc:
                name = self.segment_name(index)
                raise SegmentError(index, count, name, function.base_url, exc) from exc
            if isinstance(result.outputs, dict) and index < count:
                error = ProtocolError("a segment before the last must hand on one tensor")
                raise SegmentError(index, count, self.segment_name(index), function.base_url, error)
            current = result.outputs
        assert result is not None
        return result

    def _check_hop(self, index: int, result: PredictResult) -> None:
        if self.chain is None:
            return
        expected = self.chain["segments"][index - 1]["sha256"]
        if result.model.get("sha256") != expected:
            served = f"{result.model.get('name')} (sha256 {str(result.model.get('sha256'))[:12]}…)"
            raise ProtocolError(f"the function serves {served}, not the chain's segment {index}")

    def health(self) -> list[dict[str, Any]]:
        """``GET /health`` of every segment's function, in order."""
        return [function.health() for function in self.clients]

    def close(self) -> None:
        for function in self.clients:
            function.close()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
