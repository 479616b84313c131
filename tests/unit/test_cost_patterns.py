"""The cost function against hand-computed bills: each cloud's unit, minimum, step and concurrency."""

from __future__ import annotations

import pytest

from litefaas.benchmark.cost import cheapest, patterns_cost
from litefaas.simulate.prices import billed_seconds, load_prices, traffic_cost

PRICES = load_prices()
AWS = PRICES["clouds"]["aws"]["billing"]
GCP = PRICES["clouds"]["gcp"]["billing"]
AZURE = PRICES["clouds"]["azure"]["billing"]


def test_the_table_states_each_clouds_unit_and_its_date():
    """The price table states each cloud's billing unit, step, minimum and date, and how to update it."""
    assert (AWS["unit"], AWS["granularity_ms"], AWS["minimum_ms"]) == ("request", 1, 1)
    assert (GCP["unit"], GCP["granularity_ms"], GCP["minimum_ms"]) == ("instance", 100, 100)
    assert (AZURE["unit"], AZURE["granularity_ms"], AZURE["minimum_ms"]) == ("instance", 100, 1000)
    assert "litefaas/data/prices.json" in PRICES["updating"]
    assert all(PRICES["clouds"][c]["as_of"] for c in ("aws", "gcp", "azure"))


def test_an_isolated_azure_request_is_billed_one_second():
    """A lone 2 ms request on Flex Consumption is billed one full second."""
    assert billed_seconds([0.0], [0.002], AZURE) == (pytest.approx(1.0), 1)


def test_ten_concurrent_requests_on_one_flex_instance_share_one_activity_period():
    """Concurrent requests on one Flex instance share one billed period; one per instance, ten."""
    times = [0.001 * k for k in range(10)]
    assert billed_seconds(times, [0.05] * 10, AZURE, concurrency=10) == (pytest.approx(1.0), 1)
    # one request per instance: ten instances, ten periods
    assert billed_seconds(times, [0.05] * 10, AZURE, concurrency=1) == (pytest.approx(10.0), 10)


def test_flex_periods_extend_in_100_ms_steps_and_later_requests_join_an_open_period():
    """Flex periods grow in 100 ms steps, and a request inside an open period joins it."""
    assert billed_seconds([0.0], [1.25], AZURE)[0] == pytest.approx(1.3)
    # the second request starts inside the first one's billed second: one period
    assert billed_seconds([0.0, 0.5], [0.01, 0.01], AZURE)[0] == pytest.approx(1.0)
    # it starts after the billed second has ended: a second period
    assert billed_seconds([0.0, 1.2], [0.01, 0.01], AZURE)[0] == pytest.approx(2.0)


def test_lambda_bills_each_request_alone_in_1_ms_steps():
    """Lambda bills each request alone, in 1 ms steps, whatever the concurrency."""
    assert billed_seconds([0.0, 0.0005, 0.001], [0.0015] * 3, AWS, concurrency=10)[0] == pytest.approx(0.006)


def test_cloud_run_bills_100_ms_steps_of_instance_time_shared_by_concurrent_requests():
    """Cloud Run bills instance time in 100 ms steps, shared by concurrent requests on it."""
    assert billed_seconds([0.0], [0.003], GCP)[0] == pytest.approx(0.1)
    # overlapping on one instance of 2 slots: one period from 0 to 0.2 s
    assert billed_seconds([0.0, 0.05], [0.15, 0.15], GCP, concurrency=2) == (pytest.approx(0.2), 1)
    # the same at concurrency 1: two instances, 0.2 s each
    assert billed_seconds([0.0, 0.05], [0.15, 0.15], GCP, concurrency=1) == (pytest.approx(0.4), 2)


def test_isolated_requests_per_million_by_hand():
    """The cost of isolated requests per million equals the hand-computed bill on each cloud."""
    n = 200
    result = traffic_cost([5.0 * k for k in range(n)], [0.002] * n, PRICES, memory_mb=512, cold_start_s=0.0)
    per_million = {cloud: parts["total"] / n * 1e6 for cloud, parts in result.items()}
    aws = PRICES["clouds"]["aws"]["architectures"]["x86_64"]
    gcp, azure = PRICES["clouds"]["gcp"], PRICES["clouds"]["azure"]
    assert per_million["aws"] == pytest.approx((aws["request"] + 0.002 * 0.5 * aws["gb_s"]) * 1e6)
    gcp_rate = 0.5 * gcp["gib_s"] + 0.333 * gcp["vcpu_s"]  # 512 MiB tier: 0.333 vCPU
    assert per_million["gcp"] == pytest.approx((gcp["request"] + 0.1 * gcp_rate) * 1e6)
    assert per_million["azure"] == pytest.approx((azure["request"] + 1.0 * 0.5 * azure["gb_s"]) * 1e6)
    assert per_million["azure"] == pytest.approx(13.4)


def test_arm64_is_priced_on_lambda_only_and_cheaper_there():
    """arm64 is priced on Lambda only, and costs less there than x86_64."""
    x86 = traffic_cost([0.0], [0.1], PRICES, memory_mb=512, cold_start_s=0.0)
    arm = traffic_cost([0.0], [0.1], PRICES, memory_mb=512, architecture="arm64", cold_start_s=0.0)
    assert set(x86) == {"aws", "gcp", "azure"} and set(arm) == {"aws"}
    assert arm["aws"]["total"] < x86["aws"]["total"]


def test_cold_starts_come_from_the_simulators_pool_and_are_billed_where_the_cloud_bills_them():
    """Cold starts come from the simulated pool and are billed on Lambda with the execution."""
    # two bursts 20 minutes apart: the 10-minute keep-alive has let the instance go in between
    result = traffic_cost([0.0, 1200.0], [0.001, 0.001], PRICES, memory_mb=1024, cold_start_s=0.5)
    aws = PRICES["clouds"]["aws"]["architectures"]["x86_64"]
    assert result["aws"]["cold_starts"] == 2
    assert result["aws"]["execution"] == pytest.approx((0.002 + 2 * 0.5) * 1.0 * aws["gb_s"])


def test_the_cheapest_cloud_changes_with_the_pattern():
    """Lambda is cheapest for isolated requests, Cloud Run for steady load; Lambda's bill stays put."""
    # a 50 ms model, 16 requests per instance on Cloud Run functions and Flex Consumption
    result = patterns_cost(
        {"p50_ms": 50.0, "p95_ms": 55.0, "p99_ms": 60.0},
        cold_start_ms=300,
        concurrency={"gcp": 16, "azure": 16},
        trace=None,
    )
    assert result["cheapest"]["isolated"].startswith("aws/")
    assert result["cheapest"]["steady-100"] == "gcp/x86_64"
    isolated, busy = result["patterns"]["isolated"], result["patterns"]["steady-100"]
    assert isolated["azure/x86_64"] == pytest.approx(13.4, rel=0.01)
    assert busy["azure/x86_64"] < isolated["azure/x86_64"] / 10
    # Lambda's bill does not depend on the pattern
    assert busy["aws/x86_64"] == pytest.approx(isolated["aws/x86_64"], rel=0.05)


def test_a_missing_trace_is_skipped_saying_why():
    """A missing trace skips its pattern saying why; cheapest() ignores non-price entries."""
    result = patterns_cost({"p50_ms": 2.0}, trace="azure2019_no_such_trace")
    assert "trace-day" not in result["patterns"]
    assert "not on this machine" in result["skipped"]["trace-day"]
    assert cheapest({"aws/x86_64": 0.3, "gcp/x86_64": 0.2, "billed_ms_per_request": {}}) == "gcp/x86_64"
