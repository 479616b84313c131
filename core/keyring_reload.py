"""Key rotation without a restart: re-read ``LITEFAAS_PRIVATE_KEYS_FILE`` when it changes.

The check runs on the request path: one ``stat`` at most once per ``LITEFAAS_KEYS_RELOAD_S``,
and one more whenever a request names a kid the ring does not hold (the file may already have
it: another instance of the function read it first and published it in ``GET /keys``). The file
is parsed only when its stamp changed, so a flood of unknown kids costs a ``stat`` each. A file
that does not parse keeps the ring in use and logs one line naming the variable. Nothing logged
carries key material.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core import logs
from core.config import PRIVATE_KEYS_FILE, read_keys_file
from core.crypto import KeyRing
from core.errors import ConfigError

Stamp = tuple[int | str, ...]


def file_stamp(path: Path) -> Stamp:
    """What changes when a file is replaced or rewritten: device, inode, size, mtime."""
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def kids(ring: KeyRing) -> list[str]:
    return [entry.kid for entry in ring]


class KeyFileWatcher:
    """Holds the current key ring of a key file and replaces it when the file changes. Thread-safe."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        keyring: KeyRing,
        logger: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.keyring = keyring
        self._logger = logger
        self._clock = clock
        self._lock = threading.Lock()
        # None: the first check reads the file once, in case it changed while the function started
        self._stamp: Stamp | None = None
        self._next_check = clock() + interval_s

    def poll(self, *, unknown_kid: bool = False) -> KeyRing | None:
        """The new ring if the check is due (always, for an ``unknown_kid``) and the file changed to a
        valid ring; else None. :attr:`keyring` is the latest ring either way."""
        now = self._clock()
        if unknown_kid:
            with self._lock:  # wait for a check in progress: it may be reading the very key
                self._next_check = now + self.interval_s
                return self._check()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return None  # not due, or another thread is checking: this request uses the ring in place
        try:
            self._next_check = now + self.interval_s
            return self._check()
        finally:
            self._lock.release()

    def _check(self) -> KeyRing | None:
        try:
            stamp = file_stamp(self.path)
        except OSError as exc:
            stamp = ("unreadable", exc.errno or 0)
            if stamp != self._stamp:
                self._stamp = stamp
                self._log_failure(f"cannot stat the file ({exc.__class__.__name__})")
            return None
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            ring = read_keys_file(self.path)
        except ConfigError as exc:
            self._log_failure(exc.problem)
            return None
        if ring.public_keyset() == self.keyring.public_keyset():
            return None
        previous, self.keyring = self.keyring, ring
        logs.log_event(self._logger, logging.INFO, "keys_reloaded", keys=kids(ring), previous=kids(previous))
        return ring

    def _log_failure(self, problem: str) -> None:
        """One line per state of the file; the ring in use is kept."""
        logs.log_event(
            self._logger,
            logging.ERROR,
            "keys_reload_failed",
            variable=PRIVATE_KEYS_FILE,
            problem=problem,
            kept=kids(self.keyring),
        )
