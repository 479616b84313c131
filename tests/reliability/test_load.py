"""20,000 encrypted requests at concurrency 64 on each local host: no error, every answer right, memory flat.

``LITEFAAS_LOAD_REQUESTS`` changes the count (default 20,000). Before the measured run each host
is warmed up in steps (4, 16, 32, 64 clients), so that serverless-offline has started its Python
process for each request in flight and the threaded hosts their threads; resident memory is read
after warm-up and after the run, for every process of the host's group. The processes alive at both
times are the ones compared: serverless-offline may start more Python processes under the load than
the warm-up needed (one per request in flight when none is idle, as Lambda starts instances), and
those add memory without any process growing.
"""

from __future__ import annotations

import os

import pytest
from fixtures.requests import make_keys
from reliability import tally
from reliability.local_servers import PROVIDERS, function_env, load, running, warm_up

from litefaas.local.process import group_rss_kib

pytestmark = pytest.mark.reliability

REQUESTS = int(os.environ.get("LITEFAAS_LOAD_REQUESTS", "20000"))
CONCURRENCY = 64
RSS_TOLERANCE = 0.20


@pytest.mark.parametrize("provider", PROVIDERS)
def test_encrypted_load_loses_nothing_and_memory_stays_flat(provider):
    keys = make_keys()
    # GIVEN the provider's local host, warmed up to 64 clients
    with running(provider, function_env(LITEFAAS_PRIVATE_KEYS=keys.private_json)) as server:
        warm = warm_up(server)
        assert server.pid is not None
        warm_by_pid = group_rss_kib(server.pid)
        # WHEN 64 clients send REQUESTS sealed requests, one row each, without pause
        result = load(server, REQUESTS, CONCURRENCY, timeout_s=120)
        after_by_pid = group_rss_kib(server.pid)
    summary = result.summary()
    lasting = warm_by_pid.keys() & after_by_pid.keys()
    rss_warm = sum(warm_by_pid[pid] for pid in lasting)
    rss_after = sum(after_by_pid[pid] for pid in lasting)
    tally.record(
        f"load {provider}",
        **{"requests sent": result.attempts + sum(step["http_requests"] for step in warm)},
        **{"requests lost": len(result.lost)},
        measured_requests=result.attempts,
        errors=sum(result.failures.values()),
        rss_warm_mib=round(rss_warm / 1024, 1),
        rss_after_mib=round(rss_after / 1024, 1),
        processes=f"{len(warm_by_pid)} -> {len(after_by_pid)}",
        wall_s=summary["wall_s"],
        rps=summary["throughput_rps"],
        p50_ms=summary["p50_ms"],
        p99_ms=summary["p99_ms"],
    )
    # THEN every request was answered the first time, and every answer matched the local model
    assert summary["failures"] == {}, summary
    assert (result.answered, len(result.lost), len(result.wrong)) == (REQUESTS, 0, 0), summary
    assert result.answered_twice == 0
    assert result.attempts == REQUESTS
    # AND the memory of the host's processes after the run is within 20 % of what it was after warm-up
    assert lasting, (warm_by_pid, after_by_pid)
    assert abs(rss_after - rss_warm) <= RSS_TOLERANCE * rss_warm, (rss_warm, rss_after)
