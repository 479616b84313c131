"""Keep-alive, pre-warm and scaling policies: what the clouds do, what the research proposes, and ours."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from litefaas.errors import ToolError
from litefaas.simulate.engine import AppPolicy, Decision
from litefaas.simulate.workload import AppWorkload

POLICY_HELP = "fixed-10m, fixed-20m (any fixed-<n>s|m|h), provisioned-<n>, histogram, kpa, litefaas"
DEFAULT_POLICIES = ("fixed-10m", "fixed-20m", "provisioned-1", "histogram", "kpa", "litefaas")


class PolicyError(ToolError, ValueError):
    """An unknown policy name."""


@dataclass(frozen=True)
class Context:
    cold_start_s: float
    concurrency: int
    horizon_s: float


class Policy:
    """A named policy; ``for_app`` gives the per-application decision maker the engine calls."""

    name: str = ""

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        raise NotImplementedError


class _Static:
    """Keep every idle instance for a fixed time; optionally ``pinned`` instances always there."""

    schedule: list[tuple[float, int]] = []  # noqa: RUF012
    tracks_levels = False

    def __init__(self, keep_alive_s: float, pinned: int = 0) -> None:
        self.keep_alive_s: float | None = keep_alive_s
        self.pinned = pinned

    def on_idle(self, t: float, running: int) -> Decision | float:
        return t + (self.keep_alive_s or 0.0)

    def on_arrival(self, t: float, running: int) -> None:
        return None


class FixedKeepAlive(Policy):
    """AWS Lambda (about 10 minutes) and Azure Functions Consumption (20 minutes): keep an idle
    instance for a fixed time after its last request."""

    def __init__(self, seconds: float, name: str) -> None:
        self.seconds = seconds
        self.name = name

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return _Static(self.seconds)


class Provisioned(Policy):
    """``n`` instances always ready for each application (Lambda provisioned concurrency, Cloud Run
    min instances, Azure always ready); requests beyond them go to on-demand instances kept
    ``overflow_keep_alive_s`` after use."""

    def __init__(self, n: int, overflow_keep_alive_s: float = 600.0) -> None:
        self.n = n
        self.overflow_keep_alive_s = overflow_keep_alive_s
        self.name = f"provisioned-{n}"

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return _Static(self.overflow_keep_alive_s, pinned=self.n)


@dataclass(frozen=True)
class HistogramSettings:
    """The hybrid histogram policy's parameters (Shahrad et al., ATC 2020, section 4.2).

    The histogram is representative with at least ``min_idle_times`` idle times in range and a
    coefficient of variation of its bin counts of at least ``cv_threshold``. The count is needed
    because the CV alone does not catch a young histogram: ``n`` idle times in ``n`` different bins of
    240 have a CV near ``sqrt(240 / n - 1)``, at least 2 up to 48 of them; 20 = 100 / ``head_pct`` is
    the fewest for which the 5th percentile is not simply the shortest idle time seen. Until then the
    policy falls back to a fixed keep-alive, ``fallback_keep_alive_s``: 10 minutes, the platform's
    (``fixed-10m``), so that the histogram changes nothing until it has learned the pattern. The paper
    falls back to the histogram's range (4 hours), a conservative choice for a platform whose apps have
    long histories; on a one-day trace every application starts the day with an empty histogram, and
    4 hours after each of its first busy periods is a start-up cost that long-lived histograms do not
    pay (``fallback_keep_alive_s=range_s`` and ``min_idle_times=0`` give the paper's reading)."""

    range_s: float = 4 * 3600.0
    bin_s: float = 60.0
    head_pct: float = 5.0
    tail_pct: float = 99.0
    margin: float = 0.10
    cv_threshold: float = 2.0
    min_idle_times: int = 20
    oob_threshold: float = 0.5
    forecast_margin: float = 0.15
    fallback_keep_alive_s: float = 600.0
    scale_out_keep_alive_s: float = 600.0


class HistogramApp:
    """Idle times of one application (from the end of its last running request to its next arrival)
    in ``bin_s`` bins over ``range_s``; longer ones are out of bounds (OOB)."""

    pinned = 0
    keep_alive_s: float | None = None
    schedule: list[tuple[float, int]] = []  # noqa: RUF012
    tracks_levels = True

    def __init__(self, settings: HistogramSettings, concurrency: int = 1) -> None:
        self.s = settings
        self.concurrency = concurrency
        self.peak = 0
        self.n_bins = round(settings.range_s / settings.bin_s)
        self.bins = [0] * self.n_bins
        self.total = 0
        self.sum_squares = 0
        self.oob: list[float] = []
        self.idle_since: float | None = None
        self.cached: tuple[float, float] | None = None

    def on_arrival(self, t: float, running: int) -> None:
        if running > self.peak:
            self.peak = running
        if self.idle_since is None:
            return
        self.record(t - self.idle_since)
        self.idle_since = None

    def record(self, idle_s: float) -> None:
        b = int(idle_s // self.s.bin_s)
        if b < self.n_bins:
            self.sum_squares += 2 * self.bins[b] + 1
            self.bins[b] += 1
            self.total += 1
        else:
            self.oob.append(idle_s)
        self.cached = None

    def cv(self) -> float:
        if not self.total:
            return 0.0
        mean = self.total / self.n_bins
        variance = max(0.0, (self.sum_squares - self.n_bins * mean * mean) / (self.n_bins - 1))
        return math.sqrt(variance) / mean

    def percentile_bin(self, pct: float) -> int:
        need = pct / 100.0 * self.total
        seen = 0
        for b, count in enumerate(self.bins):
            seen += count
            if count and seen >= need:
                return b
        return self.n_bins - 1

    def windows(self) -> tuple[float, float]:
        """(pre-warm window, end of the keep-alive window), both from the moment the app went idle."""
        if self.cached is None:
            s = self.s
            n_oob = len(self.oob)
            if n_oob and n_oob / (n_oob + self.total) >= s.oob_threshold:
                forecast = sum(self.oob) / n_oob
                self.cached = forecast * (1 - s.forecast_margin), forecast * (1 + s.forecast_margin)
            elif self.total < s.min_idle_times or self.cv() < s.cv_threshold:
                self.cached = 0.0, s.fallback_keep_alive_s
            else:
                head = self.percentile_bin(s.head_pct)
                tail = self.percentile_bin(s.tail_pct)
                self.cached = head * s.bin_s * (1 - s.margin), (tail + 1) * s.bin_s * (1 + s.margin)
        return self.cached

    def on_idle(self, t: float, running: int) -> Decision | float:
        if running:
            return t + self.s.scale_out_keep_alive_s
        prewarm, end = self.windows()
        self.idle_since = t
        pool, self.peak = -(-max(1, self.peak) // self.concurrency), 0
        if prewarm > 0:
            return Decision(
                t,
                t + prewarm,
                t + end,
                prewarm_count=pool,
                unload_at=t,
                renew_s=self.s.scale_out_keep_alive_s,
            )
        return Decision(t + end, unload_at=t + end)


class Histogram(Policy):
    """The hybrid histogram policy of Shahrad et al. ("Serverless in the Wild", ATC 2020), per
    application (HashApp). The app's idle times (from the end of its last running request to its next
    arrival) go into 1-minute bins over 4 hours. When the histogram is representative (at least 20 idle
    times and a coefficient of variation of the bin counts >= 2) the app is unloaded when it goes idle
    and pre-warmed at the 5th percentile (minus 10 %), then kept to the 99th (plus 10 %), both measured
    from the moment it went idle; with the head in the first minute it is simply kept to the 99th. When
    it is not (including before any idle time), it falls back to a fixed 10-minute keep-alive (see
    :class:`HistogramSettings`). When at least half the idle times are out of range, the next one is
    forecast (the paper fits ARIMA; with a day of data this uses the mean of the out-of-range idle
    times) and the app is pre-warmed at 85 % of it and kept to 115 %.

    The paper models one instance per app; here an app is its pool of instances. An instance that
    goes idle while others still run (started for concurrent requests, which the paper does not
    cover) keeps the platform's 10 minutes. When the app goes idle, its windows apply to the pool:
    unloading it evicts every idle instance; a pre-warm loads as many instances as its last busy
    period took, and once a request comes they are kept 10 minutes more, so the pool is not lost
    while that busy period is still arriving; at the end of a keep-alive window every idle instance
    goes."""

    name = "histogram"

    def __init__(self, settings: HistogramSettings | None = None) -> None:
        self.settings = settings or HistogramSettings()

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return HistogramApp(self.settings, context.concurrency)


@dataclass(frozen=True)
class KpaSettings:
    """Knative Pod Autoscaler defaults (config-autoscaler)."""

    target_utilization: float = 0.7
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    tick_s: float = 2.0
    scale_to_zero_grace_s: float = 30.0


class _KpaApp:
    pinned = 0
    keep_alive_s: float | None = None
    tracks_levels = False

    def __init__(self, schedule: list[tuple[float, int]], tick_s: float) -> None:
        self.schedule = schedule
        self.tick_s = tick_s

    def on_idle(self, t: float, running: int) -> Decision | float:
        return (t // self.tick_s + 1) * self.tick_s

    def on_arrival(self, t: float, running: int) -> None:
        return None


def concurrency_integral(starts: np.ndarray, ends: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``t -> ∫₀ᵗ (requests in flight) dt`` from the requests' intervals ``[start, end)``."""
    a, b = np.sort(starts), np.sort(ends)
    sum_a = np.concatenate(([0.0], np.cumsum(a)))
    sum_b = np.concatenate(([0.0], np.cumsum(b)))

    def integral(at: np.ndarray) -> np.ndarray:
        na, nb = np.searchsorted(a, at, "right"), np.searchsorted(b, at, "right")
        return (at * na - sum_a[na]) - (at * nb - sum_b[nb])

    return integral


def kpa_schedule(
    starts: np.ndarray, ends: np.ndarray, horizon_s: float, per_instance: float, s: KpaSettings
) -> list[tuple[float, int]]:
    """The instance count the autoscaler asks for, at each tick where it changes."""
    if len(starts) == 0:
        return []
    integral = concurrency_integral(starts, ends)
    ticks = np.arange(s.tick_s, horizon_s + s.tick_s / 2, s.tick_s)
    now = integral(ticks)
    target = per_instance * s.target_utilization
    stable_load = (now - integral(ticks - s.stable_window_s)) / s.stable_window_s / target
    active = np.flatnonzero(stable_load > 1e-9)
    panic_load = (now[active] - integral(ticks[active] - s.panic_window_s)) / s.panic_window_s / target
    wanted_stable = np.ceil(stable_load[active] - 1e-9).astype(int).tolist()
    wanted_panic = np.ceil(panic_load - 1e-9).astype(int).tolist()
    out: list[tuple[float, int]] = []
    current, previous, panic_since = 0, -2, -math.inf
    for k, stable, panic in zip(active.tolist(), wanted_stable, wanted_panic, strict=True):
        t = (k + 1) * s.tick_s
        if k != previous + 1 and current:
            current = _fall_to_zero(out, (previous + 2) * s.tick_s, t, current, s.scale_to_zero_grace_s)
            panic_since = -math.inf
        if panic >= s.panic_threshold * (current or 1):
            panic_since = t
        elif t - panic_since > s.stable_window_s:
            panic_since = -math.inf
        desired = (panic if panic > current else current) if panic_since > -math.inf else stable
        if desired != current:
            out.append((t, desired))
            current = desired
        previous = k
    if current and previous + 1 < len(ticks):
        _fall_to_zero(out, (previous + 2) * s.tick_s, math.inf, current, s.scale_to_zero_grace_s)
    return out


def _fall_to_zero(out: list[tuple[float, int]], t0: float, until: float, current: int, grace_s: float) -> int:
    """Demand is gone at ``t0``: one instance stays for the grace period, then none."""
    if current > 1:
        out.append((t0, 1))
    if t0 + grace_s < until:
        out.append((t0 + grace_s, 0))
        return 0
    return 1


class Kpa(Policy):
    """A Knative-style concurrency autoscaler: every 2 s it asks for ceil(average concurrency over the
    60 s stable window / (0.7 × per-instance concurrency)) instances, or, in panic mode (the 6 s window
    asks for twice the current count), the highest panic-window figure, never scaling down until 60 s
    without panic; at zero demand it keeps one instance for the 30 s grace period, then none."""

    name = "kpa"

    def __init__(self, settings: KpaSettings | None = None) -> None:
        self.settings = settings or KpaSettings()

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        ends = workload.times + workload.durations_s
        schedule = kpa_schedule(workload.times, ends, context.horizon_s, context.concurrency, self.settings)
        return _KpaApp(schedule, self.settings.tick_s)
