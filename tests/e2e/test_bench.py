"""``litefaas bench`` against real local hosts: the report, its schema, and Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from litefaas.benchmark.cost import patterns_cost
from litefaas.cli.main import main
from litefaas.local.process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
PROVIDER_KEYS = {
    "requests",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "throughput_rps",
    "cold_start_ms",
    "by_concurrency",
}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_cost_per_pattern_follows_each_clouds_billing():
    # GIVEN requests of 1.5 ms at 512 MB, one request per instance
    table = patterns_cost({"p50_ms": 1.5}, memory_mb=512, cold_start_ms=0.001, trace=None)
    isolated = table["patterns"]["isolated"]
    # THEN Lambda bills 2 ms (1 ms steps) per arch, Cloud Run 100 ms, Azure Flex at least 1 s
    aws = isolated["aws/x86_64"]
    assert aws == pytest.approx((2e-7 + 0.002 * 0.5 * 1.66667e-5) * 1e6, rel=1e-3)
    assert isolated["aws/arm64"] < aws
    assert "gcp/arm64" not in isolated and "azure/arm64" not in isolated
    assert isolated["azure/x86_64"] > isolated["gcp/x86_64"] > aws
    assert all(entry["as_of"] for entry in table["prices"].values())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--providers", "aws,ibm"], "unknown provider(s) ibm"),
        (["--url", "aws"], "expected NAME=URL"),
        (["--url", "aws=ftp://x"], "expected NAME=URL"),
        (["--local", "--url", "aws=https://example.invalid"], "give one of them"),
        (["--requests", "0"], "--requests must be at least 1"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_bad_arguments(capsys, args, message):
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.e2e
def test_bench_writes_the_report(tmp_path):
    # GIVEN two local hosts and a small, bounded load
    out = tmp_path / "bench"
    port = free_port()
    # WHEN the benchmark runs
    code = main(
        [
            "bench",
            "--providers",
            "gcp,azure",
            "--requests",
            "12",
            "--out",
            str(out),
            "--port",
            str(port),
            "--no-models",
        ]
    )
    # THEN it reports every provider without an error, with plots and a page that shows them
    assert code == 0
    document = json.loads((out / "bench.json").read_text())
    assert set(document) >= {"providers", "models", "baseline", "environment", "cost"}
    cost = document["cost"]["by_model"]["mlp-v1"]
    assert {"isolated", "steady-1", "steady-10", "steady-100"} <= set(cost["patterns"])
    assert "trace-day" in cost["patterns"] or "trace-day" in cost["skipped"]
    assert document["cost"]["high_concurrency"]["mlp-v1"]["concurrency"]["azure"] == 16
    assert set(document["providers"]) == {"gcp", "azure"}
    for result in document["providers"].values():
        assert set(result) >= PROVIDER_KEYS
        assert result["errors"] == 0
        assert set(result["by_concurrency"]) == {"1", "4", "16", "64"}
        assert set(result["by_batch"]) == {"1", "32", "256"}
        assert result["plaintext"]["errors"] == 0
        assert result["oblivious"]["errors"] == 0 and result["oblivious"]["requests"] == 12
        assert result["oblivious"]["request_bytes"] > 1024  # padded to 1 KiB, then encapsulated
        assert result["cold_start_ms"] > 0
    assert (out / "latency_cdf.png").stat().st_size > 0
    assert (out / "throughput.png").stat().st_size > 0
    assert (out / "cost_by_pattern.png").stat().st_size > 0
    page = (out / "report.html").read_text()
    assert page.count("<img") == 3 and 'id="summary"' in page and 'href="bench.json"' in page
    assert ">None<" not in page and ">nan<" not in page.lower()
    assert "Oblivious HTTP p50 (ms)" in page
    assert not listening(port) and not listening(port + 1)


@pytest.mark.e2e
def test_ctrl_c_stops_every_server_and_keeps_what_was_measured(tmp_path):
    # GIVEN a long benchmark on two local hosts
    out, port = tmp_path / "bench", free_port()
    command = [
        sys.executable,
        "-m",
        "litefaas.cli",
        "bench",
        "--providers",
        "gcp,azure",
        "--requests",
        "100000",
        "--out",
        str(out),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not (listening(port) and listening(port + 1)) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)
    # WHEN it gets Ctrl-C in the middle of the load
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    # THEN it stops every server, writes what it measured, and says so
    assert process.returncode == 130, output.decode(errors="replace")[-2000:]
    document = json.loads((out / "bench.json").read_text())
    assert document["environment"]["interrupted"] is True
    assert not listening(port) and not listening(port + 1)
