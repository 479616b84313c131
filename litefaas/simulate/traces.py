"""Trace loaders: the Azure Functions 2019 trace (both column layouts) and the 2021 per-invocation trace."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from litefaas.errors import ToolError

PERCENTILES = (0.0, 1.0, 25.0, 50.0, 75.0, 99.0, 100.0)
RUN_COLUMNS = tuple(f"percentile_Average_{int(p)}" for p in PERCENTILES)
MINUTE = re.compile(r"^(?:minute_)?(\d+)$")
DEFAULT_MEMORY_MB = 256.0
DEFAULT_DURATION_MS = 1000.0


class TraceError(ToolError, ValueError):
    """The trace cannot be read; the message says which file and why."""


@dataclass
class FunctionTrace:
    """One function of a trace: its per-minute counts (2019) or its invocations (2021)."""

    function: str
    app: str
    owner: str = ""
    counts: np.ndarray | None = None
    arrivals_s: np.ndarray | None = None
    durations_ms: np.ndarray | None = None
    duration_percentiles_ms: tuple[float, ...] | None = None
    memory_mb: float = DEFAULT_MEMORY_MB

    @property
    def invocations(self) -> int:
        if self.counts is not None:
            return int(self.counts.sum())
        return 0 if self.arrivals_s is None else len(self.arrivals_s)


@dataclass
class Trace:
    name: str
    functions: list[FunctionTrace]
    horizon_s: float
    notes: list[str] = field(default_factory=list)


def resolve(name_or_path: str, search: list[Path]) -> Path:
    """A trace path, or a trace name (``azure2019_100fn`` or a file name) looked up in ``search``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in search:
        for candidate in (
            folder / name_or_path,
            folder / f"{name_or_path}_inv.csv",
            folder / f"{name_or_path}.csv",
        ):
            if candidate.is_file():
                return candidate
    raise TraceError(
        f"no trace {name_or_path!r} (looked in {', '.join(str(s) for s in search) or 'nothing'})"
    )


def load_trace(
    path: Path | str,
    functions: int | None = None,
    seed: int = 0,
    default_memory_mb: float = DEFAULT_MEMORY_MB,
) -> Trace:
    """Read a 2019 ``*_inv.csv`` / ``invocations_per_function_md.anon.dNN.csv`` (with its duration and
    memory files beside it) or a 2021 per-invocation file; keep a seeded sample of ``functions`` functions."""
    path = Path(path)
    header, rows = _read_csv(path)
    if {"app", "func", "end_timestamp", "duration"} <= set(header):
        trace = _load_2021(path, header, rows, default_memory_mb)
    elif {"HashFunction", "HashApp"} <= set(header):
        trace = _load_2019(path, header, rows, default_memory_mb)
    else:
        raise TraceError(f"{path.name}: neither a 2019 invocation file nor a 2021 invocation trace")
    if functions is not None:
        if functions < 1:
            raise TraceError("--functions must be at least 1")
        if functions < len(trace.functions):
            keep = sorted(np.random.default_rng(seed).choice(len(trace.functions), functions, replace=False))
            trace.functions = [trace.functions[i] for i in keep]
            trace.notes.append(f"{functions} functions sampled with seed {seed}")
    return trace


def companions(path: Path) -> tuple[Path, Path]:
    """The duration and memory files that go with a 2019 invocation file."""
    name = path.name
    if name.endswith("_inv.csv"):
        stem = name[: -len("_inv.csv")]
        return path.with_name(f"{stem}_run.csv"), path.with_name(f"{stem}_mem.csv")
    match = re.match(r"invocations_per_function_md\.anon\.(d\d+)\.csv$", name)
    if match:
        day = match.group(1)
        return (
            path.with_name(f"function_durations_percentiles.anon.{day}.csv"),
            path.with_name(f"app_memory_percentiles.anon.{day}.csv"),
        )
    return path.with_name(name.replace("inv", "run")), path.with_name(name.replace("inv", "mem"))


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader)]
            rows = [row for row in reader if row]
    except (OSError, StopIteration, UnicodeDecodeError, csv.Error) as exc:
        raise TraceError(f"{path}: {exc or 'empty file'}") from None
    return header, rows


def _columns(path: Path, header: list[str], names: tuple[str, ...]) -> list[int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise TraceError(f"{path.name}: missing column(s) {', '.join(missing)}")
    return [header.index(n) for n in names]


def _load_2019(path: Path, header: list[str], rows: list[list[str]], default_memory_mb: float) -> Trace:
    owner_col = header.index("HashOwner") if "HashOwner" in header else None
    fn_col, app_col = _columns(path, header, ("HashFunction", "HashApp"))
    minutes = sorted((int(m.group(1)), i) for i, h in enumerate(header) if (m := MINUTE.match(h)))
    if not minutes:
        raise TraceError(f"{path.name}: no minute columns (minute_1… or 1…)")
    minute_cols = [i for _, i in minutes]
    try:
        counts = np.array([[float(row[i] or 0) for i in minute_cols] for row in rows], dtype=float)
    except (ValueError, IndexError) as exc:
        raise TraceError(f"{path.name}: bad invocation count ({exc})") from None
    if (counts < 0).any():
        raise TraceError(f"{path.name}: negative invocation count")
    functions = [
        FunctionTrace(
            function=row[fn_col],
            app=row[app_col],
            owner=row[owner_col] if owner_col is not None else "",
            counts=counts[k].astype(np.int64),
        )
        for k, row in enumerate(rows)
    ]
    notes: list[str] = []
    run_path, mem_path = companions(path)
    durations = _read_durations(run_path) if run_path.is_file() else None
    memory = _read_memory(mem_path) if mem_path.is_file() else None
    known_memory = sorted(memory.values()) if memory else []
    fallback_memory = float(np.median(known_memory)) if known_memory else default_memory_mb
    missing_run = missing_mem = 0
    for fn in functions:
        if durations is not None:
            fn.duration_percentiles_ms = durations.get((fn.owner, fn.app, fn.function)) or durations.get(
                ("", fn.app, fn.function)
            )
        if fn.duration_percentiles_ms is None:
            fn.duration_percentiles_ms = (DEFAULT_DURATION_MS,) * len(PERCENTILES)
            missing_run += 1
        mb = None if memory is None else memory.get((fn.owner, fn.app)) or memory.get(("", fn.app))
        if mb is None:
            missing_mem += 1
        fn.memory_mb = mb if mb is not None else fallback_memory
    if missing_run:
        notes.append(f"{missing_run} function(s) without execution times: {DEFAULT_DURATION_MS:g} ms assumed")
    if missing_mem:
        notes.append(f"{missing_mem} function(s) without an app memory row: {fallback_memory:g} MB assumed")
    return Trace(path.name, functions, horizon_s=60.0 * minutes[-1][0], notes=notes)


def _read_durations(path: Path) -> dict[tuple[str, str, str], tuple[float, ...]]:
    header, rows = _read_csv(path)
    keys = _columns(path, header, ("HashFunction", "HashApp"))
    owner = header.index("HashOwner") if "HashOwner" in header else None
    cols = _columns(path, header, RUN_COLUMNS)
    out: dict[tuple[str, str, str], tuple[float, ...]] = {}
    for row in rows:
        try:
            values = tuple(max(0.0, float(row[c])) for c in cols)
        except (ValueError, IndexError):
            continue
        key_owner = row[owner] if owner is not None else ""
        out[(key_owner, row[keys[1]], row[keys[0]])] = tuple(float(v) for v in np.maximum.accumulate(values))
        out.setdefault(("", row[keys[1]], row[keys[0]]), out[(key_owner, row[keys[1]], row[keys[0]])])
    return out


def _read_memory(path: Path) -> dict[tuple[str, str], float]:
    header, rows = _read_csv(path)
    app, mb = _columns(path, header, ("HashApp", "AverageAllocatedMb"))
    owner = header.index("HashOwner") if "HashOwner" in header else None
    out: dict[tuple[str, str], float] = {}
    for row in rows:
        try:
            value = float(row[mb])
        except (ValueError, IndexError):
            continue
        if value > 0:
            out[(row[owner] if owner is not None else "", row[app])] = value
            out.setdefault(("", row[app]), value)
    return out


def _load_2021(path: Path, header: list[str], rows: list[list[str]], default_memory_mb: float) -> Trace:
    app_col, fn_col, end_col, dur_col = _columns(path, header, ("app", "func", "end_timestamp", "duration"))
    grouped: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for row in rows:
            end, duration = float(row[end_col]), max(0.0, float(row[dur_col]))
            grouped.setdefault((row[app_col], row[fn_col]), []).append((max(0.0, end - duration), duration))
    except (ValueError, IndexError) as exc:
        raise TraceError(f"{path.name}: bad row ({exc})") from None
    functions = []
    horizon = 0.0
    for (app, fn), calls in grouped.items():
        calls.sort()
        starts = np.array([c[0] for c in calls])
        seconds = np.array([c[1] for c in calls])
        horizon = max(horizon, float((starts + seconds).max()))
        functions.append(
            FunctionTrace(
                function=fn,
                app=app,
                arrivals_s=starts,
                durations_ms=seconds * 1000.0,
                memory_mb=default_memory_mb,
            )
        )
    notes = [f"2021 trace has no memory data: {default_memory_mb:g} MB per instance assumed"]
    return Trace(path.name, functions, horizon_s=float(np.ceil(horizon)), notes=notes)
