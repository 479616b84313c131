"""``litefaas simulate``: replay a serverless trace against keep-alive and scaling policies.

The registrar is imported when the parser is built, so this module imports nothing heavy; ``run``
loads the simulator (numpy, rich, matplotlib) when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from litefaas.cli.base import Commands
from litefaas.errors import CommandError
from litefaas.paths import trace_search_path

POLICY_DEFAULT = "fixed-10m,fixed-20m,provisioned-1,histogram,kpa,litefaas"


def register(commands: Commands) -> None:
    """Add ``simulate`` to the ``litefaas`` subcommands."""
    parser = commands.add_parser(
        "simulate",
        help="replay a serverless trace against keep-alive and autoscaling policies; recommend settings",
        description="Simulate each application's instance pool over a real trace (Azure Functions 2019 "
        "*_inv.csv with its *_run.csv and *_mem.csv, the original 2019 files, or the 2021 per-invocation "
        "trace) under several policies, and compare cold starts, wasted memory, utilization, latency and "
        "cost on AWS, GCP and Azure. Definitions: the litefaas.simulate module docstring.",
    )
    parser.add_argument(
        "--trace",
        required=True,
        metavar="PATH|NAME",
        help="a trace file, or a name (azure2019_100fn) looked up in $LITEFAAS_TRACES, then ../shared/traces",
    )
    parser.add_argument("--functions", type=int, metavar="N", help="simulate a seeded sample of N functions")
    parser.add_argument(
        "--policy",
        action="append",
        metavar="NAME[,NAME…]",
        help="fixed-10m, fixed-20m (any fixed-<n>s|m|h), provisioned-<n>, histogram, kpa, litefaas; "
        f"repeat or separate with commas (default {POLICY_DEFAULT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of arrivals, execution times and sampling")
    parser.add_argument(
        "--arrivals",
        choices=["uniform", "even"],
        default="uniform",
        help="how a minute's count becomes arrival times (default uniform: sorted uniform draws)",
    )
    parser.add_argument(
        "--cold-start-ms", type=float, help="cold start (default: from --latency-from, else 1000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests per instance (default 1, as on Lambda)"
    )
    parser.add_argument(
        "--latency-from",
        type=Path,
        metavar="BENCH_JSON",
        help="execution times and cold start measured by a benchmark: "
        "{'providers': {name: {'p50_ms', 'cold_start_ms', …}}}",
    )
    parser.add_argument("--provider", help="which provider of --latency-from (default aws, else the first)")
    parser.add_argument(
        "--memory-mb", type=float, default=256.0, help="instance memory when the trace has none (default 256)"
    )
    parser.add_argument("--prices", type=Path, help="price table (default: litefaas/data/prices.json)")
    parser.add_argument("--architecture", choices=["x86_64", "arm64"], help="Lambda architecture for costs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every metric as JSON")
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="Pareto plot (default: beside --json, as .pareto.png)"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw the Pareto plot")
    parser.add_argument("--top", type=int, default=0, metavar="N", help="also print the N busiest functions")
    parser.add_argument(
        "--recommend",
        nargs="?",
        const="litefaas",
        metavar="POLICY",
        help="print the deploy settings per cloud for this policy (default litefaas)",
    )
    parser.add_argument(
        "--recommend-app", metavar="HASHAPP", help="application to recommend for (default: busiest)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation the arguments describe; print the table; write JSON, plot, settings."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from litefaas.cli.console import make_console
    from litefaas.simulate import catalog, recommend, report, traces, workload
    from litefaas.simulate import policies as policy_module
    from litefaas.simulate.prices import PriceError, load_prices
    from litefaas.simulate.runner import Options, simulate

    names = [n.strip() for group in (args.policy or [POLICY_DEFAULT]) for n in group.split(",") if n.strip()]
    if args.recommend and args.recommend not in names:
        names.append(args.recommend)
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1")
    if args.cold_start_ms is not None and args.cold_start_ms < 0:
        raise CommandError("--cold-start-ms cannot be negative")
    if args.memory_mb <= 0:
        raise CommandError("--memory-mb must be positive")
    try:
        chosen = catalog.parse(names)
        path = traces.resolve(str(args.trace), trace_search_path())
        trace = traces.load_trace(path, args.functions, args.seed, args.memory_mb)
        latency = workload.load_latency(args.latency_from, args.provider) if args.latency_from else None
        prices = load_prices(args.prices)
    except (traces.TraceError, policy_module.PolicyError, PriceError) as exc:
        raise CommandError(str(exc)) from None
    cold_start_ms = args.cold_start_ms
    if cold_start_ms is None:
        cold_start_ms = latency.cold_start_ms if latency and latency.cold_start_ms is not None else 1000.0
    options = Options(cold_start_ms / 1000.0, args.concurrency, args.architecture)
    apps = workload.build(trace, args.seed, args.arrivals, latency)
    total = sum(len(a.times) for a in apps) * len(chosen)

    console = make_console()
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("simulating", total=total)

        def advance(policy: str, requests: int) -> None:
            progress.update(task, advance=requests, description=f"simulating {policy}")

        result = simulate(apps, chosen, trace.horizon_s, options, prices, advance)
    elapsed = time.perf_counter() - started

    source = latency.provider + " measured latency" if latency else "trace execution times"
    result = {
        "functions": result["functions"],
        "policies": result["policies"],
        "trace": trace.name,
        "settings": {
            "seed": args.seed,
            "arrivals": args.arrivals,
            "cold_start_ms": cold_start_ms,
            "concurrency": args.concurrency,
            "execution_times": source,
            "horizon_s": trace.horizon_s,
            "prices_as_of": {c: prices["clouds"][c]["as_of"] for c in ("aws", "gcp", "azure")},
        },
        "notes": trace.notes,
        "elapsed_s": elapsed,
    }
    title = (
        f"{trace.name}: {result['functions']} functions, {len(apps)} apps, "
        f"{sum(len(a.times) for a in apps):,} invocations; cold start {cold_start_ms:g} ms, "
        f"concurrency {args.concurrency}, {source} (bold: Pareto-optimal)"
    )
    console.print(report.summary_table(result, title))
    if args.top > 0:
        console.print(report.function_table(result, args.top))
    for note in trace.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print(
        f"[dim]simulated in {elapsed:.1f} s; cost is for the trace's {trace.horizon_s / 3600:.3g} h[/]"
    )

    if args.recommend:
        try:
            settings = recommend.recommend(
                result, args.recommend, args.concurrency, prices, args.recommend_app
            )
        except recommend.RecommendError as exc:
            raise CommandError(str(exc)) from None
        result["recommendation"] = settings
        console.print(recommend.to_yaml(settings), markup=False, highlight=False)
    if args.json:
        report.write_json(result, args.json)
        console.print(f"JSON written to {args.json}")
    plot = args.plot or (args.json.with_suffix(".pareto.png") if args.json else None)
    if plot and not args.no_plot:
        report.pareto_plot(result, plot, title.split(" (bold")[0])
        console.print(f"Pareto plot written to {plot}")
    return 0
