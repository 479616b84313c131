"""The peer benchmark's readings: wrk's median latency in any unit, and a process group's CPU time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from litefaas.benchmark.peers import _wrk_p50_ms, servers
from litefaas.local.process import group_minor_faults, tree_cpu_s

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:28862/predict
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   289.35us  130.35us   4.07ms   99.24%
  Latency Distribution
     50%  {p50}
     75%  302.00us
     90%  325.00us
     99%  389.00us
  7187 requests in 2.10s, 2.06MB read
Requests/sec:   3422.14
"""


@pytest.mark.parametrize(("shown", "ms"), [("284.00us", 0.284), ("1.37ms", 1.37), ("1.02s", 1020.0)])
def test_the_median_latency_is_read_in_milliseconds_whatever_unit_wrk_prints(shown, ms):
    assert _wrk_p50_ms(WRK_OUTPUT.format(p50=shown)) == pytest.approx(ms)


def test_an_output_without_a_distribution_stops_the_run():
    with pytest.raises(SystemExit, match="no median latency"):
        _wrk_p50_ms("Running 5s test\n0 requests in 5.00s\n")


def test_the_cpu_of_a_process_tree_counts_its_children_in_any_session():
    # GIVEN a child that spins for a moment in a session of its own (as BentoML starts its workers)
    # WHEN its parent's tree is read before and after
    before = tree_cpu_s(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 0.5\nwhile time.time() < end: pass"],
        start_new_session=True,
    )
    time.sleep(0.4)
    during = tree_cpu_s(os.getpid())
    child.wait()
    # THEN the child's CPU time is in the tree's
    assert during - before > 0.2


def test_the_page_faults_of_a_process_group_count_its_children():
    # GIVEN a child in a group of its own that touches 8 MB of new pages, then waits
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nb = b'x' * (8 << 20)\nprint(1, flush=True)\ntime.sleep(5)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        # WHEN its group's faults are read
        # THEN each of those pages was faulted in once
        assert group_minor_faults(child.pid) > (8 << 20) // os.sysconf("SC_PAGE_SIZE")
        assert group_minor_faults(os.getpgrp()) > 0
    finally:
        child.kill()
        child.wait()


def test_every_server_of_the_table_has_its_own_request_and_sealed_bodies_are_new_each_time(tmp_path):
    table = servers(tmp_path / "seed.tflite", [[0.0] * 30], [])
    names = [s.name for s in table]
    assert len(names) == len(set(names)) == 9
    sealed = next(s for s in table if "sealed" in s.name)
    bodies = sealed.bodies(3)
    assert len(set(bodies)) == 3
    assert servers(tmp_path / "x", [[0.0] * 30], ["bento"])[0].name == "BentoML 1.4"


def test_a_peer_is_installed_again_when_any_of_its_pins_changes(tmp_path, monkeypatch):
    # GIVEN MLServer's virtualenv stamped with its pins before uvloop was pinned below 0.22
    from litefaas.benchmark import peers

    monkeypatch.setattr(peers, "PEERS_DIR", tmp_path)
    monkeypatch.setattr(peers, "ROOT", tmp_path.parent)
    (tmp_path / "mlserver").mkdir()
    (tmp_path / "mlserver" / ".installed").write_text(" ".join(("mlserver==1.7.1", *peers.RUNTIME_PINS)))
    asked: list[list[str]] = []

    def run(argv: list[str], check: bool) -> None:  # pip and venv, asked, not run (PyPI is slow)
        asked.append(argv)
        if "venv" in argv:
            os.makedirs(argv[-1])

    monkeypatch.setattr(peers.subprocess, "run", run)
    # WHEN it is asked for
    peers.install_peer("mlserver", lambda _: None)
    # THEN it is made again with every pin, and a second ask installs nothing
    assert asked[-1][-len(peers.PINS["mlserver"]) - len(peers.RUNTIME_PINS) :] == [
        *peers.PINS["mlserver"],
        *peers.RUNTIME_PINS,
    ]
    assert "uvloop==0.21.0" in asked[-1]
    calls = len(asked)
    peers.install_peer("mlserver", lambda _: None)
    assert len(asked) == calls


@pytest.mark.parametrize("glue", ["KSERVE_GLUE", "MLSERVER_GLUE", "BENTOML_GLUE"])
def test_each_peers_glue_is_python_that_resizes_only_for_a_new_shape(glue):
    # GIVEN a peer's glue (run in its own virtualenv, so only compiled here)
    from litefaas.benchmark import peers

    source = getattr(peers, glue)
    # THEN it compiles, and its one resize waits for a batch of another shape
    compile(source, glue, "exec")
    lines = [line.strip() for line in source.splitlines()]
    resize = next(
        i for i, line in enumerate(lines) if line.startswith("self.interpreter.resize_tensor_input")
    )
    assert lines[resize - 1] == "if rows.shape != self.shape:"
    assert sum("allocate_tensors()" in line for line in lines) == 2  # at load, and after a resize
