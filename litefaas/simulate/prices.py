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


def _billed(durations_s: Any, billing: dict[str, Any]) -> float:
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
    out["aws"] = {
        "requests": usage.requests * rates["request"],
        "execution": (_billed(usage.durations_s, aws["billing"]) + init) * gb * rates["gb_s"],
        "warm": usage.warm_idle_s * gb * rates["provisioned_gb_s"],
    }

    gcp = clouds["gcp"]
    tier = _tier(gcp["memory_tiers_mb"], usage.memory_mb)
    gib, vcpu = gcp["memory_tiers_mb"][tier] / 1024.0, gcp["vcpu_per_tier"][tier]
    active = _billed(usage.durations_s, gcp["billing"]) if usage.concurrency == 1 else usage.busy_s
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
    init = usage.reactive_starts * usage.cold_start_s if azure["billing"].get("init_billed") else 0.0
    out["azure"] = {
        "requests": usage.requests * azure["request"],
        "execution": (active + init) * gb * azure["gb_s"],
        "warm": usage.warm_idle_s * gb * azure["always_ready_baseline_gb_s"],
    }
    return out
