"""What the benchmark shows: short terminal tables, PNG figures and one self-contained HTML page.

Over 500 lines on purpose: the page's sections are written in the order a reader sees them,
each beside the table or figure it shows, so the page can be read top to bottom here too.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from litefaas.benchmark.cost import PATTERN_LABELS

CLOUD_NAMES = {"aws": "AWS Lambda", "gcp": "Cloud Run functions", "azure": "Azure Flex Consumption"}
COLUMNS = ("aws/x86_64", "aws/arm64", "gcp/x86_64", "azure/x86_64")
MODEL_ORDER = ("mlp-v1", "mlp-v2", "image-v2", "image-jpeg", "chain-2")


@dataclass(frozen=True)
class Figure:
    path: Path
    title: str
    caption: str


def _num(value: object, digits: int = 2) -> str:
    """A number for a table cell; an absent or non-finite value is a dash, never None or NaN."""
    if value is None or isinstance(value, bool):
        return "—"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    return f"{number:,.{digits}f}"


def _ms(value: object) -> str:
    return _num(value, 2)


def _usd(value: object) -> str:
    text = _num(value, 3 if isinstance(value, int | float) and abs(value) < 10 else 2)
    return text if text == "—" else f"${text}"


def _bytes(value: object) -> str:
    if not isinstance(value, int | float) or not value:
        return "—"
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if value >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{int(value)} B"


def _column_label(column: str) -> str:
    cloud, arch = column.split("/")
    return f"{CLOUD_NAMES[cloud]} {arch}"


def comparison_table(document: Mapping[str, Any]) -> Table:
    """One row per provider, then one per extra model: latency, throughput, cold start, bytes, errors."""
    table = Table(title="litefaas: cross-provider comparison (encrypted; local hosts, not the clouds)")
    for column in (
        "what",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max req/s",
        "cold start ms",
        "bytes in/out",
        "errors",
    ):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, result in document["providers"].items():
        table.add_row(*_load_row(f"{name}: seed MLP v1", result, _num(result["cold_start_ms"], 0)))
    for name, result in document["providers"].items():
        if result.get("oblivious"):
            table.add_row(*_load_row(f"{name}: seed MLP, Oblivious HTTP", result["oblivious"], ""))
    for name, result in (document.get("models") or {}).items():
        table.add_row(*_load_row(f"gcp host: {name}", result, _num(result.get("first_request_ms"), 0)))
    baseline = document.get("baseline") or {}
    if "cold_start_ms" in baseline:
        table.caption = (
            f"TensorFlow baseline: cold start {_num(baseline.get('cold_start_ms'), 0)} ms vs "
            f"{_num(baseline.get('litert_cold_start_ms'), 0)} ms on LiteRT "
            f"({_num(baseline.get('cold_start_ratio'), 1)}×)"
        )
    return table


def _load_row(label: str, result: Mapping[str, Any], cold: str) -> tuple[str, ...]:
    """One row of the load table: latencies, throughput, ``cold``, bytes and errors of one run."""
    return (
        label,
        _ms(result["p50_ms"]),
        _ms(result["p95_ms"]),
        _ms(result["p99_ms"]),
        _num(result["throughput_rps"], 1),
        cold,
        _wire(result),
        f"{result['errors']} / {result['requests']}",
    )


def _wire(result: Mapping[str, Any]) -> str:
    sent, received = result.get("request_bytes"), result.get("response_bytes")
    if not sent:
        return "—"
    return f"{_bytes(sent)} / {_bytes(received)}"


def cost_table(document: Mapping[str, Any], model: str = "mlp-v1", key: str = "by_model") -> Table | None:
    """USD per million requests of one model under each traffic pattern, cheapest marked."""
    cost = ((document.get("cost") or {}).get(key) or {}).get(model)
    if not cost:
        return None
    levels = cost["concurrency"]
    table = Table(
        title=f"cost per million requests, {model}, {cost['memory_mb']} MB "
        f"(USD; concurrency per instance: Lambda 1, Cloud Run {levels['gcp']}, Flex {levels['azure']})"
    )
    table.add_column("traffic", justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("cheapest", justify="left")
    for pattern, row in cost["patterns"].items():
        best = cost["cheapest"][pattern]
        cells = [_usd(row.get(c)) if c != best else f"[bold green]{_usd(row.get(c))}[/]" for c in COLUMNS]
        table.add_row(PATTERN_LABELS.get(pattern, pattern), *cells, best)
    dates = sorted({p["as_of"] for p in cost["prices"].values()})
    table.caption = f"prices as of {', '.join(dates)} (litefaas/data/prices.json); free tiers off"
    for pattern, why in cost.get("skipped", {}).items():
        table.caption += f"; {pattern} skipped: {why}"
    return table


def warm_month_rows(document: Mapping[str, Any]) -> list[list[str]]:
    """One row per cloud: what one instance kept warm and idle costs a month."""
    warm = (document.get("cost") or {}).get("warm_month") or {}
    return [
        [column, warm["capacity"][column.split("/")[0]], _usd(warm["usd"].get(column))]
        for column in COLUMNS
        if column in warm.get("usd", {})
    ]


def warm_month_table(document: Mapping[str, Any]) -> Table | None:
    """What keeping one instance warm costs a month, with no request on it."""
    warm = (document.get("cost") or {}).get("warm_month")
    if not warm:
        return None
    table = Table(title=f"one instance kept warm a month, {warm['memory_mb']} MB, no requests (USD)")
    for column in ("cloud", "setting", "per month"):
        table.add_column(column, justify="right" if column == "per month" else "left")
    for row in warm_month_rows(document):
        table.add_row(*row)
    table.caption = (
        "an idle warm instance is billed: provisioned / minimum / always-ready rates of prices.json"
    )
    return table


def plot(document: Mapping[str, Any], results: Mapping[str, Any], out: Path) -> list[Figure]:
    """The latency CDF, throughput against clients, and the cost by traffic pattern."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    figures: list[Figure] = []
    if results:
        figure, axes = plt.subplots(figsize=(7, 4.2))
        for name, result in results.items():
            run = result.by_concurrency.get(1)
            if run and run.latencies_s:
                latencies = np.sort(np.asarray(run.latencies_s) * 1000)
                axes.plot(latencies, np.arange(1, len(latencies) + 1) / len(latencies), label=name)
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.set(xlabel="latency (ms, log scale)", ylabel="fraction of requests")
        axes.set_title("Seed MLP, encrypted batch-1 latency, one client")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = out / "latency_cdf.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        figures.append(
            Figure(
                path,
                "Latency distribution per provider (seed MLP, one client)",
                "Each curve is one local host; further left is faster, and a long flat tail on the right "
                "means occasional slow requests (the p99 in the table). The gap between curves is the "
                "provider adapter and host, since the model and the crypto are the same code.",
            )
        )

        figure, axes = plt.subplots(figsize=(7, 4.2))
        for name, result in results.items():
            levels = sorted(result.by_concurrency)
            rates = [result.by_concurrency[c].summary()["throughput_rps"] or 0 for c in levels]
            axes.plot(levels, rates, "o-", label=f"{name}: seed MLP v1")
        for name, model in (document.get("models") or {}).items():
            levels = sorted(int(c) for c in model["by_concurrency"])
            rates = [model["by_concurrency"][str(c)]["throughput_rps"] or 0 for c in levels]
            axes.plot(levels, rates, "s--", label=f"gcp host: {name}")
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set(xlabel="concurrent clients", ylabel="answered requests per second")
        axes.set_title("Throughput against concurrent clients")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = out / "throughput.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        figures.append(
            Figure(
                path,
                "Throughput against concurrent clients",
                "A line that keeps rising means the host still has idle capacity at that many clients; a "
                "flat line means it is saturated (here, 2 shared cores serve the client and every host). "
                "The image model and the chain move more bytes or make more calls per answer.",
            )
        )
    cost = (document.get("cost") or {}).get("by_model") or {}
    high = (document.get("cost") or {}).get("high_concurrency") or {}
    panels = [
        (f"{model}, concurrency {source[model]['concurrency']['gcp']}", source[model])
        for model in ("mlp-v1", "image-v2")
        for source in (cost, high)
        if model in source
    ]
    if panels:
        rows = -(-len(panels) // 2)
        figure, grid = plt.subplots(rows, 2, figsize=(11, 3.8 * rows), squeeze=False)
        colors = {
            "aws/x86_64": "#ff9900",
            "aws/arm64": "#b36b00",
            "gcp/x86_64": "#4285f4",
            "azure/x86_64": "#7fba00",
        }
        for axes, (label, entry) in zip(grid.flat, panels, strict=False):
            patterns = list(entry["patterns"])
            width = 0.2
            for k, column in enumerate(COLUMNS):
                values = [entry["patterns"][p].get(column) or np.nan for p in patterns]
                positions = np.arange(len(patterns)) + (k - 1.5) * width
                axes.bar(positions, values, width, label=_column_label(column), color=colors[column])
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"${value:g}"))
            axes.set_xticks(range(len(patterns)))
            axes.set_xticklabels([p.replace("steady-", "").replace("trace-day", "trace") for p in patterns])
            axes.set_title(label, fontsize=10)
            axes.set_ylabel("USD per million (log)")
            axes.grid(True, axis="y", which="both", alpha=0.3)
        for axes in list(grid.flat)[len(panels) :]:
            axes.axis("off")
        grid.flat[0].legend(fontsize=7)
        figure.suptitle(
            "Cost per million requests by traffic pattern (isolated, steady 1/10/100 req/s, trace)"
        )
        figure.tight_layout()
        path = out / "cost_by_pattern.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        figures.append(
            Figure(
                path,
                "Cost per million requests by traffic pattern",
                "Lowest bar wins. Lambda's bar hardly moves: it bills each request's own milliseconds. "
                "Flex Consumption and Cloud Run bill an instance's activity, so their bars fall as "
                "traffic gets denser and requests share billed instance time; isolated requests pay "
                "Flex's full 1-second minimum each. Higher per-instance concurrency lets more requests "
                "share one period.",
            )
        )
    return figures


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)

    def cell(value: object) -> str:
        text = str(value)
        numeric = text[:1].isdigit() or text[:1] in "$—-"
        return f"<td>{html.escape(text)}</td>" if numeric else f"<td class=t>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><strong>{html.escape(figure.title)}.</strong> {html.escape(figure.caption)}"
        "</figcaption></figure>"
    )


def _cost_html(cost: Mapping[str, Any], title: str) -> str:
    rows = []
    for pattern, row in cost["patterns"].items():
        best = cost["cheapest"][pattern]
        rows.append(
            [PATTERN_LABELS.get(pattern, pattern), *(_usd(row.get(c)) for c in COLUMNS), _column_label(best)]
        )
    header = ["traffic", *(f"{_column_label(c)} (USD / 1M)" for c in COLUMNS), "cheapest"]
    levels = cost["concurrency"]
    latency = cost["latency_ms"]
    caption = (
        f"{title}: {cost['memory_mb']} MB; execution time drawn from p50 {_ms(latency.get('p50_ms'))} ms, "
        f"p95 {_ms(latency.get('p95_ms'))} ms, p99 {_ms(latency.get('p99_ms'))} ms; requests per instance: "
        f"Lambda 1, Cloud Run functions {levels['gcp']}, Flex Consumption {levels['azure']}."
    )
    text = _table(header, rows, caption)
    for pattern, why in (cost.get("skipped") or {}).items():
        label = html.escape(PATTERN_LABELS.get(pattern, pattern))
        text += f"<p class=note>{label} skipped: {html.escape(why)}</p>"
    return text


def _pick(document: Mapping[str, Any]) -> str:
    """Per cloud: its billing rule in words, where it came out cheapest, and what that means."""
    cost = document.get("cost") or {}
    wins: dict[str, list[str]] = {cloud: [] for cloud in CLOUD_NAMES}
    for key in ("by_model", "high_concurrency"):
        for model, entry in (cost.get(key) or {}).items():
            level = entry["concurrency"]["gcp"]
            by_cloud: dict[str, list[str]] = {}
            for pattern, column in entry["cheapest"].items():
                by_cloud.setdefault(column.split("/")[0], []).append(
                    PATTERN_LABELS.get(pattern, pattern) + ("" if column.endswith("x86_64") else " (arm64)")
                )
            for cloud, patterns in by_cloud.items():
                which = "every pattern" if len(patterns) == len(entry["cheapest"]) else ", ".join(patterns)
                wins[cloud].append(f"{model} at concurrency {level}: {which}")
    advice = {
        "aws": "Bills each request's own milliseconds (1 ms steps) and one request per instance, so its "
        "cost per request does not depend on how traffic arrives. Pick it for sporadic or bursty "
        "traffic and short models; arm64 is about 20 % cheaper for the same duration.",
        "gcp": "Bills instance time in 100 ms steps, shared by the requests running on the instance. "
        "Pick it for steady, dense traffic with per-instance concurrency above 1 and longer models "
        "(the image model), where many requests share one billed period.",
        "azure": "Flex Consumption bills an instance's activity period, at least 1 s, then 100 ms steps, "
        "shared by the executions on it. An isolated request pays the full second; pick it only for "
        "steady traffic that keeps instances busy, with concurrency above 1.",
    }
    items = []
    for cloud, name in CLOUD_NAMES.items():
        cheapest = wins[cloud]
        where = (
            "Cheapest here for: " + "; ".join(cheapest) + "."
            if cheapest
            else "Cheapest for none of the measured patterns."
        )
        items.append(f"<li><strong>{name}.</strong> {html.escape(advice[cloud])} {html.escape(where)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _summary(document: Mapping[str, Any]) -> str:
    env = document.get("environment") or {}
    providers = document.get("providers") or {}
    models = document.get("models") or {}
    requests = sum(p.get("requests", 0) for p in providers.values()) + sum(
        m.get("requests", 0) for m in models.values()
    )
    errors = sum(p.get("errors", 0) for p in providers.values()) + sum(
        m.get("errors", 0) for m in models.values()
    )
    machine = (
        f"{env.get('cpus', '?')} cores ({html.escape(str(env.get('cpu_model', env.get('machine', ''))))}), "
        f"{html.escape(str(env.get('system', '')))} {html.escape(str(env.get('machine', '')))}, "
        f"Python {html.escape(str(env.get('python', '')))}, "
        f"litefaas {html.escape(str(env.get('litefaas', '')))}"
    )
    fastest = min(providers.items(), key=lambda kv: kv[1].get("p50_ms") or math.inf, default=None)
    cost = ((document.get("cost") or {}).get("by_model") or {}).get("mlp-v1")
    cheapest = ""
    if cost:
        cheapest = (
            "For the seed MLP, the cheapest cloud is "
            + "; ".join(
                f"{_column_label(column)} for {PATTERN_LABELS.get(pattern, pattern)}"
                for pattern, column in cost["cheapest"].items()
            )
            + "."
        )
    lines = [
        f"<p><strong>What was measured.</strong> The same litefaas function (LiteRT and HPKE-encrypted "
        f"requests, every answer decrypted and checked) on the local hosts of "
        f"{html.escape(', '.join(providers) or 'no provider')}: the seed MLP over version 1 on each, "
        f"and {html.escape(', '.join(models) or 'no other model')} on the functions-framework host. "
        f"{requests:,} requests, {errors} errors; "
        f"{'quick' if env.get('quick') else 'full'} plan, {_num(env.get('seconds'), 0)} s.</p>",
        f"<p><strong>On what machine.</strong> {machine}; run on {html.escape(str(env.get('when', '')))}. "
        "Client and hosts share these cores.</p>",
        "<p><strong>What it means.</strong> Latency, throughput and cold start compare the providers' "
        "adapters and hosts running identical model and crypto code, and compare model shapes with each "
        "other: bytes on the wire and the time to decode and run them. "
        + (
            f"Fastest local host at one client: {html.escape(fastest[0])} "
            f"(p50 {_ms(fastest[1].get('p50_ms'))} ms). "
            if fastest
            else ""
        )
        + html.escape(cheapest)
        + "</p>",
        "<p><strong>What it does not mean.</strong> Local hosts are not the clouds: no network, load "
        "balancer, API gateway, cold-start scheduling or cloud CPU is in these figures. Costs are list "
        "prices from the dated table applied to these execution times under stated traffic patterns, "
        "not invoices.</p>",
    ]
    return "".join(lines)


def html_report(document: Mapping[str, Any], figures: Sequence[Figure], notes: Sequence[str]) -> str:
    """One self-contained page: summary, tables with units, figures with captions, cost, advice."""
    provider_rows = [
        [
            name,
            _ms(r["p50_ms"]),
            _ms(r["p95_ms"]),
            _ms(r["p99_ms"]),
            _num(r["throughput_rps"], 1),
            _num(r["cold_start_ms"], 0),
            _num(r.get("host_start_ms"), 0),
            f"{r['errors']} / {r['requests']}",
        ]
        for name, r in document["providers"].items()
    ]
    providers = _table(
        [
            "provider",
            "p50 (ms)",
            "p95 (ms)",
            "p99 (ms)",
            "max throughput (req/s)",
            "cold start (ms)",
            "host start (ms)",
            "errors / requests",
        ],
        provider_rows,
        "Seed MLP, version 1 (sealed JSON), batch 1; latency at one client, throughput the best over "
        "1, 4, 16 and 64 clients; cold start: a fresh interpreter to its first checked answer (median).",
    )
    oblivious = _table(
        [
            "provider",
            "sealed p50 (ms)",
            "Oblivious HTTP p50 (ms)",
            "Oblivious HTTP / sealed",
            "bytes sent / received",
            "errors / requests",
        ],
        [
            [
                name,
                _ms(r["p50_ms"]),
                _ms(r["oblivious"]["p50_ms"]),
                _num((r["oblivious"]["p50_ms"] or 0) / r["p50_ms"] if r["p50_ms"] else None, 2),
                _wire(r["oblivious"]),
                f"{r['oblivious']['errors']} / {r['oblivious']['requests']}",
            ]
            for name, r in document["providers"].items()
            if r.get("oblivious")
        ],
        "The same seed-MLP row through each function's Oblivious HTTP gateway (RFC 9458): a version-1 "
        "plaintext request padded to 1 KiB and encapsulated, one client, against version 1 sealed at one "
        "client. Through a relay, the function would see the relay's address instead of the caller's.",
    )
    levels = [
        [name, level, _ms(run["p50_ms"]), _ms(run["p99_ms"]), _num(run["throughput_rps"], 1), run["errors"]]
        for name, r in document["providers"].items()
        for level, run in r["by_concurrency"].items()
    ] + [
        [
            f"gcp host: {name}",
            level,
            _ms(run["p50_ms"]),
            _ms(run["p99_ms"]),
            _num(run["throughput_rps"], 1),
            run["errors"],
        ]
        for name, m in (document.get("models") or {}).items()
        for level, run in m["by_concurrency"].items()
    ]
    by_clients = _table(
        ["what", "clients", "p50 (ms)", "p99 (ms)", "throughput (req/s)", "errors"],
        levels,
        "Each level sends the same number of requests; latency includes waiting for a free host thread.",
    )
    model_rows = [
        [
            name,
            m["description"],
            _ms(m["p50_ms"]),
            _ms(m["p95_ms"]),
            _ms(m["p99_ms"]),
            _num(m["throughput_rps"], 1),
            _num(m.get("first_request_ms"), 0),
            _num(m.get("host_start_ms"), 0),
            _bytes(m.get("request_bytes")),
            _bytes(m.get("response_bytes")),
            _bytes(m.get("model_bytes")),
        ]
        for name, m in (document.get("models") or {}).items()
    ]
    models = (
        _table(
            [
                "model",
                "what",
                "p50 (ms)",
                "p95 (ms)",
                "p99 (ms)",
                "max throughput (req/s)",
                "first request (ms)",
                "host start (ms)",
                "request (bytes)",
                "response (bytes)",
                "model file",
            ],
            model_rows,
            "On the functions-framework host (1 worker, 8 threads). First request: the first answer after "
            "the host is up (interpreter built, XNNPACK prepared). Host start: all model hosts started "
            "together until each answers /health. Bytes: one sealed request and its sealed answer "
            "(the chain: per prediction over both segments, key fetches included).",
        )
        if model_rows
        else "<p>Only the seed MLP was measured (the extra models were not run).</p>"
    )
    cost = document.get("cost") or {}
    cost_sections = []
    for key, title in (
        ("by_model", "as configured"),
        ("high_concurrency", "at higher per-instance concurrency"),
    ):
        for model in MODEL_ORDER:
            entry = (cost.get(key) or {}).get(model)
            if entry:
                cost_sections.append(f"<h3>{html.escape(model)}, {title}</h3>" + _cost_html(entry, model))
    warm_rows = warm_month_rows(document)
    if warm_rows:
        cost_sections.append(
            "<h3>one instance kept warm a month</h3>"
            + _table(
                ["cloud", "setting", "per month (USD)"],
                warm_rows,
                f"{cost['warm_month']['memory_mb']} MB, no requests: an idle warm instance is billed at"
                " the provisioned (Lambda), idle minimum-instance (Cloud Run) or always-ready baseline"
                " (Flex) rate.",
            )
        )
    any_cost = next(iter((cost.get("by_model") or {}).values()), None)
    prices = ""
    if any_cost:
        prices = _table(
            ["cloud", "service", "billing unit", "step (ms)", "minimum (ms)", "prices as of", "source"],
            [
                [
                    CLOUD_NAMES[c],
                    p["service"],
                    "per request"
                    if p["billing"].get("unit") == "request"
                    else "per instance activity period",
                    p["billing"].get("granularity_ms"),
                    p["billing"].get("minimum_ms"),
                    p["as_of"],
                    p["source"],
                ]
                for c, p in any_cost["prices"].items()
            ],
            "Free tiers off; data transfer and API gateways left out. " + any_cost["updating"],
        )
    baseline = document.get("baseline") or {}
    base_rows = []
    if "cold_start_ms" in baseline:
        base_rows = [
            [
                "import the runtime (ms)",
                _num(baseline.get("import_ms"), 0),
                _num(baseline.get("litert_import_ms"), 0),
            ],
            [
                "cold start to the first encrypted answer (ms)",
                _num(baseline.get("cold_start_ms"), 0),
                _num(baseline.get("litert_cold_start_ms"), 0),
            ],
            [
                "installed dependency closure (MB)",
                _num(baseline.get("tensorflow_closure_mb"), 1),
                _num(baseline.get("litert_closure_mb"), 1),
            ],
        ]
        tf_bundle, lite_bundle = baseline.get("tensorflow_bundle_mb"), baseline.get("litert_bundle_mb")
        if isinstance(tf_bundle, dict) and isinstance(lite_bundle, dict):
            base_rows.append(
                [
                    "AWS x86_64 bundle, zipped (MB)",
                    _num(tf_bundle["zipped"], 1),
                    _num(lite_bundle["zipped"], 1),
                ]
            )
        baseline_html = _table(
            ["what", "TensorFlow in the function", "LiteRT (litefaas)"],
            base_rows,
            f"Cold start {_num(baseline.get('cold_start_ratio'), 1)}× faster on LiteRT; dependency closure "
            f"{_num(baseline.get('closure_ratio'), 1)}× smaller.",
        )
        if isinstance(baseline.get("bundles"), str):
            baseline_html += f"<p class=note>Bundles: {html.escape(baseline['bundles'])}.</p>"
    else:
        baseline_html = f"<p>{html.escape(str(baseline.get('skipped', 'not measured')))}</p>"
    env = document.get("environment") or {}
    note_items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    when = html.escape(str(env.get("when", "")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>litefaas benchmark</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.8em 0 1.6em;font-size:.9em}}
caption{{caption-side:bottom;text-align:left;color:#555;font-size:.85em;padding-top:.3em}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}th{{background:#f3f3f3}}
td:first-child,th:first-child,td.t{{text-align:left}}img{{max-width:100%}}
figure{{margin:1.5em 0}}figcaption{{color:#444;font-size:.9em}}.note{{color:#555;font-size:.85em}}
section{{margin-bottom:2em}}</style></head>
<body><h1>litefaas: the function on three providers, compared</h1>
<section id="summary"><h2>Summary</h2>{_summary(document)}</section>
<section id="providers"><h2>Providers: the seed MLP on each local host</h2>
{providers}{by_clients}{oblivious}</section>
<section id="models"><h2>Model shapes</h2>{models}</section>
<section id="cost"><h2>Cost per million requests by traffic pattern</h2>
<p>Traffic patterns: isolated requests (one every 5 s, each alone on its instance), steady Poisson
load at 1, 10 and 100 requests per second, and a real day of Azure Functions traffic (the trace
{html.escape(str(cost.get("trace", "")))}, every request running as long as ours). Instances, cold starts and
keep-alive come from the simulator's pool; each cloud's billing unit, step and minimum from the
price table. The cheapest column of each row is named on the right.</p>
{prices}{"".join(cost_sections)}</section>
<section id="pick"><h2>What to pick for what</h2>{_pick(document)}</section>
<section id="figures"><h2>Figures</h2>{"".join(_figure(f) for f in figures)}</section>
<section id="baseline"><h2>Baseline: the same function with TensorFlow</h2>{baseline_html}</section>
<section id="notes"><h2>How these figures were measured</h2><ul>{note_items}</ul>
<p>Raw data: <a href="bench.json">bench.json</a> (beside this page). Run {when}.</p></section>
</body></html>
"""
