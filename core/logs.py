"""Structured JSON log lines. Callers pass only safe fields: never a payload, a plaintext or a key.

A line is built and written in one step (:func:`json_line`, then one ``write`` to the stderr of the
moment) when the ``litefaas`` logger is as :func:`configure` left it: the ``logging`` machinery
(a record, a formatter, a handler's lock) cost a warm request 45 µs of its ~165. Any other handler
(a test's, an embedding application's) gets the record through ``logging`` instead.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from core.encoding import compact_json

LOGGER_NAME = "litefaas"

_encode_finite = compact_json(default=str)


def encode_fields(fields: Any) -> str:
    """Compact JSON of a line's fields: what JSON cannot hold becomes its ``str``, and a float that is
    not finite the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (a bare ``NaN`` is no JSON)."""
    try:
        return _encode_finite(fields)
    except ValueError:  # a float that is not finite, somewhere in the fields
        return _encode_finite(_finite(fields))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {_finite(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


_string = json.encoder.encode_basestring_ascii
LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
last_second: list[tuple[int, str]] = [(-1, "")]
"""The last whole second formatted and its text up to the dot, replaced together (threads writing
lines at once each read a matching pair)."""
MILLIS = tuple(f"{ms:03d}Z" for ms in range(1000))
"""A line's time's last digits, by millisecond: looked up, not formatted."""


_with_severity = [False]


def reset_clock() -> None:
    """Forget the second last formatted (after a snapshot's restore the clock jumps)."""
    last_second[0] = (-1, "")


def use_severity(enabled: bool) -> None:
    """Start every line with Cloud Logging's ``severity`` (the process's lines are read by it)."""
    _with_severity[0] = enabled


def second_text(second: int) -> str:
    """Whole second ``second``'s text up to its dot, ``2026-01-31T12:00:00.``, made once a second
    (:data:`last_second` holds the last)."""
    last = last_second[0]
    if last[0] == second:
        return last[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    last_second[0] = (second, text)
    return text


def stamp(now: float) -> str:
    """``now`` as a line's ``time``: UTC to the millisecond, ``2026-01-31T12:00:00.123Z``."""
    second = int(now)
    return second_text(second) + MILLIS[int((now - second) * 1000)]


def line_head(level: int, event: str, now: float | None = None) -> str:
    """A line's first fields, ``{"time":…,"level":…,"event":…`` (no closing brace), after
    ``"severity":…`` where :func:`use_severity` asked for it."""
    name = level_name(level)
    when = stamp(time.time() if now is None else now)
    if _with_severity[0]:
        return f'{{"severity":"{name.upper()}","time":"{when}","level":"{name}","event":{_string(event)}'
    return f'{{"time":"{when}","level":"{name}","event":{_string(event)}'


def level_name(level: int) -> str:
    """A level's name in a line: ``info``, ``error``, …"""
    return LEVEL_NAMES.get(level) or logging.getLevelName(level).lower()


def json_line(
    level: int, event: str, fields: Mapping[str, Any], now: float | None = None, suffix: str = ""
) -> str:
    """One log line: time, level, event, then ``fields`` (without a newline); ``suffix``: more
    fields already encoded (``,"name":value…``), written last."""
    head = line_head(level, event, now)
    rest = encode_fields(fields)
    return head + suffix + "}" if rest == "{}" else head + "," + rest[1:-1] + suffix + "}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "line", None)  # a request's line, already in its cloud's format
        if isinstance(line, str):
            return line
        return json_line(record.levelno, record.getMessage(), getattr(record, "fields", {}), record.created)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(level: str = "INFO") -> logging.Logger:
    """Give the ``litefaas`` logger one JSON handler on stderr (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` where ``logger`` is enabled for ``level``."""
    log_fields(logger, level, event, fields)


def log_fields(logger: logging.Logger, level: int, event: str, fields: Mapping[str, Any]) -> None:
    """:func:`log_event` with the fields in a mapping (a request's line: no keyword arguments to merge)."""
    if logger.isEnabledFor(level) and not write_line(logger, level, lambda: json_line(level, event, fields)):
        logger.log(level, event, extra={"fields": fields})


def writes_directly(logger: logging.Logger, level: int) -> bool | None:
    """Whether a line of ``level`` goes straight to stderr: True where ``logger`` is as
    :func:`configure` left it (False: its handler's level drops it), None where it has other
    handlers, which want a record instead."""
    handlers = logger.handlers
    if logger.propagate or len(handlers) != 1 or type(handlers[0]) is not _StderrHandler:
        return None
    return level >= handlers[0].level


def write_line(logger: logging.Logger, level: int, line: Callable[[], str]) -> bool:
    """Write ``line()`` to stderr in one ``write`` where ``logger`` is as :func:`configure` left it;
    False (nothing written) where it has other handlers, which want a record instead."""
    direct = writes_directly(logger, level)
    if direct:
        sys.stderr.write(line() + "\n")
    return direct is not None
