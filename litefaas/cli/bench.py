"""``litefaas bench``: measure the function on each provider side by side, then report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.protocol import PROVIDERS
from litefaas.cli.base import Commands
from litefaas.errors import CommandError

if TYPE_CHECKING:
    from litefaas.benchmark.compare import Options


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "bench",
        help="cross-provider latency, throughput, cold start and cost",
        description="Start the three local hosts (or use deployed URLs), send bounded encrypted load, "
        "check every answer, and report latency, throughput, cold start and cost per provider.",
    )
    parser.add_argument(
        "--local", action="store_true", help="the local hosts, started and stopped here (default)"
    )
    parser.add_argument("--url", action="append", default=[], metavar="NAME=URL", help="a deployed function")
    parser.add_argument("--providers", default=",".join(PROVIDERS), help="subset, e.g. aws,gcp")
    parser.add_argument("--quick", action="store_true", help="fewer requests: about a minute")
    parser.add_argument("--requests", type=int, help="requests per concurrency level (overrides the plan)")
    parser.add_argument(
        "--out", type=Path, default=Path("build/bench"), help="report folder (default build/bench)"
    )
    parser.add_argument("--port", type=int, default=8300, help="first local port (default 8300)")
    parser.add_argument("--memory-mb", type=int, default=512, help="memory size for cost (default 512)")
    parser.add_argument("--prices", type=Path, help="price table overriding the shipped one")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests per instance on Cloud Run functions and Flex Consumption, for cost (default 1, "
        "as serverless.yml); cost is also shown at 16",
    )
    parser.add_argument(
        "--no-models", action="store_true", help="the seed MLP only: no image model, no chain"
    )
    parser.set_defaults(handler=run)


def targets(providers: str, url_items: list[str], local: bool) -> tuple[list[str], dict[str, str]]:
    """The providers to measure and, for deployed functions, their URLs."""
    names = [name.strip() for name in providers.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise CommandError(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}")
    urls: dict[str, str] = {}
    for item in url_items:
        name, _, url = item.partition("=")
        if name not in PROVIDERS or not url.startswith(("http://", "https://")):
            raise CommandError(f"--url {item!r}: expected NAME=URL with NAME one of {', '.join(PROVIDERS)}")
        urls[name] = url.rstrip("/")
    if urls and local:
        raise CommandError("--local and --url measure different things; give one of them")
    if urls:
        names = [name for name in names if name in urls] or list(urls)
    return names, urls


def run(args: argparse.Namespace) -> int:
    from litefaas.benchmark.compare import Options
    from litefaas.benchmark.run import Plan

    names, urls = targets(args.providers, args.url, args.local)
    if args.requests is not None and args.requests < 1:
        raise CommandError("--requests must be at least 1")
    if args.concurrency < 1:
        raise CommandError("--concurrency must be at least 1")
    options = Options(
        providers=names,
        plan=Plan.choose(args.quick, args.requests),
        out=args.out,
        urls=urls,
        port=args.port,
        memory_mb=args.memory_mb,
        prices=args.prices,
        quick=args.quick,
        models=not args.no_models,
        concurrency=args.concurrency,
    )
    return measure_and_show(options)


def measure_and_show(options: Options) -> int:
    """Run the benchmark with a progress display; print the comparison table. The exit code: 0, 1 if
    an answer was wrong, 130 if interrupted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from litefaas.benchmark import report
    from litefaas.benchmark.compare import run_benchmark
    from litefaas.cli.console import make_console

    console = make_console()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )

    def step(label: str, total: int) -> Any:
        for finished in progress.tasks:
            if finished.finished:
                progress.update(finished.id, visible=False)
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    with progress:
        outcome = run_benchmark(options, step)
    if outcome.interrupted:
        console.print("[yellow]interrupted: every server was stopped; writing what was measured[/]")
    console.print(report.comparison_table(outcome.document))
    for key in ("by_model", "high_concurrency"):
        table = report.cost_table(outcome.document, "mlp-v1", key)
        if table is not None:
            console.print(table)
    warm = report.warm_month_table(outcome.document)
    if warm is not None:
        console.print(warm)
    console.print(f"report: {options.out / 'report.html'}  data: {options.out / 'bench.json'}")
    if outcome.wrong_answers:
        console.print(f"[red]{outcome.wrong_answers} answers did not match the local model[/]")
    return outcome.exit_code
