"""Cost per million requests under stated traffic patterns, from measured execution times.

Every figure comes from one price table (``litefaas/data/prices.json``, dated per cloud) and one
cost function (:func:`litefaas.simulate.prices.traffic_cost`: the simulator's instance pool and
each cloud's billing unit). The patterns:

- ``isolated``: one request at a time, 5 s apart (each one alone on its instance: Lambda bills its
  own milliseconds, Cloud Run functions 100 ms, Azure Flex Consumption a whole 1 s activity period);
- ``steady-N``: N requests per second, Poisson arrivals (the simulator's ``uniform`` rule), for
  N = 1, 10, 100;
- ``trace-day``: a real day of Azure Functions traffic (the simulator's trace, each application's
  own arrivals, every request running as long as ours), when the trace is on this machine.

Execution times are drawn from the measured latency percentiles (the simulator's piecewise-linear
rule); free tiers are off; data transfer and API gateways are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from litefaas.simulate.prices import CLOUDS, load_prices, traffic_cost

ARCHITECTURES = ("x86_64", "arm64")
STEADY_RATES = (1, 10, 100)
ISOLATED_GAP_S = 5.0
TRACE = "azure2019_100fn"
PATTERN_LABELS = {
    "isolated": "isolated requests (one every 5 s)",
    "steady-1": "steady 1 req/s",
    "steady-10": "steady 10 req/s",
    "steady-100": "steady 100 req/s",
    "trace-day": "real trace day (Azure Functions 2019)",
}


def durations_from(latency_ms: Mapping[str, float | None], n: int, seed: int = 0) -> np.ndarray:
    """``n`` execution times (seconds) through the measured ``p50_ms``/``p95_ms``/``p99_ms``."""
    from litefaas.simulate.workload import sample_durations_ms

    points = sorted(
        (float(key[1:-3]), float(value))
        for key, value in latency_ms.items()
        if value is not None and key.startswith("p") and key.endswith("_ms") and key[1:-3].isdigit()
    )
    if not points:
        raise ValueError("no measured latency percentile")
    quantiles = (0.0, *(q for q, _ in points), 100.0)
    values = (points[0][1], *(v for _, v in points), points[-1][1])
    return sample_durations_ms(n, quantiles, values, np.random.default_rng(seed)) / 1000.0


def pattern_arrivals(pattern: str, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds) of a synthetic pattern: ``isolated`` or ``steady-N``."""
    from litefaas.simulate.workload import arrivals

    rng = np.random.default_rng(seed)
    if pattern == "isolated":
        return np.arange(600, dtype=float) * ISOLATED_GAP_S
    rate = int(pattern.removeprefix("steady-"))
    minutes = max(2, min(10, 12_000 // (60 * rate)))  # at least 12,000 requests or 10 minutes
    return arrivals(np.full(minutes, 60 * rate), "uniform", rng)


def patterns_cost(
    latency_ms: Mapping[str, float | None],
    *,
    memory_mb: int = 512,
    cold_start_ms: float | None = None,
    concurrency: Mapping[str, int] | None = None,
    prices: Path | None = None,
    trace: str | None = TRACE,
    trace_functions: int | None = None,
) -> dict[str, Any]:
    """``{"patterns": {pattern: {cloud/arch: usd_per_million, ...}}, "cheapest": {...}, ...}`` for
    requests taking the measured latency, on every cloud and architecture."""
    table = load_prices(prices)
    cold_start_s = (cold_start_ms or 1000.0) / 1000.0
    levels = {cloud: int((concurrency or {}).get(cloud, 1)) for cloud in ("gcp", "azure")}
    patterns: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for pattern in ("isolated", *(f"steady-{r}" for r in STEADY_RATES)):
        times = pattern_arrivals(pattern)
        durations = durations_from(latency_ms, len(times))
        patterns[pattern] = _per_million(
            [(times, durations)], table, memory_mb, cold_start_s, levels, len(times)
        )
    if trace:
        try:
            apps, requests = _trace_workloads(trace, latency_ms, trace_functions)
            patterns["trace-day"] = _per_million(apps, table, memory_mb, cold_start_s, levels, requests)
            patterns["trace-day"]["requests"] = requests
        except Exception as exc:  # noqa: BLE001 (any reason the trace cannot be read is reported)
            skipped["trace-day"] = str(exc)
    return {
        "patterns": patterns,
        "skipped": skipped,
        "cheapest": {p: cheapest(row) for p, row in patterns.items()},
        "memory_mb": memory_mb,
        "concurrency": {"aws": 1, **levels},
        "cold_start_ms": round(cold_start_s * 1000, 1),
        "latency_ms": {k: v for k, v in latency_ms.items() if v is not None},
        "prices": {
            cloud: {
                "service": table["clouds"][cloud]["service"],
                "as_of": table["clouds"][cloud]["as_of"],
                "source": table["clouds"][cloud]["source"],
                "billing": table["clouds"][cloud]["billing"],
            }
            for cloud in CLOUDS
        },
        "updating": table.get("updating", "edit litefaas/data/prices.json"),
    }


def cheapest(row: Mapping[str, Any]) -> str:
    """The cheapest ``cloud/arch`` column of one pattern's row."""
    costs = {k: v for k, v in row.items() if "/" in k and isinstance(v, int | float)}
    return min(costs, key=lambda k: costs[k])


def _per_million(
    apps: Sequence[tuple[np.ndarray, np.ndarray]],
    table: dict[str, Any],
    memory_mb: int,
    cold_start_s: float,
    levels: Mapping[str, int],
    requests: int,
) -> dict[str, Any]:
    totals: dict[str, float] = {}
    billed: dict[str, float] = {}
    for architecture in ARCHITECTURES:
        for times, durations in apps:
            result = traffic_cost(
                times,
                durations,
                table,
                memory_mb=memory_mb,
                architecture=architecture,
                concurrency=levels,
                cold_start_s=cold_start_s,
            )
            for cloud, parts in result.items():
                column = f"{cloud}/{architecture}"
                totals[column] = totals.get(column, 0.0) + parts["total"]
                billed[column] = billed.get(column, 0.0) + parts["billed_s"]
    row: dict[str, Any] = {
        column: round(total / max(1, requests) * 1e6, 4) for column, total in sorted(totals.items())
    }
    row["billed_ms_per_request"] = {
        column: round(seconds / max(1, requests) * 1000, 3) for column, seconds in sorted(billed.items())
    }
    return row


def _trace_workloads(
    name: str, latency_ms: Mapping[str, float | None], functions: int | None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Each application's arrivals from the simulator's trace, running as long as our function."""
    from litefaas.paths import trace_search_path
    from litefaas.simulate import traces, workload

    search = trace_search_path()
    try:
        path = traces.resolve(name, search)
    except traces.TraceError:
        raise RuntimeError(
            f"the trace {name} is not on this machine (looked in $LITEFAAS_TRACES and "
            f"{search[-1].name}/ beside the repository)"
        ) from None
    trace = traces.load_trace(path, functions, seed=0)
    apps = workload.build(trace, seed=0, rule="uniform")
    out = []
    for k, app in enumerate(apps):
        if len(app.times):
            out.append((app.times, durations_from(latency_ms, len(app.times), seed=k)))
    return out, sum(len(t) for t, _ in out)
