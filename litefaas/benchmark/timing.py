"""Timing that shared, noisy machines can stand: forms measured in turn, medians."""

from __future__ import annotations

import statistics
import time
from typing import Any


def alternating_medians(call: Any, forms: list[str], repeats: int, warm: int = 3) -> dict[str, float]:
    """Median seconds of ``call(form)`` per form, the forms taken in turn, each round starting one
    further on, so that the machine's noise falls on all of them alike."""
    samples: dict[str, list[float]] = {form: [] for form in forms}
    for index in range(warm + repeats):
        for form in forms[index % len(forms) :] + forms[: index % len(forms)]:
            started = time.perf_counter()
            call(form)
            if index >= warm:
                samples[form].append(time.perf_counter() - started)
    return {form: statistics.median(values) for form, values in samples.items()}
