"""Cost per million requests from a measured duration, with the simulator's price table and billing rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from litefaas.simulate.prices import Usage, cost, load_prices


def per_million(duration_ms: float, memory_mb: int, prices: Path | None = None) -> dict[str, dict[str, Any]]:
    """``{cloud: {arch: {usd_per_million, duration_ms, memory_mb, source, as_of}}}`` for requests that
    each run ``duration_ms`` at ``memory_mb`` (warm instances, no provisioned capacity)."""
    table = load_prices(prices)
    seconds = duration_ms / 1000
    usage = Usage(
        memory_mb=memory_mb,
        requests=1,
        durations_s=np.asarray([seconds]),
        busy_s=seconds,
        concurrency=1,
        reactive_starts=0,
        cold_start_s=0.0,
        warm_idle_s=0.0,
    )
    result: dict[str, dict[str, Any]] = {}
    for architecture in table["clouds"]["aws"]["architectures"]:
        for cloud, parts in cost(usage, table, architecture).items():
            entry = table["clouds"][cloud]
            if cloud != "aws" and architecture != entry.get("default_architecture", "x86_64"):
                continue
            result.setdefault(cloud, {})[architecture] = {
                "usd_per_million": round(sum(parts.values()) * 1_000_000, 6),
                "duration_ms": round(duration_ms, 3),
                "memory_mb": memory_mb,
                "source": entry["source"],
                "as_of": entry["as_of"],
            }
    return result
