"""Each local host's requests, errors, latency and cold starts, read from the request lines its
function wrote (whatever the cloud's format: litefaas's JSON, EMF or Cloud Logging's), not counted
a second time; ``litefaas serve`` shows them on Ctrl-T (SIGINFO where the system has it, SIGUSR1)
and when it stops."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class HostMetrics:
    """What one host's request lines say."""

    requests: int = 0
    errors: int = 0
    faults: int = 0
    cold_starts: int = 0
    durations_us: list[int] = field(default_factory=list)

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile of the request durations in ms (None without requests)."""
        if not self.durations_us:
            return None
        if len(self.durations_us) == 1:
            return self.durations_us[0] / 1000
        cuts = statistics.quantiles(self.durations_us, n=100, method="inclusive")
        return cuts[round(q * 100) - 1] / 1000


def request_record(line: str) -> dict[str, object] | None:
    """The request record on a line of a host's output (a host may prefix it), or None."""
    start = line.find("{")
    if start < 0 or '"event":"request"' not in line:
        return None
    try:
        record = json.loads(line[start:])
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("event") == "request" else None


def read_metrics(lines: Iterable[str]) -> HostMetrics:
    """Sum the request lines among ``lines``."""
    metrics = HostMetrics()
    for line in lines:
        record = request_record(line)
        if record is None:
            continue
        metrics.requests += 1
        status = record.get("status")
        if isinstance(status, int) and status >= 400:
            metrics.errors += 1
            metrics.faults += status >= 500
        metrics.cold_starts += record.get("cold_start") is True
        duration = record.get("duration_us")
        if isinstance(duration, int):
            metrics.durations_us.append(duration)
    return metrics


def metrics_table(hosts: dict[str, HostMetrics]) -> Table:
    """One row per host: requests, errors (of which 5xx), p50 and p99 in ms, cold starts."""
    table = Table(title="requests the functions logged")
    for column in ("host", "requests", "errors", "5xx", "p50 ms", "p99 ms", "cold starts"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for name, metrics in hosts.items():
        p50, p99 = metrics.quantile_ms(0.5), metrics.quantile_ms(0.99)
        table.add_row(
            name,
            str(metrics.requests),
            str(metrics.errors),
            str(metrics.faults),
            "-" if p50 is None else f"{p50:.3f}",
            "-" if p99 is None else f"{p99:.3f}",
            str(metrics.cold_starts),
        )
    return table
