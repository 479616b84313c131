"""Process groups, read from ``/proc``: every local host runs in its own group, and is stopped, counted
and measured by it. The one place that scans ``/proc``."""

from __future__ import annotations

import contextlib
import os
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PORT_FLOOR = 20000
EPHEMERAL_MARGIN = 2048
"""Room kept under the ephemeral range for serverless-offline's Lambda port (a fixed offset above)."""


@dataclass(frozen=True)
class ProcessStat:
    """The fields of ``/proc/<pid>/stat`` the tools use."""

    pid: int
    state: str
    parent: int
    group: int
    cpu_s: float = 0.0
    """User + system CPU seconds the process has used."""
    minor_faults: int = 0
    """Page faults served without I/O (a page mapped or touched for the first time)."""

    @property
    def alive(self) -> bool:
        """Running or sleeping: anything but a zombie."""
        return self.state != "Z"


def process_stat(pid: int) -> ProcessStat | None:
    """``pid``'s state, parent and process group; None once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        return ProcessStat(pid, fields[0], int(fields[1]), int(fields[2]), cpu_s, int(fields[7]))
    except (OSError, IndexError, ValueError):
        return None


def processes() -> Iterator[ProcessStat]:
    """Every process of this machine that is still there when it is read."""
    for entry in PROC.glob("[0-9]*"):
        stat = process_stat(int(entry.name))
        if stat is not None:
            yield stat


def group_pids(group: int) -> list[int]:
    """The live processes of process group ``group`` (zombies excepted)."""
    return [stat.pid for stat in processes() if stat.group == group and stat.alive]


def group_minor_faults(group: int) -> int:
    """The minor page faults of process group ``group``'s live processes, so far."""
    return sum(stat.minor_faults for stat in processes() if stat.group == group and stat.alive)


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds used, so far, by ``root`` and its live descendants, whatever their
    process group (a server may start its workers in sessions of their own)."""
    stats = [stat for stat in processes() if stat.alive]
    children: dict[int, list[ProcessStat]] = {}
    for stat in stats:
        children.setdefault(stat.parent, []).append(stat)
    total, pending = 0.0, [stat for stat in stats if stat.pid == root]
    while pending:
        stat = pending.pop()
        total += stat.cpu_s
        pending.extend(children.get(stat.pid, ()))
    return total


def group_alive(group: int) -> bool:
    """True while any process of the process group ``group`` is still running (zombies excepted)."""
    return any(stat.group == group and stat.alive for stat in processes())


def group_rss_kib(group: int) -> dict[int, int]:
    """Resident memory (KiB, ``VmRSS``) of every process of process group ``group``, by pid."""
    resident: dict[int, int] = {}
    for stat in processes():
        if stat.group != group:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            for line in (PROC / str(stat.pid) / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    resident[stat.pid] = int(line.split()[1])
    return resident


def parent_of(pid: int) -> int | None:
    """``pid``'s parent process; None once it is gone."""
    stat = process_stat(pid)
    return None if stat is None else stat.parent


def command_line(pid: int) -> str:
    """``pid``'s command line, arguments separated by spaces ("" once it is gone)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def signal_group(group: int, signum: int) -> None:
    """Send ``signum`` to process group ``group``, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def free_port(span: int = 3) -> int:
    """A first port on 127.0.0.1 such that it and the ``span - 1`` after it are free right now.

    Chosen below the kernel's ephemeral range: a port the kernel handed out would be free only until
    the next outgoing connection took it, or its neighbour, before the server bound it."""
    ceiling = ephemeral_floor() - EPHEMERAL_MARGIN
    if ceiling - span <= PORT_FLOOR:
        ceiling = 65535 - EPHEMERAL_MARGIN
    rng = random.SystemRandom()
    for _ in range(200):
        first = rng.randrange(PORT_FLOOR, ceiling - span)
        if all(_bindable(port) for port in range(first, first + span)):
            return first
    raise OSError(f"no {span} consecutive free ports between {PORT_FLOOR} and {ceiling}")


def ephemeral_floor() -> int:
    """The first port of the kernel's ephemeral range (``ip_local_port_range``), 32768 if unknown."""
    try:
        return int((PROC / "sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
