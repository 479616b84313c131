"""What the reliability and fuzz tests did, added up for ``make reliability``'s closing summary.

Tests call :func:`record`; the figures are kept for the session and, when
``LITEFAAS_RELIABILITY_REPORT`` names a file, appended to it as JSON lines.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

REPORT_VARIABLE = "LITEFAAS_RELIABILITY_REPORT"
TOTALS = ("requests sent", "faults injected", "bad inputs tried", "requests lost")

_records: list[dict[str, Any]] = []


def record(test: str, **figures: Any) -> None:
    """Keep one test's figures (counts under the names of :data:`TOTALS`, and any detail)."""
    entry = {"test": test, **figures}
    _records.append(entry)
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(entry) + "\n")


def records() -> list[dict[str, Any]]:
    return list(_records)


def totals(entries: list[dict[str, Any]]) -> dict[str, int]:
    summed: dict[str, int] = defaultdict(int)
    for entry in entries:
        for name in TOTALS:
            summed[name] += int(entry.get(name, 0))
    return {name: summed[name] for name in TOTALS}


def summary_lines(entries: list[dict[str, Any]]) -> list[str]:
    """One line per test, then the totals."""
    lines = []
    for entry in entries:
        details = ", ".join(f"{name}={value}" for name, value in entry.items() if name != "test")
        lines.append(f"  {entry['test']}: {details}")
    lines.append("  " + "; ".join(f"{name}: {value:,}" for name, value in totals(entries).items()))
    return lines
