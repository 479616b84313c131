"""A model cut into segments, one function each (``litefaas partition``): a batch through them in order."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import numpy as np

from core.protocol import DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES
from litefaas.client import tracing
from litefaas.client.base import DEFAULT_RETRIES, single_input
from litefaas.client.errors import ClientError, ProtocolError, RemoteError
from litefaas.client.sync import Client
from litefaas.client.tensor_wire import TensorResult
from litefaas.client.wire import Inputs, Outputs, PredictResult


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


def first_tensors(inputs: Inputs, model: Mapping[str, Any]) -> dict[str, Any]:
    """The first segment's inputs by name, as arrays of its inputs' own dtypes (``GET /health``):
    rows (lists or arrays) go to its only input, a mapping by name."""
    dtypes = {
        str(entry.get("name")): entry.get("dtype")
        for entry in model.get("inputs", [])
        if isinstance(entry, Mapping)
    }
    named = dict(inputs) if isinstance(inputs, Mapping) else {single_input(model): inputs}
    tensors: dict[str, Any] = {}
    for name, batch in named.items():
        try:
            tensors[name] = np.asarray(batch, dtype=dtypes.get(name))
        except (TypeError, ValueError):
            raise ClientError(f"input {name}: the rows are not numbers of one shape") from None
    return tensors


class ChainClient:
    """Runs a batch through a model cut into segments, one function per segment, in order.

    Every hop is a fresh version-2 request (binary tensors) sealed to that segment's own key; the
    client opens each answer with that request's response key and seals the activation, the raw
    tensor the segment answered, anew to the next segment, so an intermediate tensor is in clear
    only here and inside the function computing on it. Plaintext is not offered. With ``chain``
    (``chain.json``), the client also checks that each function serves the segment the chain
    names (by sha256). A hop that fails raises :class:`SegmentError`.
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
        """The last segment's outputs for ``inputs``. Each hop is a version-2 request: the first
        segment's inputs go as tensors of its inputs' datatypes, and every activation travels on as
        the raw tensor the segment answered (any datatype, never a text encoding). Each hop sends its
        rows in as many requests as the function's limits need (``fan_out`` of them at once) with
        :meth:`Client.predict`'s retries. One output comes back as an array, several as a dict."""
        result = self.predict_tensors(inputs, fan_out=fan_out, retries=retries)
        outputs: Outputs = dict(result) if len(result) > 1 else next(iter(result.values()))
        return PredictResult(outputs, result.model)

    def predict_tensors(
        self, inputs: Inputs, *, fan_out: int = 1, retries: int = DEFAULT_RETRIES
    ) -> TensorResult:
        """:meth:`predict`, answered as the last segment's outputs by name (``.model`` its identity)."""
        with tracing.call_span("litefaas.chain"):
            return self._run(inputs, fan_out, retries)

    def _run(self, inputs: Inputs, fan_out: int, retries: int) -> TensorResult:
        count = len(self.clients)
        current: dict[str, Any] = {}
        result: TensorResult | None = None
        for index, function in enumerate(self.clients, start=1):
            try:
                model = function.model_info()
                if index == 1:
                    current = first_tensors(inputs, model)
                else:
                    (activation,) = current.values()
                    current = {single_input(model): activation}
                result = function.predict_tensors(current, fan_out=fan_out, retries=retries)
                self._check_hop(index, result)
            except ClientError as exc:
                name = self.segment_name(index)
                raise SegmentError(index, count, name, function.base_url, exc) from exc
            if len(result) != 1 and index < count:
                error = ProtocolError("a segment before the last must hand on one tensor")
                raise SegmentError(index, count, self.segment_name(index), function.base_url, error)
            current = dict(result)
        assert result is not None
        return result

    def _check_hop(self, index: int, result: TensorResult) -> None:
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
