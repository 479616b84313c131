"""Run policies over a trace's applications and measure them (definitions in :mod:`litefaas.simulate`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from litefaas.simulate.engine import AppRun, run_app
from litefaas.simulate.policies import Context, Policy
from litefaas.simulate.prices import CLOUDS, Usage, cost
from litefaas.simulate.workload import AppWorkload

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Options:
    cold_start_s: float = 1.0
    concurrency: int = 1
    architecture: str | None = None


@dataclass
class AppSummary:
    """One application under one policy."""

    app: str
    memory_mb: float
    requests: int
    cold_starts: int
    instance_s: float
    busy_s: float
    used_s: float
    reactive_starts: int
    prewarm_starts: int
    max_in_flight: int
    instances_median: int
    instances_max: int
    cost: dict[str, dict[str, float]]
    functions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wasted_gb_s(self) -> float:
        return max(0.0, self.instance_s - self.busy_s) * self.memory_mb / 1024.0


def instance_levels(run: AppRun) -> tuple[int, int]:
    """Time-weighted median and maximum of the number of instances alive."""
    if not len(run.created):
        return 0, 0
    times = np.concatenate((run.evicted, run.created))
    steps = np.concatenate((-np.ones(len(run.evicted)), np.ones(len(run.created))))
    order = np.argsort(times, kind="stable")
    alive = np.cumsum(steps[order])
    spans = np.diff(np.append(times[order], run.end_s))
    weights = np.cumsum(spans)
    median = alive[int(np.searchsorted(weights, weights[-1] / 2))] if weights[-1] > 0 else 0
    return int(median), int(alive.max())


def summarize(workload: AppWorkload, run: AppRun, options: Options, prices: dict[str, Any]) -> AppSummary:
    """Counts, memory and cost of one application's run."""
    durations = workload.durations_s
    latency_ms = (durations + run.wait_s) * 1000.0
    functions = []
    for k, fn in enumerate(workload.functions):
        mine = workload.function_index == k
        n = int(mine.sum())
        cold = int(run.cold[mine].sum())
        p50, p99 = np.percentile(latency_ms[mine], [50, 99]).tolist() if n else (0.0, 0.0)
        functions.append(
            {
                "function": fn.function,
                "app": fn.app,
                "invocations": n,
                "cold_starts": cold,
                "cold_start_pct": 100.0 * cold / n if n else 0.0,
                "p50_ms": p50,
                "p99_ms": p99,
            }
        )
    loading_s = run.reactive_starts * options.cold_start_s
    usage = Usage(
        memory_mb=workload.memory_mb,
        requests=len(durations),
        durations_s=durations,
        busy_s=run.busy_s,
        concurrency=options.concurrency,
        reactive_starts=run.reactive_starts,
        cold_start_s=options.cold_start_s,
        warm_idle_s=max(0.0, run.instance_s - run.busy_s - loading_s),
    )
    median, peak = instance_levels(run)
    summary = AppSummary(
        app=workload.app,
        memory_mb=workload.memory_mb,
        requests=len(durations),
        cold_starts=int(run.cold.sum()),
        instance_s=run.instance_s,
        busy_s=run.busy_s,
        used_s=float(durations.sum()) / options.concurrency,
        reactive_starts=run.reactive_starts,
        prewarm_starts=run.prewarm_starts,
        max_in_flight=run.max_in_flight,
        instances_median=median,
        instances_max=peak,
        cost=cost(usage, prices, options.architecture),
        functions=functions,
    )
    share = summary.wasted_gb_s / max(1, len(functions))
    for row in functions:
        row["wasted_memory_gb_s"] = share
    return summary


def simulate(
    workloads: Sequence[AppWorkload],
    policies: Sequence[Policy],
    horizon_s: float,
    options: Options,
    prices: dict[str, Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every policy over every application: ``{"functions": N, "policies": {name: metrics}}``."""
    context = Context(options.cold_start_s, options.concurrency, horizon_s)
    n_functions = sum(len(w.functions) for w in workloads)
    results: dict[str, Any] = {}
    for policy in policies:
        summaries, latencies = [], []
        for workload in workloads:
            run = run_app(
                workload.times.tolist(),
                workload.durations_s.tolist(),
                policy.for_app(workload, context),
                options.cold_start_s,
                options.concurrency,
                horizon_s,
            )
            summaries.append(summarize(workload, run, options, prices))
            latencies.append((workload.durations_s + run.wait_s) * 1000.0)
            if progress:
                progress(policy.name, len(workload.times))
        results[policy.name] = aggregate(summaries, latencies)
    return {"functions": n_functions, "policies": results}


def aggregate(summaries: list[AppSummary], latencies: list[np.ndarray]) -> dict[str, Any]:
    """The overall metrics of one policy (the JSON schema of ``litefaas simulate --json``)."""
    requests = sum(s.requests for s in summaries)
    cold = sum(s.cold_starts for s in summaries)
    per_function = [row for s in summaries for row in s.functions]
    active = [row["cold_start_pct"] for row in per_function if row["invocations"]]
    allocated = sum(s.instance_s * s.memory_mb for s in summaries) / 1024.0
    used = sum(s.used_s * s.memory_mb for s in summaries) / 1024.0
    all_latency = np.concatenate(latencies) if latencies else np.zeros(0)
    p50, p99 = np.percentile(all_latency, [50, 99]).tolist() if len(all_latency) else (0.0, 0.0)
    breakdown = {
        c: {k: sum(s.cost[c][k] for s in summaries) for k in ("requests", "execution", "warm")}
        for c in CLOUDS
    }
    return {
        "invocations": requests,
        "cold_starts": cold,
        "cold_start_pct": 100.0 * cold / requests if requests else 0.0,
        "cold_start_pct_p75": float(np.percentile(active, 75)) if active else 0.0,
        "wasted_memory_gb_s": sum(s.wasted_gb_s for s in summaries),
        "allocated_gb_s": allocated,
        "used_gb_s": used,
        "utilization": used / allocated if allocated else 0.0,
        "p50_ms": p50,
        "p99_ms": p99,
        "instances_started": sum(s.reactive_starts + s.prewarm_starts for s in summaries),
        "prewarmed_instances": sum(s.prewarm_starts for s in summaries),
        "cost_usd": {c: sum(breakdown[c].values()) for c in CLOUDS},
        "cost_breakdown_usd": breakdown,
        "per_function": per_function,
        "apps": [
            {
                "app": s.app,
                "memory_mb": s.memory_mb,
                "invocations": s.requests,
                "max_in_flight": s.max_in_flight,
                "instances_median": s.instances_median,
                "instances_max": s.instances_max,
            }
            for s in summaries
        ],
    }
