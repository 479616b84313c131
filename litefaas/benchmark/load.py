"""Bounded load against one function: pre-sealed requests, N concurrent workers, every answer checked."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httpx
import numpy as np

from core import bhttp
from core.crypto.ohttp import ClientContext, KeyConfig, encapsulate
from core.errors import LitefaasError
from core.oblivious import padded_size
from core.protocol import ENCRYPTED_TYPE, OHTTP_REQUEST_TYPE, PLAINTEXT_TYPE
from litefaas.client import (
    ClientError,
    KeyInfo,
    ProtocolError,
    RequestSecrets,
    build_plaintext_request,
    build_request,
    read_response,
)


@dataclass(frozen=True)
class Prepared:
    """One request ready to send and what is needed to check its answer."""

    body: bytes
    secrets: RequestSecrets | None
    rows: slice
    oblivious: ClientContext | None = None
    """Set for an Oblivious HTTP request: what opens its answer (a version-1 plaintext answer inside)."""

    @property
    def content_type(self) -> str:
        if self.oblivious is not None:
            return OHTTP_REQUEST_TYPE
        return PLAINTEXT_TYPE if self.secrets is None else ENCRYPTED_TYPE

    def read(self, status: int, content_type: str | None, body: bytes) -> dict[str, Any]:
        """The answer's document, opened (and decapsulated) as this request needs."""
        if self.oblivious is None:
            return read_response(status, content_type, body, self.secrets)
        if status != 200:
            raise ProtocolError(f"the gateway answered {status}", status)
        try:
            inner = bhttp.parse_response(self.oblivious.open(body), 1 << 30)
        except (bhttp.MalformedMessage, LitefaasError) as exc:
            raise ProtocolError(f"the encapsulated answer does not open: {exc}", status) from None
        inner_type = next((value for name, value in inner.headers if name == "content-type"), None)
        return read_response(inner.status, inner_type, inner.content, None)


@dataclass
class Run:
    """The result of one load run: latencies of the answers that were right, and the errors."""

    concurrency: int
    batch: int
    encrypted: bool
    latencies_s: list[float] = field(default_factory=list)
    request_bytes: int | None = None
    response_bytes: int | None = None
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s) + self.errors

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        return float(np.percentile(np.asarray(self.latencies_s), q) * 1000)

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "batch": self.batch,
            "encrypted": self.encrypted,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "error_kinds": dict(self.error_kinds),
            "p50_ms": _round(self.percentile_ms(50)),
            "p95_ms": _round(self.percentile_ms(95)),
            "p99_ms": _round(self.percentile_ms(99)),
            "mean_ms": _round(statistics.fmean(self.latencies_s) * 1000 if self.latencies_s else None),
            "throughput_rps": round(len(self.latencies_s) / self.wall_s, 1) if self.wall_s else None,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def prepare(rows: np.ndarray, count: int, batch: int, key: KeyInfo | None) -> list[Prepared]:
    """``count`` requests of ``batch`` rows each, cycling through ``rows``; sealed when ``key`` is given."""
    prepared = []
    for index in range(count):
        start = (index * batch) % max(1, len(rows) - batch + 1)
        window = slice(start, start + batch)
        if key is None:
            prepared.append(Prepared(build_plaintext_request(rows[window]), None, window))
        else:
            body, secrets = build_request(rows[window], key)
            prepared.append(Prepared(body, secrets, window))
    return prepared


def prepare_oblivious(rows: np.ndarray, count: int, config: KeyConfig, authority: str) -> list[Prepared]:
    """``count`` one-row version-1 plaintext requests to ``/predict``, each padded and
    encapsulated to the gateway's key configuration (fresh, as the replay guard wants)."""
    prepared = []
    for index in range(count):
        window = slice(index % len(rows), index % len(rows) + 1)
        fields = [("content-type", PLAINTEXT_TYPE), ("date", formatdate(usegmt=True))]
        inner = bhttp.Request(
            "POST", "http", authority, "/predict", fields, build_plaintext_request(rows[window])
        )
        message = bhttp.encode_request(inner)
        body, context = encapsulate(config, message + bytes(padded_size(len(message)) - len(message)))
        prepared.append(Prepared(body, None, window, context))
    return prepared


Check = Callable[[slice, Any], bool]


async def run_load(
    url: str,
    requests: Sequence[Prepared],
    concurrency: int,
    check: Check,
    *,
    batch: int,
    timeout: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Send ``requests`` with ``concurrency`` workers over keep-alive connections; time each answer.

    An answer counts as an error unless it decrypts (or parses) and ``check`` accepts its outputs.
    """
    run = Run(
        concurrency,
        batch,
        encrypted=bool(requests and (requests[0].secrets is not None or requests[0].oblivious is not None)),
        request_bytes=len(requests[0].body) if requests else None,
    )
    pending = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for request in pending:
            started = time.perf_counter()
            try:
                response = await client.post(
                    url, content=request.body, headers={"Content-Type": request.content_type}
                )
                elapsed = time.perf_counter() - started
                run.response_bytes = len(response.content)
                document = request.read(
                    response.status_code, response.headers.get("content-type"), response.content
                )
                if check(request.rows, document["outputs"]):
                    run.latencies_s.append(elapsed)
                else:
                    _count(run, "wrong_answer")
            except ClientError as exc:
                status = getattr(exc, "status", None)
                _count(
                    run,
                    getattr(exc, "code", None) or (f"http_{status}" if status else exc.__class__.__name__),
                )
            except httpx.HTTPError as exc:
                _count(run, exc.__class__.__name__)
            if progress:
                progress(1)

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    run.wall_s = time.perf_counter() - started
    return run


def _count(run: Run, kind: str) -> None:
    run.errors += 1
    run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
