"""Speed of ``litefaas simulate`` on a day of traffic: load, build arrivals, simulate each policy.

    python -m litefaas.benchmark.simulate_speed [--trace azure2019_500fn] [--repeats 1] [--json FILE]

One process, one thread (numpy's thread pools are pinned to 1 before it loads). The target is the
500-function day with every default policy in under 60 s. A trace name is looked up in
``$LITEFAAS_TRACES``, then ``../shared/traces`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")


TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", default="azure2019_500fn", help="trace path or name")
    parser.add_argument("--policy", default="fixed-10m,fixed-20m,provisioned-1,histogram,kpa,litefaas")
    parser.add_argument("--repeats", type=int, default=1, help="best of N runs (default 1)")
    parser.add_argument("--json", type=Path, help="write the timings as JSON")
    args = parser.parse_args()

    from litefaas.paths import trace_search_path
    from litefaas.simulate import catalog, traces, workload
    from litefaas.simulate.prices import load_prices
    from litefaas.simulate.runner import Options, simulate

    try:
        path = traces.resolve(args.trace, trace_search_path())
    except traces.TraceError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    prices = load_prices()
    names = args.policy.split(",")
    best: dict[str, float] = {}
    for _ in range(max(1, args.repeats)):
        started, cpu_started = time.perf_counter(), time.process_time()
        trace = traces.load_trace(path)
        loaded = time.perf_counter()
        apps = workload.build(trace, seed=0)
        built = time.perf_counter()
        timings = {"load_s": loaded - started, "arrivals_s": built - loaded}
        for policy in catalog.parse(names):
            t0 = time.perf_counter()
            simulate(apps, [policy], trace.horizon_s, Options(), prices)
            timings[policy.name] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - started
        timings["total_cpu_s"] = time.process_time() - cpu_started
        if not best or timings["total_s"] < best["total_s"]:
            best = timings
    invocations = sum(len(a.times) for a in apps)
    report = {
        "trace": path.name,
        "functions": len(trace.functions),
        "invocations": invocations,
        "policies": names,
        "seconds": best,
        "target_s": TARGET_S,
        "within_target": best["total_s"] < TARGET_S,
        "requests_per_cpu_s": invocations * len(names) / best["total_cpu_s"],
    }
    width = max(len(k) for k in best)
    print(
        f"{path.name}: {len(trace.functions)} functions, {invocations:,} invocations, {len(names)} policies"
    )
    for key, value in best.items():
        print(f"  {key:<{width}}  {value:6.2f} s")
    verdict = "within" if report["within_target"] else "OVER"
    print(
        f"  {report['requests_per_cpu_s']:,.0f} simulated requests per CPU second; "
        f"{verdict} the {TARGET_S:g} s target (wall clock; other processes on the machine count)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0 if report["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
