"""``litefaas build`` and ``litefaas demo``: the model pipeline with a progress display and a table."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from litefaas.cli import CommandError
from litefaas.console import make_console, native_output_diverted


def compression_table(reports: Sequence[dict[str, object]], title: str = "compression") -> Table:
    """The compression report as a rich table (selected variant marked)."""
    table = Table(title=title)
    for column, justify in (
        ("variant", "left"),
        ("bytes", "right"),
        ("C vs float32", "right"),
        ("C vs Keras", "right"),
        ("accuracy", "right"),
        ("AUC", "right"),
        ("max |Δp|", "right"),
        ("b=1 µs", "right"),
        ("b=256 µs", "right"),
        ("loads on", "left"),
        ("", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]

    def number(value: object, digits: int) -> str:
        return "—" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]

    for report in reports:
        table.add_row(
            str(report["variant"]),
            f"{report['bytes']:,}",
            number(report["ratio"], 3),
            number(report.get("ratio_vs_keras"), 3),
            number(report["accuracy"], 4),
            number(report["auc"], 4),
            number(report["max_abs_diff"], 4),
            number(report["latency_us_b1"], 1),
            number(report["latency_us_b256"], 1),
            ", ".join(report.get("runtimes", [])),  # type: ignore[arg-type]
            "[bold green]selected[/]" if report["selected"] else "",
        )
    return table


@contextlib.contextmanager
def tensorflow_progress(what: str, *columns: ProgressColumn) -> Iterator[Progress]:
    """A transient progress display while TensorFlow's own output goes to a log file.

    A :class:`BuildError` becomes a :class:`CommandError` (exit 2); anything else
    unexpected keeps the log and says where it is.
    """
    from model.errors import BuildError

    with (
        native_output_diverted() as (console, log),
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            *columns,
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        try:
            yield progress
        except BuildError as exc:
            log.unlink(missing_ok=True)
            raise CommandError(str(exc)) from None
        except Exception:
            progress.stop()
            console.print(f"[red]the {what} failed unexpectedly; TensorFlow's output is in {log}[/]")
            raise
    log.unlink(missing_ok=True)


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
        options.version = args.model_version
        if options.epochs < 1:
            raise CommandError("--epochs must be at least 1")
    with tensorflow_progress("build", BarColumn(), TextColumn("{task.fields[detail]}")) as progress:
        task = progress.add_task("starting", total=None, detail="")

        def step(text: str) -> None:
            progress.update(task, description=text, total=None, completed=0, detail="")

        def epoch(done: int, total: int, logs: dict[str, float]) -> None:
            loss, accuracy = logs.get("loss", float("nan")), logs.get("accuracy", float("nan"))
            detail = f"epoch {done}/{total}  loss {loss:.4f}  acc {accuracy:.4f}"
            progress.update(task, total=total, completed=done, detail=detail)

        result = build(options, step, epoch)
    console = make_console()
    console.print(compression_table(result.reports, title=f"{result.manifest['name']}: variants"))
    if result.reference_accuracy is not None:
        console.print(
            f"Keras reference accuracy {result.reference_accuracy:.4f}, file {result.keras_bytes:,} bytes"
        )
    console.print(f"selected [bold]{result.manifest['variant']}[/]; artifact written to {result.out}")
    return result.out


def run_build(args: argparse.Namespace) -> int:
    build_model(args.out, args)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """The main job: the model (built if missing) and its compression, then the cross-provider bench."""
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
    from litefaas.bench_cmd import run as run_bench

    bench_args = argparse.Namespace(
        local=True,
        url=[],
        providers="aws,gcp,azure",
        quick=True,
        requests=None,
        out=args.out,
        port=args.port,
        memory_mb=512,
        prices=None,
    )
    return run_bench(bench_args)
