"""``litefaas inspect`` and ``litefaas build --from model.tflite``: models this project did not build."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from litefaas.cli.base import Commands, print_json

STATEFUL_NOTE = (
    "[yellow]stateful[/]: the model keeps resource variables (VAR_HANDLE, ASSIGN_VARIABLE) from one "
    "invoke to the next, as streaming models do. litefaas runs every request on an interpreter no "
    "request has used, its rows in order as one stream, so nothing one caller sends reaches another "
    "caller's answer; state does not carry between requests: send a stream's chunks in one request."
)


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show a .tflite file's or an artifact's inputs, outputs, ops, sizes and variants",
        description="Print what a .tflite file (or an artifact folder) holds: inputs and outputs with "
        "dtypes, shapes and batch dimension, ops, size, TFLite metadata, variants, and what the function "
        "will accept; a model litefaas cannot serve is shown with the reason.",
    )
    parser.add_argument("target", type=Path, metavar="ARTIFACT_OR_TFLITE")
    parser.add_argument("--json", action="store_true", help="print the description as one JSON document")
    parser.set_defaults(handler=run_inspect)


def is_tflite_source(source: Path | None) -> bool:
    """``--from`` names a ``.tflite`` file or a folder holding ``.tflite`` files but no SavedModel."""
    if source is None:
        return False
    if source.suffix == ".tflite":
        return True
    return source.is_dir() and not (source / "saved_model.pb").is_file() and any(source.glob("*.tflite"))


def run_tflite_build(args: argparse.Namespace) -> int:
    """``build --from model.tflite``: import, compress, measure, select, write; print the table."""
    from rich.progress import TextColumn

    from litefaas.cli.console import compression_table, make_console, tensorflow_progress
    from litefaas.cli.images import image_options
    from model.tflite_import import (
        build_from_tflite,
        parse_input_ranges,
        parse_input_shapes,
        parse_row_limits,
    )

    out = args.out or Path("build") / "models" / args.source.stem
    with tensorflow_progress("import", TextColumn("")) as progress:
        task = progress.add_task("starting", total=None)
        result = build_from_tflite(
            args.source,
            out,
            signature=getattr(args, "signature", None),
            calibration=args.calibration,
            input_ranges=parse_input_ranges(getattr(args, "input_range", None) or []),
            input_shapes=parse_input_shapes(getattr(args, "input_shape", None) or []),
            max_row_elements=parse_row_limits(getattr(args, "max_row_elements", None) or []),
            max_abs_diff=args.max_abs_diff,
            max_accuracy_drop=args.max_accuracy_drop,
            name=args.name,
            version=getattr(args, "model_version", None),
            labels=getattr(args, "labels", None),
            images=image_options(args),
            step=lambda text: progress.update(task, description=text),
        )
    console = make_console()
    console.print(
        compression_table(result.reports, title=f"{result.manifest['name']}: variants", baseline="original")
    )
    for variant, reason in result.skipped.items():
        console.print(f"[yellow]{variant}[/]: not made: {reason}")
    for variant, earlier in result.same_as.items():
        console.print(f"{variant}: the same bytes as {earlier}, so not kept apart")
    console.print(
        f"selected [bold]{result.manifest['variant']}[/] ({result.manifest['batching']} batching); "
        f"artifact written to {result.out}"
    )
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from model.inspect import describe

    info = describe(args.target)
    if args.json:
        print_json(info)
        return 0
    _print(info)
    return 0


def _shape(tensor: dict[str, Any]) -> str:
    """``N`` for the batch, ``?`` for any other dynamic dimension."""
    dims = ["?" if d is None or d < 0 else str(d) for d in tensor["shape"]]
    if dims and tensor["shape"][0] is None:
        dims[0] = "N"
    return "[" + ", ".join(dims) + "]"


def _print(info: dict[str, Any]) -> None:
    from rich.table import Table

    from litefaas.cli.console import make_console

    console = make_console()
    title = info.get("name") or Path(info.get("file", "")).name
    head = f"[bold]{title}[/]  {info['kind']}  {info['bytes']:,} bytes  sha256 {info['sha256'][:16]}…"
    head += f"  signature {info['signature'] or '(none: tensor names)'}"
    if info.get("batching"):
        head += f"  batching {info['batching']}"
    console.print(head)
    tensors = Table(title="tensors")
    columns = ("", "name", "dtype", "shape served", "model shape", "batch", "quantization", "accepts / holds")
    for column in columns:
        tensors.add_column(column)
    for kind in ("inputs", "outputs"):
        for tensor in info["inputs" if kind == "inputs" else "outputs"]:
            quantization = tensor.get("quantization")
            tensors.add_row(
                kind[:-1],
                tensor["name"],
                tensor["dtype"],
                _shape(tensor),
                str(tensor.get("model_shape", "")),
                tensor.get("batch", ""),
                f"scale {quantization['scale']:.6g}, zero {quantization['zero_point']}"
                if quantization
                else "",
                info["accepts"].get(tensor["name"], "") if kind == "inputs" else tensor.get("kind", ""),
            )
    console.print(tensors)
    ops = ", ".join(f"{name}×{count}" for name, count in sorted(info["ops"].items()))
    console.print(f"ops: {ops}")
    if info.get("variants"):
        variants = Table(title="variants")
        for column in ("variant", "file", "bytes", "max |Δ|", "selected"):
            variants.add_column(column)
        reports = {r["variant"]: r for r in info.get("compression", [])}
        for variant, entry in info["variants"].items():
            report = reports.get(variant, {})
            diff = report.get("max_abs_diff")
            variants.add_row(
                variant,
                entry["file"],
                f"{entry['bytes']:,}" if entry["bytes"] is not None else "missing",
                "—" if diff is None else f"{diff:.4g}",
                "yes" if variant == info.get("variant") else "",
            )
        console.print(variants)
        for variant, reason in info.get("variants_not_made", {}).items():
            console.print(f"{variant}: not made: {reason}")
        for variant, earlier in info.get("variants_same_as", {}).items():
            console.print(f"{variant}: the same bytes as {earlier}, so not kept apart")
    if info.get("oip"):
        _print_oip(console, info["oip"])
    metadata = {k: v for k, v in info.get("metadata", {}).items() if isinstance(v, str)}
    if metadata:
        console.print("metadata: " + "; ".join(f"{k}: {v}" for k, v in metadata.items()))
    if info.get("stateful"):
        console.print(STATEFUL_NOTE)
    if info.get("xnnpack_ops"):
        console.print(
            f"[yellow]XNNPACK only[/]: custom op(s) {', '.join(info['xnnpack_ops'])} are provided by "
            "LiteRT's XNNPACK delegate (on by default), not its built-in ops: a function with "
            "LITEFAAS_XNNPACK=0 refuses to start with this model"
        )
    if info["servable"]:
        console.print("[green]litefaas can serve this model[/]")
    else:
        console.print(f"[red]litefaas cannot serve this model:[/] {info['problem']}")


def _print_oip(console: Any, oip: dict[str, Any]) -> None:
    """The model's Open Inference Protocol metadata, as ``GET /v2/models/{name}`` answers it."""
    from rich.table import Table

    route = f"/v2/models/{oip['name']}"
    table = Table(title=f"Open Inference Protocol: GET {route}")
    for column in ("", "name", "datatype", "shape"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for tensor in oip[kind]:
            table.add_row(kind[:-1], tensor["name"], tensor["datatype"], str(tensor["shape"]))
    console.print(table)
    versioned = f"{route}/versions/{oip['versions'][0]}/infer"
    console.print(f"OIP inference: POST {route}/infer (or {versioned}); platform {oip['platform']}")
