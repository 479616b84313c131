"""Each request's record, written in the terms of the cloud that reads it: one line per request.

- ``json``: litefaas's own line (``time``, ``level``, ``event``, then the record).
- ``emf`` (AWS): the same line is a CloudWatch Embedded Metric Format document: ``_aws`` names the
  record's timings and sizes as metrics under the configured namespace and dimensions, so
  CloudWatch extracts them from the log line itself; the instance's first request also writes
  ``ColdStart`` in an object of its own (as Powertools for AWS Lambda does).
- ``gcp``: Cloud Logging's structured fields: ``severity``, ``message``,
  ``logging.googleapis.com/trace`` (``projects/ID/traces/TRACE``) and ``…/spanId``, and
  ``httpRequest`` (method, status, sizes, latency; never the caller's address or the URL).

A record holds only what is safe to log: ids, names, sizes, times, codes; never a payload, a key or
anything derived from one. What never changes (the model, its version and sha256, the function's
name) is encoded once at cold start; each request encodes only its own fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.encoding import member_pieces
from core.errors import ConfigError
from core.logs import MILLIS, encode_fields, last_second, level_name, second_text, stamp, use_severity
from core.trace import TraceContext

LOG_FORMAT = "LITEFAAS_LOG_FORMAT"
METRICS_NAMESPACE = "LITEFAAS_METRICS_NAMESPACE"
METRICS_DIMENSIONS = "LITEFAAS_METRICS_DIMENSIONS"
OTEL = "LITEFAAS_OTEL"
APPLICATIONINSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
GCP_PROJECT_VARIABLES = ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT")
FUNCTION_NAME_VARIABLES = ("AWS_LAMBDA_FUNCTION_NAME", "K_SERVICE", "WEBSITE_SITE_NAME")

FORMATS = ("json", "emf", "gcp")
PROVIDER_FORMATS = {"aws": "emf", "gcp": "gcp", "azure": "json"}
DEFAULT_NAMESPACE = "litefaas"
DEFAULT_DIMENSIONS = ("model", "model_version")
DIMENSION_FIELDS = ("model", "model_version", "function_name", "route", "method")
"""Record fields a dimension may name: strings present in every request's record."""

METRIC_UNITS = {
    "duration_us": "Microseconds",
    "bytes_in": "Bytes",
    "bytes_out": "Bytes",
    "error": "Count",
    "fault": "Count",
    "decrypt_us": "Microseconds",
    "decode_us": "Microseconds",
    "infer_us": "Microseconds",
    "seal_us": "Microseconds",
}
"""The record's fields CloudWatch extracts as metrics (``error``: a 4xx or 5xx, ``fault``: a 5xx)."""
ALWAYS_METRICS = ("duration_us", "bytes_in", "bytes_out", "error", "fault")
FIELD_METRICS = tuple(name for name in METRIC_UNITS if name not in ALWAYS_METRICS)
"""The metrics of the path's own fields: present where the request got that far."""

_string = json.encoder.encode_basestring_ascii
_MAX_CACHED = 64  # the paths and outcomes a request can have are few; each cache stays bounded
_CACHED_BELOW = 400
"""Only answers below this status get cached writers and outcomes: the few a function's own paths
give, so that no caller can fill the caches with errors and keep them from its answers."""
_NAMESPACE = re.compile(r"[A-Za-z0-9._/#:-]{1,255}")  # CloudWatch's namespace characters
_GCP_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}")
"""What a project id may hold (a legacy one has its domain and a colon before it): what goes into a
trace's name as it is, never a character JSON would escape."""
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
"""The methods whose requests get writers of their own (a caller may send any other)."""


def _gcp_opening(level: int) -> str:
    """A request line's start in Cloud Logging's terms."""
    return f'{{"severity":"{level_name(level).upper()}",'


_GCP_OPENINGS = {level: _gcp_opening(level) for level in (logging.INFO, logging.ERROR)}
"""A request line's start at a request's two levels."""


@dataclass(frozen=True)
class TelemetrySettings:
    """How request records are written and exported (``LITEFAAS_LOG_FORMAT`` and friends)."""

    log_format: str = "json"
    namespace: str = DEFAULT_NAMESPACE
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    otel: bool = False
    """Spans and metrics through OpenTelemetry (``LITEFAAS_OTEL=1``, or Application Insights)."""
    azure_monitor: bool = False
    """``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set: ``configure_azure_monitor()`` at cold start."""
    gcp_project: str | None = None
    function_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], provider: str | None = None) -> TelemetrySettings:
        """Read and check; the format defaults to the provider's (``aws``: emf, ``gcp``: gcp)."""
        log_format = requested_format(env, provider)
        if log_format not in FORMATS:
            raise ConfigError(LOG_FORMAT, f"must be one of {', '.join(FORMATS)}")
        namespace = env.get(METRICS_NAMESPACE, "").strip() or DEFAULT_NAMESPACE
        if not _NAMESPACE.fullmatch(namespace) or namespace.startswith("AWS/"):
            raise ConfigError(METRICS_NAMESPACE, "1-255 characters of [A-Za-z0-9._/#:-], not under AWS/")
        names = env.get(METRICS_DIMENSIONS)
        dimensions = (
            DEFAULT_DIMENSIONS if names is None else tuple(n.strip() for n in names.split(",") if n.strip())
        )
        unknown = [name for name in dimensions if name not in DIMENSION_FIELDS]
        if unknown or len(dimensions) > 9 or len(set(dimensions)) != len(dimensions):
            raise ConfigError(
                METRICS_DIMENSIONS, f"at most 9 distinct names of {', '.join(DIMENSION_FIELDS)} (or empty)"
            )
        otel_flag = env.get(OTEL, "").strip().lower()
        if otel_flag not in ("", "0", "1", "true", "false"):
            raise ConfigError(OTEL, "must be 1 or 0")
        azure_monitor = bool(env.get(APPLICATIONINSIGHTS, "").strip())
        project = next(((n, env[n].strip()) for n in GCP_PROJECT_VARIABLES if env.get(n, "").strip()), None)
        if project is not None and not _GCP_PROJECT.fullmatch(project[1]):
            raise ConfigError(project[0], "a Google Cloud project id is 1-128 characters of [A-Za-z0-9.:_-]")
        return cls(
            log_format=log_format,
            namespace=namespace,
            dimensions=dimensions,
            otel=otel_flag in ("1", "true") or azure_monitor,
            azure_monitor=azure_monitor,
            gcp_project=None if project is None else project[1],
            function_name=function_name(env),
        )


def requested_format(env: Mapping[str, str], provider: str | None = None) -> str:
    """The log format ``LITEFAAS_LOG_FORMAT`` asks for, else the provider's (not yet checked)."""
    return env.get(LOG_FORMAT, "").strip().lower() or PROVIDER_FORMATS.get(provider or "", "json")


def wants_severity(env: Mapping[str, str], provider: str | None = None) -> bool:
    """Whether lines start with Cloud Logging's ``severity``: ``gcp`` asked for, or GCP's default
    where what is asked is no format (a cold start's error line is written before settings hold)."""
    log_format = requested_format(env, provider)
    if log_format not in FORMATS:
        log_format = PROVIDER_FORMATS.get(provider or "", "json")
    return log_format == "gcp"


def _directive(namespace: str, dimensions: tuple[str, ...], metrics: tuple[str, ...]) -> str:
    return encode_fields(
        {
            "Namespace": namespace,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": METRIC_UNITS[name]} for name in metrics],
        }
    )


class RequestSummary(NamedTuple):
    """What one request's record says: ids, route, status, sizes, times and the path's own fields."""

    request_id: str
    trace: TraceContext
    route: str
    method: str
    status: int
    cold_start: bool
    duration_us: int
    bytes_in: int
    bytes_out: int
    fields: Mapping[str, Any]

    def record(self) -> dict[str, Any]:
        """The record as one flat mapping (what a log line holds, and a span's attributes)."""
        context = self.trace
        record: dict[str, Any] = {
            "request_id": self.request_id,
            "trace_id": context.trace_id,
            "span_id": context.span_id,
        }
        if context.parent_id is not None:
            record["parent_span_id"] = context.parent_id
        if not context.sampled:
            record["sampled"] = False
        record.update(
            route=self.route,
            method=self.method,
            status=self.status,
            error=int(self.status >= 400),
            fault=int(self.status >= 500),
            cold_start=self.cold_start,
            duration_us=self.duration_us,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )
        record.update(self.fields)
        return record


class _Outcome(NamedTuple):
    """A request's route, method, status and cold start as each format writes them."""

    record: str
    """``,"route":…,"method":…,"status":…,"error":…,"fault":…,"cold_start":…``"""
    message: str
    """Cloud Logging's ``,"message":…``"""
    http_request: str
    """Cloud Logging's ``,"httpRequest":{"requestMethod":…,"status":…`` (its sizes and latency follow)"""


WriterKey = tuple[int, str, str, int, bool, tuple[str, ...]]
"""A request line's level, route, method, status, cold start and the names of the path's fields."""
Writer = Callable[[int, float, str, TraceContext, int, int, int, Mapping[str, Any]], str]
"""``(level, now, request_id, trace, duration_us, bytes_in, bytes_out, fields) -> line``: a
:data:`WriterKey`'s own writer, which the key's route, method, status and cold start are written into."""


class RequestLog:
    """Writes each request's record as one line of the configured format.

    A :data:`WriterKey` met a second time gets a writer of its own: one function, made with ``exec``
    from the format, the outcome and the field names (each text a literal of its source, never a
    value), writing the whole line in one f-string, each value in the quick form of the type it
    first held (:func:`~core.encoding.member_pieces`). A key seen once (an instance's first
    request), a method a caller makes up, errors and keys past the cache's bound are written field
    by field; both write the same line."""

    def __init__(self, settings: TelemetrySettings, static: Mapping[str, Any]) -> None:
        self.settings = settings
        self.static = dict(static)
        if settings.function_name is not None:
            self.static.setdefault("function_name", settings.function_name)
        self.static.setdefault("function_name", str(self.static.get("model", "litefaas")))
        self._suffix = "," + encode_fields(self.static)[1:-1]
        self.writers: dict[WriterKey, Writer] = {}
        """The writers made, by :data:`WriterKey`: what :meth:`line` (and the app, by the same key)
        calls for a request of that key."""
        self._seen_once: set[WriterKey] = set()
        self._emf_openings: dict[tuple[str, ...], str] = {}
        self._dimensions_but_method = tuple(name for name in settings.dimensions if name != "method")
        self._outcomes: dict[tuple[str, str, int, bool], _Outcome] = {}
        self._heads = {level: _head(level) for level in (logging.INFO, logging.ERROR)}
        self._trace_prefix = (
            f"projects/{settings.gcp_project}/traces/" if settings.gcp_project is not None else None
        )
        self._field_by_field = {"json": self._json, "emf": self._emf, "gcp": self._gcp}[settings.log_format]
        use_severity(settings.log_format == "gcp")

    def line(self, level: int, summary: RequestSummary, now: float) -> str:
        """The request's line, ending in a newline."""
        key = (
            level,
            summary.route,
            summary.method,
            summary.status,
            summary.cold_start,
            tuple(summary.fields),
        )
        writer = self.writers.get(key) or self._writer(key, summary)
        if writer is None:
            return self._field_by_field(level, summary, now)
        request_id, trace, _, _, _, _, duration_us, bytes_in, bytes_out, fields = summary
        return writer(level, now, request_id, trace, duration_us, bytes_in, bytes_out, fields)

    def _writer(self, key: WriterKey, summary: RequestSummary) -> Writer | None:
        """The key's own writer, made the second time it is met; None where the line is written field
        by field (a caller's odd methods, errors, a first sight, names that are not all strings)."""
        if len(self.writers) >= _MAX_CACHED or key[2] not in _METHODS or key[3] >= _CACHED_BELOW:
            return None
        if key not in self._seen_once:
            if len(self._seen_once) < _MAX_CACHED:
                self._seen_once.add(key)
            return None
        members = member_pieces(key[-1], tuple(summary.fields.values()))
        if members is None:
            return None
        writer = self.writers[key] = self._compiled(key, summary, members)
        self._seen_once.discard(key)
        return writer

    def _compiled(self, key: WriterKey, summary: RequestSummary, members: list[tuple[str, str]]) -> Writer:
        """The writer of one :data:`WriterKey`: the line as one f-string, what the key fixes (the
        level's head, the outcome, EMF's directive, the function's own fields) in its text, each
        text a literal of the source (``repr``), each of the path's values in the quick form of the
        type it holds now (another type later goes to the encoder)."""
        level, names = key[0], key[-1]
        outcome = self._outcomes.get(key[1:5]) or self._outcome(summary)
        log_format = self.settings.log_format
        pieces: list[str] = []

        def line(*parts: tuple[str, str]) -> None:
            for text, expression in parts:
                pieces.append(repr(text))
                if expression:
                    pieces.append("f'{" + expression + "}'")

        if log_format == "emf":
            line((self._emf_openings.get(names) or self._emf_opening(names), "int(now * 1000)"), ("},", ""))
        else:
            line((_GCP_OPENINGS.get(level) or _gcp_opening(level) if log_format == "gcp" else "{", ""))
        line(
            ('"time":"', "text"),
            ("", "_millis[int((now - second) * 1000)]"),
            ((self._heads.get(level) or _head(level)) + ',"request_id":', "_string(request_id)"),
            (',"trace_id":"', "trace_id"),
            ('","span_id":"', "span_id"),
            ('"', "parent"),
            (outcome.record + ',"duration_us":', "duration_us"),
            (',"bytes_in":', "bytes_in"),
            (',"bytes_out":', "bytes_out"),
            *members,
            (self._suffix, ""),
        )
        if log_format == "gcp":
            if self._trace_prefix is not None:
                line((outcome.message + ',"logging.googleapis.com/trace":"' + self._trace_prefix, "trace_id"))
                line(('","logging.googleapis.com/spanId":"', "span_id"))
            else:
                line((outcome.message + ',"logging.googleapis.com/spanId":"', "span_id"))
            line(
                ('","logging.googleapis.com/trace_sampled":', "_bools[sampled]"),
                (outcome.http_request + ',"requestSize":"', "bytes_in"),
                ('","responseSize":"', "bytes_out"),
                ('","latency":"', "_latencies.get(duration_us) or _latency(duration_us)"),
                ('"}', ""),
            )
        line(("}\n", ""))
        body = [
            "def line(level, now, request_id, trace, duration_us, bytes_in, bytes_out, fields):",
            "    trace_id, span_id, parent_id, sampled = trace",
        ]
        if names:
            body.append(
                "    " + ", ".join(f"v{index}" for index in range(len(names))) + ", = fields.values()"
            )
        body += [
            "    second = int(now)",
            "    last = _last_second[0]",
            "    text = last[1] if last[0] == second else _second_text(second)",
            "    parent = _unsampled[sampled] if parent_id is None else _parent(parent_id, sampled)",
            "    return (" + " ".join(pieces) + ")",
        ]
        namespace: dict[str, Any] = {
            "_last_second": last_second,
            "_second_text": second_text,
            "_millis": MILLIS,
            "_string": _string,
            "_json": encode_fields,
            "_bools": ("false", "true"),
            "_unsampled": _UNSAMPLED,
            "_parent": _parent,
            "_latencies": _latencies,
            "_latency": _latency,
        }
        exec("\n".join(body) + "\n", namespace)  # noqa: S102 - texts as literals, values as v0, v1…
        writer: Writer = namespace["line"]
        return writer

    def _fields(
        self,
        level: int,
        summary: RequestSummary,
        now: float,
        opening: str,
        closing: str,
        outcome: _Outcome | None = None,
    ) -> str:
        """The line field by field: ``opening`` then ``"time":…,"level":…``, the record and ``closing``."""
        request_id, context, route, method, status, cold_start, duration_us, bytes_in, bytes_out, fields = (
            summary
        )
        trace_id, span_id, parent_id, sampled = context
        head = self._heads.get(level) or _head(level)
        rest = "," + encode_fields(fields)[1:-1] if fields else ""
        parent = _UNSAMPLED[sampled] if parent_id is None else _parent(parent_id, sampled)
        if outcome is None:
            outcome = self._outcomes.get((route, method, status, cold_start)) or self._outcome(summary)
        return (
            f'{opening}"time":"{stamp(now)}{head}'
            f',"request_id":{_string(request_id)},"trace_id":"{trace_id}","span_id":"{span_id}"{parent}'
            f'{outcome.record},"duration_us":{duration_us}'
            f',"bytes_in":{bytes_in},"bytes_out":{bytes_out}{rest}{self._suffix}{closing}'
        )

    def _outcome(self, summary: RequestSummary) -> _Outcome:
        """What a request's route, method, status and cold start say, in each format's terms: the few
        a function answers are made once each (errors, and a caller's odd methods past the cache's
        bound, each time)."""
        route, method, status, cold_start = summary.route, summary.method, summary.status, summary.cold_start
        outcome = _Outcome(
            f',"route":{_string(route)},"method":{_string(method)},"status":{status}'
            f',"error":{1 if status >= 400 else 0},"fault":{1 if status >= 500 else 0}'
            f',"cold_start":{"true" if cold_start else "false"}',
            f',"message":{_string(f"{method} {route} {status}")}',
            f',"httpRequest":{{"requestMethod":{_string(method)},"status":{status}',
        )
        if len(self._outcomes) < _MAX_CACHED and status < _CACHED_BELOW:
            self._outcomes[route, method, status, cold_start] = outcome
        return outcome

    def _json(self, level: int, summary: RequestSummary, now: float) -> str:
        return self._fields(level, summary, now, "{", "}\n")

    def _emf(self, level: int, summary: RequestSummary, now: float) -> str:
        names = tuple(summary.fields)  # the directive names the metrics present
        if summary.method in _METHODS or "method" not in self.settings.dimensions:
            opening = self._emf_openings.get(names) or self._emf_opening(names)
        else:  # a method a caller made up is no dimension's value (each would be metrics to pay for)
            opening = self._emf_opening(names, self._dimensions_but_method)
        return self._fields(level, summary, now, f"{opening}{int(now * 1000)}}},", "}\n")

    def _emf_opening(self, names: tuple[str, ...], dimensions: tuple[str, ...] | None = None) -> str:
        """``{"_aws":{"CloudWatchMetrics":[…],"Timestamp":`` for a path's fields: its metrics (by
        the configured dimensions, kept for the path; by ``dimensions`` where given, not kept)."""
        present = tuple(name for name in FIELD_METRICS if name in names)
        by = self.settings.dimensions if dimensions is None else dimensions
        directive = _directive(self.settings.namespace, by, ALWAYS_METRICS + present)
        opening = f'{{"_aws":{{"CloudWatchMetrics":[{directive}],"Timestamp":'
        if dimensions is None and len(self._emf_openings) < _MAX_CACHED:
            self._emf_openings[names] = opening
        return opening

    def _gcp(self, level: int, summary: RequestSummary, now: float) -> str:
        (
            _,
            (trace_id, span_id, _, sampled),
            route,
            method,
            status,
            cold_start,
            duration_us,
            bytes_in,
            bytes_out,
            _,
        ) = summary
        outcome = self._outcomes.get((route, method, status, cold_start)) or self._outcome(summary)
        trace = (
            ""
            if self._trace_prefix is None
            else f',"logging.googleapis.com/trace":"{self._trace_prefix}{trace_id}"'
        )
        opening = _GCP_OPENINGS.get(level) or _gcp_opening(level)
        closing = (
            f"{outcome.message}{trace}"
            f',"logging.googleapis.com/spanId":"{span_id}"'
            f',"logging.googleapis.com/trace_sampled":{"true" if sampled else "false"}'
            f'{outcome.http_request},"requestSize":"{bytes_in}","responseSize":"{bytes_out}"'
            f',"latency":"{_latency(duration_us)}"}}}}\n'
        )
        return self._fields(level, summary, now, opening, closing, outcome)

    def cold_start_line(self, now: float) -> str | None:
        """EMF's ``ColdStart`` object, for the instance's first request (None in other formats): by
        ``function_name`` and the configured dimensions that hold for the whole instance."""
        if self.settings.log_format != "emf":
            return None
        per_instance = (name for name in self.settings.dimensions if name in self.static)
        dimensions = list(dict.fromkeys(("function_name", *per_instance)))
        document = {
            "_aws": {
                "Timestamp": int(now * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.settings.namespace,
                        "Dimensions": [dimensions],
                        "Metrics": [{"Name": "ColdStart", "Unit": "Count"}],
                    }
                ],
            },
            **{name: self.static[name] for name in dimensions},
            "ColdStart": 1,
        }
        return encode_fields(document)


_latencies: dict[int, str] = {}
"""Cloud Logging latencies already written, by microseconds: a warm request's duration is one of a
few hundred, each written once (:data:`_MAX_LATENCIES` at most)."""
_MAX_LATENCIES = 1024


def _latency(duration_us: int) -> str:
    """A duration as Cloud Logging's ``latency``, ``0.000269s`` (kept where there is room)."""
    seconds, micros = divmod(duration_us, 1_000_000)
    text = f"{seconds}.{micros:06d}s"
    if len(_latencies) < _MAX_LATENCIES:
        _latencies[duration_us] = text
    return text


_UNSAMPLED = (',"sampled":false', "")
"""What a line says of its trace's sampling, by ``sampled``: only that it is not."""


def _parent(parent_id: str, sampled: bool) -> str:
    """The caller's span and, where the trace is not sampled, that it is not."""
    return f',"parent_span_id":"{parent_id}"' + _UNSAMPLED[sampled]


def _head(level: int) -> str:
    """What follows a request line's time: its level and event."""
    return f'","level":"{level_name(level)}","event":"request"'


def function_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The function's own name where the platform says it (Lambda, Cloud Run, Azure)."""
    env = os.environ if environ is None else environ
    return next((env[n].strip() for n in FUNCTION_NAME_VARIABLES if env.get(n, "").strip()), None)
