"""Cost per million requests from measured durations, a memory size and the price table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ARCHES = ("x86_64", "arm64")


def billed_ms(duration_ms: float, granularity_ms: float, minimum_ms: float) -> float:
    """Duration as the cloud bills it: rounded up to its granularity, never under its minimum."""
    return max(minimum_ms, math.ceil(duration_ms / granularity_ms) * granularity_ms)


def cost_per_million(duration_ms: float, memory_mb: int, price: Mapping[str, Any]) -> dict[str, Any]:
    """USD for one million requests of ``duration_ms`` each at ``memory_mb``, with ``price``'s rates."""
    billed = billed_ms(duration_ms, float(price["billing_granularity_ms"]), float(price["min_billed_ms"]))
    gb_s = billed / 1000 * memory_mb / 1024
    compute = gb_s * float(price["gb_s_usd"]) + billed / 1000 * float(price.get("vcpu_s_usd", 0.0)) * float(
        price.get("vcpus", 0.0)
    )
    per_request = compute + float(price["request_usd"])
    return {
        "duration_ms": round(duration_ms, 3),
        "billed_ms": billed,
        "memory_mb": memory_mb,
        "usd_per_million": round(per_request * 1_000_000, 6),
    }
