"""The price table (``litefaas/data/prices.json``) seen as per-request billing rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def billing_rates(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{cloud: {arch: {request_usd, gb_s_usd, billing_granularity_ms, min_billed_ms, source}}}``."""
    try:
        from litefaas.simulate.prices import load_prices
    except ImportError:
        return {}
    return dict(load_prices(path))
