"""Terminal output shared by the commands: one rich console, and a way to keep native noise off it."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console

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
