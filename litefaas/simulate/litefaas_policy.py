"""``litefaas``: the hybrid histogram policy made pool-aware, with cost-optimal keep-alive windows.

The hybrid histogram policy decides when an *application* is loaded, from the idle times between
its busy periods, at fixed percentiles (pre-warm at the 5th, keep alive to the 99th) of 1-minute
bins; the instances started to serve concurrent requests are outside its model (``histogram`` keeps
them for the platform's fixed 10 minutes). ``litefaas`` keeps the paper's *pre-warm* decisions and
changes the rest:

1. **Idle times per concurrency level.** With last-in-first-out reuse, the instance freed when the
   application drops from ``k`` to ``k - 1`` running requests is the one taken when it next reaches
   ``k``: the level-``k`` idle time is that gap (level 1 is the paper's application idle time). Each
   level keeps its idle times in geometric bins (0.25 s to 4 h, exact sums per bin, plus a prior of
   one idle time spread evenly over the bins).
2. **Cost-optimal keep-alive.** An idle instance of level ``k`` is kept for the bin edge ``w`` that
   minimises ``memory_gb · E[min(IT, w)] + penalty · P(IT >= w)``: the memory it holds against the
   cold starts it saves, one exchange rate for every application. Scale-out levels with fewer than
   ``min_samples`` idle times keep the 10 minutes of ``histogram``; level 1 uses the rule from its
   first idle time, where the paper keeps the application for 4 hours until its histogram is
   representative.
3. **Pool pre-warm.** Where the paper unloads the application and pre-warms it (a representative
   histogram whose head is past the first minute, or a forecast of out-of-range idle times),
   ``litefaas`` unloads every idle instance and pre-warms as many as the last busy period needed.

``penalty_gb_s`` = 2000 GB-s per cold start was chosen on ``azure2019_10fn`` and ``azure2019_100fn``
only (seed 0), as the value whose smallest gain over ``histogram`` (cold starts or wasted memory, on
either trace) is largest; ``azure2019_500fn`` is kept for evaluation.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from litefaas.simulate.engine import AppPolicy, Decision
from litefaas.simulate.policies import Context, HistogramApp, HistogramSettings, Policy
from litefaas.simulate.workload import AppWorkload


@dataclass(frozen=True)
class LitefaasSettings:
    penalty_gb_s: float = 2000.0
    fallback_keep_alive_s: float = 600.0
    min_samples: int = 20
    prior_weight: float = 1.0
    refresh_growth: float = 0.1
    pool_prewarm: bool = True


class IdleTimes:
    """Idle times of one concurrency level in geometric bins with exact sums; the best keep-alive,
    recomputed when the sample has grown by ``refresh_growth``."""

    def __init__(self, edges: list[float]) -> None:
        self.edges = edges
        self.counts = [0] * len(edges)
        self.sums = [0.0] * len(edges)
        self.n = 0
        self.refresh_at = -1.0
        self.keep_alive = 0.0

    def best_keep_alive(self, memory_gb: float, s: LitefaasSettings) -> float:
        """The bin edge ``w`` minimising ``memory_gb · E[min(IT, w)] + penalty · P(IT >= w)``."""
        if self.n <= self.refresh_at:
            return self.keep_alive
        self.refresh_at = self.n * (1 + s.refresh_growth)
        edges = np.asarray(self.edges)
        prior = s.prior_weight / len(edges)
        mids = np.concatenate(([edges[1] / 2], np.sqrt(edges[1:-1] * edges[2:]), [edges[-1]]))
        counts = np.asarray(self.counts) + prior
        sums = np.asarray(self.sums) + prior * mids
        below = np.concatenate(([0.0], np.cumsum(counts)))[:-1]
        below_sum = np.concatenate(([0.0], np.cumsum(sums)))[:-1]
        beyond = self.n + s.prior_weight - below
        cost = memory_gb * (below_sum + beyond * edges) + s.penalty_gb_s * beyond
        self.keep_alive = float(edges[int(np.argmin(cost))])
        return self.keep_alive


def bin_edges(first_s: float = 0.25, range_s: float = 4 * 3600.0, n: int = 80) -> list[float]:
    """0, then ``n`` geometric idle-time bin edges from ``first_s`` to ``range_s``."""
    return [0.0, *np.geomspace(first_s, range_s, n).tolist()]


class _LitefaasApp(HistogramApp):
    tracks_levels = True

    def __init__(self, settings: LitefaasSettings, edges: list[float], memory_gb: float) -> None:
        super().__init__(HistogramSettings(scale_out_keep_alive_s=settings.fallback_keep_alive_s))
        self.ls = settings
        self.edges = edges
        self.memory_gb = memory_gb
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
            idle = t - freed
            level = self.levels[k]
            b = bisect.bisect_right(level.edges, idle) - 1
            level.counts[b] += 1
            level.sums[b] += idle
            level.n += 1
            freed_at[k] = -1.0
        if running > self.peak:
            self.peak = running
        if running == 1:
            super().on_arrival(t, running)

    def on_idle(self, t: float, running: int) -> Decision | float:
        self.freed_at[running] = t
        if running:
            level = self.levels[running]
            if level.n <= level.refresh_at:
                return t + level.keep_alive
            if level.n < self.ls.min_samples:
                return t + self.ls.fallback_keep_alive_s
            return t + level.best_keep_alive(self.memory_gb, self.ls)
        peak, self.peak = max(1, self.peak), 0
        decision = super().on_idle(t, running)
        if not isinstance(decision, Decision):
            level = self.levels[0]
            if level.n <= level.refresh_at:
                return t + level.keep_alive
            return t + level.best_keep_alive(self.memory_gb, self.ls)
        if self.ls.pool_prewarm:
            return decision._replace(prewarm_count=peak, unload_all=True)
        return decision


class Litefaas(Policy):
    """Our policy: see :mod:`litefaas.simulate.litefaas_policy`."""

    name = "litefaas"

    def __init__(self, settings: LitefaasSettings | None = None) -> None:
        self.settings = settings or LitefaasSettings()
        self.edges = bin_edges()

    def for_app(self, workload: AppWorkload, context: Context) -> AppPolicy:
        return _LitefaasApp(self.settings, self.edges, workload.memory_mb / 1024.0)
