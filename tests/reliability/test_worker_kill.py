"""A function process killed (SIGKILL) mid-load: clients that retry lose no row and count none twice.

- GCP: functions-framework's gunicorn master forks a new worker for the one killed.
- AWS: serverless-offline's Python process for one Lambda instance is killed; the request it was
  serving (or the next one sent to it) waits for the function timeout and is answered by
  serverless-offline with a plaintext HTTP 200 error (real API Gateway answers 502/504 here),
  then a new Python process takes that instance's place on the next request.
- Azure: the local host is one process, so killing it takes the server away; nothing in this
  repository restarts it (in Azure the Functions host restarts its worker), so the test plays
  that supervisor and starts it again on the same port.

The load client retries a network error, a timeout, a 5xx or an answer that is not the
function's, each time as a new request with a new id (a replayed id would be refused).
"""

from __future__ import annotations

import time

import pytest
from fixtures.requests import make_keys
from reliability import tally
from reliability.local_servers import (
    Background,
    function_env,
    gunicorn_workers,
    kill,
    lambda_runtimes,
    running,
    warm_up,
)

from litefaas.local.server import LocalServer

pytestmark = pytest.mark.reliability

KILLS = 2


def assert_exactly_once(result, jobs: int) -> None:
    summary = result.summary()
    assert (result.answered, len(result.lost), len(result.wrong)) == (jobs, 0, 0), summary
    assert sorted(result.answers_per_job) == list(range(jobs)), "a row was not answered"
    assert set(result.answers_per_job.values()) == {1}, "a row was counted twice"
    assert "replayed_request" not in result.failures, "a retry reused a request id"


def record(provider: str, result, warm: list[dict], kills: int, **details) -> None:
    tally.record(
        f"killed worker {provider}",
        **{"requests sent": result.attempts + sum(step["http_requests"] for step in warm)},
        **{"faults injected": kills, "requests lost": len(result.lost)},
        retries=result.retries,
        failures=dict(result.failures),
        wall_s=round(result.wall_s, 2),
        **details,
    )


def test_gcp_worker_killed_mid_load():
    jobs = 4000
    with running("gcp", function_env(LITEFAAS_PRIVATE_KEYS=make_keys().private_json)) as server:
        warm = warm_up(server, steps=(4, 32))
        killed = []
        # GIVEN 32 clients sending sealed rows
        with Background(server, jobs, 32, timeout_s=60) as load:
            for step in range(1, KILLS + 1):
                load.wait_answered(step * jobs // (KILLS + 2))
                # WHEN the serving worker is killed
                workers = gunicorn_workers(server)
                assert len(workers) == 1, workers
                kill(workers[0])
                killed.append(workers[0])
                deadline = time.monotonic() + 30
                while not set(gunicorn_workers(server)) - set(killed):
                    assert time.monotonic() < deadline, "gunicorn did not start a new worker"
                    time.sleep(0.05)
        result = load.finish()
        # THEN gunicorn replaced it, the master never went away, and the host still answers
        assert server.process is not None and server.process.poll() is None
        replacement = gunicorn_workers(server)
        assert len(replacement) == 1 and replacement[0] not in killed
    record("gcp", result, warm, len(killed))
    # AND every row was answered exactly once
    assert_exactly_once(result, jobs)


def test_aws_lambda_runtime_killed_mid_load():
    jobs = 3000
    with running("aws", function_env(LITEFAAS_PRIVATE_KEYS=make_keys().private_json)) as server:
        warm = warm_up(server, steps=(4, 16))
        killed = []
        with Background(server, jobs, 16, timeout_s=60) as load:
            for step in range(1, KILLS + 1):
                load.wait_answered(step * jobs // (KILLS + 2))
                runtimes = lambda_runtimes(server)
                assert runtimes, "no Python process found under serverless-offline"
                kill(runtimes[0])
                killed.append(runtimes[0])
        result = load.finish()
        assert server.process is not None and server.process.poll() is None
        alive = lambda_runtimes(server)
        assert alive and not set(alive) & set(killed)
    record("aws", result, warm, len(killed), runtimes_after=len(alive))
    assert_exactly_once(result, jobs)
    assert result.retries >= 1, "no request met the killed process"


def test_azure_host_killed_and_restarted_mid_load():
    jobs = 3000
    env = function_env(LITEFAAS_PRIVATE_KEYS=make_keys().private_json)
    with running("azure", env) as server:
        warm = warm_up(server, steps=(4, 16))
        with Background(server, jobs, 16, timeout_s=60, max_attempts=12) as load:
            load.wait_answered(jobs // 3)
            # WHEN the host process dies, and its supervisor starts it again on the same port
            assert server.pid is not None
            kill(server.pid)
            server.stop()
            restarted = LocalServer("azure", server.spec).start()
            try:
                restarted.wait_healthy(timeout=60)
                result = load.finish()
            finally:
                restarted.stop()
    record("azure", result, warm, 1)
    assert_exactly_once(result, jobs)
    assert result.retries >= 1
