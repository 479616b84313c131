"""Ctrl-C during `litefaas bench`: never lost, even where Python drops the KeyboardInterrupt."""

from __future__ import annotations

import os
import signal

import pytest

from litefaas.benchmark.compare import CtrlC


def progress_steps():
    calls = []

    def step(label, total):
        calls.append((label, total))
        return lambda count: calls.append(("advance", count))

    return step, calls


def test_sigint_raises_keyboard_interrupt_and_the_handler_is_put_back():
    # GIVEN the benchmark's handler installed
    before = signal.getsignal(signal.SIGINT)
    ctrl_c = CtrlC()
    ctrl_c.install()
    try:
        # WHEN SIGINT comes THEN it is a KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)  # a bytecode boundary for the handler to run at
    finally:
        # AND restoring says it came and puts the previous handler back
        assert ctrl_c.restore() is True
    assert signal.getsignal(signal.SIGINT) is before


def test_an_interrupt_dropped_in_a_finalizer_is_raised_at_the_next_progress():
    # GIVEN a step watched for interrupts
    step, calls = progress_steps()
    ctrl_c = CtrlC()
    watched = ctrl_c.watching(step)
    ctrl_c.install()
    try:
        advance = watched("load", 10)
        advance(1)
        # WHEN the handler's KeyboardInterrupt is swallowed (as in an object's __del__)
        try:
            ctrl_c._on_sigint(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass
        # THEN the next advance and the next step raise it again
        with pytest.raises(KeyboardInterrupt):
            advance(1)
        with pytest.raises(KeyboardInterrupt):
            watched("next", 1)
    finally:
        assert ctrl_c.restore() is True
    # AND once restored (the report is being written) progress goes on
    watched("report", 1)(1)
    assert calls == [("load", 10), ("advance", 1), ("report", 1), ("advance", 1)]
