"""The cross-provider benchmark: start the local hosts (or use deployed URLs), measure, stop, report.

:func:`run_benchmark` is the whole of ``litefaas bench`` (and of ``litefaas demo``'s second half)
but the display: it reports progress through a ``step`` callback, writes ``bench.json``, the plots
and ``report.html`` in the output folder, and returns the document.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.engine import Engine
from litefaas.benchmark.coldstart import ColdStart, cold_start, import_time
from litefaas.benchmark.run import (
    Checker,
    Plan,
    ProviderResult,
    Step,
    environment,
    measure_provider,
    sample_rows,
    write_json,
)
from litefaas.client import build_request, decrypt_response, parse_keyset, select_key
from litefaas.paths import BUILD

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
    "Cost: execution times are drawn from each model's measured p50/p95/p99 (the seed MLP: the median "
    "over providers), as if the cloud ran the function as fast as this machine; instances, cold starts "
    "and keep-alive come from the simulator's pool; each cloud's billing unit, step and minimum from "
    "the dated price table (litefaas/data/prices.json). Free tiers, data transfer and API gateways are "
    "left out.",
]
HIGH_CONCURRENCY = 16
BUNDLE_SIZES = BUILD / "bench-bundles.json"
"""Where ``python -m litefaas.benchmark.bundle_sizes --json`` leaves its rows for the baseline."""


@dataclass(frozen=True)
class Options:
    """What to measure: ``providers`` on the local hosts from ``port`` on, or the deployed ``urls``."""

    providers: Sequence[str]
    plan: Plan
    out: Path
    urls: Mapping[str, str] = field(default_factory=dict)
    port: int = 8300
    memory_mb: int = 512
    prices: Path | None = None
    quick: bool = False
    models: bool = True
    concurrency: int = 1
    """Requests one instance serves at once on Cloud Run functions and Flex Consumption, for cost
    (1: serverless.yml's ``concurrency``); the cost is also given at :data:`HIGH_CONCURRENCY`."""


@dataclass(frozen=True)
class Outcome:
    """A finished (or interrupted) benchmark: the document written, and how it went."""

    document: dict[str, Any]
    interrupted: bool
    wrong_answers: int

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.wrong_answers else 0)


def run_benchmark(options: Options, step: Step) -> Outcome:
    """Measure every provider, then the baseline; write bench.json, the plots and report.html.

    Ctrl-C stops the measuring (every server is stopped) and the report is written with what was
    measured. A host that does not start raises :class:`~litefaas.local.server.ServerError`.
    """
    from litefaas.benchmark import report
    from litefaas.local.serving import function_env, serving

    plan = options.plan
    engine = Engine.from_dir()
    rows = sample_rows(engine)
    check = Checker(engine, rows)
    env, keyset = function_env(allow_plaintext=True)
    key = select_key(parse_keyset(keyset))
    results: dict[str, ProviderResult] = {}
    baseline: dict[str, Any] = {}
    models: dict[str, Any] = {}
    interrupted = False
    started = time.perf_counter()

    def sealed_request() -> tuple[bytes, Any]:
        body, secrets = build_request(rows[:1], key)
        return body, lambda answer: check(slice(0, 1), decrypt_response(answer, secrets).get("outputs"))

    def cold(name: str) -> Callable[[], ColdStart]:
        def measure() -> ColdStart:
            advance = step(f"{name}: cold starts in fresh interpreters", plan.cold_runs)
            result = cold_start(name, env, sealed_request, plan.cold_runs)
            advance(plan.cold_runs)
            return result

        return measure

    names = list(options.providers)
    ctrl_c = CtrlC()
    step = ctrl_c.watching(step)
    try:
        ctrl_c.install()
        if options.urls:
            for name in names:
                results[name] = ProviderResult(name, options.urls[name], "deployed function")
                measure_provider(results[name], rows, check, plan, step, lambda: None)
        else:
            advance = step(f"starting {', '.join(names)} on 127.0.0.1", len(names))
            with serving(names, options.port, env, timeout=120) as servers:
                for server in servers:
                    result = ProviderResult(server.name, server.spec.base_url, server.spec.description)
                    result.host_start_ms = server.ready_ms
                    results[server.name] = result
                advance(len(names))
                for name in names:
                    measure_provider(results[name], rows, check, plan, step, cold(name))
        baseline.update(_baseline(env, sealed_request, plan, step))
        if options.models and not options.urls:
            from litefaas.benchmark.models import measure_models, plan_for

            models.update(measure_models(plan_for(options.quick), step))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        interrupted = ctrl_c.restore() or interrupted

    document: dict[str, Any] = {
        "providers": {name: result.to_json() for name, result in results.items()},
        "models": models,
        "baseline": baseline,
        "environment": {
            **environment(),
            "quick": options.quick,
            "interrupted": interrupted,
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    document["environment"]["cpu_model"] = _cpu_model()
    advance = step("cost per million requests by traffic pattern", 1)
    document["cost"] = _costs(document, options)
    advance(1)
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", document)
    figures = report.plot(document, results, out)
    (out / "report.html").write_text(report.html_report(document, figures, NOTES), encoding="utf-8")
    return Outcome(document, interrupted, wrong_answers(document))


class CtrlC:
    """SIGINT as ``KeyboardInterrupt``, and remembered: one raised while a finalizer runs (a closed
    event loop's transports are collected at any moment) is printed and dropped by Python, so the
    interrupt is raised again at the next step or advance of the progress."""

    def __init__(self) -> None:
        self.seen = False
        self._installed = False
        self._previous: Any = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True

    def restore(self) -> bool:
        """Put the previous handler back and stop checking; whether SIGINT came meanwhile."""
        if self._installed:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False
        return self.seen

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise the interrupt that was seen (and perhaps dropped), while installed."""
        if self.seen and self._installed:
            raise KeyboardInterrupt

    def watching(self, step: Step) -> Step:
        """``step``, with the interrupt checked at each step and each advance."""

        def watched(label: str, total: int) -> Callable[[int], None]:
            self.check()
            advance = step(label, total)

            def watched_advance(count: int) -> None:
                self.check()
                advance(count)

            return watched_advance

        return watched


def wrong_answers(document: Mapping[str, Any]) -> int:
    """Answers that did not match the local model, over every run of every provider."""
    return sum(
        run.get("error_kinds", {}).get("wrong_answer", 0)
        for result in document["providers"].values()
        for run in [
            *result["by_concurrency"].values(),
            *result["by_batch"].values(),
            result["plaintext"] or {},
        ]
    )


def _cpu_model() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _costs(document: Mapping[str, Any], options: Options) -> dict[str, Any]:
    """Cost per million requests of each measured model under each traffic pattern, on every cloud
    and architecture: at the configured per-instance concurrency and at :data:`HIGH_CONCURRENCY`."""
    import statistics

    from litefaas.benchmark.cost import TRACE, patterns_cost

    latencies: dict[str, tuple[dict[str, float], float | None]] = {}
    providers = [p for p in document["providers"].values() if p.get("p50_ms") is not None]
    if providers:
        latency = {
            key: statistics.median(p[key] for p in providers if p.get(key) is not None)
            for key in ("p50_ms", "p95_ms", "p99_ms")
        }
        colds = [p["cold_start_ms"] for p in providers if p.get("cold_start_ms")]
        latencies["mlp-v1"] = (latency, statistics.median(colds) if colds else None)
    for name, result in (document.get("models") or {}).items():
        if result.get("p50_ms") is not None:
            latency = {key: result[key] for key in ("p50_ms", "p95_ms", "p99_ms") if result.get(key)}
            latencies[name] = (latency, result.get("first_request_ms"))
    from litefaas.simulate.prices import WARM_CAPACITY, load_prices, warm_instance_month

    trace = "azure2019_10fn" if options.quick else TRACE
    table = load_prices(options.prices)
    out: dict[str, Any] = {
        "trace": trace,
        "by_model": {},
        "high_concurrency": {},
        "warm_month": {
            "memory_mb": options.memory_mb,
            "usd": warm_instance_month(table, options.memory_mb),
            "capacity": WARM_CAPACITY,
        },
    }
    for name, (latency, cold_ms) in latencies.items():
        for key, level in (("by_model", options.concurrency), ("high_concurrency", HIGH_CONCURRENCY)):
            if key == "high_concurrency" and options.quick and name not in ("mlp-v1", "image-v2"):
                continue
            out[key][name] = patterns_cost(
                latency,
                memory_mb=options.memory_mb,
                cold_start_ms=cold_ms,
                concurrency={"gcp": level, "azure": level},
                prices=options.prices,
                trace=trace,
            )
    return out


def _baseline(env: Mapping[str, str], sealed_request: Any, plan: Plan, step: Step) -> dict[str, Any]:
    """The seed's approach, measured in the same run: TensorFlow inside the function."""
    import importlib.util

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


def _bundle_sizes(path: Path = BUNDLE_SIZES) -> dict[str, Any]:
    """The AWS x86_64 bundle with LiteRT against the one with TensorFlow, where bundle_sizes ran."""
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
