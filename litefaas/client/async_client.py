"""The asyncio client for one function: :class:`~litefaas.client.sync.Client`'s API, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
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


class AsyncClient(ClientBase):
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
        oblivious: bool = False,
        relay_url: str | None = None,
        gateway_keys: bytes | str | Path | None = None,
    ) -> None:
        if oblivious:
            from litefaas.client.oblivious import AsyncObliviousTransport, gateway_url_of

            transport = AsyncObliviousTransport(
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
        self._http = httpx.AsyncClient(
            timeout=timeout, transport=transport, http2=http2, headers={"User-Agent": USER_AGENT}
        )

    async def _send(
        self, method: str, route: str, body: bytes | None = None, content_type: str | None = None
    ) -> httpx.Response:
        url = self._url(route)
        with tracing.request_headers(method, route) as trace_headers:
            try:
                headers = self._headers(content_type) | trace_headers
                return await self._http.request(method, url, content=body, headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise network_error(method, url, exc) from exc

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

    async def model_info(self) -> dict[str, Any]:
        """``GET /health``'s ``model``, fetched once; see :meth:`Client.model_info`."""
        if self._model is None:
            model = (await self.health()).get("model")
            if not isinstance(model, dict):
                raise ProtocolError("GET /health has no model")
            self._model = model
        return self._model

    async def predict_tensors(
        self,
        tensors: Mapping[str, Any] | Any,
        outputs: Sequence[str] | None = None,
        *,
        fan_out: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> TensorResult:
        """Named tensors through the model with protocol version 2; see :meth:`Client.predict_tensors`."""
        model = None if isinstance(tensors, Mapping) else await self.model_info()
        return await self._predict_tensors(self._named(tensors, model), outputs, fan_out, retries)

    async def predict_images(
        self,
        images: Mapping[str, Sequence[bytes]] | Sequence[bytes],
        outputs: Sequence[str] | None = None,
        *,
        fan_out: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> TensorResult:
        """Encoded files as ``BYTES`` tensors; see :meth:`Client.predict_images`."""
        model = None if isinstance(images, Mapping) else await self.model_info()
        return await self._predict_tensors(self._named_images(images, model), outputs, fan_out, retries)

    async def _predict_tensors(
        self, named: dict[str, Any], outputs: Sequence[str] | None, fan_out: int | None, retries: int
    ) -> TensorResult:
        if fan_out is None:
            return await self._tensors_once(named, outputs)
        rows, shards = self._tensor_shards(named, fan_out, retries)
        if not self.plaintext:
            await self.key()
        in_flight = asyncio.Semaphore(fan_out)

        async def run(shard: tuple[int, int]) -> TensorResult | ShardFailure:
            part = slice_tensors(named, *shard)
            attempt = 0
            async with in_flight:
                while True:
                    attempt += 1
                    try:
                        return await self._tensors_once(part, outputs)
                    except ClientError as exc:
                        if attempt > retries or not is_retryable(exc):
                            return ShardFailure(shard[0], shard[1], exc, attempt)
                    await asyncio.sleep(self._retry_delay(attempt))

        with tracing.call_span("litefaas.fan_out"):
            outcomes = await asyncio.gather(*(run(shard) for shard in shards))
        return gather_tensor_shards(rows, shards, outcomes)

    async def _tensors_once(self, named: dict[str, Any], outputs: Sequence[str] | None) -> TensorResult:
        key = None if self.plaintext else await self.key()
        try:
            return await self._tensors_batch(named, outputs, key)
        except DecryptionFailedError:
            if not self._may_retry(key) or self._selected(await self.refresh_keys()) == key:
                raise
        return await self._tensors_batch(named, outputs, await self.key())

    async def _tensors_batch(
        self, named: dict[str, Any], outputs: Sequence[str] | None, key: KeyInfo | None
    ) -> TensorResult:
        prepared = self._prepare_tensors(named, outputs, key)
        response = await self._send("POST", "predict", prepared.body, prepared.content_type)
        return self._finish_tensors(prepared, response)

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

        with tracing.call_span("litefaas.fan_out"):
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
