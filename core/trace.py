"""W3C Trace Context for one request: the caller's, read from the headers each cloud sends, or a new one.

Read, in order: ``traceparent`` (W3C Trace Context level 1, as clients, Cloud Run and the Azure
Functions host send it), ``X-Cloud-Trace-Context`` (Google's ``TRACE/SPAN;o=1``) and
``X-Amzn-Trace-Id`` (X-Ray's ``Root=1-…;Parent=…;Sampled=1``, from API Gateway and ALB). A value that
is not exactly what its format allows is ignored, so only hex digits ever reach a log line.
The request's own span id is always new; the caller's becomes its parent.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

TRACEPARENT = "traceparent"
CLOUD_TRACE = "x-cloud-trace-context"
XRAY_TRACE = "x-amzn-trace-id"

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_CLOUD_TRACE = re.compile(r"([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?")
_XRAY_ROOT = re.compile(r"1-([0-9a-f]{8})-([0-9a-f]{24})")
_XRAY_PARENT = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_MAX_HEADER = 512
_OWS = " \t"
"""HTTP's optional whitespace around a header's value: all a value may carry beyond its format."""
_random_bytes = random.randbytes
_new_tuple = tuple.__new__  # NamedTuple's own __new__ is slower
_POOL_IDS = 256


class TraceContext(NamedTuple):
    """One request's place in a trace: the trace, this request's span, the caller's span (if any)."""

    trace_id: str
    span_id: str
    parent_id: str | None = None
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        """This span as a ``traceparent`` header: what a call made while answering would send."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


_pool: list[Iterator[TraceContext]] = [iter(())]
"""Ids need to be unique, not secret: drawn from ``random`` (the generator OpenTelemetry's SDK draws
them from), but many at a time: each request takes the next of ``_POOL_IDS`` root contexts made in
one draw (a warm request then does no work of its own for its ids). ``next`` on the pool's iterator
is one step no thread can split, so no two requests get one context."""
_drawing = threading.Lock()


def forget_ids() -> None:
    """Draw the next ids afresh: after a fork or a snapshot's restore, copies of one process must not
    hand out the same ids (called with ``random``'s own reseed)."""
    _pool[0] = iter(())


def _after_fork_in_child() -> None:
    """The child's ids drawn afresh, by a lock of its own: a thread of the parent may have held the
    lock at the fork, and no thread of the child would ever release it."""
    global _drawing
    _drawing = threading.Lock()
    forget_ids()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _drawn() -> Iterator[TraceContext]:
    """``_POOL_IDS`` new root contexts, made without a Python step per context."""
    while True:
        trace_ids = _random_bytes(16 * _POOL_IDS).hex(" ", 16).split()
        span_ids = _random_bytes(8 * _POOL_IDS).hex(" ", 8).split()
        if _ZERO_TRACE not in trace_ids and _ZERO_SPAN not in span_ids:
            rows = zip(trace_ids, span_ids, itertools.repeat(None), itertools.repeat(True))
            return iter(list(map(_new_tuple, itertools.repeat(TraceContext), rows)))


def _refilled() -> TraceContext:
    """The next context once the pool is used up: one thread draws, any other takes from its draw."""
    with _drawing:
        context = next(_pool[0], None)
        if context is None:
            _pool[0] = drawn = _drawn()
            context = next(drawn)
    return context


def new_trace() -> TraceContext:
    """A new trace, with this request's span at its root."""
    return next(_pool[0], None) or _refilled()


def new_span_id() -> str:
    """A random, non-zero 64-bit span id in 16 hex digits."""
    return new_trace().span_id


def new_trace_id() -> str:
    """A random, non-zero 128-bit trace id in 32 hex digits."""
    return new_trace().trace_id


def parse_traceparent(value: str | None) -> tuple[str, str, bool] | None:
    """``(trace_id, parent_id, sampled)`` of a valid ``traceparent``, else None.

    Version ``00`` must be exactly four fields; a later version may add fields after them
    (the level-1 rules for a version this parser does not know); ``ff`` is never valid.
    """
    if value is None or len(value) > _MAX_HEADER:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(_OWS))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if rest is not None and not rest.startswith("-"):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


def parse_cloud_trace(value: str | None) -> tuple[str, str | None, bool] | None:
    """``(trace_id, parent_id, sampled)`` of Google's ``X-Cloud-Trace-Context``, else None; the
    span there is a decimal 64-bit number, here 16 hex digits."""
    if value is None or len(value) > _MAX_HEADER:
        return None
    match = _CLOUD_TRACE.fullmatch(value.strip(_OWS))
    if match is None:
        return None
    trace_id, span, option = match.groups()
    trace_id = trace_id.lower()
    if trace_id == _ZERO_TRACE:
        return None
    parent = None
    if span is not None and 0 < int(span) < 2**64:
        parent = f"{int(span):016x}"
    return trace_id, parent, option != "0"


def parse_xray(value: str | None) -> tuple[str, str | None, bool] | None:
    """``(trace_id, parent_id, sampled)`` of X-Ray's ``X-Amzn-Trace-Id``, else None: the root's
    epoch and unique parts make the 32-digit W3C trace id, as X-Ray's own W3C mapping does."""
    if value is None or len(value) > _MAX_HEADER:
        return None
    fields = dict(part.strip(_OWS).partition("=")[::2] for part in value.split(";") if "=" in part)
    root = _XRAY_ROOT.fullmatch(fields.get("Root", ""))
    if root is None:
        return None
    trace_id = root.group(1) + root.group(2)
    if trace_id == _ZERO_TRACE:
        return None
    parent = fields.get("Parent")
    if parent is None or _XRAY_PARENT.fullmatch(parent) is None or parent == _ZERO_SPAN:
        parent = None
    return trace_id, parent, fields.get("Sampled") != "0"


def incoming(headers: Mapping[str, str]) -> TraceContext:
    """The request's trace context: the caller's trace with a new span, or a new trace."""
    return callers(headers) or next(_pool[0], None) or _refilled()  # new_trace(), one call fewer


def callers(headers: Mapping[str, str]) -> TraceContext | None:
    """The caller's trace with a new span for this request; None where no header names one.

    Names are looked up as the providers spell them: lower case (HTTP/2, API Gateway, ASGI, Azure's
    case-insensitive headers) or capitalized (werkzeug's ``Traceparent``), not by a scan of every
    header (a request carries a dozen or more); a dict that has none of those names is passed over in
    one look."""
    if type(headers) is dict and _TRACE_HEADERS.isdisjoint(headers):
        return None
    for names, read in _READERS:
        for name in names:
            value = headers.get(name)
            if value is not None:
                found = read(value)
                if found is not None:
                    trace_id, parent_id, sampled = found
                    return TraceContext(trace_id, new_span_id(), parent_id, sampled)
                break
    return None


_READERS: tuple[tuple[tuple[str, ...], Callable[[str | None], tuple[str, str | None, bool] | None]], ...] = (
    ((TRACEPARENT, "Traceparent"), parse_traceparent),
    ((CLOUD_TRACE, "X-Cloud-Trace-Context"), parse_cloud_trace),
    ((XRAY_TRACE, "X-Amzn-Trace-Id"), parse_xray),
)
_TRACE_HEADERS = frozenset(name for names, _ in _READERS for name in names)
