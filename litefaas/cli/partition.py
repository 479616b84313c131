"""``litefaas partition``: cut a Keras model into TFLite segments served by one function each."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litefaas.cli.base import Commands
from litefaas.errors import CommandError


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "partition",
        help="cut a model into segments, one function each, and verify the chain",
        description="Cut a Keras model (sequential, or functional where one tensor crosses the cut) "
        "into TFLite segments balanced by weight bytes or FLOPs. Each segment folder is an artifact a "
        "function serves with LITEFAAS_MODEL_DIR; chain.json lists them in order. Without --model, the "
        "seed MLP is retrained as litefaas build trains it (seeded). The chain is checked against the "
        "whole model: within 1e-5 in float32, within the whole model's own error when quantized.",
    )
    parser.add_argument(
        "--model",
        dest="source",
        type=Path,
        metavar="FILE|DIR",
        help="a .keras/.h5 file (or a folder holding model.keras); default: retrain the seed MLP",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="NPZ",
        help=".npz with one array per input (and optional y); needed with --model",
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--segments", type=int, metavar="N", help="cut into N segments")
    size.add_argument(
        "--max-segment-bytes",
        type=int,
        metavar="B",
        help="the fewest segments whose every .tflite file is at most B bytes",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for chain.json and segment-*/"
    )
    parser.add_argument(
        "--balance", choices=["bytes", "flops"], default="bytes", help="what to even out (default bytes)"
    )
    parser.add_argument(
        "--variant",
        choices=["float32", "float16", "dynamic_range", "int8"],
        default="int8",
        help="how each segment is quantized (default int8, as the whole model)",
    )
    parser.add_argument("--epochs", type=int, default=60, help="seed MLP training epochs (default 60)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", help="chain name (default: the seed's name or the file's)")
    parser.add_argument("--model-version", default="1.0.0", help="version written in the manifests")
    parser.add_argument(
        "--with-whole", action="store_true", help="also write the uncut model to whole/ (for comparisons)"
    )
    parser.set_defaults(handler=run_partition)


def run_partition(args: argparse.Namespace) -> int:
    from litefaas.cli.console import make_console, tensorflow_progress
    from model.partition import PartitionOptions, partition

    if args.epochs < 1:
        raise CommandError("--epochs must be at least 1")
    options = PartitionOptions(
        out=args.out,
        segments=args.segments,
        max_segment_bytes=args.max_segment_bytes,
        balance=args.balance,
        variant=args.variant,
        source=args.source,
        calibration=args.calibration,
        epochs=args.epochs,
        seed=args.seed,
        name=args.name,
        version=args.model_version,
        with_whole=args.with_whole,
    )
    with tensorflow_progress("partition") as progress:
        task = progress.add_task("starting", total=None)
        result = partition(options, lambda text: progress.update(task, description=text))
    console = make_console()
    console.print(segment_table(result.chain))
    for line in verification_lines(result.chain):
        console.print(line)
    for note in result.notes:
        console.print(note)
    console.print(f"chain written to {result.out}")
    return 0


def segment_table(chain: Mapping[str, Any]) -> Any:
    """The segments of a chain manifest as a rich table."""
    from rich.table import Table

    table = Table(title=f"{chain['name']}: {len(chain['segments'])} segments, {chain['variant']}")
    for column, justify in (
        ("#", "right"),
        ("folder", "left"),
        ("layers", "left"),
        ("takes", "left"),
        ("hands on", "left"),
        ("bytes", "right"),
        ("weights", "right"),
        ("FLOPs/row", "right"),
        ("sha256", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for segment in chain["segments"]:
        table.add_row(
            str(segment["index"]),
            segment["folder"],
            ", ".join(segment["layers"]),
            ", ".join(segment["takes"]),
            segment["hands_on"] or "(outputs)",
            f"{segment['bytes']:,}",
            f"{segment['weights']:,}",
            f"{segment['flops']:,}",
            segment["sha256"][:12],
        )
    whole = chain["whole"]
    total = sum(segment["bytes"] for segment in chain["segments"])
    table.caption = f"whole model {whole['bytes']:,} bytes; segments together {total:,} bytes"
    return table


def verification_lines(chain: Mapping[str, Any]) -> list[str]:
    """One line per verified variant: the chain against the whole model."""
    verification = chain["verification"]
    lines = []
    for variant in ("float32", "float16", "dynamic_range", "int8"):
        report = verification.get(variant)
        if report is None:
            continue
        verdict = "[green]ok[/]" if report["passed"] else "[red]FAILED[/]"
        lines.append(
            f"{variant}: chain vs whole max |Δ| {report['max_abs_diff_vs_whole']:.2e} "
            f"≤ {report['tolerance']:.2e} ({report['tolerance_rule']}) {verdict}; "
            f"vs Keras {report['max_abs_diff_vs_keras']:.2e} on {verification['rows']} rows"
        )
    return lines
