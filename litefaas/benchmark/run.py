"""Measure one provider's function: key, first request, load at each concurrency and batch, cold start."""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.crypto.ohttp import decode_key_configs
from core.engine import Engine
from core.protocol import ENCRYPTED_TYPE
from litefaas.benchmark.coldstart import ColdStart
from litefaas.benchmark.load import Prepared, Run, prepare, prepare_oblivious, run_load
from litefaas.client import KeyInfo, build_request, decrypt_response, parse_keyset, select_key

CONCURRENCY = (1, 4, 16, 64)
BATCHES = (1, 32, 256)


@dataclass(frozen=True)
class Plan:
    """How much to measure; ``quick`` finishes in about a minute on a 2-core machine."""

    requests_per_level: int
    plaintext_requests: int
    batch_requests: int
    cold_runs: int
    warmup: int = 20

    @classmethod
    def choose(cls, quick: bool, requests: int | None = None) -> Plan:
        """The quick or the full plan; ``requests`` per concurrency level overrides its counts."""
        plan = cls(100, 100, 30, 2) if quick else cls(1000, 1000, 300, 5)
        if requests is None:
            return plan
        return cls(requests, requests, max(1, requests // 3), plan.cold_runs, min(plan.warmup, requests))


@dataclass
class ProviderResult:
    """Everything measured on one provider."""

    name: str
    url: str
    description: str = ""
    host_start_ms: float | None = None
    first_request_ms: float | None = None
    cold_start: ColdStart | None = None
    by_concurrency: dict[int, Run] = field(default_factory=dict)
    plaintext: Run | None = None
    oblivious: Run | None = None
    """Oblivious HTTP: version-1 plaintext requests encapsulated to the gateway, one client."""
    by_batch: dict[int, Run] = field(default_factory=dict)

    def runs(self) -> Iterator[Run]:
        yield from self.by_concurrency.values()
        if self.plaintext:
            yield self.plaintext
        if self.oblivious:
            yield self.oblivious
        yield from self.by_batch.values()

    def to_json(self) -> dict[str, Any]:
        baseline = self.by_concurrency.get(1)
        base = baseline.summary() if baseline else {}
        throughputs = [r.summary()["throughput_rps"] or 0.0 for r in self.by_concurrency.values()]
        return {
            "url": self.url,
            "description": self.description,
            "requests": sum(r.requests for r in self.runs()),
            "errors": sum(r.errors for r in self.runs()),
            "p50_ms": base.get("p50_ms"),
            "p95_ms": base.get("p95_ms"),
            "p99_ms": base.get("p99_ms"),
            "throughput_rps": max(throughputs) if throughputs else None,
            "cold_start_ms": round(self.cold_start.median_s * 1000, 1) if self.cold_start else None,
            "cold_start": self.cold_start.to_json() if self.cold_start else None,
            "host_start_ms": self.host_start_ms,
            "first_request_ms": self.first_request_ms,
            "by_concurrency": {str(c): r.summary() for c, r in self.by_concurrency.items()},
            "plaintext": self.plaintext.summary() if self.plaintext else None,
            "oblivious": self.oblivious.summary() if self.oblivious else None,
            "by_batch": {str(b): r.summary() for b, r in self.by_batch.items()},
        }


def sample_rows(engine: Engine, count: int = 1024, seed: int = 0) -> np.ndarray:
    """Realistic rows for the seed model (scikit-learn's data set when installed), random ones otherwise."""
    spec = engine.manifest.inputs[0]
    rng = np.random.default_rng(seed)
    if len(engine.manifest.raw.get("feature_names") or []) == 30:
        try:
            from sklearn.datasets import load_breast_cancer

            data: np.ndarray = load_breast_cancer().data.astype(np.float32)
            picked: np.ndarray = data[rng.integers(0, len(data), size=count)]
            return picked
        except ImportError:
            pass
    return rng.normal(size=(count, *spec.row_shape)).astype(np.float32)


class Checker:
    """Compares a function's outputs with the local model's outputs for the same rows."""

    def __init__(self, engine: Engine, rows: np.ndarray) -> None:
        name = engine.manifest.inputs[0].name
        output = engine.manifest.outputs[0].name
        self.expected = np.concatenate(
            [engine.predict({name: rows[i : i + 256]})[output] for i in range(0, len(rows), 256)]
        )

    def __call__(self, rows: slice, outputs: Any) -> bool:
        try:
            got = np.asarray(outputs, dtype=np.float32)
        except (TypeError, ValueError):
            return False
        expected = self.expected[rows]
        return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=0, atol=1e-6))


Step = Callable[[str, int], Callable[[int], None]]


def fetch_key(url: str) -> KeyInfo:
    response = httpx.get(f"{url}/keys", timeout=30)
    response.raise_for_status()
    return select_key(parse_keyset(response.json()))


def first_request_ms(url: str, key: KeyInfo, rows: np.ndarray, check: Checker) -> float:
    body, secrets = build_request(rows[:1], key)
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/predict", content=body, headers={"Content-Type": ENCRYPTED_TYPE}, timeout=60
    )
    elapsed = (time.perf_counter() - started) * 1000
    document = decrypt_response(response.content, secrets, response.status_code)
    if not check(slice(0, 1), document.get("outputs")):
        raise RuntimeError("the first answer does not match the local model")
    return round(elapsed, 2)


def measure_provider(
    result: ProviderResult,
    rows: np.ndarray,
    check: Checker,
    plan: Plan,
    step: Step,
    cold: Callable[[], ColdStart | None],
) -> None:
    """Fill ``result`` in place (so an interrupted run keeps what it measured)."""
    url = result.url
    key = fetch_key(url)
    result.first_request_ms = first_request_ms(url, key, rows, check)

    def load(
        requests: list[Prepared], concurrency: int, batch: int, label: str, route: str = "predict"
    ) -> Run:
        advance = step(f"{result.name}: {label}", len(requests))
        return asyncio.run(
            run_load(f"{url}/{route}", requests, concurrency, check, batch=batch, progress=advance)
        )

    load(prepare(rows, plan.warmup, 1, key), 4, 1, "warm-up")
    for concurrency in CONCURRENCY:
        requests = prepare(rows, plan.requests_per_level, 1, key)
        result.by_concurrency[concurrency] = load(
            requests, concurrency, 1, f"encrypted, concurrency {concurrency}"
        )
    plaintext = load(prepare(rows, plan.plaintext_requests, 1, None), 1, 1, "plaintext, concurrency 1")
    if plaintext.error_kinds.get("plaintext_disabled") != plaintext.requests:
        result.plaintext = plaintext
    gateway = ".well-known/ohttp-gateway"
    config = decode_key_configs(httpx.get(f"{url}/{gateway}", timeout=30).content)[0]
    oblivious = prepare_oblivious(rows, plan.plaintext_requests, config, httpx.URL(url).netloc.decode())
    result.oblivious = load(oblivious, 1, 1, "Oblivious HTTP, concurrency 1", gateway)
    for batch in BATCHES:
        requests = prepare(rows, plan.batch_requests, batch, key)
        result.by_batch[batch] = load(requests, 1, batch, f"batch {batch}")
    result.cold_start = cold()


def environment() -> dict[str, Any]:
    import os

    from litefaas import __version__

    return {
        "litefaas": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "system": platform.system(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
