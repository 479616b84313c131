"""One local host: how to launch it (:class:`LaunchSpec`), and its process, started, health-checked and
stopped cleanly with its whole process group (:class:`LocalServer`)."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from litefaas.errors import ToolError
from litefaas.local.process import group_alive, signal_group


@dataclass(frozen=True)
class LaunchSpec:
    """One local host for one provider: the command, where it listens, and how to stop it."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    base_url: str
    description: str
    kill_signal: int = signal.SIGTERM


class ServerError(ToolError):
    """A local server did not start or did not become healthy; the message says why."""


class LocalServer:
    """A local provider host in its own process group, started, health-checked and stopped by PID."""

    def __init__(self, name: str, spec: LaunchSpec) -> None:
        self.name = name
        self.spec = spec
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        """``time.perf_counter()`` when the process was started."""
        self.ready_ms: float | None = None
        """Milliseconds from the start until ``/health`` first answered."""
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> LocalServer:
        self._log = tempfile.NamedTemporaryFile(prefix=f"litefaas-{self.name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - argv is built by this package
            self.spec.argv,
            cwd=self.spec.cwd,
            env=self.spec.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at = time.perf_counter()
        return self

    def log_lines(self) -> list[str]:
        """Everything the host has written so far, line by line."""
        if self._log is None:
            return []
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace").splitlines()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Poll ``GET /health`` until it answers 200; raise :class:`ServerError` otherwise."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        url = f"{self.spec.base_url}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise ServerError(
                    f"{self.name} exited with code {code} before it was healthy:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                    if response.status == 200 and _says_ok(response.read()):
                        if self.started_at is not None:
                            self.ready_ms = round((time.perf_counter() - self.started_at) * 1000, 1)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise ServerError(f"{self.name} was not healthy at {url} after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Signal the whole process group, then kill what is left; leaves no process behind."""
        if self.process is None:
            return
        group = self.process.pid
        if self.process.poll() is None:
            signal_group(group, self.spec.kill_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                signal_group(group, signal.SIGKILL)
                self.process.wait(5)
        deadline = time.monotonic() + timeout
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_alive(group):
            signal_group(group, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _says_ok(body: bytes) -> bool:
    """True for the protocol's health answer, ``{"status": "ok", …}``."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("status") == "ok"
