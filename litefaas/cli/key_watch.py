"""Ctrl-T at the terminal, SIGINFO (BSD, macOS) or SIGUSR1: "show me where things stand", for a
command that runs until it is stopped. Ctrl-C still stops it (the terminal stays in cbreak mode,
with its signals, and is restored on stop)."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from types import FrameType
from typing import Any

CTRL_T = b"\x14"


class KeyWatch:
    """Notes each request for a summary; :meth:`asked` says whether one came since the last call."""

    def __init__(self) -> None:
        self._asked = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_tty: Any = None
        self._previous: dict[int, Any] = {}

    def start(self) -> KeyWatch:
        for name in ("SIGINFO", "SIGUSR1"):
            number = getattr(signal, name, None)
            if number is not None:
                self._previous[number] = signal.signal(number, self._on_signal)
        if sys.stdin is not None and sys.stdin.isatty():
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._thread = threading.Thread(target=self._read_keys, args=(fd,), daemon=True)
            self._thread.start()
        return self

    def asked(self) -> bool:
        if self._asked.is_set():
            self._asked.clear()
            return True
        return False

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(1)
        if self._saved_tty is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._asked.set()

    def _read_keys(self, fd: int) -> None:
        while not self._done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready and os.read(fd, 1) == CTRL_T:
                self._asked.set()
