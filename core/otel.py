"""Request spans and metrics through OpenTelemetry: imported only where ``LITEFAAS_OTEL=1`` or
``APPLICATIONINSIGHTS_CONNECTION_STRING`` asks for it, so a function without them never loads it.

Spans and metrics go to whatever providers the process has set: the Azure entry point sets
Application Insights' (``configure_monitoring`` in ``handlers/azure/function_app.py``) where its
connection string is set. Each request becomes one ``SERVER`` span, a child of the caller's
``traceparent``, with the record's safe fields as attributes, and counts in ``litefaas.requests``,
``litefaas.errors``, ``litefaas.cold_starts`` and the ``litefaas.request.duration`` histogram.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.protocol import SERVER_VERSION
from core.telemetry import TelemetrySettings
from core.trace import TraceContext

_ATTRIBUTES = (
    "encrypted",
    "kid",
    "rows",
    "code",
    "decrypt_us",
    "decode_us",
    "infer_us",
    "seal_us",
    "cold_start",
)


class Recorder:
    """One span and a few metric points per request."""

    def __init__(self, settings: TelemetrySettings, static: Mapping[str, Any]) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )

        self._trace = trace
        self._span_context, self._non_recording = SpanContext, NonRecordingSpan
        self._kind, self._flags = SpanKind.SERVER, TraceFlags
        self._error = Status(StatusCode.ERROR)
        self._tracer = trace.get_tracer("litefaas", SERVER_VERSION)
        meter = metrics.get_meter("litefaas", SERVER_VERSION)
        self._requests = meter.create_counter("litefaas.requests", unit="{request}")
        self._errors = meter.create_counter("litefaas.errors", unit="{request}")
        self._cold_starts = meter.create_counter("litefaas.cold_starts", unit="{start}")
        self._duration = meter.create_histogram("litefaas.request.duration", unit="ms")
        self._static = {f"litefaas.{name}": value for name, value in static.items()}
        self._labels = {name: str(static[name]) for name in ("model", "model_version") if name in static}

    def record(
        self, context: TraceContext, record: Mapping[str, Any], start_ns: int, end_ns: int
    ) -> TraceContext:
        """Export the request's span and metrics; the span's own context (its ids go in the log line)."""
        parent = None
        if context.parent_id is not None:
            remote = self._span_context(
                int(context.trace_id, 16),
                int(context.parent_id, 16),
                is_remote=True,
                trace_flags=self._flags(1 if context.sampled else 0),
            )
            parent = self._trace.set_span_in_context(self._non_recording(remote))
        route, status = str(record.get("route", "unknown")), int(record.get("status", 0))
        attributes: dict[str, Any] = {
            "http.request.method": str(record.get("method", "")),
            "http.route": route,
            "http.response.status_code": status,
            "litefaas.bytes_in": record.get("bytes_in", 0),
            "litefaas.bytes_out": record.get("bytes_out", 0),
            **self._static,
        }
        for name in _ATTRIBUTES:
            if name in record:
                attributes[f"litefaas.{name}"] = record[name]
        span = self._tracer.start_span(
            f"{attributes['http.request.method']} {route}",
            context=parent,
            kind=self._kind,
            attributes=attributes,
            start_time=start_ns,
        )
        if status >= 500:
            span.set_status(self._error)
        span.end(end_time=end_ns)
        labels: dict[str, str | int] = {**self._labels, "route": route, "status": status}
        self._requests.add(1, labels)
        self._duration.record((end_ns - start_ns) / 1e6, labels)
        if status >= 400:
            self._errors.add(1, {**labels, "code": str(record.get("code", "unknown"))})
        if record.get("cold_start"):
            self._cold_starts.add(1, self._labels)
        own = span.get_span_context()
        if not own.is_valid:
            return context
        return TraceContext(
            f"{own.trace_id:032x}", f"{own.span_id:016x}", context.parent_id, bool(own.trace_flags & 1)
        )
