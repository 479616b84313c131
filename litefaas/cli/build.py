"""``litefaas build``: the model pipeline with a progress display and the compression table."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from litefaas.cli.base import Commands
from litefaas.cli.console import compression_table, tensorflow_progress
from litefaas.cli.images import add_image_arguments, image_options
from litefaas.errors import CommandError


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "build",
        help="train or import a model, convert and compress it, write the artifact",
        description="Train the seed MLP (or import --from a Keras file or SavedModel), convert it to "
        "float32, float16, dynamic-range and full-int8 TFLite, measure each, select the default "
        "variant and write the artifact folder.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="a .keras/.h5 file, a SavedModel folder, or a .tflite file (or a folder holding one)",
    )
    parser.add_argument(
        "--calibration", type=Path, help=".npz with one array per input (and optional y labels)"
    )
    parser.add_argument(
        "--out", type=Path, help="artifact folder (default: model/artifacts/breast_cancer_mlp)"
    )
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01, help="default 0.01")
    parser.add_argument(
        "--max-abs-diff", type=float, default=0.1, help="budget when there are no labels (default 0.1)"
    )
    parser.add_argument(
        "--epochs", type=int, default=60, help="training epochs for the seed MLP (default 60)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", help="model name (default: the seed's name or the file's)")
    parser.add_argument(
        "--model-version", help="version written in the manifest (default 1.0.0, or the .tflite's metadata)"
    )
    parser.add_argument(
        "--signature", help=".tflite: the signature to serve (default serving_default or the only one)"
    )
    parser.add_argument(
        "--input-range",
        action="append",
        metavar="NAME=LO,HI",
        help=".tflite without --calibration: range of the generated inputs (default 0..1 for float)",
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        metavar="NAME=D1,D2,…",
        help=".tflite: one row's shape for an input with dynamic dimensions beyond the batch (without "
        "--calibration, whose rows give it): the model is allocated and measured at it",
    )
    parser.add_argument(
        "--max-row-elements",
        action="append",
        metavar="NAME=N",
        help=".tflite: the most elements one row of a dynamic-shaped input may have (default 16 times "
        "the row it is built at); the model is run at that size before it is accepted",
    )
    parser.add_argument("--labels", type=Path, help=".tflite: a label file, one label a line")
    parser.add_argument(
        "--example",
        choices=("digits",),
        help="build a built-in example instead: digits = a small CNN on scikit-learn's 8x8 digits that "
        "reads PNG/JPEG/WebP drawings (default --out model/artifacts/digits_cnn)",
    )
    add_image_arguments(parser)
    parser.set_defaults(handler=run_build)


def build_model(out: Path | None, args: argparse.Namespace | None = None) -> Path:
    from model.pipeline import DEFAULT_OUT, BuildOptions, build

    options = BuildOptions(out=out or DEFAULT_OUT)
    if args is not None:
        options.source = args.source
        options.calibration = args.calibration
        options.max_accuracy_drop = args.max_accuracy_drop
        options.max_abs_diff = args.max_abs_diff
        options.epochs = args.epochs
        options.seed = args.seed
        options.name = args.name
        options.version = args.model_version or "1.0.0"
        options.images = image_options(args)
        if options.epochs < 1:
            raise CommandError("--epochs must be at least 1")
    with training_progress() as (step, epoch):
        result = build(options, step, epoch)
    show_build(result, "")
    return result.out


Callbacks = tuple[Callable[[str], None], Callable[[int, int, dict[str, float]], None]]


@contextlib.contextmanager
def training_progress() -> Iterator[Callbacks]:
    """A progress bar while a model trains and converts: ``(step, epoch)`` callbacks for the pipeline."""
    from rich.progress import BarColumn, TextColumn

    with tensorflow_progress("build", BarColumn(), TextColumn("{task.fields[detail]}")) as progress:
        task = progress.add_task("starting", total=None, detail="")

        def step(text: str) -> None:
            progress.update(task, description=text, total=None, completed=0, detail="")

        def epoch(done: int, total: int, logs: dict[str, float]) -> None:
            loss, accuracy = logs.get("loss", float("nan")), logs.get("accuracy", float("nan"))
            detail = f"epoch {done}/{total}  loss {loss:.4f}  acc {accuracy:.4f}"
            progress.update(task, total=total, completed=done, detail=detail)

        yield step, epoch


def show_build(result: Any, held_out: str) -> None:
    """The compression table, the reference accuracy and where the artifact went."""
    from litefaas.cli.console import make_console

    console = make_console()
    console.print(compression_table(result.reports, title=f"{result.manifest['name']}: variants"))
    if result.reference_accuracy is not None:
        console.print(
            f"Keras reference accuracy {result.reference_accuracy:.4f}{held_out}, "
            f"file {result.keras_bytes:,} bytes"
        )
    console.print(f"selected [bold]{result.manifest['variant']}[/]; artifact written to {result.out}")


def build_example(args: argparse.Namespace) -> Path:
    """``build --example digits``: train, convert, measure and write the digits CNN."""
    from model.digits import DEFAULT_OUT, build_digits

    if args.source is not None or args.calibration is not None or getattr(args, "image_input", None):
        raise CommandError("--example builds a built-in model: no --from, --calibration or --image-* with it")
    epochs = 40 if args.epochs == 60 else args.epochs  # 60 is the seed MLP's default
    if epochs < 1:
        raise CommandError("--epochs must be at least 1")
    with training_progress() as (step, epoch):
        result = build_digits(
            args.out or DEFAULT_OUT,
            epochs=epochs,
            seed=args.seed,
            max_accuracy_drop=args.max_accuracy_drop,
            version=args.model_version or "1.0.0",
            step=step,
            epoch=epoch,
        )
    show_build(result, " on the held-out digits")
    return result.out


def run_build(args: argparse.Namespace) -> int:
    from litefaas.cli.inspect import is_tflite_source, run_tflite_build

    if getattr(args, "example", None) == "digits":
        build_example(args)
        return 0
    if is_tflite_source(args.source):
        return run_tflite_build(args)
    build_model(args.out, args)
    return 0
