"""``litefaas serve``'s summary: read from the request lines the functions wrote, in any cloud's format."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fixtures.requests import ENCRYPTED, seal
from rich.console import Console

from core.app import App
from core.config import Settings
from litefaas.cli.key_watch import KeyWatch
from litefaas.local.host_metrics import metrics_table, read_metrics


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_counts_what_the_function_logged_in_its_clouds_format(provider, keys, engine, capsys):
    # GIVEN a function in its provider's log format, and a host that prefixes some lines
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}, provider), engine)
    capsys.readouterr()
    # WHEN it answers 3 good requests and 2 bad ones
    for _ in range(3):
        assert app.handle("POST", "/predict", ENCRYPTED, seal(keys).body).status == 200
    app.handle("POST", "/predict", ENCRYPTED, b"{}")
    app.handle("GET", "/nowhere", {}, b"")
    lines = capsys.readouterr().err.splitlines()
    lines = ["offline: (λ: predict) " + lines[0], "not json {", *lines[1:]]
    # THEN the summary counts each request once, whatever the format
    metrics = read_metrics(lines)
    assert (metrics.requests, metrics.errors, metrics.faults, metrics.cold_starts) == (5, 2, 0, 1)
    assert metrics.quantile_ms(0.5) > 0 and metrics.quantile_ms(0.99) >= metrics.quantile_ms(0.5)
    console = Console(width=100, record=True)
    console.print(metrics_table({provider: metrics}))
    row = next(line for line in console.export_text().splitlines() if f" {provider} " in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]][:4] == [provider, "5", "2", "0"]


def test_an_empty_log_is_no_requests():
    metrics = read_metrics([])
    assert metrics.requests == 0 and metrics.quantile_ms(0.5) is None


def test_sigusr1_asks_for_the_summary():
    watch = KeyWatch().start()
    try:
        assert not watch.asked()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        assert watch.asked()
        assert not watch.asked()  # once per request
    finally:
        watch.stop()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGUSR1))


def ctrl_t_is_asked_for_once(watch: KeyWatch, leader: int, follower: int) -> None:
    """At the watched terminal: keys read one by one, Ctrl-C still a signal; other keys ask nothing,
    Ctrl-T asks once."""
    import termios

    lflag = termios.tcgetattr(follower)[3]
    assert not lflag & termios.ICANON and lflag & termios.ISIG
    os.write(leader, b"q \n")
    time.sleep(0.5)
    assert not watch.asked()
    os.write(leader, b"\x14")
    deadline = time.monotonic() + 5
    while not watch.asked():
        assert time.monotonic() < deadline, "Ctrl-T was not seen"
        time.sleep(0.02)
    assert not watch.asked()


def test_ctrl_t_at_a_terminal_asks_for_the_summary_and_the_terminal_is_given_back(monkeypatch):
    # GIVEN `litefaas serve` started at a terminal (a real pseudo-terminal)
    import pty
    import termios

    leader, follower = pty.openpty()
    terminal = os.fdopen(follower, "r", closefd=False)
    monkeypatch.setattr("sys.stdin", terminal)
    before = termios.tcgetattr(follower)
    watch = KeyWatch().start()
    try:
        # WHEN keys are typed THEN only Ctrl-T asks for the summary
        ctrl_t_is_asked_for_once(watch, leader, follower)
    finally:
        watch.stop()
        terminal.close()
        restored = termios.tcgetattr(follower)
        os.close(leader)
        os.close(follower)
    # AND on stop the terminal is as it was
    assert restored == before
