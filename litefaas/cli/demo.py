"""``litefaas demo``: the main job, the model and its compression, then the cross-provider benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.protocol import PROVIDERS
from litefaas.cli.base import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="the main job: the model, then the function served on all three providers and compared",
        description="Show the model's compression table (building the model if its artifact is missing), "
        "then run `litefaas bench --quick` on the three local hosts (and the image model and a 2-segment "
        "chain on one), and print the comparison and the cost by traffic pattern.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("build/bench"), help="report folder (default build/bench)"
    )
    parser.add_argument("--port", type=int, default=8300, help="first local port (default 8300)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The model (built if missing) and its compression table, then ``bench --quick`` on local hosts."""
    import json

    from litefaas.benchmark.compare import Options
    from litefaas.benchmark.run import Plan
    from litefaas.cli.bench import measure_and_show
    from litefaas.cli.build import build_model
    from litefaas.cli.console import compression_table, make_console
    from model.pipeline import DEFAULT_OUT

    console = make_console()
    console.rule("litefaas demo 1/2: the model")
    if not (DEFAULT_OUT / "manifest.json").is_file():
        console.print(f"no model artifact in {DEFAULT_OUT}: building it")
        build_model(DEFAULT_OUT)
    else:
        reports = json.loads((DEFAULT_OUT / "compression.json").read_text(encoding="utf-8"))
        console.print(compression_table(reports, title=f"{DEFAULT_OUT.name}: variants (litefaas build)"))
    console.rule("litefaas demo 2/2: the function on AWS, GCP and Azure, locally")
    options = Options(
        providers=PROVIDERS, plan=Plan.choose(quick=True), out=args.out, port=args.port, quick=True
    )
    return measure_and_show(options)
