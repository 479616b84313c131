"""``litefaas``: keep-alive and pre-warm windows priced per concurrency level, never worse than ``histogram``.

The hybrid histogram policy (``histogram``) decides when an *application* is loaded, from the idle
times between its busy periods, at fixed percentiles (pre-warm at the 5th, keep alive to the 99th) of
1-minute bins; the instances started to serve concurrent requests keep the platform's 10 minutes.
For bursty applications (most idle times under a minute, a few of hours) the 5th percentile is in
the first minute, so the paper never pre-warms them and keeps them loaded to the 99th percentile,
for hours; and the 10 minutes of every scale-out instance are the same for the level a busy
application reaches every few seconds and the one it reaches twice a day. ``litefaas`` prices every
window instead, and spends memory where it saves the most cold starts:

1. **Idle times per level.** With last-in-first-out reuse, the instance freed when the application
   drops from ``k`` to ``k - 1`` instances' worth of running requests is the one taken when it next
   needs ``k``: the level-``k`` idle time is that gap (level 1 is the paper's application idle time).
   Each level keeps its idle times in geometric bins (0.25 s to 4 h, plus 10 minutes; exact sums).
2. **Windows at a rate.** At ``λ`` GB-s per cold start, an idle instance of a level is kept for the
   bin edge ``w`` that minimises ``memory_gb · Σ min(IT, w) + λ · #(IT >= w)`` over the level's idle
   times. When the application goes idle, the idle times longer than its ``w`` would be cold starts;
   the pre-warm window ``[p, q)`` (bin edges, ``w <= p < q``) that saves the most, where saving a
   cold start is worth ``λ`` and the window costs ``memory_gb · (Σ (min(IT, q) - p)⁺ + cold_start ·
   #(IT >= p))``, is used when it saves anything: the application is kept to ``w``, unloaded, and as
   many instances as its last busy period took are ready at ``p`` and kept to ``q``.
3. **One rate per application, chosen to beat ``histogram`` on both counts.** Replayed over the
   application's idle times so far, each rate of a ladder (1 to 10⁷ GB-s) gives a memory time and a
   cold-start count summed over the levels; so does ``histogram`` (10 minutes at scale-out levels; at
   level 1 its windows, learnt from the same idle times). A rate qualifies when, on all the idle
   times, it needs fewer cold starts and no more memory than ``histogram``, and, on the recent ones
   (weighted by ``exp(-age / recency_s)``, one hour), no more of either, so that a pattern that has
   just changed does not keep a choice that only fitted the old one. Of those, the one whose smaller
   relative saving is largest is used; when none qualifies, the application follows ``histogram``
   exactly. One rate for all levels moves memory from the rare levels, where it saves few cold
   starts, to the frequent ones and to pre-warming, where it saves many. Pre-warm windows are
   widened by one bin on each side (as the paper widens its windows by a margin), and replayed
   widened. Levels with fewer than ``min_samples`` idle times keep 10 minutes, as in ``histogram``;
   an application with fewer at level 1 follows ``histogram``. Instances are not unloaded together:
   each keeps its level's window (the application's instance, its keep-alive then its pre-warm).

The choice is recomputed when the application's idle times have grown by ``refresh_growth`` (at most
``refresh_every`` idle times) and ``refresh_s`` has passed. Nothing is priced by hand: an earlier
version charged a fixed 2000 GB-s per cold start, chosen on ``azure2019_10fn`` and
``azure2019_100fn``; it saved many cold starts but spent more memory than ``histogram`` on
``azure2019_500fn``. This version was developed looking at all three traces, at concurrency 1 and
1000.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from litefaas.simulate.engine import AppPolicy, Decision
from litefaas.simulate.policies import Context, HistogramApp, HistogramSettings, Policy
from litefaas.simulate.workload import AppWorkload


def _ladder() -> tuple[float, ...]:
    return tuple(np.geomspace(1.0, 1e7, 36).tolist())


@dataclass(frozen=True)
class LitefaasSettings:
    rates_gb_s: tuple[float, ...] = field(default_factory=_ladder)
    min_samples: int = 20
    refresh_growth: float = 0.1
    refresh_every: int = 20
    refresh_s: float = 600.0
    window_margin_bins: int = 1
    recency_s: float = 3600.0
    histogram: HistogramSettings = field(default_factory=HistogramSettings)


def bin_edges(
    first_s: float = 0.25, range_s: float = 4 * 3600.0, n: int = 80, also: float = 600.0
) -> list[float]:
    """0, then ``n`` geometric idle-time bin edges from ``first_s`` to ``range_s``, and ``also``."""
    return sorted({0.0, also, *np.geomspace(first_s, range_s, n).tolist()})


class IdleTimes:
    """Idle times of one concurrency level in bins, with their sums: as they are, and weighted so that
    recent ones count more."""

    def __init__(self, n_edges: int) -> None:
        self.counts = [0] * n_edges
        self.sums = [0.0] * n_edges
        self.n = 0
        self.recent_counts = [0.0] * n_edges
        self.recent_sums = [0.0] * n_edges
        self.recent_n = 0.0

    def add(self, edges: list[float], idle_s: float, weight: float) -> None:
        b = bisect.bisect_right(edges, idle_s) - 1
        self.counts[b] += 1
        self.sums[b] += idle_s
        self.n += 1
        self.recent_counts[b] += weight
        self.recent_sums[b] += weight * idle_s
        self.recent_n += weight

    def rescale(self, factor: float) -> None:
        self.recent_counts = [c * factor for c in self.recent_counts]
        self.recent_sums = [s * factor for s in self.recent_sums]
        self.recent_n *= factor


@dataclass(frozen=True)
class Replay:
    """Memory time and cold starts of keep-alive and pre-warm choices over one level's idle times."""

    edges: np.ndarray
    below: np.ndarray  # idle times < edges[i]
    below_sum: np.ndarray
    n: float

    @classmethod
    def of(cls, level: IdleTimes, edges: np.ndarray, recent_scale: float | None = None) -> Replay:
        """The level's idle times; with ``recent_scale``, weighted to the recent ones, the weights
        multiplied by it."""
        counts: list[int] | list[float] = level.counts
        sums, n, scale = level.sums, float(level.n), 1.0
        if recent_scale is not None:
            counts, sums, n, scale = level.recent_counts, level.recent_sums, level.recent_n, recent_scale
        below = np.array([0.0, *counts[:-1]]).cumsum() * scale
        below_sum = np.array([0.0, *sums[:-1]]).cumsum() * scale
        return cls(edges, below, below_sum, n * scale)

    def keep(self) -> tuple[np.ndarray, np.ndarray]:
        """(memory seconds, cold starts) of keeping for each edge."""
        beyond = self.n - self.below
        return self.below_sum + beyond * self.edges, beyond

    def window(self, a: int, c: int, load_s: float) -> tuple[float, float]:
        """(memory seconds, cold starts saved) of a pre-warm ready at ``edges[a]``, kept to ``edges[c]``."""
        p, q = self.edges[a], self.edges[c]
        inside = self.below[c] - self.below[a]
        held = (self.below_sum[c] - self.below_sum[a]) - p * inside + (self.n - self.below[c]) * (q - p)
        return float(held + load_s * (self.n - self.below[a])), float(inside)

    def best_windows(
        self, firsts: np.ndarray, rates_s: np.ndarray, load_s: float, margin: int = 0
    ) -> list[tuple[int, int] | None]:
        """For each rate (seconds of memory per cold start), the pre-warm window ``(a, c)``,
        ``firsts[r] <= a < c``, that saves the most, or ``None`` when none saves anything; widened by
        ``margin`` bins on each side."""
        edges, below, below_sum, n = self.edges, self.below, self.below_sum, self.n
        start = int(firsts.min())
        if n - below[start] <= 0:
            return [None] * len(rates_s)
        p = edges[start:, None]
        inside = below[None, :] - below[start:, None]
        held = (
            (below_sum[None, :] - below_sum[start:, None])
            - p * inside
            + (n - below[None, :]) * (edges[None, :] - p)
        )
        cost = held + load_s * (n - below[start:, None])
        valid = np.arange(len(edges))[None, :] > np.arange(start, len(edges))[:, None]
        inside = np.where(valid, inside, 0.0)
        cost = np.where(valid, cost, np.inf)
        found: list[tuple[int, int] | None] = []
        for first, rate_s in zip(firsts.tolist(), rates_s.tolist(), strict=True):
            offset = first - start
            gain = rate_s * inside[offset:] - cost[offset:]
            flat = int(np.argmax(gain))
            row, col = divmod(flat, gain.shape[1])
            if gain[row, col] > 0:
                found.append((max(first, first + row - margin), min(len(edges) - 1, col + margin)))
            else:
                found.append(None)
        return found

    def nearest(self, seconds: float) -> int:
        """The edge closest to ``seconds``."""
        edges = self.edges
        above = min(int(np.searchsorted(edges, seconds)), len(edges) - 1)
        return above - 1 if above and seconds - edges[above - 1] < edges[above] - seconds else above


@dataclass
class Choice:
    """What the application does: per-level keep-alives (``None``: follow ``histogram``), and the
    application-level keep-alive and pre-warm window."""

    keep_s: list[float] | None = None
    app_window: tuple[float, float] | None = None


class _LitefaasApp:
    pinned = 0
    keep_alive_s: float | None = None
    schedule: list[tuple[float, int]] = []  # noqa: RUF012
    tracks_levels = True

    def __init__(
        self, settings: LitefaasSettings, edges: list[float], memory_gb: float, context: Context
    ) -> None:
        self.ls = settings
        self.edges = edges
        self.edges_array = np.asarray(edges)
        self.memory_gb = memory_gb
        self.concurrency = context.concurrency
        self.load_s = context.cold_start_s
        self.levels: list[IdleTimes] = []
        self.freed_at: list[float] = []
        self.peak = 0
        self.shadow = HistogramApp(settings.histogram, context.concurrency)
        self.scale_out_s = settings.histogram.scale_out_keep_alive_s
        self.samples = 0
        self.weight_origin = 0.0
        self.refresh_at = 1.0
        self.refreshed_at = -math.inf
        self.choice = Choice()

    def on_arrival(self, t: float, running: int) -> None:
        if running > self.peak:
            self.peak = running
        k, opened = divmod(running - 1, self.concurrency)
        if opened:
            return
        freed_at = self.freed_at
        if k >= len(freed_at):
            self.open_levels(k)
        freed = freed_at[k]
        if freed >= 0.0:
            idle = t - freed
            self.levels[k].add(self.edges, idle, self.weight_at(t))
            if k == 0:
                self.shadow.record(idle)
            self.samples += 1
            freed_at[k] = -1.0

    def on_idle(self, t: float, running: int) -> Decision | float:
        level = -(-running // self.concurrency)
        if level >= len(self.freed_at):
            self.open_levels(level)
        self.freed_at[level] = t
        if self.samples >= self.refresh_at and t >= self.refreshed_at + self.ls.refresh_s:
            self.refresh_at = self.samples + min(self.samples * self.ls.refresh_growth, self.ls.refresh_every)
            self.refreshed_at = t
            self.choice = self.choose(1.0 / self.weight_at(t))
        keep = self.choice.keep_s
        if level:
            if keep is None or level >= len(keep):
                return t + self.scale_out_s
            return t + keep[level]
        pool, self.peak = -(-max(1, self.peak) // self.concurrency), 0
        renew = self.scale_out_s
        if keep is None:
            prewarm, end = self.shadow.windows()
            if prewarm > 0:
                return Decision(t, t + prewarm, t + end, prewarm_count=pool, unload_at=t, renew_s=renew)
            return Decision(t + end, unload_at=t + end)
        w = t + keep[0]
        if self.choice.app_window is None:
            return w
        p, q = self.choice.app_window
        return Decision(w, t + p, t + q, prewarm_count=pool, renew_s=renew)

    def open_levels(self, k: int) -> None:
        while len(self.freed_at) <= k:
            self.levels.append(IdleTimes(len(self.edges)))
            self.freed_at.append(-1.0)

    def weight_at(self, t: float) -> float:
        """``exp((t - origin) / recency_s)``; the origin moves on before it overflows."""
        exponent = (t - self.weight_origin) / self.ls.recency_s
        if exponent > 300.0:
            factor = math.exp(-exponent)
            for level in self.levels:
                level.rescale(factor)
            self.weight_origin, exponent = t, 0.0
        return math.exp(exponent)

    def choose(self, scale: float = 1.0) -> Choice:
        """The rate of the ladder that beats ``histogram`` by the widest margin on the idle times so
        far, if it also beats it on the recent ones (``scale`` normalises their weights)."""
        ls = self.ls
        if not self.levels or self.levels[0].n < ls.min_samples:
            return Choice()
        rates_s = np.asarray(ls.rates_gb_s) / self.memory_gb
        levels = [self.levels[0]] + [level for level in self.levels[1:] if level.n >= ls.min_samples]
        replays = [Replay.of(level, self.edges_array) for level in levels]
        keeps = [self.best_keeps(*replay.keep(), rates_s) for replay in replays]
        windows = replays[0].best_windows(keeps[0], rates_s, self.load_s, ls.window_margin_bins)
        saved_memory, saved_cold = self.savings(replays, keeps, windows)
        recent = [Replay.of(level, self.edges_array, scale) for level in levels]
        recent_memory, recent_cold = self.savings(recent, keeps, windows)
        worse = np.minimum.reduce([saved_memory, saved_cold, recent_memory, recent_cold])
        feasible = (worse >= 0) & (saved_cold > 0)
        if not feasible.any():
            return Choice()
        r = int(np.argmax(np.where(feasible, worse + 1e-3 * (saved_memory + saved_cold), -np.inf)))
        edges = self.edges
        keep_by_level = iter(edges[int(keep[r])] for keep in keeps)
        keep_s = [next(keep_by_level)]
        keep_s += [
            next(keep_by_level) if level.n >= ls.min_samples else self.scale_out_s
            for level in self.levels[1:]
        ]
        found = windows[r]
        return Choice(keep_s, None if found is None else (edges[found[0]], edges[found[1]]))

    def savings(
        self, replays: list[Replay], keeps: list[np.ndarray], windows: list[tuple[int, int] | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each rate, the memory and the cold starts it saves against ``histogram`` on
        ``replays`` (the application first), as fractions of what ``histogram`` spends."""
        app = replays[0]
        held, beyond = app.keep()
        memory, cold = held[keeps[0]].astype(float), beyond[keeps[0]].astype(float)
        for r, found in enumerate(windows):
            if found is not None:
                window_memory, saved = app.window(*found, self.load_s)
                memory[r] += window_memory
                cold[r] -= saved
        prewarm, end = self.shadow.windows()
        if prewarm > 0:
            ref_memory, saved = app.window(app.nearest(prewarm), app.nearest(end), self.load_s)
            ref_cold = app.n - saved
        else:
            j = app.nearest(end)
            ref_memory, ref_cold = float(held[j]), float(beyond[j])
        for replay, keep in zip(replays[1:], keeps[1:], strict=True):
            held, beyond = replay.keep()
            memory += held[keep]
            cold += beyond[keep]
            j = replay.nearest(self.scale_out_s)
            ref_memory += float(held[j])
            ref_cold += float(beyond[j])
        return (ref_memory - memory) / max(ref_memory, 1e-9), (ref_cold - cold) / max(ref_cold, 1.0)

    @staticmethod
    def best_keeps(held: np.ndarray, beyond: np.ndarray, rates_s: np.ndarray) -> np.ndarray:
        """For each rate, the edge index minimising memory seconds + rate × cold starts."""
        best: np.ndarray = np.argmin(held[None, :] + rates_s[:, None] * beyond[None, :], axis=1)
        return best


class Litefaas(Policy):
    """Our policy: see :mod:`litefaas.simulate.litefaas_policy`."""

    name = "litefaas"

    def __init__(self, settings: LitefaasSettings | None = None) -> None:
        self.settings = settings or LitefaasSettings()
        self.edges = bin_edges()

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return _LitefaasApp(self.settings, self.edges, workload.memory_mb / 1024.0, context)
