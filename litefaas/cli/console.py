"""Terminal output shared by the commands: one rich console, a way to keep native noise off it, the
model's compression table and a progress display while TensorFlow works."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn
    from rich.table import Table

MIN_WIDTH = 140


def make_console(stream: TextIO | None = None) -> Console:
    """A console that is never narrower than the tables it prints, even when piped."""
    console = Console(file=stream)
    if not console.is_terminal:
        console = Console(file=stream, width=max(console.width, MIN_WIDTH))
    return console


@contextlib.contextmanager
def native_output_diverted() -> Iterator[tuple[Console, Path]]:
    """Send everything written to file descriptors 1 and 2 (TensorFlow's C++ logs, converter
    prints, warnings) to a log file; yield a console that still reaches the terminal, and the log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    log_fd, log_name = tempfile.mkstemp(prefix="litefaas-", suffix=".log")
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield make_console(terminal), Path(log_name)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)
        terminal.close()


def compression_table(
    reports: Sequence[dict[str, object]], title: str = "compression", baseline: str = "float32"
) -> Table:
    """The compression report as a rich table (selected variant marked), without empty columns."""
    from rich.table import Table

    def number(value: object, digits: int) -> str:
        return "—" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]

    columns: list[tuple[str, str, Callable[[dict[str, object]], str], str]] = [
        ("variant", "left", lambda r: str(r["variant"]), "variant"),
        ("bytes", "right", lambda r: f"{r['bytes']:,}", "bytes"),
        (f"C vs {baseline}", "right", lambda r: number(r["ratio"], 3), "ratio"),
        ("C vs Keras", "right", lambda r: number(r.get("ratio_vs_keras"), 3), "ratio_vs_keras"),
        ("accuracy", "right", lambda r: number(r.get("accuracy"), 4), "accuracy"),
        ("AUC", "right", lambda r: number(r.get("auc"), 4), "auc"),
        ("max |Δ|", "right", lambda r: number(r["max_abs_diff"], 4), "max_abs_diff"),
        ("b=1 µs", "right", lambda r: number(r.get("latency_us_b1"), 1), "latency_us_b1"),
        ("b=256 µs", "right", lambda r: number(r.get("latency_us_b256"), 1), "latency_us_b256"),
        ("loads on", "left", lambda r: ", ".join(r.get("runtimes", [])), "runtimes"),  # type: ignore[arg-type]
        ("", "left", lambda r: "[bold green]selected[/]" if r["selected"] else "", "selected"),
    ]
    shown = [column for column in columns if any(report.get(column[3]) is not None for report in reports)]
    table = Table(title=title)
    for heading, justify, _, _ in shown:
        table.add_column(heading, justify=justify)  # type: ignore[arg-type]
    for report in reports:
        table.add_row(*(cell(report) for _, _, cell, _ in shown))
    return table


@contextlib.contextmanager
def tensorflow_progress(what: str, *columns: ProgressColumn) -> Iterator[Progress]:
    """A transient progress display while TensorFlow's own output goes to a log file.

    A :class:`BuildError` goes on (the command exits 2 with its message); anything else
    unexpected keeps the log and says where it is.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
        except BuildError:
            log.unlink(missing_ok=True)
            raise
        except Exception:
            progress.stop()
            console.print(f"[red]the {what} failed unexpectedly; TensorFlow's output is in {log}[/]")
            raise
    log.unlink(missing_ok=True)
