"""Call a litefaas function: seal each request to its public key, open the sealed answer.

:func:`build_request` and :func:`read_response` speak ``PROTOCOL.md`` without any
HTTP; :class:`Client` and :class:`AsyncClient` put ``httpx`` around them. No
message raised here carries key material or the caller's inputs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
_MAX_MESSAGE_CHARS = 500

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


@dataclass(frozen=True, repr=False)
class _Prepared:
    """One ``POST /predict`` ready to go."""

    body: bytes
    content_type: str
    secrets: RequestSecrets | None
    key: KeyInfo | None


class _ClientBase:
    """What :class:`Client` and :class:`AsyncClient` share; only their I/O differs.

    ``predict`` is prepare → send → finish for one batch. A fan-out would split the rows, run the
    three per part concurrently (each part with its own key, id and timestamp) and join the outputs.
    """

    def __init__(
        self,
        base_url: str,
        *,
        kid: str | None,
        suite: str | None,
        plaintext: bool,
        keyset: Mapping[str, Any] | None,
        response_key_bytes: int,
    ) -> None:
        if kid is not None and not crypto.KID_PATTERN.fullmatch(kid):
            raise ClientError("kid must be 1-64 characters of [A-Za-z0-9._-]")
        if suite is not None and suite not in crypto.SUITES:
            raise ClientError(f"unknown suite; expected one of {', '.join(crypto.SUITES)}")
        if response_key_bytes not in RESPONSE_KEY_SIZES:
            raise ClientError("response_key_bytes must be 16 or 32")
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


def _network_error(method: str, url: str, exc: Exception) -> NetworkError:
    return NetworkError(f"{method} {url}: {exc.__class__.__name__}: {exc}")


class Client(_ClientBase):
    """A synchronous client for one function. ``keyset`` pins the public keys (no ``GET /keys``)."""

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
    ) -> None:
        super().__init__(
            base_url,
            kid=kid,
            suite=suite,
            plaintext=plaintext,
            keyset=keyset,
            response_key_bytes=response_key_bytes,
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

    def predict(self, inputs: Inputs) -> PredictResult:
        """Run one batch; sealed with a fresh response key, id and timestamp unless ``plaintext``.

        On ``decryption_failed`` the key set is fetched again, and if it changed the batch is sent once more.
        """
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
    ) -> None:
        super().__init__(
            base_url,
            kid=kid,
            suite=suite,
            plaintext=plaintext,
            keyset=keyset,
            response_key_bytes=response_key_bytes,
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

    async def predict(self, inputs: Inputs) -> PredictResult:
        """Run one batch; see :meth:`Client.predict`."""
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
