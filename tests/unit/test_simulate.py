"""The trace-driven simulator: hand-computed cold starts of every policy, loaders, outputs, settings."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from litefaas.cli.simulate import register
from litefaas.paths import trace_search_path
from litefaas.simulate import catalog, policies, recommend, traces, workload
from litefaas.simulate.engine import run_app
from litefaas.simulate.prices import PriceError, load_prices
from litefaas.simulate.runner import Options, simulate

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "traces"
APP = "a" * 64
FN = "f" * 64
OWNER = "o" * 64
PRICES = load_prices()


def write_2019(
    folder: Path, counts: dict[int, int], duration_ms: float = 1000.0, memory_mb: float = 1024.0
) -> Path:
    """A one-function day in the invitro layout: ``counts`` maps a 0-based minute to its calls."""
    minutes = [counts.get(m, 0) for m in range(1440)]
    inv = folder / "tiny_inv.csv"
    inv.write_text(
        "HashFunction,HashApp,HashOwner," + ",".join(f"minute_{m}" for m in range(1, 1441)) + "\n"
        f"{FN},{APP},{OWNER}," + ",".join(map(str, minutes)) + "\n"
    )
    pct = ",".join([str(duration_ms)] * 7)
    (folder / "tiny_run.csv").write_text(
        "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,"
        + ",".join(f"percentile_Average_{p}" for p in (0, 1, 25, 50, 75, 99, 100))
        + f"\n{FN},{APP},{OWNER},{sum(minutes)},{duration_ms},{duration_ms},{duration_ms},{pct}\n"
    )
    (folder / "tiny_mem.csv").write_text(
        "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1\n"
        f"{APP},{OWNER},10,{memory_mb},{memory_mb}\n"
    )
    return inv


def run_policies(inv: Path, names: list[str], concurrency: int = 1, cold_start_s: float = 1.0) -> dict:
    trace = traces.load_trace(inv)
    apps = workload.build(trace, seed=0, rule="even")
    return simulate(apps, catalog.parse(names), trace.horizon_s, Options(cold_start_s, concurrency), PRICES)


# Trace A: one call in minutes 0, 5, 20, 45 and 50 ("even": at second 30 of the minute), i.e. at
# 30, 330, 1230, 2730 and 3030 s; each runs 1 s; a cold start takes 1 s; 1 GB per instance.
#   fixed-10m: 30 cold (idle 32-632); 330 warm (idle 331-931); 1230 cold; 2730 cold; 3030 warm: 3.
#   fixed-20m: 30 cold; 330 warm (idle 331-1531); 1230 warm (idle 1231-2431); 2730 cold; 3030 warm: 2.
#   provisioned-1: the instance is there all day: 0.
#   histogram: at most 4 idle times, fewer than the 20 of a representative histogram, so the
#     10-minute fallback all day: the same instances as fixed-10m: 3.
#   kpa: every call finds nothing (one instance kept for the 60 s window and the 30 s grace): 5.
#   litefaas: fewer than 20 idle times, so it follows histogram exactly: 3.
TRACE_A = {0: 1, 5: 1, 20: 1, 45: 1, 50: 1}
EXPECTED_A = {"fixed-10m": 3, "fixed-20m": 2, "provisioned-1": 0, "histogram": 3, "kpa": 5, "litefaas": 3}


@pytest.fixture(scope="module")
def trace_a(tmp_path_factory) -> dict:
    inv = write_2019(tmp_path_factory.mktemp("a"), TRACE_A)
    return run_policies(inv, list(EXPECTED_A))


@pytest.mark.parametrize(("policy", "cold"), EXPECTED_A.items())
def test_hand_computed_cold_starts(trace_a, policy, cold):
    """On trace A every policy has the cold starts computed by hand above."""
    assert trace_a["policies"][policy]["cold_starts"] == cold


def test_hand_computed_memory(trace_a):
    """On trace A wasted memory, utilization, cold-start share and latency percentiles match the hand computation."""
    # fixed-10m: instances [30, 931], [1230, 1832], [2730, 3631] minus 5 s of execution.
    assert trace_a["policies"]["fixed-10m"]["wasted_memory_gb_s"] == pytest.approx(2399.0)
    # provisioned-1: one instance all day, 5 s busy.
    assert trace_a["policies"]["provisioned-1"]["wasted_memory_gb_s"] == pytest.approx(86395.0)
    # histogram: the 10-minute fallback, as fixed-10m; litefaas follows histogram.
    assert trace_a["policies"]["histogram"]["wasted_memory_gb_s"] == pytest.approx(2399.0)
    assert trace_a["policies"]["litefaas"]["wasted_memory_gb_s"] == pytest.approx(2399.0)
    m = trace_a["policies"]["fixed-10m"]
    assert m["utilization"] == pytest.approx(5 / 2404)
    assert m["cold_start_pct"] == pytest.approx(60.0)
    assert m["p50_ms"] == pytest.approx(2000.0)  # 3 of 5 calls wait 1 s for a cold start
    assert m["p99_ms"] == pytest.approx(2000.0)


def run_policy_objects(inv: Path, chosen: list[policies.Policy], concurrency: int = 1) -> dict:
    trace = traces.load_trace(inv)
    apps = workload.build(trace, seed=0, rule="even")
    return simulate(apps, chosen, trace.horizon_s, Options(1.0, concurrency), PRICES)["policies"]


def test_histogram_paper_fallback(tmp_path):
    """With the paper's 4-hour fallback and no idle-time minimum, the histogram policy matches the hand computation."""
    # The paper's literal fallback (the histogram's range, 4 h) and no minimum of idle times, on
    # trace A: no idle time yet at 32, so kept 4 h: 330 warm (idle time 298 s, bin 4). Then head =
    # tail = bin 4: unload at 331, pre-warm at 331 + 216 = 547, keep to 331 + 330 = 661; 1230 cold
    # (bins 4, 14: pre-warm at 1448, keep to 2222); 2730 cold (bins 4, 14, 24: pre-warm at 2948, keep
    # to 4382); 3030 warm on the pre-warmed instance: 3 cold starts. Instances [30, 331] + [547, 661]
    # + [1230, 1232] + [1448, 2222] + [2730, 2732] + [2948, 3031] + the last pre-warm [3247, 4681]
    # = 2710 s, 5 s busy.
    settings = policies.HistogramSettings(fallback_keep_alive_s=4 * 3600.0, min_idle_times=0)
    result = run_policy_objects(write_2019(tmp_path, TRACE_A), [policies.Histogram(settings)])
    assert result["histogram"]["cold_starts"] == 3
    assert result["histogram"]["wasted_memory_gb_s"] == pytest.approx(2705.0)


def test_histogram_learns_after_twenty_idle_times(tmp_path):
    """After twenty idle times the histogram policy pre-warms, wasting less memory than fixed-10m."""
    # 23 calls, one every 5 minutes (at 30 + 300 k s), 1 s each: idle times of 299 s (bin 4).
    #   fixed-10m: one instance [30, 6631 + 600]: 7201 s, 23 s busy; 1 cold start.
    #   histogram: calls 1-20 warm under the 10-minute fallback; the 20th idle time arrives at 6030,
    #   so at 6031 head = tail = bin 4: unload, pre-warm at 6031 + 216 = 6247, keep to 6031 + 330 =
    #   6361; 6330 warm on it; the same from 6331 and 6631 (the last pre-warm [6847, 6961] unused).
    #   Instances [30, 6031] + [6247, 6331] + [6547, 6631] + [6847, 6961] = 6283 s; 1 cold start.
    inv = write_2019(tmp_path, {5 * k: 1 for k in range(23)})
    result = run_policy_objects(inv, catalog.parse(["fixed-10m", "histogram"]))
    assert result["fixed-10m"]["cold_starts"] == result["histogram"]["cold_starts"] == 1
    assert result["fixed-10m"]["wasted_memory_gb_s"] == pytest.approx(7178.0)
    assert result["histogram"]["wasted_memory_gb_s"] == pytest.approx(6260.0)
    assert result["histogram"]["prewarmed_instances"] == 3


def test_prewarm_takes_an_instance_still_idle():
    """A pre-warm when an instance is still idle reuses that instance instead of loading one."""

    # At concurrency 1, calls at 0 (10 s) and 1 (2 s) take instances A [0, ...] and B [1, ...]. B goes
    # idle at 4 with A still running: kept 600 s (to 604). A goes idle at 11: unloaded, pre-warm at
    # 100 to 700. At 100 B is still idle: it is the pre-warmed instance (kept to 700), none is loaded;
    # the call at 650 takes it warm. Instances [0, 11] + [1, 651] = 661 s.
    class PrewarmAfterBurst:
        pinned, keep_alive_s, schedule, tracks_levels = 0, None, [], False

        def on_idle(self, t, running):
            from litefaas.simulate.engine import Decision

            if running:
                return t + 600.0
            return Decision(t, 100.0, 700.0) if t < 100 else t

        def on_arrival(self, t, running):
            return None

    run = run_app([0.0, 1.0, 650.0], [10.0, 2.0, 1.0], PrewarmAfterBurst(), 1.0, 1, 3600.0)
    assert run.cold.tolist() == [True, True, False]
    assert run.prewarm_starts == 0 and run.reactive_starts == 2
    assert run.instance_s == pytest.approx(661.0)


def test_keep_alive_then_prewarm():
    """A keep-alive followed by a pre-warm gives the hand-computed cold starts, evictions and instance time."""

    # Each idle instance is kept 50 s, then one is ready 300 s after the app went idle, to 400 s.
    #   0 cold (A [0, ...], runs 1-2): kept to 52, pre-warm at 302. 30 warm on A (cancels it), runs
    #   30-31: kept to 81, pre-warm at 331 to 431. 200 cold (A evicted at 81): B [200, ...] runs
    #   201-202, kept to 252, pre-warm at 502 to 602. 550 warm on that pre-warm P [502, ...], runs
    #   550-551: kept to 601, pre-warm at 851 to 951 (P gone at 601): Q [851, 951], unused.
    #   Instances [0, 81] + [200, 252] + [502, 601] + [851, 951] = 332 s.
    class KeepThenPrewarm:
        pinned, keep_alive_s, schedule, tracks_levels = 0, None, [], False

        def on_idle(self, t, running):
            from litefaas.simulate.engine import Decision

            return Decision(t + 50.0, t + 300.0, t + 400.0)

        def on_arrival(self, t, running):
            return None

    run = run_app([0.0, 30.0, 200.0, 550.0], [1.0] * 4, KeepThenPrewarm(), 1.0, 1, 3600.0)
    assert run.cold.tolist() == [True, False, True, False]
    assert run.prewarm_starts == 2 and run.reactive_starts == 2
    assert sorted(run.evicted.tolist()) == [81.0, 252.0, 601.0, 951.0]
    assert run.instance_s == pytest.approx(332.0)


class _Scripted:
    """A policy for the engine tests: scale-out instances kept 600 s, the app as ``on_app_idle`` says."""

    pinned, keep_alive_s, schedule, tracks_levels = 0, None, [], False

    def __init__(self, on_app_idle):
        self.on_app_idle = on_app_idle

    def on_idle(self, t, running):
        return t + 600.0 if running else self.on_app_idle(t)

    def on_arrival(self, t, running):
        return None


def test_unload_evicts_every_idle_instance():
    """Unloading the app evicts every idle instance, including scale-out ones kept longer."""
    # Calls at 0 (10 s) and 1 (2 s) start A and B (ready 1 s later); B goes idle at 4 (kept to 604),
    # A at 11: the app is unloaded at 61, B with it. The call at 100 is cold (C), idle at 102,
    # unloaded at 152. Instances [0, 61] + [1, 61] + [100, 152] = 173 s.
    from litefaas.simulate.engine import Decision

    policy = _Scripted(lambda t: Decision(t + 1000.0, unload_at=t + 50.0))
    run = run_app([0.0, 1.0, 100.0], [10.0, 2.0, 1.0], policy, 1.0, 1, 3600.0)
    assert run.cold.tolist() == [True, True, True]
    assert sorted(run.evicted.tolist()) == [61.0, 61.0, 152.0]
    assert run.instance_s == pytest.approx(173.0)


def test_a_call_cancels_the_unload():
    """A call before the unload time cancels the unload."""
    # Idle at 2 (after a 1 s cold start), unload due at 52; the call at 30 is warm and cancels it;
    # idle at 31, unloaded at 81.
    from litefaas.simulate.engine import Decision

    policy = _Scripted(lambda t: Decision(t + 1000.0, unload_at=t + 50.0))
    run = run_app([0.0, 30.0], [1.0, 1.0], policy, 1.0, 1, 3600.0)
    assert run.cold.tolist() == [True, False]
    assert run.instance_s == pytest.approx(81.0)


def test_unload_at_the_prewarm_keeps_the_instance():
    """When unload and pre-warm fall at the same time, the idle instance becomes the pre-warmed one."""
    # Idle at 2: kept to 12, unload at 12, pre-warm at 12 to 102: the pre-warm decides, so the idle
    # instance is the pre-warmed one and the call at 12.5 is warm (none is reloaded).
    from litefaas.simulate.engine import Decision

    policy = _Scripted(lambda t: Decision(t + 10.0, t + 10.0, t + 100.0, 1, unload_at=t + 10.0))
    run = run_app([0.0, 12.5], [1.0, 1.0], policy, 1.0, 1, 50.0)
    assert run.cold.tolist() == [True, False]
    assert run.prewarm_starts == 0 and run.instance_s == pytest.approx(50.0)


def test_prewarm_of_no_instance_keeps_none():
    """A pre-warm of zero instances extends nothing."""
    # Two calls at 0: A idle at 2 (B running, kept to 602), B idle at 3 (kept to 13, pre-warm of 0
    # instances at 8): nothing is extended. Instances [0, 602] + [0, 13] = 615 s.
    from litefaas.simulate.engine import Decision

    policy = _Scripted(lambda t: Decision(t + 10.0, t + 5.0, t + 1000.0, 0))
    run = run_app([0.0, 0.0], [1.0, 2.0], policy, 1.0, 1, 3600.0)
    assert run.instance_s == pytest.approx(615.0)


@pytest.mark.parametrize(
    ("renew_s", "cold", "instance_s"),
    [(600.0, [True, True, False, False, False], 2020.0), (0.0, [True, True, False, False, True], 1923.0)],
)
def test_prewarmed_pool_is_renewed_by_the_first_call(renew_s, cold, instance_s):
    """The first call on a pre-warmed pool renews the rest of the pool for renew_s; without renewal they expire."""
    # Calls at 0 and 0.5 (1 s, after a 1 s cold start) take A and B; A idle at 2 (kept to 602); B
    # idle at 2.5: unloaded with A, 2 instances pre-warmed at 102.5 (ready at 103.5) to 202.5. The
    # call at 150 is warm on P1 and renews P2 to 750; P1 idle at 151, kept to 1151. At 300 and 300.5
    # (10 s each) P1 and P2 are warm; P1 idle at 310 with P2 busy (kept to 910), P2 at 310.5 (to
    # 1310.5). Instances [0, 2.5] + [0.5, 2.5] + [102.5, 910] + [102.5, 1310.5] = 2020 s. Without
    # the renewal P2 is gone at 202.5 and 300.5 is cold: C [300.5, 1311.5]; 4.5 + 807.5 + 100 +
    # 1011 = 1923 s.
    from litefaas.simulate.engine import Decision

    def app_idle(t):
        if t < 10.0:
            return Decision(t, t + 100.0, t + 200.0, prewarm_count=2, unload_at=t, renew_s=renew_s)
        return t + 1000.0

    times, durations = [0.0, 0.5, 150.0, 300.0, 300.5], [1.0, 1.0, 1.0, 10.0, 10.0]
    run = run_app(times, durations, _Scripted(app_idle), 1.0, 1, 3600.0)
    assert run.cold.tolist() == cold
    assert run.prewarm_starts == 2
    assert run.instance_s == pytest.approx(instance_s)


def litefaas_app(concurrency: int = 1):
    from litefaas.simulate.litefaas_policy import Litefaas

    empty = workload.AppWorkload(APP, [], 1024.0, np.zeros(0), np.zeros(0), np.zeros(0))
    return Litefaas().for_app(empty, policies.Context(1.0, concurrency, 86400.0))


def histogram_app(concurrency: int = 1):
    empty = workload.AppWorkload(APP, [], 1024.0, np.zeros(0), np.zeros(0), np.zeros(0))
    return policies.Histogram().for_app(empty, policies.Context(1.0, concurrency, 86400.0))


def test_litefaas_follows_histogram_until_twenty_idle_times():
    """Before twenty idle times, litefaas makes the same idle decisions as histogram."""
    lite, hist = litefaas_app(), histogram_app()
    t = 0.0
    for _ in range(20):
        lite.on_arrival(t, 1)
        hist.on_arrival(t, 1)
        assert lite.on_idle(t + 1.0, 0) == hist.on_idle(t + 1.0, 0)
        t += 301.0


def test_litefaas_moves_memory_from_a_rare_level_to_a_prewarm():
    """Litefaas pre-warms instead of keeping a rare second instance: fewer cold starts and less instance time."""
    # 30 cycles: 2 calls at once, 149 more 10 s apart (1 s each), then 1490 s idle. Both fixed-10m
    # and histogram lose both instances every cycle: the second instance idles ~3000 s (it is kept
    # 600 s for nothing), and 1 idle time in 150 is long, so histogram's 99th percentile is in the
    # first minute (kept 66 s): 2 cold starts a cycle, 60. Once it has 20 idle times at the second
    # level, litefaas stops keeping that instance and spends the memory on pre-warming the app (one
    # instance, as its last busy period took) before each next cycle: one cold start a cycle fewer.
    from litefaas.simulate.litefaas_policy import Litefaas

    times: list[float] = []
    for cycle in range(30):
        start = cycle * (1490.0 + 1500.0)
        times += [start, start, *(start + 10.0 * k for k in range(1, 150))]
    durations = [1.0] * len(times)
    empty = workload.AppWorkload(APP, [], 1024.0, np.zeros(0), np.zeros(0), np.zeros(0))
    context = policies.Context(1.0, 1, times[-1] + 10.0)
    runs = {
        policy.name: run_app(times, durations, policy.for_app(empty, context), 1.0, 1, times[-1] + 10.0)
        for policy in (policies.FixedKeepAlive(600.0, "fixed-10m"), policies.Histogram(), Litefaas())
    }
    cold = {name: int(run.cold.sum()) for name, run in runs.items()}
    assert cold["fixed-10m"] == cold["histogram"] == 60
    assert cold["litefaas"] < 60
    assert runs["litefaas"].instance_s < runs["histogram"].instance_s < runs["fixed-10m"].instance_s


def test_litefaas_levels_count_instances_not_requests():
    """Litefaas keeps one level per instance, not per concurrent request."""
    # At concurrency 2, requests 1-2 share the first instance and 3-4 the second: two levels.
    app = litefaas_app(2)
    for running in range(1, 5):
        app.on_arrival(0.0, running)
    assert len(app.levels) == 2
    app.on_idle(5.0, 2)  # the second instance goes idle with 2 requests still running: level 1
    app.on_arrival(65.0, 3)
    assert app.levels[1].n == 1 and app.levels[1].sums[-1] == 0.0
    assert sum(app.levels[1].sums) == pytest.approx(60.0)


def test_histogram_prewarms_the_pool_of_the_last_busy_period():
    """A representative histogram pre-warms as many instances as the last busy period used."""
    # One call every 300 s (1 s each): with 20 or more idle times of 299 s the histogram is representative
    # (head = tail = bin 4). The last busy period takes 3 instances: when it ends, the app is
    # unloaded (its idle instances with it) and 3 instances are pre-warmed at 216 s, kept to 330 s;
    # once a call comes, the idle ones are kept 600 s more.
    from litefaas.simulate.engine import Decision

    app = histogram_app()
    t = 0.0
    for _ in range(21):
        app.on_arrival(t, 1)
        app.on_idle(t + 1.0, 0)
        t += 300.0
    for running in (1, 2, 3):
        app.on_arrival(t, running)
    assert app.on_idle(t + 1.0, 2) == t + 1.0 + 600.0
    assert app.on_idle(t + 1.0, 1) == t + 1.0 + 600.0
    end = t + 1.0
    assert app.on_idle(end, 0) == Decision(end, end + 216.0, end + 330.0, 3, unload_at=end, renew_s=600.0)


def test_kpa_schedule_panics_on_a_burst():
    """A burst puts KPA in panic mode and the schedule follows the hand-computed targets."""
    # 10 requests at t = 30 s running 10 s: at tick 32 the 6 s panic window asks for 5 instances
    # (20 request-seconds / 6 s / 0.7), at 34 for 10, at 36 for 15; panic holds until 60 s after the
    # last trigger (34), then the 60 s stable window asks for 1 (at 96: 40 / 60 / 0.7); demand leaves
    # the stable window at 100, and the last instance goes after the 30 s grace.
    starts = np.full(10, 30.0)
    schedule = policies.kpa_schedule(starts, starts + 10.0, 3600.0, 1, policies.KpaSettings())
    assert schedule == [(32.0, 5), (34.0, 10), (36.0, 15), (96.0, 1), (130.0, 0)]


def test_kpa_single_request_keeps_one_instance_for_window_and_grace():
    """One request keeps one KPA instance for the stable window plus the grace period."""
    schedule = policies.kpa_schedule(np.array([30.0]), np.array([31.0]), 3600.0, 1, policies.KpaSettings())
    assert schedule == [(32.0, 1), (122.0, 0)]


def test_per_instance_concurrency(tmp_path):
    """At concurrency 2, two overlapping calls share one instance and one cold start."""
    # Two calls in minute 0 at 15 s and 45 s, each running 60 s: one instance each at concurrency 1,
    # both on one instance at concurrency 2.
    inv = write_2019(tmp_path, {0: 2}, duration_ms=60000.0)
    assert run_policies(inv, ["fixed-10m"], 1)["policies"]["fixed-10m"]["cold_starts"] == 2
    two = run_policies(inv, ["fixed-10m"], 2)["policies"]["fixed-10m"]
    assert two["cold_starts"] == 1
    assert two["used_gb_s"] == pytest.approx(60.0)  # 2 x 60 s x 1 GB / 2


def test_loading_instance_is_a_shorter_cold_start():
    """A call arriving while a pre-warm is loading waits only for the rest of the load."""

    # A pre-warm at 100 s loading for 5 s; a request at 102 s waits 3 s.
    class PrewarmOnce:
        pinned, keep_alive_s, schedule, tracks_levels = 0, None, [], False

        def on_idle(self, t, running):
            from litefaas.simulate.engine import Decision

            return Decision(t, 100.0, 1000.0) if t < 100 else t

        def on_arrival(self, t, running):
            return None

    run = run_app([10.0, 102.0], [1.0, 1.0], PrewarmOnce(), 5.0, 1, 3600.0)
    assert run.cold.tolist() == [True, True]
    assert run.wait_s.tolist() == [5.0, 3.0]
    assert run.reactive_starts == 1 and run.prewarm_starts == 1


def test_arrival_rules():
    """'even' spreads a minute's calls evenly; 'uniform' is seeded, sorted and stays within each minute."""
    counts = np.array([2, 0, 1])
    assert workload.arrivals(counts, "even", np.random.default_rng(0)).tolist() == [15.0, 45.0, 150.0]
    first = workload.arrivals(counts, "uniform", np.random.default_rng(1))
    again = workload.arrivals(counts, "uniform", np.random.default_rng(1))
    assert first.tolist() == again.tolist()
    assert (np.diff(first) >= 0).all() and 0 <= first[0] < 60 and 120 <= first[2] < 180


def test_durations_follow_the_percentiles():
    """Sampled durations stay within the trace's bounds and follow its median."""
    rng = np.random.default_rng(0)
    values = workload.sample_durations_ms(20000, traces.PERCENTILES, (1, 2, 10, 20, 30, 100, 200), rng)
    assert values.min() >= 1 and values.max() <= 200
    assert np.percentile(values, 50) == pytest.approx(20, rel=0.05)


def test_loader_invitro_layout(fixtures_dir):
    """The invitro layout loads every function, its memory and percentiles, and a seeded sample is noted."""
    trace = traces.load_trace(fixtures_dir / "traces" / "azure2019_10fn_inv.csv")
    assert len(trace.functions) == 10 and trace.horizon_s == 86400.0
    assert sum(fn.invocations for fn in trace.functions) == 28432
    first = trace.functions[0]
    assert first.memory_mb == 1396.0
    assert first.duration_percentiles_ms == (18426.0, 18426.0, 18426.0, 18426.0, 18917.0, 18917.0, 18917.0)
    sample = traces.load_trace(fixtures_dir / "traces" / "azure2019_10fn_inv.csv", functions=3, seed=1)
    assert len(sample.functions) == 3 and any("sampled" in note for note in sample.notes)


def test_loader_original_2019_layout(tmp_path):
    """The original 2019 layout loads counts, percentiles and memory with no notes."""
    minutes = [0] * 1440
    minutes[10], minutes[11] = 3, 1
    (tmp_path / "invocations_per_function_md.anon.d01.csv").write_text(
        "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441)) + "\n"
        f"{OWNER},{APP},{FN},http," + ",".join(map(str, minutes)) + "\n"
    )
    (tmp_path / "function_durations_percentiles.anon.d01.csv").write_text(
        "HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,"
        "percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,"
        "percentile_Average_75,percentile_Average_99,percentile_Average_100\n"
        f"{OWNER},{APP},{FN},50,4,10,90,10,10,20,50,70,90,90\n"
    )
    (tmp_path / "app_memory_percentiles.anon.d01.csv").write_text(
        f"HashOwner,HashApp,SampleCount,AverageAllocatedMb\n{OWNER},{APP},5,300\n"
    )
    trace = traces.load_trace(tmp_path / "invocations_per_function_md.anon.d01.csv")
    (fn,) = trace.functions
    assert (fn.owner, fn.app, fn.function) == (OWNER, APP, FN)
    assert fn.invocations == 4 and fn.counts is not None and fn.counts[10] == 3
    assert fn.duration_percentiles_ms == (10.0, 10.0, 20.0, 50.0, 70.0, 90.0, 90.0)
    assert fn.memory_mb == 300.0 and not trace.notes


def test_loader_2021(fixtures_dir):
    """The 2021 layout loads per-call arrivals and durations, with default memory, into sorted app workloads."""
    trace = traces.load_trace(fixtures_dir / "traces" / "azure2021_200rows.csv", default_memory_mb=512)
    assert sum(fn.invocations for fn in trace.functions) == 199
    assert len({fn.app for fn in trace.functions}) == 13 and trace.horizon_s == 1261.0
    fn = next(f for f in trace.functions if f.function.startswith("e3cdb488"))
    assert fn.arrivals_s is not None and fn.durations_ms is not None
    assert fn.arrivals_s[0] == pytest.approx(0.0794909 - 0.078, abs=1e-6)
    assert fn.durations_ms[0] == pytest.approx(78.0)
    assert fn.memory_mb == 512
    apps = workload.build(trace)
    assert sum(len(a.times) for a in apps) == 199 and all((np.diff(a.times) >= 0).all() for a in apps)


def test_loader_errors(tmp_path):
    """An unknown layout or a missing trace is a TraceError that says so."""
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(traces.TraceError, match="neither"):
        traces.load_trace(bad)
    with pytest.raises(traces.TraceError, match="no trace"):
        traces.resolve("nothing_here", [tmp_path])


def test_missing_companions_are_noted(tmp_path):
    """Missing duration and memory files are noted and defaults used."""
    inv = write_2019(tmp_path, {0: 1})
    (tmp_path / "tiny_run.csv").unlink()
    (tmp_path / "tiny_mem.csv").unlink()
    trace = traces.load_trace(inv)
    assert len(trace.notes) == 2 and trace.functions[0].duration_percentiles_ms == (1000.0,) * 7


def test_latency_from_bench(tmp_path):
    """A bench result's p50 and cold start drive the model; a provider missing from it is a TraceError."""
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"providers": {"gcp": {"p50_ms": 4.0, "cold_start_ms": 250.0}}}))
    model = workload.load_latency(bench)
    assert model.provider == "gcp" and model.cold_start_ms == 250.0
    inv = write_2019(tmp_path, TRACE_A)
    apps = workload.build(traces.load_trace(inv), rule="even", latency=model)
    assert apps[0].durations_s.tolist() == [0.004] * 5
    with pytest.raises(traces.TraceError, match="no provider"):
        workload.load_latency(bench, "aws")


def test_prices_schema(tmp_path):
    """Every cloud's prices name a source and date, arm64 is cheaper than x86_64, and a missing date is a PriceError."""
    for cloud in ("aws", "gcp", "azure"):
        assert PRICES["clouds"][cloud]["source"] and PRICES["clouds"][cloud]["as_of"]
    assert (
        PRICES["clouds"]["aws"]["architectures"]["arm64"]["gb_s"]
        < PRICES["clouds"]["aws"]["architectures"]["x86_64"]["gb_s"]
    )
    broken = json.loads(json.dumps(PRICES))
    del broken["clouds"]["gcp"]["as_of"]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(PriceError, match="gcp lacks as_of"):
        load_prices(path)


def test_costs_by_hand(trace_a):
    """The fixed-10m cost on trace A is requests, execution and warm time at the listed AWS prices."""
    aws = PRICES["clouds"]["aws"]["architectures"]["x86_64"]
    breakdown = trace_a["policies"]["fixed-10m"]["cost_breakdown_usd"]["aws"]
    assert breakdown["requests"] == pytest.approx(5 * aws["request"])
    # 5 x 1 s of execution and 3 cold-start loads of 1 s, 1 GB
    assert breakdown["execution"] == pytest.approx(8 * aws["gb_s"])
    # the rest of the instance time (2404 - 5 - 3 s) bought as provisioned concurrency
    assert breakdown["warm"] == pytest.approx(2396 * aws["provisioned_gb_s"])


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["simulate", *argv])
    return args.handler(args)


def test_cli_json_plot_and_recommend(tmp_path, fixtures_dir, capsys):
    """The CLI writes JSON for every policy, a Pareto plot, and deploy settings for the recommended app."""
    out = tmp_path / "out.json"
    trace = fixtures_dir / "traces" / "azure2019_10fn_inv.csv"
    assert cli(["--trace", str(trace), "--json", str(out), "--recommend", "provisioned-1", "--top", "3"]) == 0
    result = json.loads(out.read_text())
    assert result["functions"] == 10
    assert set(result["policies"]) == {
        "fixed-10m",
        "fixed-20m",
        "provisioned-1",
        "histogram",
        "kpa",
        "litefaas",
    }
    for metrics in result["policies"].values():
        for key in ("cold_start_pct", "cold_start_pct_p75", "wasted_memory_gb_s", "utilization", "p99_ms"):
            assert isinstance(metrics[key], float)
        assert set(metrics["cost_usd"]) == {"aws", "gcp", "azure"}
        assert len(metrics["per_function"]) == 10
    assert out.with_suffix(".pareto.png").stat().st_size > 10_000
    text = capsys.readouterr().out
    settings = result["recommendation"]
    assert settings["app"].startswith("083a6af6") and settings["policy"] == "provisioned-1"
    assert settings["instances_median"] >= 1  # the provisioned instance, at least
    for cloud, key in (("aws", "provisionedConcurrency"), ("gcp", "minInstances"), ("azure", "minInstances")):
        assert f"litefaas deploy --cloud {cloud} --param {key}={settings[cloud][key]}" in text
        assert f"    {key}: {settings[cloud][key]}" in text
    assert "--param maxInstances=40" in text


def test_recommend_from_numbers():
    """Settings for the busiest app follow its instance counts and print as YAML; an unsimulated policy is refused."""
    result = {
        "policies": {
            "p": {
                "apps": [
                    {
                        "app": "x1",
                        "invocations": 5,
                        "memory_mb": 128,
                        "max_in_flight": 1,
                        "instances_median": 0,
                        "instances_max": 1,
                    },
                    {
                        "app": "y2",
                        "invocations": 9,
                        "memory_mb": 256,
                        "max_in_flight": 7,
                        "instances_median": 2,
                        "instances_max": 8,
                    },
                ]
            }
        }
    }
    settings = recommend.recommend(result, "p", 1, PRICES)
    assert settings["app"] == "y2"
    assert settings["aws"] == {"provisionedConcurrency": 2, "reservedConcurrency": 10}
    assert settings["gcp"] == {"minInstances": 2, "maxInstances": 10, "concurrency": 1}
    assert settings["azure"] == {"minInstances": 2, "maxInstances": 40, "concurrency": 1}
    assert recommend.recommend(result, "p", 4, PRICES, app="y")["gcp"]["maxInstances"] == 10
    yaml = recommend.to_yaml(settings)
    assert yaml.count("---") == 2 and "    reservedConcurrency: 10" in yaml
    assert (
        "litefaas deploy --cloud aws --param provisionedConcurrency=2 --param reservedConcurrency=10" in yaml
    )
    with pytest.raises(recommend.RecommendError):
        recommend.recommend(result, "missing", 1, PRICES)


def test_cli_errors(tmp_path):
    """An unknown policy, a missing trace or a non-positive concurrency is a CommandError."""
    from litefaas.errors import CommandError

    with pytest.raises(CommandError, match="unknown policy"):
        cli(["--trace", "azure2019_10fn", "--policy", "lru"])
    with pytest.raises(CommandError, match="no trace"):
        cli(["--trace", str(tmp_path / "none.csv")])
    with pytest.raises(CommandError, match="concurrency"):
        cli(["--trace", "x", "--concurrency", "0"])


def test_trace_name_from_environment(tmp_path, monkeypatch, fixtures_dir):
    """A trace name is resolved through LITEFAAS_TRACES."""
    monkeypatch.setenv("LITEFAAS_TRACES", str(fixtures_dir / "traces"))
    assert traces.resolve("azure2019_10fn", trace_search_path()).name == "azure2019_10fn_inv.csv"


def test_command_module_is_light():
    """Importing the simulate command loads neither numpy, rich nor matplotlib."""
    code = "import sys, litefaas.cli.simulate; print(any(m in sys.modules for m in ('numpy', 'rich', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def ten_function_day(folder: Path) -> dict:
    trace = traces.load_trace(folder / "azure2019_10fn_inv.csv")
    apps = workload.build(trace, seed=0)
    names = ["fixed-10m", "histogram", "litefaas"]
    return simulate(apps, catalog.parse(names), trace.horizon_s, Options(), PRICES)["policies"]


def test_ten_function_day_fixture(fixtures_dir):
    """On the ten-function day, histogram beats fixed-10m and litefaas beats histogram in cold starts and memory."""
    result = ten_function_day(fixtures_dir / "traces")
    fixed, histogram, ours = result["fixed-10m"], result["histogram"], result["litefaas"]
    assert histogram["cold_start_pct_p75"] < fixed["cold_start_pct_p75"]
    assert ours["cold_start_pct"] < histogram["cold_start_pct"]
    assert ours["wasted_memory_gb_s"] < histogram["wasted_memory_gb_s"]


@pytest.mark.skipif(
    not (SHARED / "azure2019_10fn_inv.csv").is_file(), reason=f"no shared traces at {SHARED.name}/"
)
def test_ten_function_day_shared():
    """The shared ten-function trace gives the same results as the fixture copy."""
    assert ten_function_day(SHARED) == ten_function_day(ROOT / "tests" / "fixtures" / "traces")


@pytest.mark.skipif(
    not (SHARED / "azure2019_100fn_inv.csv").is_file(), reason=f"no shared traces at {SHARED.name}/"
)
def test_hundred_function_day_litefaas_beats_histogram():
    """On the hundred-function day, litefaas has fewer cold starts and less waste than histogram, which beats fixed-10m."""
    trace = traces.load_trace(SHARED / "azure2019_100fn_inv.csv")
    apps = workload.build(trace, seed=0)
    names = ["fixed-10m", "histogram", "litefaas"]
    result = simulate(apps, catalog.parse(names), trace.horizon_s, Options(), PRICES)["policies"]
    fixed, histogram, ours = result["fixed-10m"], result["histogram"], result["litefaas"]
    assert histogram["cold_starts"] < fixed["cold_starts"]
    assert ours["cold_starts"] < histogram["cold_starts"]
    assert ours["wasted_memory_gb_s"] < histogram["wasted_memory_gb_s"]


def test_one_warm_idle_instance_a_month_at_each_clouds_warm_rate():
    from litefaas.simulate.prices import MONTH_S, load_prices, warm_instance_month

    table = load_prices()
    month = warm_instance_month(table, 512)
    aws, gcp, azure = table["clouds"]["aws"], table["clouds"]["gcp"], table["clouds"]["azure"]
    assert month["aws/x86_64"] == pytest.approx(
        MONTH_S * 0.5 * aws["architectures"]["x86_64"]["provisioned_gb_s"]
    )
    assert month["aws/arm64"] == pytest.approx(
        MONTH_S * 0.5 * aws["architectures"]["arm64"]["provisioned_gb_s"]
    )
    tier = gcp["memory_tiers_mb"].index(512)
    idle = 0.5 * gcp["idle_min_instance_gib_s"] + gcp["vcpu_per_tier"][tier] * gcp["idle_min_instance_vcpu_s"]
    assert month["gcp/x86_64"] == pytest.approx(MONTH_S * idle)
    assert month["azure/x86_64"] == pytest.approx(MONTH_S * 0.5 * azure["always_ready_baseline_gb_s"])
    assert all(4 < usd < 7 for usd in month.values())  # about $5 a month each at 512 MB
