"""What the benchmark shows: a terminal table, PNG plots and a one-page HTML report."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table

from litefaas.benchmark.run import ProviderResult


def _ms(value: object) -> str:
    return "—" if value is None else f"{float(value):,.2f}"  # type: ignore[arg-type]


def comparison_table(document: Mapping[str, Any]) -> Table:
    """One row per provider: latency, throughput, cold start, errors, cost."""
    table = Table(title="litefaas: cross-provider comparison (encrypted, batch 1)")
    columns = [
        "provider",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max req/s",
        "c=64 p99 ms",
        "plaintext p50",
        "batch 256 p50",
        "cold start ms",
        "host start ms",
        "errors",
        "$ / 1M x86",
        "$ / 1M arm",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "provider" else "right")
    for name, result in document["providers"].items():
        c64 = result["by_concurrency"].get("64", {})
        cost = document.get("cost", {}).get(name, {})
        table.add_row(
            name,
            _ms(result["p50_ms"]),
            _ms(result["p95_ms"]),
            _ms(result["p99_ms"]),
            _ms(result["throughput_rps"]),
            _ms(c64.get("p99_ms")),
            _ms((result.get("plaintext") or {}).get("p50_ms")),
            _ms(result["by_batch"].get("256", {}).get("p50_ms")),
            _ms(result["cold_start_ms"]),
            _ms(result["host_start_ms"]),
            f"{result['errors']} / {result['requests']}",
            _ms(cost.get("x86_64", {}).get("usd_per_million")),
            _ms(cost.get("arm64", {}).get("usd_per_million")),
        )
    baseline = document.get("baseline") or {}
    if baseline:
        tf_cold, litert_cold = _ms(baseline.get("cold_start_ms")), _ms(baseline.get("litert_cold_start_ms"))
        table.caption = (
            f"TensorFlow baseline: import {_ms(baseline.get('import_ms'))} ms, "
            f"cold start {tf_cold} ms vs {litert_cold} ms on LiteRT"
        )
    return table


def plot(results: Mapping[str, ProviderResult], out: Path) -> list[Path]:
    """Latency CDF per provider (concurrency 1) and throughput against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    written = []
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        run = result.by_concurrency.get(1)
        if run and run.latencies_s:
            latencies = np.sort(np.asarray(run.latencies_s) * 1000)
            axes.plot(latencies, np.arange(1, len(latencies) + 1) / len(latencies), label=name)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("fraction of requests")
    axes.set_title("Encrypted batch-1 latency, concurrency 1")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = out / "latency_cdf.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    written.append(path)

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        levels = sorted(result.by_concurrency)
        if levels:
            axes.plot(
                levels,
                [result.by_concurrency[c].summary()["throughput_rps"] or 0 for c in levels],
                "o-",
                label=name,
            )
    axes.set_xscale("log", base=2)
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("answered requests per second")
    axes.set_title("Throughput against concurrency (encrypted, batch 1)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = out / "throughput.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    written.append(path)
    return written


def html_report(document: Mapping[str, Any], images: list[Path], notes: list[str]) -> str:
    """A self-contained page: the comparison table, the plots (inlined) and what the figures mean."""
    header = [
        "provider",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max req/s",
        "cold start ms",
        "host start ms",
        "errors",
    ]
    rows = []
    for name, result in document["providers"].items():
        cells = [
            name,
            _ms(result["p50_ms"]),
            _ms(result["p95_ms"]),
            _ms(result["p99_ms"]),
            _ms(result["throughput_rps"]),
            _ms(result["cold_start_ms"]),
            _ms(result["host_start_ms"]),
            f"{result['errors']} / {result['requests']}",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    concurrency_rows = []
    for name, result in document["providers"].items():
        for level, run in result["by_concurrency"].items():
            cells = [
                name,
                level,
                _ms(run["p50_ms"]),
                _ms(run["p99_ms"]),
                _ms(run["throughput_rps"]),
                run["errors"],
            ]
            concurrency_rows.append(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"
            )
    cost_rows = []
    for name, by_arch in (document.get("cost") or {}).items():
        for arch, cost in by_arch.items():
            cells = [
                name,
                arch,
                cost.get("billed_ms"),
                cost.get("memory_mb"),
                _ms(cost.get("usd_per_million")),
            ]
            cost_rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    pictures = "".join(
        f'<figure><img alt="{html.escape(p.stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in images
    )
    baseline = document.get("baseline") or {}
    baseline_items = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in baseline.items())
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    environment = html.escape(str(document.get("environment", {})))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>litefaas benchmark</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head>
<body><h1>litefaas: cross-provider benchmark</h1>
<p>Encrypted requests, batch 1, every answer decrypted and checked against the local model.</p>
<table><tr>{"".join(f"<th>{h}</th>" for h in header)}</tr>{"".join(rows)}</table>
<h2>By concurrency</h2>
<table><tr><th>provider</th><th>clients</th><th>p50 ms</th><th>p99 ms</th><th>req/s</th><th>errors</th></tr>
{"".join(concurrency_rows)}</table>
{pictures}
<h2>Cost per million requests</h2>
<table><tr><th>provider</th><th>arch</th><th>p50 ms</th><th>memory MB</th><th>USD / 1M</th>
<th>prices</th></tr>
{"".join(cost_rows)}</table>
<h2>Baseline: the same function with TensorFlow</h2><ul>{baseline_items}</ul>
<h2>What these figures mean</h2><ul>{note_items}</ul>
<p><small>{environment}</small></p></body></html>
"""
