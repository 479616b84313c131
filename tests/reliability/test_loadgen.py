"""``litefaas.benchmark.loadgen`` in process: retries with fresh ids, key refetch after a rotation, nothing lost."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from fixtures.inprocess import AsyncInProcessTransport
from fixtures.requests import ROWS, make_keys

from core.app import App
from core.config import Settings
from litefaas.benchmark.loadgen import exact_check, local_expected, run_jobs

ROW_ARRAY = np.asarray(ROWS, dtype=np.float32)


@pytest.fixture(scope="module")
def check(artifact_dir):
    return exact_check(local_expected(ROW_ARRAY, artifact_dir))


def app_with(keys, engine) -> App:
    return App(
        Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "ERROR"}), engine
    )


class Flaky(AsyncInProcessTransport):
    """Every ``every``-th POST fails: a dropped connection, or the gateway's own 502."""

    def __init__(self, app: App, every: int, how: str) -> None:
        super().__init__(app)
        self.every, self.how, self.posts, self.ids = every, how, 0, []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts += 1
            if self.posts % self.every == 0:
                if self.how == "drop":
                    raise httpx.ReadError("connection reset", request=request)
                return httpx.Response(502, json={"message": "Bad Gateway"}, request=request)
        return await super().handle_async_request(request)


@pytest.mark.parametrize("how", ["drop", "bad gateway"])
def test_failed_attempts_are_retried_as_new_requests_and_counted_once(engine, check, how):
    # GIVEN a function behind a connection that fails every 7th request
    transport = Flaky(app_with(make_keys(), engine), 7, how)
    # WHEN 200 rows are sent by 8 workers
    result = asyncio.run(run_jobs("http://fn.test", ROW_ARRAY, 200, 8, check, transport=transport))
    # THEN every row is answered once and right, each failure was retried with a new request id
    assert (result.answered, result.lost, result.wrong, result.answered_twice) == (200, [], [], 0)
    assert result.retries == sum(result.failures.values()) > 0
    assert "replayed_request" not in result.failures
    assert result.attempts == 200 + result.retries


def test_a_rotated_key_is_refetched_and_the_row_retried_once(engine, check):
    # GIVEN clients that fetched the key set of a function whose key is then replaced
    transport = AsyncInProcessTransport(app_with(make_keys(), engine))
    rotated = app_with(make_keys(), engine)
    answered = []

    def rotate_after_ten() -> bool:
        answered.append(1)
        if len(answered) == 10:
            transport.app = rotated
        return False

    # WHEN the rows keep coming across the rotation
    result = asyncio.run(
        run_jobs("http://fn.test", ROW_ARRAY, 100, 1, check, transport=transport, stop=rotate_after_ten)
    )
    # THEN the one request sealed to the removed key is retried with the new key set, nothing lost
    assert (result.answered, result.lost) == (100, [])
    assert result.failures == {"decryption_failed": 1}
    assert result.key_refetches == 2


def test_a_row_the_function_refuses_is_lost_not_retried(engine):
    # GIVEN a check that rejects every answer (a model that answers wrong)
    transport = AsyncInProcessTransport(app_with(make_keys(), engine))
    result = asyncio.run(
        run_jobs("http://fn.test", ROW_ARRAY, 5, 1, lambda row, out: False, transport=transport)
    )
    # THEN each row is counted as answered wrong, not retried
    assert (result.answered, len(result.wrong), result.retries) == (0, 5, 0)
    assert result.lost == [0, 1, 2, 3, 4]
