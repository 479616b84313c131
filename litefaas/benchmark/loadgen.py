"""Load with faults in mind: every request sealed afresh, retried until answered, every answer checked.

Unlike :mod:`litefaas.benchmark.load` (pre-sealed requests, timed, never retried), each job here is
one row whose answer must come back exactly once and match the local model:

- a network error, a timeout or a 5xx is retried, each time as a new request (new response key,
  id and timestamp: a function refuses a replayed id), with a growing pause, up to ``max_attempts``;
- ``decryption_failed`` (the key was rotated away) fetches the key set again and retries once;
- the key set can also be refetched every ``refresh_keys_s``, as a client honouring
  ``Cache-Control: max-age`` on ``GET /keys`` does.

A job is **lost** when it has no verified answer after that. ``python -m litefaas.benchmark.loadgen --url …``
runs one load from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from core.protocol import ENCRYPTED_TYPE
from litefaas.client import (
    ClientError,
    DecryptionFailedError,
    KeyInfo,
    ProtocolError,
    RemoteError,
    build_request,
    parse_keyset,
    read_response,
)


@dataclass
class LoadResult:
    """What one load did: jobs, HTTP attempts, retries, and the jobs that were lost or answered wrong."""

    jobs: int
    concurrency: int
    attempts: int = 0
    answered: int = 0
    retries: int = 0
    key_refetches: int = 0
    lost: list[int] = field(default_factory=list)
    wrong: list[int] = field(default_factory=list)
    answers_per_job: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    """Why attempts failed (retried or not): an error code, ``http_502``, or an exception name."""
    kids: Counter[str] = field(default_factory=Counter)
    """Which key each answered job was sealed to."""
    failure_examples: list[str] = field(default_factory=list)
    """The first few failures' messages (no key material, no inputs)."""
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def answered_twice(self) -> int:
        return sum(1 for count in self.answers_per_job.values() if count > 1)

    def summary(self) -> dict[str, Any]:
        latencies = np.asarray(self.latencies_s) if self.latencies_s else None
        return {
            "jobs": self.jobs,
            "concurrency": self.concurrency,
            "http_requests": self.attempts,
            "answered": self.answered,
            "lost": len(self.lost),
            "wrong": len(self.wrong),
            "answered_twice": self.answered_twice,
            "retries": self.retries,
            "key_refetches": self.key_refetches,
            "failures": dict(self.failures),
            "failure_examples": self.failure_examples,
            "kids": dict(self.kids),
            "wall_s": round(self.wall_s, 2),
            "throughput_rps": round(self.answered / self.wall_s, 1) if self.wall_s else None,
            "p50_ms": None if latencies is None else round(float(np.percentile(latencies, 50)) * 1000, 2),
            "p99_ms": None if latencies is None else round(float(np.percentile(latencies, 99)) * 1000, 2),
            "mean_ms": None if latencies is None else round(statistics.fmean(self.latencies_s) * 1000, 2),
        }


class KeySource:
    """The function's public keys, shared by every worker; fetched again on demand or on a schedule."""

    def __init__(self, client: httpx.AsyncClient, keys_url: str, result: LoadResult) -> None:
        self._client = client
        self._url = keys_url
        self._result = result
        self._lock = asyncio.Lock()
        self._keys: list[KeyInfo] = []
        self.fetched_at = float("-inf")

    @property
    def current(self) -> KeyInfo:
        return self._keys[0]

    async def fetch(self, *, newer_than: float | None = None) -> None:
        """Fetch the key set (unless it was fetched after ``newer_than``); keep the old set on failure."""
        async with self._lock:
            if newer_than is not None and self.fetched_at > newer_than:
                return
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                self._keys = parse_keyset(response.json())
                self.fetched_at = time.monotonic()
                self._result.key_refetches += 1
            except (httpx.HTTPError, ValueError, ClientError) as exc:
                self._result.failures[f"keys:{exc.__class__.__name__}"] += 1
                if not self._keys:
                    raise

    async def refresh_every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            await self.fetch()


_EXAMPLES_KEPT = 5


def _note(result: LoadResult, error: Exception) -> None:
    result.failures[_failure_name(error)] += 1
    if len(result.failure_examples) < _EXAMPLES_KEPT:
        result.failure_examples.append(f"{error.__class__.__name__}: {str(error)[:200]}")


def _retryable(error: Exception) -> bool:
    """Worth a new request: the network, a timeout, a 5xx, or an answer that is not the function's
    (a host or gateway answered instead: serverless-offline answers a Lambda timeout with a plaintext
    HTTP 200). Inference has no side effect, so running a row twice is harmless; it is counted once."""
    if isinstance(error, httpx.HTTPError | ProtocolError):
        return True
    status = getattr(error, "status", None)
    return isinstance(error, RemoteError) and isinstance(status, int) and status >= 500


def _failure_name(error: Exception) -> str:
    if isinstance(error, RemoteError):
        return error.code
    if isinstance(error, ProtocolError):
        return f"not_a_litefaas_answer_{error.status}"
    return error.__class__.__name__


Check = Callable[[int, Any], bool]


async def run_jobs(
    base_url: str,
    rows: npt.NDArray[np.float32],
    jobs: int,
    concurrency: int,
    check: Check,
    *,
    timeout_s: float = 60.0,
    max_attempts: int = 8,
    refresh_keys_s: float | None = None,
    retry_pause_s: float = 0.05,
    result: LoadResult | None = None,
    stop: Callable[[], bool] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadResult:
    """Send ``jobs`` one-row requests (job ``i`` carries ``rows[i % len(rows)]``) with ``concurrency``
    workers over keep-alive connections, until each is answered or lost. ``check(row_index, outputs)``
    judges each decrypted answer. Pass ``result`` to watch the counts from another thread, ``stop``
    to end early (no new job is started once it returns True; ``jobs`` becomes the number started)."""
    result = result or LoadResult(jobs, concurrency)
    started_jobs = 0
    base = base_url.rstrip("/")
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency + 1)
    pending = iter(range(jobs))

    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, transport=transport) as client:
        keys = KeySource(client, f"{base}/keys", result)
        await keys.fetch()

        async def answer(job: int) -> bool:
            row = job % len(rows)
            key_retried = False
            attempt = 0
            while attempt < max_attempts:
                attempt += 1
                key = keys.current
                body, secrets = build_request(rows[row : row + 1], key)
                sealed_at = time.monotonic()
                result.attempts += 1
                try:
                    response = await client.post(
                        f"{base}/predict", content=body, headers={"Content-Type": ENCRYPTED_TYPE}
                    )
                    document = read_response(
                        response.status_code, response.headers.get("content-type"), response.content, secrets
                    )
                except DecryptionFailedError as exc:
                    _note(result, exc)
                    if key_retried:
                        return False
                    key_retried = True
                    attempt -= 1  # the retry after a rotation does not count against max_attempts
                    result.retries += 1
                    await keys.fetch(newer_than=sealed_at)
                    continue
                except (httpx.HTTPError, ClientError) as exc:
                    _note(result, exc)
                    if not _retryable(exc):
                        return False
                    result.retries += 1
                    await asyncio.sleep(min(retry_pause_s * 2 ** (attempt - 1), 2.0))
                    continue
                result.latencies_s.append(time.monotonic() - sealed_at)
                if not check(row, document["outputs"]):
                    result.wrong.append(job)
                    return False
                result.kids[key.kid] += 1
                return True
            return False

        async def worker() -> None:
            nonlocal started_jobs
            for job in pending:
                if stop is not None and stop():
                    break
                started_jobs += 1
                if await answer(job):
                    result.answered += 1
                    result.answers_per_job[job] += 1
                else:
                    result.lost.append(job)

        refresher = asyncio.create_task(keys.refresh_every(refresh_keys_s)) if refresh_keys_s else None
        started = time.perf_counter()
        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            result.wall_s = time.perf_counter() - started
            result.jobs = started_jobs
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
    return result


def exact_check(expected: npt.NDArray[np.float32], tolerance: float = 0.0) -> Check:
    """An answer is right when it equals ``expected[row]`` (within ``tolerance``)."""

    def check(row: int, outputs: Any) -> bool:
        got = np.asarray(outputs, dtype=np.float32)
        want = expected[row : row + 1]
        return got.shape == want.shape and bool(np.all(np.abs(got - want) <= tolerance))

    return check


def local_expected(rows: npt.NDArray[np.float32], model_dir: Path | None = None) -> npt.NDArray[np.float32]:
    """The local model's output for each row, one row per call, as a function computes it."""
    from core.engine import DEFAULT_MODEL_DIR, Engine

    engine = Engine.from_dir(model_dir or DEFAULT_MODEL_DIR)
    name = engine.manifest.inputs[0].name
    output = engine.manifest.outputs[0].name
    return np.concatenate([engine.predict({name: rows[i : i + 1]})[output] for i in range(len(rows))])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m litefaas.benchmark.loadgen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", required=True, help="the function's base URL (…/predict, …/keys below it)")
    parser.add_argument("--rows", type=Path, required=True, help='JSON: a list of rows or {"rows": [...]}')
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--refresh-keys", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    document = json.loads(args.rows.read_text(encoding="utf-8"))
    rows = np.asarray(document["rows"] if isinstance(document, dict) else document, dtype=np.float32)
    check = exact_check(local_expected(rows))
    result = asyncio.run(
        run_jobs(
            args.url,
            rows,
            args.requests,
            args.concurrency,
            check,
            timeout_s=args.timeout,
            refresh_keys_s=args.refresh_keys,
        )
    )
    print(json.dumps(result.summary()))
    return 0 if not result.lost else 1


if __name__ == "__main__":
    sys.exit(main())
