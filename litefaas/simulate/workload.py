"""From a trace to what the engine replays: per application, sorted arrival times and execution times."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from litefaas.simulate.traces import PERCENTILES, FunctionTrace, Trace, TraceError

ARRIVAL_RULES = ("uniform", "even")


@dataclass
class AppWorkload:
    """One application: the unit that owns instances (all its functions share them)."""

    app: str
    functions: list[FunctionTrace]
    memory_mb: float
    times: np.ndarray
    durations_s: np.ndarray
    function_index: np.ndarray


@dataclass(frozen=True)
class LatencyModel:
    """Execution time percentiles (ms) and the cold start (ms) measured for one provider."""

    provider: str
    quantiles: tuple[float, ...]
    values_ms: tuple[float, ...]
    cold_start_ms: float | None


def function_rng(seed: int, function: FunctionTrace) -> np.random.Generator:
    """The random stream of one function: the same whichever other functions are sampled."""
    return np.random.default_rng(
        [seed, zlib.crc32(f"{function.owner}/{function.app}/{function.function}".encode())]
    )


def arrivals(counts: np.ndarray, rule: str, rng: np.random.Generator) -> np.ndarray:
    """Seconds of each invocation: the ``c`` calls of minute ``m`` at ``60m + 60u``, with ``u`` uniform
    and sorted (``uniform``: a Poisson process given its count) or at ``(k + 0.5) / c`` (``even``)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    minutes = np.repeat(np.arange(len(counts), dtype=float), counts)
    if rule == "uniform":
        return np.sort(60.0 * (minutes + rng.random(total)))
    if rule == "even":
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        rank = np.arange(total) - starts
        evenly: np.ndarray = 60.0 * (minutes + (rank + 0.5) / np.repeat(counts, counts))
        return evenly
    raise TraceError(f"unknown arrival rule {rule!r} (choose from {', '.join(ARRIVAL_RULES)})")


def sample_durations_ms(
    n: int, quantiles: tuple[float, ...], values_ms: tuple[float, ...], rng: np.random.Generator
) -> np.ndarray:
    """Execution times drawn from the piecewise-linear distribution through the given percentiles."""
    values = np.maximum.accumulate(np.asarray(values_ms, dtype=float))
    if values[0] == values[-1]:
        return np.full(n, values[0])
    drawn: np.ndarray = np.interp(rng.random(n), np.asarray(quantiles, dtype=float) / 100.0, values)
    return drawn


def build(
    trace: Trace, seed: int = 0, rule: str = "uniform", latency: LatencyModel | None = None
) -> list[AppWorkload]:
    """The applications of a trace with their arrivals and execution times (seeded)."""
    by_app: dict[str, list[FunctionTrace]] = {}
    for fn in trace.functions:
        by_app.setdefault(fn.app, []).append(fn)
    workloads = []
    for app, functions in by_app.items():
        times, durations, index = [], [], []
        for k, fn in enumerate(functions):
            rng = function_rng(seed, fn)
            if fn.arrivals_s is not None:
                t = np.asarray(fn.arrivals_s, dtype=float)
            else:
                t = arrivals(fn.counts if fn.counts is not None else np.zeros(0), rule, rng)
            if latency is not None:
                d = sample_durations_ms(len(t), latency.quantiles, latency.values_ms, rng)
            elif fn.durations_ms is not None:
                d = np.asarray(fn.durations_ms, dtype=float)
            else:
                d = sample_durations_ms(len(t), PERCENTILES, fn.duration_percentiles_ms or (0.0,), rng)
            times.append(t)
            durations.append(d / 1000.0)
            index.append(np.full(len(t), k, dtype=np.int32))
        all_times = np.concatenate(times)
        order = np.argsort(all_times, kind="stable")
        workloads.append(
            AppWorkload(
                app=app,
                functions=functions,
                memory_mb=max(fn.memory_mb for fn in functions),
                times=all_times[order],
                durations_s=np.concatenate(durations)[order],
                function_index=np.concatenate(index)[order],
            )
        )
    return workloads


def load_latency(path: Path | str, provider: str | None = None) -> LatencyModel:
    """Warm latency percentiles and cold start of one provider from a benchmark's ``bench.json``
    (``{"providers": {"aws": {"p50_ms": …, "p99_ms": …, "cold_start_ms": …}, …}}``)."""
    path = Path(path)
    try:
        providers = json.loads(path.read_text(encoding="utf-8"))["providers"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TraceError(f"{path}: not a benchmark file with 'providers' ({exc})") from None
    if not isinstance(providers, dict) or not providers:
        raise TraceError(f"{path}: 'providers' is empty")
    name = provider or ("aws" if "aws" in providers else next(iter(providers)))
    if name not in providers:
        raise TraceError(f"{path}: no provider {name!r} (has {', '.join(providers)})")
    entry = providers[name]
    points = sorted(
        (float(key[1:-3]), float(value))
        for key, value in entry.items()
        if key.startswith("p") and key.endswith("_ms") and key[1:-3].replace(".", "", 1).isdigit()
    )
    if not points:
        raise TraceError(f"{path}: provider {name!r} has no pNN_ms latency")
    if len(points) == 1:
        points = [(0.0, points[0][1]), (100.0, points[0][1])]
    else:
        points = [(0.0, points[0][1]), *points, (100.0, points[-1][1])]
    cold = entry.get("cold_start_ms")
    return LatencyModel(
        provider=name,
        quantiles=tuple(p for p, _ in points),
        values_ms=tuple(v for _, v in points),
        cold_start_ms=None if cold is None else float(cold),
    )
