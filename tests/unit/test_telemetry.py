"""Each request's record in its cloud's terms: CloudWatch EMF, Cloud Logging's fields, litefaas's JSON."""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fixtures.emf import assert_valid_emf
from fixtures.requests import ENCRYPTED, PLAINTEXT, seal
from hypothesis import given
from hypothesis import strategies as st

from core import logs, telemetry, trace
from core.app import App
from core.config import Settings
from core.errors import ConfigError
from core.telemetry import DIMENSION_FIELDS, RequestLog, RequestSummary, TelemetrySettings

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ROOT = Path(__file__).resolve().parent.parent.parent


def lines_of(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def app_with(keys, engine, provider=None, **env) -> App:
    return App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, **env}, provider), engine)


class TestEmbeddedMetricFormat:
    def test_every_request_line_is_a_valid_emf_document_and_the_first_also_says_cold_start(
        self, keys, engine, capsys
    ):
        # GIVEN a function with AWS's log format
        app = app_with(keys, engine, "aws", AWS_LAMBDA_FUNCTION_NAME="scorer")
        capsys.readouterr()
        # WHEN it answers a sealed request, a bad one, and a health check
        sealed = seal(keys)
        assert app.handle("POST", "/predict", ENCRYPTED, sealed.body, "req-1").status == 200
        assert app.handle("POST", "/predict", ENCRYPTED, b"{}", "req-2").status == 400
        assert app.handle("GET", "/health", {}, b"", "req-3").status == 200
        lines = lines_of(capsys)
        # THEN the first line is ColdStart in an object of its own, as Powertools writes it
        cold, *requests = lines
        assert_valid_emf(cold)
        assert cold["ColdStart"] == 1 and cold["function_name"] == "scorer"
        assert [m["Name"] for m in cold["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["ColdStart"]
        assert cold["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
            ["function_name", "model", "model_version"]
        ]
        # AND every request's line is one EMF document, with the request id Lambda gave
        assert [line["request_id"] for line in requests] == ["req-1", "req-2", "req-3"]
        for line in requests:
            assert_valid_emf(line)
            directive = line["_aws"]["CloudWatchMetrics"][0]
            assert directive["Namespace"] == "litefaas"
            assert directive["Dimensions"] == [["model", "model_version"]]
        names = [{m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]} for line in requests]
        assert {"duration_us", "decrypt_us", "decode_us", "infer_us", "seal_us", "bytes_in"} <= names[0]
        assert "decrypt_us" not in names[1]  # metrics only of what the request got to
        assert (requests[0]["error"], requests[1]["error"], requests[1]["code"]) == (0, 1, "invalid_envelope")
        assert [line["cold_start"] for line in requests] == [True, False, False]
        assert requests[0]["bytes_in"] == len(sealed.body)

    def test_paths_with_other_fields_in_turn_each_name_just_their_own_metrics(self):
        log = RequestLog(TelemetrySettings(log_format="emf"), {"model": "m", "model_version": "1"})
        shapes = [
            {"encrypted": True, "decrypt_us": 5, "decode_us": 1, "infer_us": 2, "seal_us": 1},
            {"code": "not_found"},
            {"seal_us": 1, "infer_us": 2, "decode_us": 1, "decrypt_us": 5, "encrypted": True},
            {},
            {"encrypted": True, "decrypt_us": 5, "decode_us": 1, "infer_us": 2, "seal_us": 1},
        ]
        for fields in shapes * 2:
            summary = RequestSummary("r", trace.new_trace(), "predict", "POST", 200, False, 9, 1, 2, fields)
            document = json.loads(log.line(logging.INFO, summary, 1_700_000_000.0))
            assert_valid_emf(document)
            (directive,) = document["_aws"]["CloudWatchMetrics"]
            named = {metric["Name"] for metric in directive["Metrics"]}
            assert named == {"duration_us", "bytes_in", "bytes_out", "error", "fault"} | (
                fields.keys() & {"decrypt_us", "decode_us", "infer_us", "seal_us"}
            )

    def test_namespace_and_dimensions_are_settings(self, keys, engine, capsys):
        app = app_with(
            keys,
            engine,
            "aws",
            LITEFAAS_METRICS_NAMESPACE="ml/scoring",
            LITEFAAS_METRICS_DIMENSIONS="route,model",
        )
        capsys.readouterr()
        app.handle("GET", "/health", {}, b"")
        (cold, line) = lines_of(capsys)
        assert_valid_emf(line)
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert (directive["Namespace"], directive["Dimensions"]) == ("ml/scoring", [["route", "model"]])
        # the cold start by the dimensions that hold for the whole instance (not a request's route)
        assert_valid_emf(cold)
        cold_directive = cold["_aws"]["CloudWatchMetrics"][0]
        assert (cold_directive["Namespace"], cold_directive["Dimensions"]) == (
            "ml/scoring",
            [["function_name", "model"]],
        )

    def test_a_method_a_caller_makes_up_is_no_dimensions_value(self, keys, engine, capsys):
        """By method, as configured, for the methods HTTP defines; a made-up one's line keeps its
        method but its metrics go by the other dimensions (each value would be metrics to pay for)."""
        app = app_with(keys, engine, "aws", LITEFAAS_METRICS_DIMENSIONS="method,model")
        capsys.readouterr()
        for method in ("GET", "BREW", "GET", "X-PURGE"):
            app.handle(method, "/health", {}, b"")
        _cold, *lines = lines_of(capsys)
        for line in lines:
            assert_valid_emf(line)
        by = [(line["method"], line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) for line in lines]
        assert by == [
            ("GET", [["method", "model"]]),
            ("BREW", [["model"]]),
            ("GET", [["method", "model"]]),
            ("X-PURGE", [["model"]]),
        ]

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("LITEFAAS_METRICS_NAMESPACE", "AWS/Lambda"),
            ("LITEFAAS_METRICS_NAMESPACE", "a" * 256),
            ("LITEFAAS_METRICS_DIMENSIONS", "request_id"),
            ("LITEFAAS_METRICS_DIMENSIONS", "model,model"),
            ("LITEFAAS_METRICS_DIMENSIONS", ",".join(DIMENSION_FIELDS * 2)),
            ("LITEFAAS_LOG_FORMAT", "xml"),
            ("LITEFAAS_OTEL", "maybe"),
        ],
    )
    def test_wrong_settings_name_their_variable(self, variable, value):
        with pytest.raises(ConfigError) as caught:
            TelemetrySettings.from_env({variable: value}, "aws")
        assert caught.value.variable == variable

    def test_each_provider_has_its_own_format_unless_told(self):
        assert [TelemetrySettings.from_env({}, p).log_format for p in ("aws", "gcp", "azure", None)] == [
            "emf",
            "gcp",
            "json",
            "json",
        ]
        assert TelemetrySettings.from_env({"LITEFAAS_LOG_FORMAT": "json"}, "aws").log_format == "json"


class TestCloudLogging:
    def test_trace_span_severity_and_http_request_without_the_callers_address(self, keys, engine, capsys):
        # GIVEN a function with GCP's format in project demo-project, called through Cloud Run's front end
        app = app_with(keys, engine, "gcp", GOOGLE_CLOUD_PROJECT="demo-project")
        capsys.readouterr()
        headers = {
            **ENCRYPTED,
            "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
            "X-Forwarded-For": "203.0.113.9",
        }
        sealed = seal(keys)
        # WHEN it answers
        assert app.handle("POST", "/predict", headers, sealed.body).status == 200
        (line,) = [entry for entry in lines_of(capsys) if entry.get("event") == "request"]
        # THEN Cloud Logging finds its fields
        assert line["severity"] == "INFO"
        assert line["message"] == "POST predict 200"
        assert (
            line["logging.googleapis.com/trace"]
            == "projects/demo-project/traces/105445aa7843bc8bf206b12000100000"
        )
        assert line["logging.googleapis.com/spanId"] == line["span_id"] != "0000000000000001"
        assert line["parent_span_id"] == "0000000000000001"
        assert line["logging.googleapis.com/trace_sampled"] is True
        http = line["httpRequest"]
        assert http["requestMethod"] == "POST" and http["status"] == 200
        assert http["requestSize"] == str(len(sealed.body)) and int(http["responseSize"]) > 0
        assert http["latency"] == f"{line['duration_us'] / 1e6:.6f}s"  # a protobuf Duration's JSON
        assert "remoteIp" not in http and "requestUrl" not in http
        assert "203.0.113.9" not in json.dumps(line)

    def test_traceparent_wins_and_every_line_has_a_severity(self, keys, engine, capsys):
        app = app_with(keys, engine, "gcp", LITEFAAS_ALLOW_PLAINTEXT="1")
        headers = {
            **PLAINTEXT,
            "traceparent": CALLER,
            "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1",
        }
        app.handle("POST", "/predict", headers, b"{}")
        lines = lines_of(capsys)
        assert all("severity" in line for line in lines)
        (line,) = [entry for entry in lines if entry.get("event") == "request"]
        assert (line["trace_id"], line["parent_span_id"]) == (CALLER[3:35], CALLER[36:52])
        assert "logging.googleapis.com/trace" not in line  # no project known: no trace path to name
        assert line["severity"] == "INFO" and line["code"] == "invalid_payload"

    @given(st.integers(min_value=0, max_value=10**10), st.sampled_from([200, 400, 503]))
    def test_latency_is_the_duration_in_seconds_to_the_microsecond(self, duration_us, status):
        log = RequestLog(TelemetrySettings(log_format="gcp"), {"model": "m"})
        context = trace.new_trace()
        summary = RequestSummary("r", context, "predict", "POST", status, False, duration_us, 1, 2, {})
        for _ in range(3):  # field by field, then (a 200) by the key's own writer, which keeps latencies
            line = json.loads(log.line(logging.INFO, summary, 1_700_000_000.0))
            assert line["httpRequest"]["latency"] == f"{duration_us / 1e6:.6f}s"
            assert line["message"] == f"POST predict {status}" and line["httpRequest"]["status"] == status
            assert (line["error"], line["fault"]) == (int(status >= 400), int(status >= 500))

    def test_the_latencies_kept_are_bounded_and_each_is_its_own_durations(self):
        log = RequestLog(TelemetrySettings(log_format="gcp"), {"model": "m"})
        for duration_us in range(3 * telemetry._MAX_LATENCIES):
            summary = RequestSummary(
                "r", trace.new_trace(), "predict", "POST", 200, False, duration_us, 1, 2, {}
            )
            line = json.loads(log.line(logging.INFO, summary, 1_700_000_000.0))
            assert line["httpRequest"]["latency"] == f"{duration_us / 1e6:.6f}s"
        assert len(telemetry._latencies) <= telemetry._MAX_LATENCIES
        assert all(text == f"{d / 1e6:.6f}s" for d, text in telemetry._latencies.items())


class TestRecords:
    def test_a_record_holds_no_input_output_key_or_address(self, keys, engine, capsys):
        app = app_with(keys, engine, LITEFAAS_ALLOW_PLAINTEXT="1")
        capsys.readouterr()
        row = [123.456789] * 30
        app.handle(
            "POST",
            "/predict",
            {**PLAINTEXT, "X-Forwarded-For": "198.51.100.7"},
            json.dumps({"inputs": [row]}).encode(),
        )
        sealed = seal(keys, inputs=[row])
        app.handle("POST", "/predict", ENCRYPTED, sealed.body)
        text = capsys.readouterr().err
        assert "123.456" not in text and "198.51.100.7" not in text
        assert keys.private_b64[0] not in text
        for line in text.splitlines():
            record = json.loads(line)
            assert "outputs" not in record and "inputs" not in record

    def test_warning_turns_request_lines_off(self, keys, engine, capsys):
        app = app_with(keys, engine, "aws", LITEFAAS_LOG_LEVEL="WARNING")
        app.handle("GET", "/health", {}, b"")
        assert capsys.readouterr().err == ""

    def test_without_otel_settings_the_cold_start_imports_no_opentelemetry(self, keys):
        script = (
            "import sys; from core.app import App; "
            f"App.from_env({{'LITEFAAS_PRIVATE_KEYS': {keys.private_json!r}, 'LITEFAAS_LOG_LEVEL': 'ERROR'}}, 'azure'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'azure')))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
        )
        assert out.stdout.strip() == "[]"

    def test_without_its_connection_string_the_azure_entry_point_imports_no_monitor(self, keys):
        # GIVEN no Application Insights connection string WHEN function_app.py is loaded as the
        # Functions worker loads it THEN neither azure-monitor-opentelemetry nor OpenTelemetry is
        script = (
            "import sys; from litefaas.local.azure_host import load_function_app; "
            "from litefaas.paths import ROOT; load_function_app(ROOT / 'handlers' / 'azure'); "
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor'))), "
            "'azure.functions' in sys.modules)"
        )
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "LITEFAAS_OTEL")
        }
        env |= {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "ERROR"}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, env=env
        )
        assert out.stdout.strip() == "[] True"


@pytest.mark.parametrize(
    ("provider", "env", "severity"),
    [
        ("gcp", {"LITEFAAS_MAX_BATCH": "lots"}, True),
        ("gcp", {"LITEFAAS_LOG_FORMAT": "xml"}, True),
        ("aws", {"LITEFAAS_LOG_FORMAT": "gcp", "LITEFAAS_MAX_BATCH": "lots"}, True),
        ("gcp", {"LITEFAAS_LOG_FORMAT": "json", "LITEFAAS_MAX_BATCH": "lots"}, False),
        ("aws", {"LITEFAAS_MAX_BATCH": "lots"}, False),
    ],
)
def test_a_cold_starts_configuration_error_is_written_in_the_clouds_terms(provider, env, severity, capsys):
    # GIVEN a setting that does not hold WHEN the cold start fails
    try:
        with pytest.raises(ConfigError):
            App.from_env(env, provider)
        # THEN its one line has Cloud Logging's severity where the lines are Cloud Logging's
        (line,) = lines_of(capsys)
        assert line["event"] == "config_error"
        assert line.get("severity") == ("ERROR" if severity else None)
    finally:
        logs.use_severity(False)


class TestTraceContext:
    def test_the_three_headers_clouds_send(self):
        assert trace.parse_traceparent(CALLER) == (CALLER[3:35], CALLER[36:52], True)
        assert trace.parse_traceparent(CALLER[:-2] + "00")[2] is False
        assert trace.parse_traceparent("01-" + CALLER[3:] + "-later-fields") is not None
        assert trace.parse_cloud_trace("105445aa7843bc8bf206b12000100000/123;o=0") == (
            "105445aa7843bc8bf206b12000100000",
            f"{123:016x}",
            False,
        )
        assert trace.parse_xray(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        ) == (
            "5759e988bd862e3fe1be46a994272793",
            "53995c3f42cd8ad8",
            True,
        )

    @pytest.mark.parametrize(
        "value",
        [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero parent
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
            CALLER + "-extra",  # version 00 has exactly four fields
            CALLER.upper(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        ],
    )
    def test_invalid_traceparents_start_a_new_trace(self, value):
        assert trace.parse_traceparent(value) is None
        context = trace.incoming({"traceparent": value})
        assert context.parent_id is None and context.trace_id != CALLER[3:35]

    @pytest.mark.parametrize("around", ["\u3000", "\x1c", "\x85", "\u2028", "\n", "\r", "\x0b"])
    def test_only_spaces_and_tabs_may_surround_a_trace_header(self, around):
        """HTTP's optional whitespace is a space or a tab; any other character around a value makes
        it one its format does not allow."""
        cloud = "105445aa7843bc8bf206b12000100000/1;o=1"
        xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"
        assert trace.parse_traceparent(f" \t{CALLER}\t ") is not None
        assert trace.parse_cloud_trace(f"\t{cloud} ") is not None
        assert trace.parse_traceparent(around + CALLER) is None
        assert trace.parse_traceparent(CALLER + around) is None
        assert trace.parse_cloud_trace(around + cloud) is None
        assert trace.parse_xray(xray.replace("Root", around + "Root")) is None

    @given(
        st.dictionaries(
            st.sampled_from(["traceparent", "X-Cloud-Trace-Context", "x-amzn-trace-id", "other"]),
            st.text(max_size=600),
        )
    )
    def test_any_header_value_gives_hex_ids_only(self, headers):
        context = trace.incoming(headers)
        assert len(context.trace_id) == 32 and len(context.span_id) == 16
        for value in (context.trace_id, context.span_id, context.parent_id or "0" * 16):
            assert set(value) <= set("0123456789abcdef")
        assert context.span_id != "0" * 16

    def test_ids_drawn_many_at_a_time_are_all_different_and_never_zero(self):
        # GIVEN more requests than one draw of ids holds
        contexts = [trace.new_trace() for _ in range(3 * trace._POOL_IDS + 7)]
        spans = [trace.new_span_id() for _ in range(trace._POOL_IDS)]
        # THEN every trace id and span id is new, full length and not zero
        trace_ids = [c.trace_id for c in contexts]
        span_ids = [c.span_id for c in contexts] + spans
        assert len(set(trace_ids)) == len(trace_ids) and len(set(span_ids)) == len(span_ids)
        assert {len(t) for t in trace_ids} == {32} and {len(s) for s in span_ids} == {16}
        assert "0" * 32 not in trace_ids and "0" * 16 not in span_ids

    def test_a_draw_holding_a_zero_id_is_drawn_again(self, monkeypatch):
        # GIVEN a generator whose first draw holds an all-zero trace id
        draws = iter([bytes(16 * trace._POOL_IDS)])
        real = trace._random_bytes
        monkeypatch.setattr(trace, "_random_bytes", lambda n: next(draws, None) or real(n))
        trace.forget_ids()
        # WHEN the pool is drawn
        contexts = [trace.new_trace() for _ in range(trace._POOL_IDS)]
        # THEN no context holds a zero id, and they are root contexts of their own type
        assert "0" * 32 not in {c.trace_id for c in contexts}
        assert all(type(c) is trace.TraceContext and c[2:] == (None, True) for c in contexts)

    def test_threads_answering_at_once_never_share_an_id(self):
        # GIVEN 8 threads drawing ids at once, switched as often as the interpreter can
        saved = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        drawn: list[list[trace.TraceContext]] = [[] for _ in range(8)]
        start = threading.Barrier(8)

        def draw(into: list) -> None:
            start.wait()
            for _ in range(3 * trace._POOL_IDS):
                into.append(trace.new_trace())

        threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(saved)
        # THEN every trace id and span id is one no other request got
        contexts = [context for into in drawn for context in into]
        assert len(contexts) == 8 * 3 * trace._POOL_IDS
        assert len({c.trace_id for c in contexts}) == len({c.span_id for c in contexts}) == len(contexts)

    def test_a_child_forked_while_a_thread_draws_ids_still_draws_its_own(self):
        # GIVEN a thread of the parent holding the lock of the draw when the process forks
        held, release = threading.Event(), threading.Event()

        def draw_slowly() -> None:
            with trace._drawing:
                held.set()
                release.wait(10)

        drawer = threading.Thread(target=draw_slowly)
        drawer.start()
        held.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # WHEN the child answers requests past the pool it inherited (none: it forgets it)
            try:
                os.close(read)
                signal.alarm(10)
                os.write(write, ",".join(trace.new_trace().trace_id for _ in range(3)).encode())
            finally:
                os._exit(0)
        os.close(write)
        release.set()
        drawer.join()
        with os.fdopen(read, "rb") as pipe:
            ids = pipe.read().decode().split(",")
        os.waitpid(pid, 0)
        # THEN it drew ids of its own instead of waiting for a lock no thread of it holds
        assert len(ids) == 3 and all(len(trace_id) == 32 for trace_id in ids)

    def test_a_forked_child_does_not_hand_out_its_parents_next_ids(self):
        # GIVEN a process whose ids are drawn (gunicorn and the Lambda sandbox fork after import)
        trace.new_trace()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # WHEN it forks, the child's next ids ...
            try:
                os.close(read)
                os.write(write, trace.new_trace().trace_id.encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            child = pipe.read().decode()
        os.waitpid(pid, 0)
        # THEN ... are not the parent's
        assert len(child) == 32 and child != trace.new_trace().trace_id


class TestLineTime:
    @given(st.lists(st.floats(min_value=0, max_value=4e9, allow_nan=False), min_size=1, max_size=20))
    def test_a_lines_time_is_utc_to_the_millisecond_whatever_order_times_come_in(self, times):
        # GIVEN times in any order (a second made once is reused, a clock may step back)
        for now in times:
            # WHEN each is a line's time, THEN it is the second's UTC text and the truncated millisecond
            second = int(now)
            expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            assert logs.stamp(now) == f"{expected}.{int((now - second) * 1000):03d}Z"

    def test_after_a_restore_the_second_is_made_anew(self):
        logs.stamp(1_700_000_000.5)
        logs.reset_clock()
        assert logs.stamp(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"


# ------------------------------------------------------------------------ a path's own writer


class Level(enum.IntEnum):
    LOW = 1


field_names = st.sampled_from(["decrypt_us", "kid", "encrypted", "rows", "code", "_x9", "1%d"]) | st.text(
    max_size=6
).filter(lambda name: name != "route")  # a path's field never takes a name of the record's own
field_values = (
    st.integers()
    | st.booleans()
    | st.text(max_size=6)
    | st.floats()
    | st.none()
    | st.lists(st.integers(), max_size=3)
    | st.just(Level.LOW)
    | st.just(b"\x00")
)
contexts = st.builds(
    trace.TraceContext,
    st.just("0af7651916cd43dd8448eb211c80319c"),
    st.just("b7ad6b7169203331"),
    st.none() | st.just("00f067aa0ba902b7"),
    st.booleans(),
)
summaries = st.builds(
    RequestSummary,
    st.text(max_size=8),
    contexts,
    st.sampled_from(["predict", "oip_infer", "unknown"]) | st.text(max_size=4),
    st.sampled_from(["POST", "GET", "PUT"]) | st.text(max_size=4),
    st.sampled_from([200, 400, 413, 500, 503]),
    st.booleans(),
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
    st.just({}),
)
formats = st.sampled_from(
    [TelemetrySettings(log_format=f) for f in ("json", "emf", "gcp")]
    + [
        TelemetrySettings(log_format="gcp", gcp_project="p"),
        TelemetrySettings(log_format="emf", dimensions=("route",)),
    ]
)


def field_by_field(log: RequestLog, level: int, summary: RequestSummary, now: float) -> str:
    return log._field_by_field(level, summary, now)


@given(
    formats,
    st.lists(
        st.tuples(
            summaries,
            st.dictionaries(field_names, field_values, max_size=6),
            st.sampled_from([logging.INFO, logging.ERROR, logging.WARNING]),
            st.floats(min_value=0, max_value=4e9),
        ),
        max_size=10,
    ),
)
def test_a_paths_own_writer_writes_the_line_field_by_field_writing_does(settings, requests):
    """Every line, the first of its names (written field by field) and each later one (by the
    writer made for them), is the same text: names that are not identifiers, NaN, odd methods…"""
    log = RequestLog(settings, {"model": "m", "model_version": "1"})
    for summary, fields, level, now in requests:
        summary = summary._replace(fields=fields)
        for _ in range(3):
            line = log.line(level, summary, now)
            assert line == field_by_field(log, level, summary, now)
            assert line.endswith("}\n") and "\n" not in line[:-1]
            assert strict_json(line)["route"] == summary.route


@given(
    formats,
    st.lists(field_names, min_size=1, max_size=5, unique=True).flatmap(
        lambda names: st.lists(st.tuples(*[field_values] * len(names)), min_size=3, max_size=8).map(
            lambda rows: [dict(zip(names, row, strict=True)) for row in rows]
        )
    ),
)
def test_a_writer_writes_its_names_rightly_whatever_their_values_now_are(settings, records):
    """The same names with other types than they first held (a bool where an int was, a str, None…)."""
    log = RequestLog(settings, {"model": "m"})
    summary = RequestSummary("r", trace.new_trace(), "predict", "POST", 200, False, 1, 2, 3, {})
    for fields in records:
        summary = summary._replace(fields=fields)
        line = log.line(logging.INFO, summary, 1_700_000_000.25)
        assert line == field_by_field(log, logging.INFO, summary, 1_700_000_000.25)
        strict_json(line)


def strict_json(line: str) -> dict:
    """The line parsed as JSON is: no bare NaN or Infinity (Python's own parser takes them)."""
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON: {line}"))


@pytest.mark.parametrize("log_format", ["json", "emf", "gcp"])
def test_a_float_that_is_not_finite_is_written_as_a_string_the_line_stays_json(log_format):
    log = RequestLog(TelemetrySettings(log_format=log_format), {"model": "m"})
    fields = {"score": float("nan"), "limits": [float("inf"), -float("inf"), 0.5], "rows": 1}
    for _ in range(3):  # field by field, then by the key's own writer
        line = strict_json(log.line(logging.INFO, request_summary(fields), 1.0))
        assert (line["score"], line["limits"], line["rows"]) == ("NaN", ["Infinity", "-Infinity", 0.5], 1)
    assert strict_json(logs.json_line(logging.INFO, "event", {"value": float("nan")}))["value"] == "NaN"


def request_summary(fields: dict) -> RequestSummary:
    return RequestSummary("r", trace.new_trace(), "predict", "POST", 200, False, 1, 2, 3, fields)


def key_of(summary: RequestSummary, level: int = logging.INFO) -> tuple:
    return (level, summary.route, summary.method, summary.status, summary.cold_start, tuple(summary.fields))


@pytest.mark.parametrize("log_format", ["json", "emf", "gcp"])
def test_a_set_of_names_gets_its_own_writer_the_second_time_it_is_seen(log_format):
    """The first sight (an instance's first request) is written field by field, without compiling."""
    log = RequestLog(
        TelemetrySettings(log_format=log_format, gcp_project="p"), {"model": "m", "model_version": "1"}
    )
    summary = request_summary({"encrypted": True, "kid": "k0", "decrypt_us": 45, "rows": 1})
    first = log.line(logging.INFO, summary, 1_700_000_000.5)
    assert key_of(summary) not in log.writers
    assert log.line(logging.INFO, summary, 1_700_000_000.5) == first
    writer = log.writers[key_of(summary)]
    assert writer.__name__ == "line" and writer.__code__.co_filename == "<string>"
    if log_format == "emf":
        assert_valid_emf(json.loads(first))


def test_past_its_bound_a_new_set_of_names_is_written_field_by_field_and_not_kept():
    log = RequestLog(TelemetrySettings(), {"model": "m"})
    for count in range(1, 140):
        summary = request_summary({f"n{index}": index for index in range(count)} | {"kid": "k0"})
        for _ in range(3):
            assert log.line(logging.INFO, summary, 1.0) == field_by_field(log, logging.INFO, summary, 1.0)
    assert len(log.writers) <= 64 and len(log._seen_once) <= 64


def test_a_name_that_is_not_an_identifier_never_reaches_the_source_of_a_writer():
    log = RequestLog(TelemetrySettings(), {"model": "m"})
    hostile = {"a'}; import os; f'{": 1, 'b"': "x", "\\'{f}": 2}
    for _ in range(3):
        line = log.line(logging.INFO, request_summary(hostile), 1.0)
    code = log.writers[key_of(request_summary(hostile))].__code__
    assert code.co_filename == "<string>"
    assert not {"os", "import", "f"} & set(code.co_names)  # each name is text in a literal of its own
    assert hostile.items() <= json.loads(line).items()


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_a_warm_request_is_written_by_its_own_writer_found_by_the_app(
    keys, engine, provider, capsys, monkeypatch
):
    """From a path's third request (the cold start's own key, then the warm key twice) the app finds
    its writer itself, by the key RequestLog.line makes."""
    app = app_with(keys, engine, provider, GOOGLE_CLOUD_PROJECT="p")
    deployed = [
        handler for handler in app.logger.handlers if isinstance(handler.formatter, logs.JsonFormatter)
    ]
    monkeypatch.setattr(app.logger, "handlers", deployed)  # its one handler, as deployed (not pytest's too)
    for _ in range(3):
        app.handle("POST", "/predict", ENCRYPTED, seal(keys).body)
    capsys.readouterr()
    log = app._request_log
    written = []
    monkeypatch.setattr(log, "line", lambda *args: pytest.fail("the app's lookup missed the writer"))
    monkeypatch.setattr(log, "_field_by_field", lambda *args: written.append(args) or "")
    app.handle("POST", "/predict", ENCRYPTED, seal(keys).body, "req-1")
    [line] = lines_of(capsys)
    assert line["request_id"] == "req-1" and line["status"] == 200 and written == []


def test_a_callers_errors_cannot_fill_the_caches_and_keep_the_functions_own_writer_from_it():
    """Errors (every route, method and status a caller can bring about, each twice) are written
    field by field and kept nowhere; the function's own answers still get their writer."""
    log = RequestLog(TelemetrySettings(log_format="gcp", gcp_project="p"), {"model": "m"})
    routes = ["predict", "keys", "health", "oip_infer", "oip_model", "unknown"]
    for route in routes:
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            for status in (400, 404, 405, 409, 413, 415, 500):
                error = request_summary({"code": "x"})._replace(route=route, method=method, status=status)
                for _ in range(2):
                    assert log.line(logging.INFO, error, 1.0) == field_by_field(log, logging.INFO, error, 1.0)
    assert log.writers == {} and log._seen_once == set() and log._outcomes == {}
    summary = request_summary({"kid": "k0"})
    for _ in range(2):
        log.line(logging.INFO, summary, 1.0)
    assert list(log.writers) == [key_of(summary)]


def test_a_route_is_written_as_a_json_string_whatever_it_holds():
    """A route name is the core's own today; were one to hold a quote or a newline, the line would
    still be one JSON object, in every format."""
    for log_format in ("json", "emf", "gcp"):
        log = RequestLog(TelemetrySettings(log_format=log_format, gcp_project="p"), {"model": "m"})
        summary = request_summary({"kid": "k0"})._replace(route='a"}\n{"x":1')
        for _ in range(3):
            line = log.line(logging.INFO, summary, 1.0)
            document = json.loads(line)
            assert document.get("route", 'a"}\n{"x":1') == 'a"}\n{"x":1' and line.count("\n") == 1


@pytest.mark.parametrize("value", ['my-project"}', "proj\nect", "", "a" * 129, "proj ect"])
def test_a_gcp_project_that_could_not_name_a_trace_is_a_configuration_error(value):
    if not value:
        assert TelemetrySettings.from_env({"GOOGLE_CLOUD_PROJECT": value}).gcp_project is None
        return
    with pytest.raises(ConfigError) as raised:
        TelemetrySettings.from_env({"GOOGLE_CLOUD_PROJECT": value})
    assert raised.value.variable == "GOOGLE_CLOUD_PROJECT"
    for fine in ("my-project-123", "example.com:my-project", "p"):
        assert TelemetrySettings.from_env({"GCP_PROJECT": fine}).gcp_project == fine


def test_a_callers_odd_methods_get_no_writer_and_leave_room_for_the_functions_own():
    """Requests with any method a caller makes up are written field by field and kept nowhere."""
    log = RequestLog(TelemetrySettings(), {"model": "m"})
    for index in range(300):
        odd = request_summary({"code": "method_not_allowed"})._replace(method=f"X{index}", status=405)
        for _ in range(2):
            assert log.line(logging.INFO, odd, 1.0) == field_by_field(log, logging.INFO, odd, 1.0)
    assert log.writers == {} and log._seen_once == set()
    summary = request_summary({"kid": "k0"})
    for _ in range(2):
        log.line(logging.INFO, summary, 1.0)
    assert key_of(summary) in log.writers
