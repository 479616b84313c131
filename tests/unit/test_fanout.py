"""Batch fan-out: shards in order, a fresh id per retry, rows counted once, partial failures reported."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import threading
import time

import httpx
import numpy as np
import pytest
from fixtures.inprocess import AsyncInProcessTransport, InProcessTransport
from fixtures.requests import ROWS, make_keys
from hypothesis import given
from hypothesis import strategies as st

from core.app import App
from core.config import Settings
from core.engine import Engine
from litefaas import client as client_module
from litefaas.cli import calls as keys_cmd
from litefaas.client import (
    AsyncClient,
    Client,
    ClientError,
    InvalidPayloadError,
    NetworkError,
    PartialFailure,
    PayloadTooLargeError,
    PlaintextDisabledError,
    PredictResult,
    RemoteInternalError,
    build_request,
    join_results,
    plan_shards,
    row_count,
    rows_per_request,
    slice_rows,
)
from litefaas.client import base as client_base

URL = "https://fn.test"
MARKER = 9999.0


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def engine(artifact_dir):
    return Engine.from_dir(artifact_dir)


class FlakyEngine:
    """The real engine, except that a batch holding a marker row fails (``failures`` times, or always)."""

    def __init__(self, engine: Engine, failures: int | None = None) -> None:
        self.engine = engine
        self.manifest = engine.manifest
        self.backend = engine.backend
        self.failures = failures
        self.lock = threading.Lock()

    def predict(self, inputs):
        if np.any(inputs["features"][:, 0] == MARKER):
            with self.lock:
                if self.failures is None or self.failures > 0:
                    self.failures = None if self.failures is None else self.failures - 1
                    raise RuntimeError("injected failure")
        return self.engine.predict(inputs)


def make_app(keys, engine, **env):
    settings = Settings.from_env(
        {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "ERROR", **env}
    )
    return App(settings, engine)


def batch(rows: int) -> np.ndarray:
    """``rows`` distinct rows (each a scaled fixture row), so a misplaced shard shows."""
    base = np.asarray(ROWS, dtype=np.float32)
    tiled = np.tile(base, (rows // len(base) + 1, 1))[:rows]
    return (tiled * (1 + 0.001 * np.arange(rows, dtype=np.float32))[:, None]).astype(np.float32)


def expected(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"]


def predict_requests(transport):
    return [seen for seen in transport.seen if seen.path.endswith("/predict")]


class ShuffledTransport(InProcessTransport):
    """Answers after a random pause, so shards finish out of order."""

    def handle_request(self, request):
        time.sleep(random.uniform(0, 0.01))
        return super().handle_request(request)


class LossyTransport(InProcessTransport):
    """Loses the first ``lose`` predict exchanges: before the app sees them, or after it answered."""

    def __init__(self, app, lose: int, after_answer: bool) -> None:
        super().__init__(app)
        self.lose = lose
        self.after_answer = after_answer
        self.lock = threading.Lock()

    def handle_request(self, request):
        with self.lock:
            drop = request.url.path.endswith("/predict") and self.lose > 0
            self.lose -= drop
        if drop and not self.after_answer:
            raise httpx.ConnectError("injected: connection refused", request=request)
        response = super().handle_request(request)
        if drop:
            raise httpx.ReadError("injected: connection reset after the answer", request=request)
        return response


@pytest.fixture
def request_ids(monkeypatch):
    """Every request id the client draws."""
    ids: list[bytes] = []

    def recording(*args, **kwargs):
        body, secrets = build_request(*args, **kwargs)
        ids.append(secrets.id)
        return body, secrets

    monkeypatch.setattr(client_base, "build_request", recording)
    monkeypatch.setattr(client_base.ClientBase, "retry_delay_s", 0.0)
    return ids


class TestPlanning:
    @pytest.mark.parametrize(
        ("rows", "fan_out", "max_rows", "sizes"),
        [
            (65_536, 4, 1024, [1024] * 64),
            (4_096, 8, 1024, [512] * 8),
            (4_096, 2, 1024, [1024] * 4),
            (10, 4, 1024, [2, 3, 2, 3]),
            (3, 8, 1024, [1, 1, 1]),
            (1, 1, 1024, [1]),
        ],
    )
    def test_shard_sizes(self, rows, fan_out, max_rows, sizes):
        """Shards are near-equal and within max_rows, as many as fan_out asks but never more than the rows."""
        shards = plan_shards(rows, fan_out, max_rows)
        assert [stop - start for start, stop in shards] == sizes

    @given(st.integers(1, 100_000), st.integers(1, 64), st.integers(1, 2048))
    def test_shards_cover_every_row_once_within_the_cap(self, rows, fan_out, max_rows):
        """Shards tile the rows once, in order, within the cap, and differ in size by one at most."""
        shards = plan_shards(rows, fan_out, max_rows)
        assert shards[0][0] == 0 and shards[-1][1] == rows
        assert all(a[1] == b[0] for a, b in itertools.pairwise(shards))
        sizes = [stop - start for start, stop in shards]
        assert max(sizes) <= max_rows and max(sizes) - min(sizes) <= 1
        assert len(shards) == min(rows, max(fan_out, -(-rows // max_rows)))

    def test_bad_arguments(self):
        """No rows, a fan-out below 1 or not an int, or negative retries raise ClientError."""
        for rows, fan_out in ((0, 1), (5, 0)):
            with pytest.raises(ClientError):
                plan_shards(rows, fan_out, 10)
        with Client(URL, plaintext=True) as function:
            for kwargs in ({"fan_out": 0}, {"fan_out": 2, "retries": -1}, {"fan_out": True}):
                with pytest.raises(ClientError):
                    function.predict(ROWS[:2], **kwargs)

    def test_rows_per_request_keeps_the_body_under_the_limit(self, keys):
        """Rows per request honour max_batch, and a body of that many rows fits the body limit."""
        assert rows_per_request(ROWS) == 1024
        assert rows_per_request(ROWS, max_batch=64) == 64
        wide = np.full((1, 128), -1.2345678901234567e-05)
        rows = rows_per_request(wide, max_body_bytes=1024 * 1024)
        assert 100 < rows < 1024
        body, _ = build_request(np.full((rows, 128), -1.2345678901234567e-05), keys.public["keys"][0])
        assert len(body) <= 1024 * 1024

    def test_rows_of_a_mapping(self):
        """A mapping's rows are counted, sized and sliced across all inputs, which must agree."""
        inputs = {"a": np.zeros((6, 2)), "b": [[1, 2, 3]] * 6}
        assert row_count(inputs) == 6
        assert rows_per_request(inputs, max_batch=10_000, max_body_bytes=1024 * 1024) == (786_432 - 512) // (
            25 * 5 + 8
        )
        part = slice_rows(inputs, 2, 4)
        assert len(part["a"]) == 2 and part["b"] == [[1, 2, 3]] * 2
        with pytest.raises(ClientError, match="same number of rows"):
            row_count({"a": [[1]], "b": [[1], [2]]})

    def test_join_keeps_shard_order_and_named_outputs(self):
        """Joined shard answers keep shard order for every named output."""
        model = {"name": "m", "version": "1", "sha256": "x"}
        parts = [
            PredictResult({"y": np.array([[0.0], [1.0]]), "z": np.array([[5.0], [6.0]])}, model),
            PredictResult({"y": np.array([[2.0]]), "z": np.array([[7.0]])}, model),
        ]
        joined = join_results([(0, 2), (2, 3)], parts)
        assert joined.outputs["y"].ravel().tolist() == [0.0, 1.0, 2.0]
        assert joined.outputs["z"].ravel().tolist() == [5.0, 6.0, 7.0]

    def test_join_refuses_answers_of_different_models_or_sizes(self):
        """Shard answers from different models, or short of rows, cannot be joined."""
        one = PredictResult(np.zeros((1, 1)), {"sha256": "a"})
        other = PredictResult(np.zeros((1, 1)), {"sha256": "b"})
        with pytest.raises(client_module.ProtocolError, match="different models"):
            join_results([(0, 1), (1, 2)], [one, other])
        with pytest.raises(client_module.ProtocolError, match="one output per row"):
            join_results([(0, 2)], [one])


class TestFanOut:
    @pytest.mark.parametrize("fan_out", [1, 2, 4, 8])
    def test_reassembled_in_order(self, keys, engine, fan_out):
        """Shards answered out of order are joined in row order, one sealed request each."""
        rows = batch(300)
        transport = ShuffledTransport(make_app(keys, engine))
        with Client(URL, transport=transport) as function:
            result = function.predict(rows, fan_out=fan_out)
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert result.model == engine.manifest.public_info()
        assert len(predict_requests(transport)) == min(300, max(fan_out, 1))
        assert all(seen.content_type == "application/litefaas+json" for seen in predict_requests(transport))

    def test_list_rows_and_one_shard_per_row_at_most(self, keys, engine):
        """A list of rows fans out to one shard per row at most."""
        transport = InProcessTransport(make_app(keys, engine))
        with Client(URL, transport=transport) as function:
            result = function.predict(ROWS[:3], fan_out=8)
        np.testing.assert_array_equal(result.outputs, expected(engine, ROWS[:3]))
        assert len(predict_requests(transport)) == 3

    def test_shards_never_exceed_the_max_batch(self, keys, engine):
        """Shards are split further to stay within max_batch, and the outputs are whole."""
        app = make_app(keys, engine, LITEFAAS_MAX_BATCH="64")
        transport = InProcessTransport(app)
        rows = batch(300)
        with Client(URL, transport=transport, max_batch=64) as function:
            result = function.predict(rows, fan_out=2)
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert len(predict_requests(transport)) == 5  # max(2, ceil(300 / 64)), 60 rows each

    def test_without_fan_out_the_batch_goes_whole(self, keys, engine):
        """Without fan-out an oversized batch is sent whole, once, and refused with 413."""
        app = make_app(keys, engine, LITEFAAS_MAX_BATCH="64")
        transport = InProcessTransport(app)
        with Client(URL, transport=transport) as function, pytest.raises(PayloadTooLargeError):
            function.predict(batch(100))
        assert len(predict_requests(transport)) == 1

    def test_a_4xx_is_never_retried(self, keys, engine, request_ids):
        # GIVEN a function whose limit is below the client's idea of it
        transport = InProcessTransport(make_app(keys, engine, LITEFAAS_MAX_BATCH="64"))
        # WHEN every shard is refused with 413
        with Client(URL, transport=transport) as function, pytest.raises(PayloadTooLargeError):
            function.predict(batch(300), fan_out=2)
        # THEN nothing was sent twice, and with no shard answered the typed error is raised
        assert len(predict_requests(transport)) == 2 == len(request_ids)

    def test_retry_after_a_5xx_uses_a_fresh_id(self, keys, engine, request_ids):
        """A shard that fails with a 5xx is retried with a new request id and then answered."""
        rows = batch(400)
        rows[250, 0] = MARKER  # in the third of four shards; its first attempt fails
        app = make_app(keys, FlakyEngine(engine, failures=1))
        transport = InProcessTransport(app)
        with Client(URL, transport=transport) as function:
            result = function.predict(rows, fan_out=4)
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert len(predict_requests(transport)) == 5
        assert len(set(request_ids)) == len(request_ids) == 5

    @pytest.mark.parametrize("after_answer", [False, True], ids=["lost-on-the-way", "answer-lost"])
    def test_network_error_is_retried_and_rows_count_once(self, keys, engine, request_ids, after_answer):
        # GIVEN a connection that fails once: before the function sees the request, or after it answered
        rows = batch(200)
        app = make_app(keys, engine)
        transport = LossyTransport(app, lose=1, after_answer=after_answer)
        # WHEN the rows fan out
        with Client(URL, transport=transport) as function:
            result = function.predict(rows, fan_out=4)
        # THEN the retry is a new request the function accepts (not a replay), and each row has one output
        assert result.outputs.shape == (200, 1)
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert len(set(request_ids)) == len(request_ids) == 5
        assert len(app.replay) == (5 if after_answer else 4)

    def test_a_replayed_id_is_refused(self, keys, engine):
        """The same sealed body sent twice is answered 200 then refused 409."""
        # why a retry must never resend the same body
        transport = InProcessTransport(make_app(keys, engine))
        with Client(URL, transport=transport) as function:
            key = function.key()
        body, _secrets = build_request(ROWS[:1], key)
        first = httpx.Client(transport=transport).post(
            f"{URL}/predict", content=body, headers={"Content-Type": "application/litefaas+json"}
        )
        again = httpx.Client(transport=transport).post(
            f"{URL}/predict", content=body, headers={"Content-Type": "application/litefaas+json"}
        )
        assert (first.status_code, again.status_code) == (200, 409)

    def test_partial_failure_names_the_rows(self, keys, engine, request_ids):
        # GIVEN 400 rows in four shards, the second of which always fails with 500
        rows = batch(400)
        rows[150, 0] = MARKER
        transport = InProcessTransport(make_app(keys, FlakyEngine(engine)))
        with Client(URL, transport=transport) as function, pytest.raises(PartialFailure) as caught:
            function.predict(rows, fan_out=4, retries=2)
        failure = caught.value
        # THEN the failed rows are named, every row is accounted for once, and the answered ones are kept
        assert failure.rows == 400
        assert failure.failed_ranges == [range(100, 200)]
        assert isinstance(failure.failed[0].error, RemoteInternalError)
        assert failure.failed[0].attempts == 3
        assert "rows 100-199" in str(failure) and "100 of 400 rows unanswered" in str(failure)
        covered = sorted([(s.start, s.stop) for s in failure.succeeded] + [(100, 200)])
        assert covered == [(0, 100), (100, 200), (200, 300), (300, 400)]
        reference = expected(engine, rows)
        for shard in failure.succeeded:
            np.testing.assert_array_equal(shard.outputs, reference[shard.start : shard.stop])
        assert len(set(request_ids)) == len(request_ids) == 6

    def test_a_bad_row_fails_its_shard_only(self, keys, engine):
        """A malformed row fails only its shard, once, with the row named within it."""
        rows = batch(300).tolist()
        rows[220] = rows[220][:29]
        transport = InProcessTransport(make_app(keys, engine))
        with Client(URL, transport=transport) as function, pytest.raises(PartialFailure) as caught:
            function.predict(rows, fan_out=3)
        (failed,) = caught.value.failed
        assert (failed.start, failed.stop, failed.attempts) == (200, 300, 1)
        assert isinstance(failed.error, InvalidPayloadError)
        assert "row 20: expected 30 features, got 29" in str(caught.value)

    def test_every_shard_failing_raises_the_typed_error(self, keys, engine):
        """When every shard fails with the same error, that typed error is raised, not PartialFailure."""
        transport = InProcessTransport(make_app(keys, engine))
        with (
            Client(URL, transport=transport, plaintext=True) as function,
            pytest.raises(PlaintextDisabledError),
        ):
            function.predict(batch(10), fan_out=2)

    def test_network_down_exhausts_the_retries(self, keys, request_ids):
        """With the network down each shard is tried 1 + retries times, each time with a new id."""
        attempts = []

        def refuse(request):
            attempts.append(request.url.path)
            raise httpx.ConnectError("refused", request=request)

        keyset = keys.public
        with (
            Client(URL, keyset=keyset, transport=httpx.MockTransport(refuse)) as function,
            pytest.raises(NetworkError),
        ):
            function.predict(batch(10), fan_out=2, retries=1)
        assert len(attempts) == 4 == len(set(request_ids))


class TestAsync:
    def test_reassembled_in_order(self, keys, engine):
        """The async client joins fanned-out shards in row order, one request each."""
        rows = batch(300)
        transport = AsyncInProcessTransport(make_app(keys, engine))

        async def go():
            async with AsyncClient(URL, transport=transport) as function:
                return await function.predict(rows, fan_out=4)

        result = asyncio.run(go())
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert len(predict_requests(transport)) == 4

    def test_retry_and_partial_failure(self, keys, engine, request_ids):
        """The async client retries a failing shard and reports a shard that keeps failing."""
        rows = batch(300)
        rows[10, 0] = MARKER  # first shard: fails once, then answers
        transport = AsyncInProcessTransport(make_app(keys, FlakyEngine(engine, failures=1)))

        async def go(data, **kwargs):
            async with AsyncClient(URL, transport=transport, max_batch=100) as function:
                return await function.predict(data, **kwargs)

        result = asyncio.run(go(rows, fan_out=2))
        np.testing.assert_array_equal(result.outputs, expected(engine, rows))
        assert len(set(request_ids)) == len(request_ids) == 4  # three shards of 100, one retry

        transport.app = make_app(keys, FlakyEngine(engine))
        with pytest.raises(PartialFailure) as caught:
            asyncio.run(go(rows, fan_out=2, retries=1))
        assert caught.value.failed_ranges == [range(0, 100)]
        assert [(s.start, s.stop) for s in caught.value.succeeded] == [(100, 200), (200, 300)]


class TestCommandLine:
    def args(self, source, **extra):
        values = {
            "url": URL,
            "input": str(source),
            "plaintext": False,
            "kid": None,
            "suite": None,
            "timeout": 30.0,
            "fan_out": 3,
            "retries": 2,
            "max_batch": 1024,
        }
        return argparse.Namespace(**{**values, **extra})

    def test_predict_fans_out(self, keys, engine, tmp_path, capsys, monkeypatch):
        """litefaas predict fans rows out and prints one output per row, in order."""
        rows = batch(50)
        source = tmp_path / "rows.json"
        source.write_text(json.dumps(rows.tolist()))
        transport = InProcessTransport(make_app(keys, engine))
        monkeypatch.setattr(keys_cmd, "http_transport", transport)
        assert keys_cmd.run_predict(self.args(source)) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line) for line in lines] == expected(engine, rows).tolist()
        assert len(predict_requests(transport)) == 3

    def test_partial_failure_prints_null_for_the_missing_rows(
        self, keys, engine, tmp_path, capsys, monkeypatch
    ):
        """On partial failure predict prints null for unanswered rows, names them, and exits 1."""
        rows = batch(30).tolist()
        rows[15] = rows[15][:5]
        source = tmp_path / "rows.json"
        source.write_text(json.dumps(rows))
        monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(make_app(keys, engine)))
        assert keys_cmd.run_predict(self.args(source)) == 1
        captured = capsys.readouterr()
        lines = captured.out.splitlines()
        assert len(lines) == 30
        assert lines[10:20] == ["null"] * 10 and "null" not in lines[:10] + lines[20:]
        assert "rows 10-19" in captured.err and "invalid_payload" in captured.err
