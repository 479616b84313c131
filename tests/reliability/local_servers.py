"""The three local hosts, started for real on 127.0.0.1, and what the reliability tests do to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest
from fixtures.requests import ROWS

from litefaas.benchmark.loadgen import LoadResult, exact_check, local_expected, run_jobs
from litefaas.local import aws as serve_aws
from litefaas.local import azure as serve_azure
from litefaas.local import gcp as serve_gcp
from litefaas.local.process import free_port, group_alive, group_pids
from litefaas.local.server import LaunchSpec, LocalServer
from litefaas.paths import ROOT

PROVIDERS = ("aws", "gcp", "azure")
LAUNCHERS: dict[str, Callable[[int, dict[str, str]], LaunchSpec]] = {
    "aws": serve_aws.launch_spec,
    "gcp": serve_gcp.launch_spec,
    "azure": serve_azure.launch_spec,
}
ROW_ARRAY = np.asarray(ROWS, dtype=np.float32)
EXPECTED = local_expected(ROW_ARRAY)
CHECK = exact_check(EXPECTED)


def skip_unless_runnable(provider: str) -> None:
    if provider == "aws" and (shutil.which("node") is None or not (ROOT / serve_aws.OSLS_BIN).is_file()):
        pytest.skip("node or node_modules (osls, serverless-offline) missing: run make setup")


def function_env(**variables: str) -> dict[str, str]:
    """This environment without any ``LITEFAAS_*`` variable, plus ``variables``; request logs off."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    env["LITEFAAS_LOG_LEVEL"] = "WARNING"
    env.update(variables)
    return env


@contextlib.contextmanager
def running(provider: str, env: Mapping[str, str], *, healthy_within: float = 120) -> Iterator[LocalServer]:
    """One provider's local host, healthy; stopped afterwards with nothing left behind."""
    skip_unless_runnable(provider)
    server = LocalServer(provider, LAUNCHERS[provider](free_port(), dict(env))).start()
    try:
        server.wait_healthy(timeout=healthy_within)
        yield server
    except BaseException:
        print(f"--- the last lines of {provider}'s log ---\n{server.log_tail(80)}")
        raise
    finally:
        group = server.pid
        server.stop()
        assert group is not None and not group_alive(group), f"{provider} left a process behind"


def load(
    server: LocalServer, jobs: int, concurrency: int, *, result: LoadResult | None = None, **options: object
) -> LoadResult:
    """``litefaas.benchmark.loadgen`` against ``server``, every answer checked against the local model."""
    return asyncio.run(
        run_jobs(server.spec.base_url, ROW_ARRAY, jobs, concurrency, CHECK, result=result, **options)
    )


def warm_up(server: LocalServer, steps: tuple[int, ...] = (4, 16, 32, 64), per_client: int = 8) -> list[dict]:
    """Short bursts at growing concurrency, so that every process and thread the run needs exists."""
    return [load(server, level * per_client, level, timeout_s=120).summary() for level in steps]


class Background:
    """A load running in a thread; its counts can be watched while it runs."""

    def __init__(self, server: LocalServer, jobs: int, concurrency: int, **options: object) -> None:
        self.server = server
        self.result = LoadResult(jobs, concurrency)
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(server, jobs, concurrency, options), daemon=True
        )

    def _run(self, server: LocalServer, jobs: int, concurrency: int, options: dict) -> None:
        try:
            load(server, jobs, concurrency, result=self.result, **options)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=600)

    def wait_answered(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.result.answered + len(self.result.lost) < count:
            assert self._thread.is_alive() or self.error is None, self.error
            assert self.server.process is not None and self.server.process.poll() is None, (
                f"{self.server.name} exited with code {self.server.process and self.server.process.returncode}"
            )
            assert time.monotonic() < deadline, f"only {self.result.answered} answered after {timeout} s"
            time.sleep(0.02)

    def finish(self) -> LoadResult:
        self._thread.join(timeout=600)
        assert not self._thread.is_alive(), "the load did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def command_line(pid: int) -> str:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def parent_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def gunicorn_workers(server: LocalServer) -> list[int]:
    """functions-framework's gunicorn workers: the children of the master (the process started)."""
    assert server.pid is not None
    return [pid for pid in group_pids(server.pid) if pid != server.pid and parent_of(pid) == server.pid]


def lambda_runtimes(server: LocalServer) -> list[int]:
    """serverless-offline's Python processes (``invoke.py``), one per Lambda instance."""
    assert server.pid is not None
    return [
        pid
        for pid in group_pids(server.pid)
        if "invoke.py" in command_line(pid) and not command_line(pid).startswith("/bin/sh")
    ]


def write_key_file(path: Path, entries: list[dict]) -> None:
    """Replace the key file atomically (write a 0600 file beside it, then rename over it)."""
    temporary = path.with_name("next." + path.name)  # still a name .gitignore covers (*.keys.json)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(entries))
    os.replace(temporary, path)
