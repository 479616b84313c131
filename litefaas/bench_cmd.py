"""``litefaas bench``: measure the function on each provider side by side, then report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from litefaas.cli import CommandError

PROVIDERS = ("aws", "gcp", "azure")
NOTES = [
    "Local hosts run on this machine: the figures measure each provider's adapter, host and the "
    "litefaas runtime, not a cloud's network, load balancer or scheduling. Compare providers with "
    "each other and runs with runs; do not read them as cloud latencies.",
    "Latency is from the client sending a pre-sealed request to the answer arriving; sealing and "
    "checking happen outside the timer. Every answer is decrypted and compared with the local model: "
    "a wrong answer counts as an error.",
    "Cold start is a fresh interpreter importing the provider's entrypoint, loading the model and "
    "answering one sealed request (median). Host start is the local tool's own start-up "
    "(serverless-offline, functions-framework, the Azure host) until /health answers.",
    "serverless-offline starts one more Python process for each request in flight beyond the first, "
    "as Lambda starts instances, so its latency at high concurrency includes those cold starts, and "
    "requests that wait longer than the function's timeout (10 s) fail as they would on Lambda.",
    "Cost uses the p50 duration at concurrency 1 and the memory size given, with the price table's "
    "billing granularity and minimum; it leaves out data transfer, API gateways and free tiers.",
]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    parser.set_defaults(handler=run)


def _targets(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    names = [name.strip() for name in args.providers.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise CommandError(f"unknown provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDERS)}")
    urls: dict[str, str] = {}
    for item in args.url:
        name, _, url = item.partition("=")
        if name not in PROVIDERS or not url.startswith(("http://", "https://")):
            raise CommandError(f"--url {item!r}: expected NAME=URL with NAME one of {', '.join(PROVIDERS)}")
        urls[name] = url.rstrip("/")
    if urls and args.local:
        raise CommandError("--local and --url measure different things; give one of them")
    if urls:
        names = [name for name in names if name in urls] or list(urls)
    return names, urls


def run(args: argparse.Namespace) -> int:
    """Measure, write bench.json, the plots and report.html; print the table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.engine import Engine
    from litefaas.benchmark import report
    from litefaas.benchmark.coldstart import ColdStart, cold_start
    from litefaas.benchmark.run import (
        Checker,
        Plan,
        ProviderResult,
        environment,
        host_start_times,
        local_servers,
        measure_provider,
        sample_rows,
        write_json,
    )
    from litefaas.client import build_request, decrypt_response, parse_keyset, select_key
    from litefaas.console import make_console
    from litefaas.serve import function_env
    from litefaas.serve_common import ServerError

    names, urls = _targets(args)
    console = make_console()
    plan = Plan.choose(args.quick)
    if args.requests is not None:
        if args.requests < 1:
            raise CommandError("--requests must be at least 1")
        plan = Plan(
            args.requests,
            args.requests,
            max(1, args.requests // 3),
            plan.cold_runs,
            min(plan.warmup, args.requests),
        )
    engine = Engine.from_dir()
    rows = sample_rows(engine)
    check = Checker(engine, rows)
    env, keyset = function_env(allow_plaintext=True)
    key = select_key(parse_keyset(keyset))
    results: dict[str, ProviderResult] = {}
    baseline: dict[str, Any] = {}
    interrupted = False
    started = time.perf_counter()

    def sealed_request() -> tuple[bytes, Any]:
        body, secrets = build_request(rows[:1], key)
        return body, lambda answer: check(slice(0, 1), decrypt_response(answer, secrets).get("outputs"))

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

    def cold(name: str) -> Any:
        def measure() -> ColdStart:
            advance = step(f"{name}: cold starts in fresh interpreters", plan.cold_runs)
            result = cold_start(name, env, sealed_request, plan.cold_runs)
            advance(plan.cold_runs)
            return result

        return measure

    try:
        with progress:
            if urls:
                for name in names:
                    results[name] = ProviderResult(name, urls[name], "deployed function")
                    measure_provider(results[name], rows, check, plan, step, lambda: None)
            else:
                advance = step(f"starting {', '.join(names)} on 127.0.0.1", len(names))
                with local_servers(names, args.port, env) as servers:
                    start_times = host_start_times(servers)
                    for name, (server, _) in servers.items():
                        results[name] = ProviderResult(name, server.spec.base_url, server.spec.description)
                        results[name].host_start_ms = start_times[name]
                    advance(len(names))
                    for name in names:
                        measure_provider(results[name], rows, check, plan, step, cold(name))
            baseline.update(_baseline(env, sealed_request, plan, step))
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: every server was stopped; writing what was measured[/]")
    except ServerError as exc:
        raise CommandError(str(exc)) from None

    document: dict[str, Any] = {
        "providers": {name: result.to_json() for name, result in results.items()},
        "baseline": baseline,
        "environment": {
            **environment(),
            "quick": args.quick,
            "interrupted": interrupted,
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    document["cost"] = _costs(document["providers"], args)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench.json", document)
    images = report.plot(results, args.out) if results else []
    images += sorted(args.out.glob("*/*.png"))  # e.g. bench/partition_speed.py's plot in partition/
    (args.out / "report.html").write_text(report.html_report(document, images, NOTES), encoding="utf-8")
    console.print(report.comparison_table(document))
    console.print(f"report: {args.out / 'report.html'}  data: {args.out / 'bench.json'}")
    wrong = sum(
        run.get("error_kinds", {}).get("wrong_answer", 0)
        for result in document["providers"].values()
        for run in [
            *result["by_concurrency"].values(),
            *result["by_batch"].values(),
            result["plaintext"] or {},
        ]
    )
    if wrong:
        console.print(f"[red]{wrong} answers did not match the local model[/]")
    return 130 if interrupted else (1 if wrong else 0)


def _costs(providers: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each provider's cost per million requests at its own measured p50, on its own cloud."""
    from litefaas.benchmark.cost import per_million

    table: dict[str, Any] = {}
    for name, result in providers.items():
        if result.get("p50_ms") is not None:
            table[name] = per_million(result["p50_ms"], args.memory_mb, args.prices).get(name, {})
    return table


def _baseline(env: Any, sealed_request: Any, plan: Any, step: Any) -> dict[str, Any]:
    """The seed's approach, measured in the same run: TensorFlow inside the function."""
    import importlib.util

    from litefaas.benchmark.coldstart import cold_start, import_time

    if importlib.util.find_spec("tensorflow") is None:
        return {"skipped": "TensorFlow is not installed (pip install -e '.[build]')"}
    advance = step("baseline: TensorFlow import and cold start, LiteRT cold start", 3)
    runs = max(1, plan.cold_runs - 1)
    tensorflow_import = import_time("tensorflow", runs)
    advance(1)
    tensorflow_cold = cold_start("tensorflow", env, sealed_request, runs)
    advance(1)
    litert_cold = cold_start("core", env, sealed_request, plan.cold_runs)
    advance(1)
    return {
        "import_ms": round(tensorflow_import * 1000, 1),
        "cold_start_ms": round(tensorflow_cold.median_s * 1000, 1),
        "litert_import_ms": round(import_time("ai_edge_litert.interpreter", runs) * 1000, 1),
        "litert_cold_start_ms": round(litert_cold.median_s * 1000, 1),
        "cold_start_ratio": round(tensorflow_cold.median_s / litert_cold.median_s, 1),
        **_footprints(),
        **_bundle_sizes(),
    }


def _bundle_sizes(path: Path = Path("build/bench-bundles.json")) -> dict[str, Any]:
    """The AWS x86_64 bundle with LiteRT against the one with TensorFlow, where bench/bundle_sizes.py ran."""
    import json

    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"bundles": "not measured: run bench/bundle_sizes.py"}
    sizes = {
        row["runtime"]: row
        for row in rows
        if isinstance(row, dict) and row.get("cloud") == "aws" and row.get("arch") == "x86_64"
    }
    if not {"litert", "tensorflow"} <= sizes.keys():
        return {"bundles": "not measured: run bench/bundle_sizes.py"}
    return {
        f"{runtime}_bundle_mb": {
            "zipped": round(sizes[runtime]["zipped_bytes"] / 1e6, 1),
            "unzipped": round(sizes[runtime]["unzipped_bytes"] / 1e6, 1),
        }
        for runtime in ("litert", "tensorflow")
    }


def _footprints() -> dict[str, Any]:
    """Installed size of the runtime's dependency closure: LiteRT's against TensorFlow's."""
    from litefaas.benchmark.footprint import closure_bytes

    litert = closure_bytes(["ai-edge-litert", "cryptography"])
    tensorflow = closure_bytes(["tensorflow-cpu", "cryptography"])
    return {
        "litert_closure_mb": round(litert / 2**20, 1),
        "tensorflow_closure_mb": round(tensorflow / 2**20, 1),
        "closure_ratio": round(tensorflow / litert, 1) if litert else None,
    }
