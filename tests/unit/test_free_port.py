"""``free_port``: a block of ports that a server can still bind after the test has chosen it."""

from __future__ import annotations

import socket

from litefaas.local import process
from litefaas.local.process import ephemeral_floor, free_port


def test_block_is_free_and_below_the_ephemeral_range():
    """GIVEN the kernel's ephemeral range WHEN a block of three is chosen
    THEN every port of it binds, and none is one an outgoing connection could take meanwhile."""
    first = free_port(3)
    assert first + 2 + 1000 < ephemeral_floor()
    for port in range(first, first + 3):
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_block_with_a_taken_neighbour_is_skipped(monkeypatch):
    """GIVEN a listener on the port after the first candidate WHEN a block is chosen
    THEN that candidate is passed over for one whose every port is free."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        candidates = iter([busy - 1, busy + 10])

        class Fixed:
            def randrange(self, *_: int) -> int:
                return next(candidates)

        monkeypatch.setattr(process.random, "SystemRandom", Fixed)
        monkeypatch.setattr(process, "ephemeral_floor", lambda: 65535)
        assert free_port(3) == busy + 10
