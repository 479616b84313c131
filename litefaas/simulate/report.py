"""What ``litefaas simulate`` shows and writes: the comparison table, the JSON file, the Pareto plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from litefaas.simulate.prices import CLOUDS


def summary_table(result: dict[str, Any], title: str) -> Table:
    """One row per policy: cold starts, wasted memory, utilization, latency and cost per cloud."""
    table = Table(title=title)
    for column in ("policy", "cold %", "cold % p75", "wasted GB-s", "R", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for cloud in CLOUDS:
        table.add_column(f"$ {cloud}", justify="right")
    best = pareto_front(result)
    for name, m in result["policies"].items():
        table.add_row(
            f"[bold]{name}[/]" if name in best else name,
            f"{m['cold_start_pct']:.3f}",
            f"{m['cold_start_pct_p75']:.2f}",
            f"{m['wasted_memory_gb_s']:,.0f}",
            f"{m['utilization']:.3f}",
            f"{m['p50_ms']:,.0f}",
            f"{m['p99_ms']:,.0f}",
            *(f"{m['cost_usd'][c]:,.2f}" for c in CLOUDS),
        )
    return table


def function_table(result: dict[str, Any], top: int) -> Table:
    """Cold-start percentage of the ``top`` busiest functions under each policy."""
    names = list(result["policies"])
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        for row in result["policies"][name]["per_function"]:
            rows.setdefault(row["function"], {"invocations": row["invocations"]})[name] = row[
                "cold_start_pct"
            ]
    busiest = sorted(rows.items(), key=lambda item: -item[1]["invocations"])[:top]
    table = Table(title=f"cold-start % of the {len(busiest)} busiest functions")
    table.add_column("function")
    table.add_column("calls", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for function, row in busiest:
        table.add_row(function[:12], f"{row['invocations']:,}", *(f"{row[n]:.2f}" for n in names))
    return table


def pareto_front(result: dict[str, Any]) -> set[str]:
    """Policies no other policy beats on both cold-start % and wasted memory."""
    points = {n: (m["cold_start_pct"], m["wasted_memory_gb_s"]) for n, m in result["policies"].items()}
    return {
        n
        for n, (c, w) in points.items()
        if not any(c2 <= c and w2 <= w and (c2, w2) != (c, w) for c2, w2 in points.values())
    }


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def gb_s_label(value: float, _position: object = None) -> str:
    """A tick label in GB-s: ``850``, ``12 k``, ``3.1 M``."""
    for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def pareto_plot(result: dict[str, Any], path: Path, title: str) -> None:
    """Cold-start % (overall, and the 75th percentile over functions) against wasted memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    policies = result["policies"]
    front = pareto_front(result)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for axis, key, label in (
        (axes[0], "cold_start_pct", "cold starts, % of invocations"),
        (axes[1], "cold_start_pct_p75", "cold starts, 75th percentile over functions (%)"),
    ):
        placed: list[tuple[float, float]] = []
        for name, m in policies.items():
            x, y = m["wasted_memory_gb_s"], m[key]
            axis.scatter([x], [y], s=50, marker="o" if name in front else "x", zorder=3)
            crowded = any(
                abs(x - px) <= 0.05 * max(x, px) and abs(y - py) <= 0.05 * max(y, py) for px, py in placed
            )
            offset = (5, -11) if crowded else (5, 4)
            axis.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
            placed.append((x, y))
        if key == "cold_start_pct":
            line = sorted((policies[n]["wasted_memory_gb_s"], policies[n][key]) for n in front)
            axis.plot([p[0] for p in line], [p[1] for p in line], linestyle="--", linewidth=1, zorder=2)
        values = [m[key] for m in policies.values()] + [m["wasted_memory_gb_s"] for m in policies.values()]
        if min(values) > 0:
            axis.set_xscale("log")
            axis.set_yscale("log")
            for scale in (axis.xaxis, axis.yaxis):
                scale.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                scale.set_minor_formatter(ticker.NullFormatter())
            axis.xaxis.set_major_formatter(ticker.FuncFormatter(gb_s_label))
            axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_xlabel("wasted memory time (idle GB-s)")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
    figure.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
