"""Traces across hops: the caller's span, the client's spans and the functions' spans in one trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import numpy as np
import pytest
from fixtures.inprocess import AsyncInProcessTransport, InProcessTransport
from fixtures.requests import ROWS
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from core import logs
from core.app import App
from litefaas.client import AsyncClient, Client, tracing


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "request":
            self.records.append(record.fields)  # type: ignore[attr-defined]


@pytest.fixture
def request_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logs.configure()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def traced_app(keys, **env: str) -> App:
    return App.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_OTEL": "1", **env})


def test_a_fan_out_of_8_is_one_trace_under_the_callers_span(otel, keys, request_lines):
    # GIVEN a function exporting spans, and a caller inside a span of its own
    app = traced_app(keys)
    client = Client("https://fn.test", transport=InProcessTransport(app))
    # WHEN the caller fans 16 rows out over 8 requests
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        result = client.predict(ROWS[:16], fan_out=8)
    assert len(result.outputs) == 16
    # THEN every span is in the caller's trace: each of the 8 requests a span under the fan-out,
    # each function's span under its request
    served = assert_one_trace_under(otel.finished(), caller, 8)
    assert all(s.parent.is_remote for s in served)
    # AND each request's log line names its function span
    logged = {(r["trace_id"], r["span_id"]) for r in request_lines.records if r["route"] == "predict"}
    assert logged == {(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in served}
    assert otel.counter("litefaas.requests") >= 9  # the key set's GET, then the 8


def assert_one_trace_under(spans, caller, shards: int) -> list:
    """The caller's trace holds one fan-out span under the caller, ``shards`` requests under it and
    each function's span under its request; the function spans, returned."""
    assert {span.context.trace_id for span in spans} == {caller.get_span_context().trace_id}
    (fan_out,) = [s for s in spans if s.name == "litefaas.fan_out"]
    posts = [s for s in spans if s.kind is SpanKind.CLIENT and s.name == "POST predict"]
    served = [s for s in spans if s.kind is SpanKind.SERVER and s.attributes["http.route"] == "predict"]
    assert fan_out.parent.span_id == caller.get_span_context().span_id
    assert len(posts) == len(served) == shards
    assert {post.parent.span_id for post in posts} == {fan_out.context.span_id}
    assert sorted(s.parent.span_id for s in served) == sorted(p.context.span_id for p in posts)
    return served


@pytest.mark.parametrize("tensors", [False, True], ids=["rows", "named tensors"])
def test_the_async_clients_fan_out_of_8_is_one_trace_under_the_callers_span(otel, keys, tensors):
    # GIVEN a function exporting spans, and an asyncio caller inside a span of its own
    app = traced_app(keys)

    async def call() -> int:
        async with AsyncClient("https://fn.test", transport=AsyncInProcessTransport(app)) as client:
            if tensors:
                features = np.asarray(ROWS[:16], dtype=np.float32)
                result = await client.predict_tensors({"features": features}, fan_out=8)
                return len(next(iter(result.outputs.values())))
            return len((await client.predict(ROWS[:16], fan_out=8)).outputs)

    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        # WHEN it fans 16 rows out over 8 concurrent requests on one event loop
        answered = asyncio.run(call())
    # THEN every request's span, and the function's span under it, is in the caller's one trace
    assert answered == 16
    assert_one_trace_under(otel.finished(), caller, 8)


def test_the_functions_span_carries_the_record_but_no_payload(otel, keys):
    app = traced_app(keys, LITEFAAS_ALLOW_PLAINTEXT="1")
    with Client("https://fn.test", transport=InProcessTransport(app), plaintext=True) as client:
        client.predict(ROWS[:2])
    (served,) = [s for s in otel.finished() if s.kind is SpanKind.SERVER]
    attributes = dict(served.attributes)
    assert attributes["http.response.status_code"] == 200
    assert attributes["litefaas.model"] == "breast_cancer_mlp"
    assert attributes["litefaas.rows"] == 2
    assert len(attributes["litefaas.model_sha256"]) == 64
    flat = repr(attributes)
    assert str(ROWS[0][0]) not in flat and "inputs" not in flat


def test_without_a_recording_sdk_the_requests_of_one_call_share_a_trace(monkeypatch, keys, request_lines):
    # GIVEN no OpenTelemetry tracer the client can record with
    monkeypatch.setattr(tracing, "_tracer", lambda: None)
    app = App.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    client = Client("https://fn.test", transport=InProcessTransport(app))
    # WHEN it fans out, and then makes a call of its own
    client.predict(ROWS[:8], fan_out=4)
    client.health()
    lines = [r for r in request_lines.records if r["route"] in ("predict", "health")]
    fanned = {r["trace_id"] for r in lines if r["route"] == "predict"}
    # THEN the fan-out's 4 requests are one trace, each from a span of its own; the next call another
    assert len(fanned) == 1
    assert len({r["parent_span_id"] for r in lines if r["route"] == "predict"}) == 4
    (health,) = [r for r in lines if r["route"] == "health"]
    assert health["trace_id"] not in fanned
