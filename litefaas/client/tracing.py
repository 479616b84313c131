"""W3C trace context for the clients: every request carries a ``traceparent``, and the requests of one
call (a chain's hops, a fan-out's shards) carry one trace.

Where an OpenTelemetry SDK is configured, a call is a span (``litefaas.chain``, ``litefaas.fan_out``)
under the caller's current span, each request a ``CLIENT`` span under it, and the header is that
span's, injected by OpenTelemetry's propagator. Without one (or without the API installed), the
call's requests share a new trace id (or the enclosing call's), each with a span id of its own.
Through Oblivious HTTP the header is one of the encapsulated request's, never the outer one's.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from core.trace import TRACEPARENT, TraceContext, new_span_id, new_trace_id

_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("litefaas_trace_id", default=None)
T = TypeVar("T")


@functools.cache
def _otel() -> Any:
    """``opentelemetry.trace`` where the API is installed, else None."""
    if importlib.util.find_spec("opentelemetry") is None:
        return None
    from opentelemetry import trace

    return trace


def _tracer() -> Any:
    otel = _otel()
    return None if otel is None else otel.get_tracer("litefaas.client")


def _recording(span: Any) -> bool:
    return bool(span.get_span_context().is_valid)


@contextlib.contextmanager
def call_span(name: str) -> Iterator[None]:
    """One call made of several requests: its requests share one trace."""
    tracer = _tracer()
    if tracer is not None:
        with tracer.start_as_current_span(name) as span:
            if _recording(span):
                yield
                return
    if _trace_id.get() is not None:
        yield
        return
    token = _trace_id.set(new_trace_id())
    try:
        yield
    finally:
        _trace_id.reset(token)


@contextlib.contextmanager
def request_headers(method: str, route: str) -> Iterator[dict[str, str]]:
    """The trace headers of one request (a ``CLIENT`` span around it where OpenTelemetry records)."""
    tracer = _tracer()
    if tracer is not None:
        kind = _otel().SpanKind.CLIENT
        with tracer.start_as_current_span(f"{method} {route}", kind=kind) as span:
            if _recording(span):
                from opentelemetry.propagate import inject

                carrier: dict[str, str] = {}
                inject(carrier)
                if TRACEPARENT in carrier:
                    span.set_attribute("http.request.method", method)
                    yield {TRACEPARENT: carrier[TRACEPARENT]}
                    return
    context = TraceContext(_trace_id.get() or new_trace_id(), new_span_id())
    yield {TRACEPARENT: context.traceparent}


def in_context(function: Callable[..., T]) -> Callable[..., T]:
    """``function`` bound to the current context (spans, trace id), to run in a pool's thread."""
    context = contextvars.copy_context()
    return lambda *args: context.copy().run(function, *args)  # a copy each: threads run at once
