"""core_speed's interleaved rounds: every arm timed in every round, in a shuffled order, on fresh requests."""

from __future__ import annotations

from fixtures.binary import seal_v2

from core import crypto
from litefaas.benchmark.core_speed import interleaved_rounds


def test_every_arm_is_timed_in_every_round_in_shuffled_orders_on_fresh_requests(keys):
    """GIVEN three arms that take a fresh body, its envelope and nothing
    WHEN they run in interleaved rounds
    THEN each has one block of samples per measured round (the warm round and each block's first
    call left out), the arms' order changes between rounds, and no request is used twice."""
    made: list[bytes] = []

    def sealed(version: int, count: int) -> list[bytes]:
        assert version == 2
        bodies = [seal_v2(keys).body for _ in range(count)]
        made.extend(bodies)
        return bodies

    calls: list[tuple[str, object]] = []
    arms = {
        "body": (lambda body: calls.append(("body", body)), "body"),
        "envelope": (lambda envelope: calls.append(("envelope", envelope)), "envelope"),
        "nothing": (lambda item: calls.append(("nothing", item)), None),
    }

    times, block = interleaved_rounds(arms, sealed, rounds=4, block=3)

    assert block == 3
    assert {name: [len(samples) for samples in runs] for name, runs in times.items()} == {
        name: [3] * 4 for name in arms
    }
    assert all(t >= 0 for runs in times.values() for samples in runs for t in samples)
    assert len(calls) == 3 * 5 * (3 + 1)  # five rounds (one warm), a block and one more per arm
    rounds = [[name for name, _ in calls[i : i + 12 : 4]] for i in range(0, len(calls), 12)]
    assert len({tuple(order) for order in rounds}) > 1
    bodies = [item for name, item in calls if name == "body"]
    envelopes = [item for name, item in calls if name == "envelope"]
    assert len(set(bodies)) == len(bodies) and set(bodies) <= set(made)
    assert all(isinstance(item, crypto.Envelope) for item in envelopes)
    assert len({bytes(item.ct) for item in envelopes}) == len(envelopes)
    assert all(item is None for name, item in calls if name == "nothing")
