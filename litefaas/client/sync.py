"""The synchronous client for one function (``httpx.Client`` underneath)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from core.protocol import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
from litefaas.client import tracing
from litefaas.client.base import DEFAULT_RETRIES, USER_AGENT, ClientBase, network_error
from litefaas.client.errors import ClientError, DecryptionFailedError, ProtocolError
from litefaas.client.keysets import KeyInfo, parse_keyset
from litefaas.client.sharding import ShardFailure, gather_shards, is_retryable, slice_rows
from litefaas.client.tensor_wire import TensorResult, gather_tensor_shards, slice_tensors
from litefaas.client.wire import Inputs, PredictResult


class Client(ClientBase):
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
        oblivious: bool = False,
        relay_url: str | None = None,
        gateway_keys: bytes | str | Path | None = None,
    ) -> None:
        if oblivious:
            from litefaas.client.oblivious import ObliviousTransport, gateway_url_of

            transport = ObliviousTransport(
                gateway_url_of(base_url), key_config=gateway_keys, relay_url=relay_url, transport=transport
            )
        super().__init__(
            base_url,
            kid=kid,
            suite=suite,
            plaintext=plaintext or oblivious,
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
        with tracing.request_headers(method, route) as trace_headers:
            try:
                headers = self._headers(content_type) | trace_headers
                return self._http.request(method, url, content=body, headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise network_error(method, url, exc) from exc

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

    def model_info(self) -> dict[str, Any]:
        """``GET /health``'s ``model`` (inputs, outputs, datatypes, image inputs, labels), fetched once."""
        if self._model is None:
            model = self.health().get("model")
            if not isinstance(model, dict):
                raise ProtocolError("GET /health has no model")
            self._model = model
        return self._model

    def predict_tensors(
        self,
        tensors: Mapping[str, Any] | Any,
        outputs: Sequence[str] | None = None,
        *,
        fan_out: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> TensorResult:
        """Run named tensors through the model with protocol version 2 (raw bytes, any datatype).

        ``tensors`` maps each model input's name to a numpy array whose axis 0 is the batch and
        whose dtype is the model input's own (no cast is made); a lone array goes to the model's only
        input (found with ``GET /health``). ``outputs`` names the outputs wanted, in order (default:
        all). Returns the outputs by name, as numpy arrays, with ``.model``. Sealed unless the
        client is ``plaintext``; errors are raised as :meth:`predict` raises them. ``fan_out`` and
        ``retries`` split the batch along axis 0 as :meth:`predict` does, each request under
        ``max_batch`` rows and ``max_body_bytes``, and join the outputs in order.
        """
        named = self._named(tensors, None if isinstance(tensors, Mapping) else self.model_info())
        return self._predict_tensors(named, outputs, fan_out, retries)

    def predict_images(
        self,
        images: Mapping[str, Sequence[bytes]] | Sequence[bytes],
        outputs: Sequence[str] | None = None,
        *,
        fan_out: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> TensorResult:
        """Encoded files (JPEG, PNG, WebP) as ``BYTES`` tensors, one file per row, which the function
        decodes, resizes and scales as its manifest declares. ``images`` maps an input name to a list
        of files; a lone list goes to the model's image input (``GET /health``)."""
        named = self._named_images(images, None if isinstance(images, Mapping) else self.model_info())
        return self._predict_tensors(named, outputs, fan_out, retries)

    def _predict_tensors(
        self, named: dict[str, Any], outputs: Sequence[str] | None, fan_out: int | None, retries: int
    ) -> TensorResult:
        if fan_out is None:
            return self._tensors_once(named, outputs)
        rows, shards = self._tensor_shards(named, fan_out, retries)
        if not self.plaintext:
            self.key()

        def run(shard: tuple[int, int]) -> TensorResult | ShardFailure:
            part = slice_tensors(named, *shard)
            attempt = 0
            while True:
                attempt += 1
                try:
                    return self._tensors_once(part, outputs)
                except ClientError as exc:
                    if attempt > retries or not is_retryable(exc):
                        return ShardFailure(shard[0], shard[1], exc, attempt)
                time.sleep(self._retry_delay(attempt))

        with tracing.call_span("litefaas.fan_out"):
            if len(shards) == 1 or fan_out == 1:
                outcomes = [run(shard) for shard in shards]
            else:
                with ThreadPoolExecutor(max_workers=min(fan_out, len(shards))) as pool:
                    outcomes = list(pool.map(tracing.in_context(run), shards))
        return gather_tensor_shards(rows, shards, outcomes)

    def _tensors_once(self, named: dict[str, Any], outputs: Sequence[str] | None) -> TensorResult:
        key = None if self.plaintext else self.key()
        try:
            return self._tensors_batch(named, outputs, key)
        except DecryptionFailedError:
            if not self._may_retry(key) or self._selected(self.refresh_keys()) == key:
                raise
        return self._tensors_batch(named, outputs, self.key())

    def _tensors_batch(
        self, named: dict[str, Any], outputs: Sequence[str] | None, key: KeyInfo | None
    ) -> TensorResult:
        prepared = self._prepare_tensors(named, outputs, key)
        return self._finish_tensors(
            prepared, self._send("POST", "predict", prepared.body, prepared.content_type)
        )

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

        def run(shard: tuple[int, int]) -> PredictResult | ShardFailure:
            return self._predict_shard(inputs, shard, retries)

        with tracing.call_span("litefaas.fan_out"):
            if len(shards) == 1 or fan_out == 1:
                outcomes = [run(shard) for shard in shards]
            else:
                with ThreadPoolExecutor(max_workers=min(fan_out, len(shards))) as pool:
                    outcomes = list(pool.map(tracing.in_context(run), shards))
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
