"""``litefaas``: cost-optimal keep-alive and pre-warm windows, per concurrency level of the pool.

The hybrid histogram policy (``histogram``) decides when an *application* is loaded, from the idle
times between its busy periods, at fixed percentiles (pre-warm at the 5th, keep alive to the 99th) of
1-minute bins; the instances started to serve concurrent requests are outside its model (it keeps
them for the platform's fixed 10 minutes). For bursty applications (most idle times under a minute,
a few of tens of minutes or hours) the 5th percentile is in the first minute, so the paper never
pre-warms them and keeps them loaded to the 99th percentile. ``litefaas`` prices every window instead:

1. **Idle times per concurrency level.** With last-in-first-out reuse, the instance freed when the
   application drops from ``k`` to ``k - 1`` running requests is the one taken when it next reaches
   ``k``: the level-``k`` idle time is that gap (level 1 is the paper's application idle time). Each
   level keeps its idle times in geometric bins (0.25 s to 4 h, exact sums per bin, plus a prior of
   one idle time spread evenly over the bins).
2. **Cost-optimal keep-alive.** An idle instance of level ``k`` is kept for the bin edge ``w`` that
   minimises ``memory_gb · E[min(IT, w)] + penalty · P(IT >= w)``: the memory it holds against the
   cold starts it saves, one exchange rate for every application. Scale-out levels with fewer than
   ``min_samples`` idle times keep the 10 minutes of ``histogram``; level 1 uses the rule from its
   first idle time.
3. **Pre-warm beyond the keep-alive.** When the application goes idle, the idle times longer than
   ``w`` would be cold starts; a pre-warm window ``[p, q)`` (bin edges, ``w <= p < q``) saves those in
   it for ``memory_gb · (E[(min(IT, q) - p)⁺] + load · P(IT >= p))``. The window that saves the most
   (cold starts × penalty minus that memory) is taken when it saves anything: the application is kept
   to ``w``, then as many instances as its last busy period took (idle ones still there count) are
   ready at ``p`` and kept to ``q``.

``penalty_gb_s`` = 2000 GB-s per cold start was chosen on ``azure2019_10fn`` and ``azure2019_100fn``
only (seed 0), for the smallest gain over ``histogram`` (cold starts or wasted memory, on 10fn at
concurrency 1 and on 100fn at concurrency 1 and 1000): 8.4 %, against 9.7 % for 1875, the best of
1000-4000, and under 3 % from 2250 up; on 10fn at concurrency 1000 (57 cold starts for ``histogram``)
no value wins on both. ``azure2019_500fn`` is kept for evaluation.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from litefaas.simulate.engine import AppPolicy, Decision
from litefaas.simulate.policies import Context, Policy
from litefaas.simulate.workload import AppWorkload


@dataclass(frozen=True)
class LitefaasSettings:
    penalty_gb_s: float = 2000.0
    fallback_keep_alive_s: float = 600.0
    min_samples: int = 20
    prior_weight: float = 1.0
    refresh_growth: float = 0.1
    prewarm: bool = True
    pool_prewarm: bool = True


class IdleTimes:
    """Idle times of one concurrency level in geometric bins with exact sums; the best keep-alive
    (and pre-warm window), recomputed when the sample has grown by ``refresh_growth``."""

    def __init__(self, edges: list[float]) -> None:
        self.edges = edges
        self.counts = [0] * len(edges)
        self.sums = [0.0] * len(edges)
        self.n = 0
        self.refresh_at = -1.0
        self.keep_alive = 0.0
        self.window = (math.inf, 0.0)

    def add(self, idle_s: float) -> None:
        b = bisect.bisect_right(self.edges, idle_s) - 1
        self.counts[b] += 1
        self.sums[b] += idle_s
        self.n += 1

    def best_keep_alive(self, memory_gb: float, s: LitefaasSettings, load_s: float | None = None) -> float:
        """The bin edge ``w`` minimising ``memory_gb · E[min(IT, w)] + penalty · P(IT >= w)``; with
        ``load_s``, also the pre-warm :attr:`window` ``(p, q)`` past it (``p`` infinite: none)."""
        if self.n <= self.refresh_at:
            return self.keep_alive
        self.refresh_at = self.n * (1 + s.refresh_growth)
        edges = np.asarray(self.edges)
        prior = s.prior_weight / len(edges)
        mids = np.concatenate(([edges[1] / 2], np.sqrt(edges[1:-1] * edges[2:]), [edges[-1]]))
        counts = np.asarray(self.counts) + prior
        sums = np.asarray(self.sums) + prior * mids
        total = self.n + s.prior_weight
        below = np.concatenate(([0.0], np.cumsum(counts)))[:-1]  # idle times < edges[i]
        below_sum = np.concatenate(([0.0], np.cumsum(sums)))[:-1]
        beyond = total - below
        cost = memory_gb * (below_sum + beyond * edges) + s.penalty_gb_s * beyond
        j = int(np.argmin(cost))
        self.keep_alive = float(edges[j])
        if load_s is not None:
            self.window = _prewarm_window(
                edges, below, below_sum, total, j, memory_gb, s.penalty_gb_s, load_s
            )
        return self.keep_alive


def _prewarm_window(
    edges: np.ndarray,
    below: np.ndarray,
    below_sum: np.ndarray,
    total: float,
    first: int,
    memory_gb: float,
    penalty_gb_s: float,
    load_s: float,
) -> tuple[float, float]:
    """The pre-warm window ``[edges[a], edges[c])``, ``first <= a < c``, that saves the most: cold
    starts in it × penalty, minus the memory of loading at ``p`` and holding to the call or ``q``."""
    a = np.arange(first, len(edges))[:, None]
    p, q = edges[a], edges[None, :]
    inside = below[None, :] - below[a]
    held = (below_sum[None, :] - below_sum[a]) - p * inside + (total - below[None, :]) * (q - p)
    gain = penalty_gb_s * inside - memory_gb * (held + load_s * (total - below[a]))
    gain = np.where(np.arange(len(edges))[None, :] > a, gain, -np.inf)
    row, col = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if gain[row, col] <= 0:
        return math.inf, 0.0
    return float(edges[first + row]), float(edges[col])


def bin_edges(first_s: float = 0.25, range_s: float = 4 * 3600.0, n: int = 80) -> list[float]:
    """0, then ``n`` geometric idle-time bin edges from ``first_s`` to ``range_s``."""
    return [0.0, *np.geomspace(first_s, range_s, n).tolist()]


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
        self.memory_gb = memory_gb
        self.concurrency = context.concurrency
        self.load_s = context.cold_start_s if settings.prewarm else None
        self.levels: list[IdleTimes] = []
        self.freed_at: list[float] = []
        self.peak = 0

    def on_arrival(self, t: float, running: int) -> None:
        k = running - 1
        freed_at = self.freed_at
        if k == len(freed_at):
            self.levels.append(IdleTimes(self.edges))
            freed_at.append(-1.0)
        freed = freed_at[k]
        if freed >= 0.0:
            self.levels[k].add(t - freed)
            freed_at[k] = -1.0
        if running > self.peak:
            self.peak = running

    def on_idle(self, t: float, running: int) -> Decision | float:
        self.freed_at[running] = t
        level = self.levels[running]
        if running:
            if level.n <= level.refresh_at:
                return t + level.keep_alive
            if level.n < self.ls.min_samples:
                return t + self.ls.fallback_keep_alive_s
            return t + level.best_keep_alive(self.memory_gb, self.ls)
        peak, self.peak = max(1, self.peak), 0
        keep = level.best_keep_alive(self.memory_gb, self.ls, self.load_s)
        at, until = level.window
        if at == math.inf:
            return t + keep
        # as many instances as its requests in flight took
        count = -(-peak // self.concurrency) if self.ls.pool_prewarm else 1
        return Decision(t + keep, t + at, t + until, prewarm_count=count)


class Litefaas(Policy):
    """Our policy: see :mod:`litefaas.simulate.litefaas_policy`."""

    name = "litefaas"

    def __init__(self, settings: LitefaasSettings | None = None) -> None:
        self.settings = settings or LitefaasSettings()
        self.edges = bin_edges()

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return _LitefaasApp(self.settings, self.edges, workload.memory_mb / 1024.0, context)
