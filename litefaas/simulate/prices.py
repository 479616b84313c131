"""The price table (``litefaas/data/prices.json``) and what a simulated day costs on each cloud.

Schema (``"schema": "litefaas-prices/1"``, USD; GB = 1024 MB; every cloud has ``service``,
``source`` (the public pricing page) and ``as_of`` (the date its figures were read)):

- ``clouds.aws``: ``architectures.{x86_64,arm64}.{request, gb_s, provisioned_gb_s,
  provisioned_duration_gb_s}``, ``default_architecture``, ``billing.{granularity_ms, minimum_ms,
  init_billed}``, ``memory_mb.{min,max}``.
- ``clouds.gcp`` (Cloud Run functions): ``request``, ``gib_s``, ``vcpu_s``,
  ``idle_min_instance_gib_s``, ``idle_min_instance_vcpu_s``, ``billing``, ``memory_tiers_mb`` with
  ``vcpu_per_tier``; ``gen1`` (Cloud Functions 1st gen): ``request``, ``gb_s``, ``ghz_s``,
  ``memory_tiers_mb`` with ``ghz_per_tier``.
- ``clouds.azure`` (Flex Consumption): ``request``, ``gb_s``, ``always_ready_baseline_gb_s``,
  ``always_ready_execution_gb_s``, ``billing``, ``instance_memory_mb``, ``max_instances.{min,max}``;
  ``consumption``: ``request``, ``gb_s``, ``memory_step_mb``, ``minimum_ms``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from litefaas.errors import ToolError

CLOUDS = ("aws", "gcp", "azure")


class PriceError(ToolError, ValueError):
    """The price table is missing, unreadable or lacks a required field."""


def load_prices(path: Path | str | None = None) -> dict[str, Any]:
    """The price table: ``path`` if given, else the one shipped in ``litefaas/data/prices.json``."""
    try:
        if path is None:
            text = resources.files("litefaas").joinpath("data/prices.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        table: dict[str, Any] = json.loads(text)
    except (OSError, ValueError) as exc:
        raise PriceError(f"price table {path or 'litefaas/data/prices.json'}: {exc}") from None
    clouds = table.get("clouds") if isinstance(table, dict) else None
    if not isinstance(clouds, dict):
        raise PriceError("price table: no 'clouds' object")
    required = {
        "aws": ("architectures", "default_architecture", "billing"),
        "gcp": (
            "request",
            "gib_s",
            "vcpu_s",
            "idle_min_instance_gib_s",
            "idle_min_instance_vcpu_s",
            "billing",
        ),
        "azure": ("request", "gb_s", "always_ready_baseline_gb_s", "billing", "instance_memory_mb"),
    }
    for cloud, fields in required.items():
        entry = clouds.get(cloud)
        if not isinstance(entry, dict):
            raise PriceError(f"price table: no clouds.{cloud}")
        missing = [f for f in ("source", "as_of", *fields) if f not in entry]
        if missing:
            raise PriceError(f"price table: clouds.{cloud} lacks {', '.join(missing)}")
    return table


@dataclass(frozen=True)
class Usage:
    """What one application used in the simulation, in the units clouds bill."""

    memory_mb: float
    requests: int
    durations_s: Any  # numpy array of execution times
    busy_s: float  # instance time with at least one request running
    concurrency: int
    reactive_starts: int
    cold_start_s: float
    warm_idle_s: float  # instance time neither running nor loading for a request: kept or pre-warmed
    billed_s: Mapping[str, float] | None = None
    """Per cloud, execution seconds as that cloud bills them (see :func:`billed_seconds`); where
    given, it replaces the rule applied to ``durations_s`` and ``busy_s``."""


def _billed(durations_s: Any, billing: Mapping[str, Any]) -> float:
    import numpy as np

    step = billing.get("granularity_ms", 1) / 1000.0
    minimum = billing.get("minimum_ms", 0) / 1000.0
    return float(np.maximum(np.ceil(np.asarray(durations_s) / step - 1e-9) * step, minimum).sum())


def _tier(tiers: list[float], memory_mb: float) -> int:
    for i, tier in enumerate(tiers):
        if tier >= memory_mb:
            return i
    return len(tiers) - 1


def cost(usage: Usage, table: dict[str, Any], architecture: str | None = None) -> dict[str, dict[str, float]]:
    """Cost per cloud of one application's day, split into requests, execution (with the loading
    of reactive cold starts where the cloud bills it) and warm capacity (idle instance time bought
    as provisioned concurrency, minimum instances or always-ready instances)."""
    clouds = table["clouds"]
    out: dict[str, dict[str, float]] = {}

    aws = clouds["aws"]
    rates = aws["architectures"][architecture or aws["default_architecture"]]
    limits = aws.get("memory_mb", {"min": 128, "max": 10240})
    gb = min(max(math.ceil(usage.memory_mb), limits["min"]), limits["max"]) / 1024.0
    init = usage.reactive_starts * usage.cold_start_s if aws["billing"].get("init_billed") else 0.0
    billed = usage.billed_s or {}
    executed = billed["aws"] if "aws" in billed else _billed(usage.durations_s, aws["billing"])
    out["aws"] = {
        "requests": usage.requests * rates["request"],
        "execution": (executed + init) * gb * rates["gb_s"],
        "warm": usage.warm_idle_s * gb * rates["provisioned_gb_s"],
    }

    gcp = clouds["gcp"]
    tier = _tier(gcp["memory_tiers_mb"], usage.memory_mb)
    gib, vcpu = gcp["memory_tiers_mb"][tier] / 1024.0, gcp["vcpu_per_tier"][tier]
    active = _billed(usage.durations_s, gcp["billing"]) if usage.concurrency == 1 else usage.busy_s
    active = billed.get("gcp", active)
    init = usage.reactive_starts * usage.cold_start_s if gcp["billing"].get("init_billed") else 0.0
    out["gcp"] = {
        "requests": usage.requests * gcp["request"],
        "execution": (active + init) * (gib * gcp["gib_s"] + vcpu * gcp["vcpu_s"]),
        "warm": usage.warm_idle_s
        * (gib * gcp["idle_min_instance_gib_s"] + vcpu * gcp["idle_min_instance_vcpu_s"]),
    }

    azure = clouds["azure"]
    sizes = azure["instance_memory_mb"]
    gb = sizes[_tier(sizes, usage.memory_mb)] / 1024.0
    active = _billed(usage.durations_s, azure["billing"]) if usage.concurrency == 1 else usage.busy_s
    active = billed.get("azure", active)
    init = usage.reactive_starts * usage.cold_start_s if azure["billing"].get("init_billed") else 0.0
    out["azure"] = {
        "requests": usage.requests * azure["request"],
        "execution": (active + init) * gb * azure["gb_s"],
        "warm": usage.warm_idle_s * gb * azure["always_ready_baseline_gb_s"],
    }
    return out


def billed_seconds(
    times_s: Sequence[float], durations_s: Sequence[float], billing: Mapping[str, Any], concurrency: int = 1
) -> tuple[float, int]:
    """Execution seconds a cloud bills for requests arriving at ``times_s`` (sorted) and running
    ``durations_s``, and how many instances served them.

    ``billing["unit"] == "request"`` (Lambda): each request alone, rounded up to ``granularity_ms``,
    at least ``minimum_ms``. ``"instance"`` (Cloud Run functions, Azure Flex Consumption): requests go
    to instances of ``concurrency`` slots as the simulator's pool sends them (an instance with a
    request running and a free slot first, then the idle instance freed last); an instance's
    *activity period* opens with an execution starting on it while it is not billed and lasts until
    its last overlapping execution ends, at least ``minimum_ms``, rounded up to ``granularity_ms``;
    an execution starting inside a period's billed time joins it. Each period is billed once, however
    many executions share it.
    """
    import heapq

    step = billing.get("granularity_ms", 1) / 1000.0
    minimum = billing.get("minimum_ms", 0) / 1000.0
    if billing.get("unit", "request") == "request":
        return _billed(durations_s, billing), 1 if len(durations_s) else 0

    def length(start: float, last_end: float) -> float:
        return float(max(minimum, math.ceil((last_end - start) / step - 1e-9) * step))

    cap = max(1, int(concurrency))
    # an instance: [running end times (heap), period start, last end in the period]
    instances: list[list[Any]] = []
    idle: list[int] = []  # instances with nothing running, the last freed at the end
    partial: set[int] = set()  # instances with a request running and a free slot
    total = 0.0
    for t, d in zip(times_s, durations_s, strict=True):
        t, end = float(t), float(t) + float(d)
        for k in list(partial) + [k for k in range(len(instances)) if len(instances[k][0]) == cap]:
            running = instances[k][0]
            while running and running[0] <= t:
                heapq.heappop(running)
            partial.discard(k)
            if not running:
                idle.append(k)
            elif len(running) < cap:
                partial.add(k)
        if partial:
            k = max(partial, key=lambda j: len(instances[j][0]))
        elif idle:
            k = idle.pop()
        else:
            instances.append([[], t, t])
            k = len(instances) - 1
            instances[k][1] = None
        inst = instances[k]
        if inst[1] is None or t >= inst[1] + length(inst[1], inst[2]):
            if inst[1] is not None:
                total += length(inst[1], inst[2])
            inst[1], inst[2] = t, end
        else:
            inst[2] = max(inst[2], end)
        heapq.heappush(inst[0], end)
        partial.discard(k)
        if len(inst[0]) < cap:
            partial.add(k)
    total += sum(length(inst[1], inst[2]) for inst in instances if inst[1] is not None)
    return total, len(instances)


def traffic_cost(
    times_s: Sequence[float] | Any,  # or a numpy array
    durations_s: Sequence[float] | Any,
    table: dict[str, Any],
    *,
    memory_mb: float,
    architecture: str = "x86_64",
    concurrency: Mapping[str, int] | None = None,
    cold_start_s: float = 1.0,
    keep_alive_s: float = 600.0,
) -> dict[str, dict[str, float]]:
    """What requests arriving at ``times_s`` (sorted, seconds) and running ``durations_s`` cost on
    each cloud: the simulator's instance pool (a fixed keep-alive, as the platforms keep an idle
    instance; cold starts load for ``cold_start_s``, billed where the cloud bills it) and each
    cloud's billing unit (:func:`billed_seconds`), through :func:`cost`. ``concurrency``: requests one
    instance serves at once on ``gcp`` and ``azure`` (Lambda is always 1; default 1). Free tiers and
    platform keep-alive cost nothing here. ``{cloud: {requests, execution, total, billed_s,
    instances, cold_starts}}`` in USD and seconds; clouds without ``architecture`` are left out."""
    import numpy as np

    from litefaas.simulate.engine import run_app
    from litefaas.simulate.policies import Context, FixedKeepAlive

    times = [float(t) for t in times_s]
    durations = [float(d) for d in durations_s]
    horizon = (times[-1] + max(durations)) if times else 0.0
    levels = {"aws": 1, **{c: max(1, int((concurrency or {}).get(c, 1))) for c in ("gcp", "azure")}}
    offered = {
        cloud
        for cloud in CLOUDS
        if architecture in (table["clouds"][cloud].get("architectures", {}) if cloud == "aws" else {"x86_64"})
    }
    runs: dict[int, Any] = {}
    for level in {levels[cloud] for cloud in offered}:
        policy = FixedKeepAlive(keep_alive_s, "platform keep-alive").for_app(
            None,  # type: ignore[arg-type]  # a fixed keep-alive needs no workload
            Context(cold_start_s, level, horizon),
        )
        runs[level] = run_app(times, durations, policy, cold_start_s, level, horizon)
    out: dict[str, dict[str, float]] = {}
    for cloud in CLOUDS:
        if cloud not in offered:
            continue
        entry = table["clouds"][cloud]
        level = levels[cloud]
        run = runs[level]
        billed, instances = billed_seconds(times, durations, entry["billing"], level)
        usage = Usage(
            memory_mb=memory_mb,
            requests=len(times),
            durations_s=np.asarray(durations),
            busy_s=run.busy_s,
            concurrency=level,
            reactive_starts=run.reactive_starts,
            cold_start_s=cold_start_s,
            warm_idle_s=0.0,
            billed_s={cloud: billed},
        )
        parts = cost(usage, table, architecture if cloud == "aws" else None)[cloud]
        out[cloud] = {
            "requests": parts["requests"],
            "execution": parts["execution"],
            "total": parts["requests"] + parts["execution"],
            "billed_s": billed,
            "instances": instances,
            "cold_starts": run.reactive_starts,
            "concurrency": level,
        }
    return out


MONTH_S = 30 * 24 * 3600
WARM_CAPACITY = {
    "aws": "provisioned concurrency 1",
    "gcp": "min instances 1 (idle rate)",
    "azure": "always ready 1 (baseline)",
}
"""What each cloud calls an instance kept initialized with no request on it."""


def warm_instance_month(table: dict[str, Any], memory_mb: float) -> dict[str, float]:
    """USD a month for one instance kept warm and idle (no request), per cloud and architecture
    (``aws/x86_64``, ``aws/arm64``, ``gcp/x86_64``, ``azure/x86_64``): it is billed even unused."""
    idle = Usage(memory_mb, 0, [], 0.0, 1, 0, 0.0, float(MONTH_S))
    out = {}
    for architecture in ("x86_64", "arm64"):
        out[f"aws/{architecture}"] = cost(idle, table, architecture)["aws"]["warm"]
    costs = cost(idle, table)
    out["gcp/x86_64"] = costs["gcp"]["warm"]
    out["azure/x86_64"] = costs["azure"]["warm"]
    return out
