"""What :class:`~litefaas.client.sync.Client` and :class:`~litefaas.client.async_client.AsyncClient`
share: arguments, key selection, request preparation, answer judging, shard planning. Only their I/O
differs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from core import crypto
from core.protocol import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    ENCRYPTED_TYPE,
    ENCRYPTED_TYPE_V2,
    PLAINTEXT_TYPE,
    PLAINTEXT_TYPE_V2,
    RESPONSE_KEY_BYTES,
)
from litefaas.client.errors import ClientError, NetworkError
from litefaas.client.keysets import KeyInfo, parse_keyset, select_key
from litefaas.client.sharding import plan_shards, row_count, rows_per_request
from litefaas.client.tensor_wire import (
    TensorResult,
    build_plaintext_tensor_request,
    build_tensor_request,
    normalize_tensors,
    read_tensor_response,
    tensor_rows_per_request,
)
from litefaas.client.wire import (
    Inputs,
    PredictResult,
    RequestSecrets,
    build_plaintext_request,
    build_request,
    read_document,
    read_response,
)

USER_AGENT = "litefaas-client/1"
DEFAULT_RETRIES = 2


@dataclass(frozen=True, repr=False)
class Prepared:
    """One ``POST /predict`` ready to go."""

    body: bytes
    content_type: str
    secrets: RequestSecrets | None
    key: KeyInfo | None


def single_input(model: Mapping[str, Any]) -> str:
    """The name of a model's only input (``GET /health``'s ``model``); :class:`ClientError` otherwise."""
    names = [entry.get("name") for entry in model.get("inputs", []) if isinstance(entry, Mapping)]
    if len(names) != 1 or not isinstance(names[0], str):
        raise ClientError(
            f"the model has {len(names)} inputs ({', '.join(map(str, names))}): give tensors by input name"
        )
    return names[0]


def image_input(model: Mapping[str, Any]) -> str | None:
    """The name of the model's image input (the input ``GET /health`` shows with an ``image`` object)."""
    for entry in model.get("inputs", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("image"), Mapping):
            return str(entry.get("name"))
    return None


class ClientBase:
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
        if response_key_bytes not in RESPONSE_KEY_BYTES:
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
        self._model: dict[str, Any] | None = None

    def _url(self, route: str) -> str:
        return f"{self.base_url}/{route}"

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        return {"Content-Type": content_type} if content_type else {}

    def _selected(self, keys: Sequence[KeyInfo]) -> KeyInfo:
        return select_key(keys, self.kid, self.suite)

    def _prepare(self, inputs: Inputs, key: KeyInfo | None) -> Prepared:
        if key is None:
            return Prepared(build_plaintext_request(inputs), PLAINTEXT_TYPE, None, None)
        body, secrets = build_request(inputs, key, response_key_bytes=self.response_key_bytes)
        return Prepared(body, ENCRYPTED_TYPE, secrets, key)

    def _prepare_tensors(
        self, tensors: Mapping[str, Any], outputs: Sequence[str] | None, key: KeyInfo | None
    ) -> Prepared:
        if key is None:
            return Prepared(build_plaintext_tensor_request(tensors, outputs), PLAINTEXT_TYPE_V2, None, None)
        body, secrets = build_tensor_request(
            tensors, key, outputs=outputs, response_key_bytes=self.response_key_bytes
        )
        return Prepared(body, ENCRYPTED_TYPE_V2, secrets, key)

    @staticmethod
    def _finish_tensors(prepared: Prepared, response: httpx.Response) -> TensorResult:
        content_type = response.headers.get("content-type")
        return read_tensor_response(response.status_code, content_type, response.content, prepared.secrets)

    def _tensor_shards(
        self, tensors: Mapping[str, Any], fan_out: int, retries: int
    ) -> tuple[int, list[tuple[int, int]]]:
        if isinstance(fan_out, bool) or not isinstance(fan_out, int) or fan_out < 1:
            raise ClientError("fan_out must be a positive integer")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ClientError("retries must be a non-negative integer")
        rows = len(next(iter(tensors.values())))
        max_rows = tensor_rows_per_request(tensors, self.max_batch, self.max_body_bytes)
        return rows, plan_shards(rows, fan_out, max_rows)

    @staticmethod
    def _named(tensors: Any, model: Mapping[str, Any] | None) -> dict[str, Any]:
        """``tensors`` by input name: a mapping as it is; a lone array goes to the model's only input."""
        if isinstance(tensors, Mapping):
            return normalize_tensors(tensors)
        if model is None:
            raise ClientError("tensors must be a mapping of input name to array")
        return normalize_tensors({single_input(model): tensors})

    @staticmethod
    def _named_images(images: Any, model: Mapping[str, Any] | None) -> dict[str, Any]:
        """Encoded files by input name: a mapping as it is, a list under the model's image input."""
        if isinstance(images, Mapping):
            named = dict(images)
        else:
            assert model is not None
            named = {image_input(model) or single_input(model): images}
        for name, files in named.items():
            if isinstance(files, bytes | bytearray) or not isinstance(files, list | tuple):
                raise ClientError(f"input {name}: images are a list of encoded files (bytes)")
        return normalize_tensors(named)

    @staticmethod
    def _finish(prepared: Prepared, response: httpx.Response) -> PredictResult:
        content_type = response.headers.get("content-type")
        document = read_response(response.status_code, content_type, response.content, prepared.secrets)
        return PredictResult.from_json(document)

    @staticmethod
    def _document(response: httpx.Response) -> dict[str, Any]:
        return read_document(
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


def network_error(method: str, url: str, exc: Exception) -> NetworkError:
    return NetworkError(f"{method} {url}: {exc.__class__.__name__}: {exc}")
