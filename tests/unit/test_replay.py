from __future__ import annotations

import threading
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import InvalidPayload, ReplayedRequest, StaleRequest
from core.replay import ReplayGuard

NOW = 1_764_000_000


def rid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def accepted(guard: ReplayGuard, ts: int, request_id: bytes, now: float) -> bool:
    try:
        guard.check(ts, request_id, now=now)
    except (StaleRequest, ReplayedRequest):
        return False
    return True


def test_fresh_request_is_recorded() -> None:
    """A fresh request is accepted and recorded."""
    guard = ReplayGuard()
    guard.check(NOW, rid(1), now=NOW)
    assert len(guard) == 1


def test_uses_the_clock_when_now_is_omitted() -> None:
    """Without now, the guard checks against the system clock."""
    guard = ReplayGuard()
    guard.check(int(time.time()), rid(1))
    with pytest.raises(StaleRequest):
        guard.check(int(time.time()) - 3600, rid(2))


@pytest.mark.parametrize("offset", [-301, 301, -(10**6), 10**6, -(10**400), 10**400])
def test_stale_both_directions(offset: int) -> None:
    """A timestamp outside the window, past or future, is StaleRequest and records nothing."""
    guard = ReplayGuard(window_s=300)
    with pytest.raises(StaleRequest):
        guard.check(NOW + offset, rid(1), now=NOW)
    assert len(guard) == 0


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_window_edges_are_accepted(offset: int) -> None:
    """Timestamps exactly window_s away, either side, are accepted."""
    ReplayGuard(window_s=300).check(NOW + offset, rid(1), now=NOW)


def test_fractional_now() -> None:
    """The window is measured against the exact, fractional now."""
    guard = ReplayGuard(window_s=300)
    guard.check(NOW - 300, rid(1), now=NOW + 0.0)
    with pytest.raises(StaleRequest):
        guard.check(NOW - 300, rid(2), now=NOW + 0.5)


@pytest.mark.parametrize("ts", [1.0 * NOW, str(NOW), True, None, [NOW]])
def test_ts_must_be_an_integer(ts: object) -> None:
    """A ts that is not an int (float, str, bool, None, list) is InvalidPayload."""
    with pytest.raises(InvalidPayload):
        ReplayGuard().check(ts, rid(1), now=NOW)


def test_replay_is_detected() -> None:
    """A request id seen within the window is ReplayedRequest, whatever its ts; other ids pass."""
    guard = ReplayGuard()
    guard.check(NOW, rid(1), now=NOW)
    with pytest.raises(ReplayedRequest):
        guard.check(NOW, rid(1), now=NOW + 1)
    with pytest.raises(ReplayedRequest):
        guard.check(NOW + 5, rid(1), now=NOW + 5)
    guard.check(NOW, rid(2), now=NOW + 1)
    assert len(guard) == 2


def test_entries_expire_after_the_window() -> None:
    """Entries are evicted once outside the window; an id may come back only with a fresh ts."""
    guard = ReplayGuard(window_s=300)
    guard.check(NOW, rid(1), now=NOW)
    guard.check(NOW + 100, rid(2), now=NOW + 100)
    with pytest.raises(ReplayedRequest):
        guard.check(NOW + 250, rid(1), now=NOW + 300)
    guard.check(NOW + 301, rid(3), now=NOW + 301)
    assert len(guard) == 2
    with pytest.raises(StaleRequest):
        guard.check(NOW, rid(1), now=NOW + 301)
    guard.check(NOW + 301, rid(1), now=NOW + 301)
    guard.check(NOW + 1000, rid(4), now=NOW + 1000)
    assert len(guard) == 1


def test_clock_stepping_back_does_not_revive_evicted_ids() -> None:
    """After the clock steps back, an evicted id is still refused as stale."""
    guard = ReplayGuard(window_s=300)
    guard.check(NOW, rid(1), now=NOW)
    guard.check(NOW + 400, rid(2), now=NOW + 400)
    assert len(guard) == 1
    with pytest.raises(StaleRequest):
        guard.check(NOW, rid(1), now=NOW + 250)


def test_bound_holds_under_ten_times_max_entries() -> None:
    """Under sustained load the guard never holds more than max_entries and never accepts a pair twice."""
    max_entries = 100
    guard = ReplayGuard(window_s=300, max_entries=max_entries)
    accepted_pairs = []
    now = float(NOW)
    for n in range(10 * max_entries):
        now += 0.05
        ts = int(now) + (n % 7) - 3
        if accepted(guard, ts, rid(n), now):
            accepted_pairs.append((ts, rid(n)))
        assert len(guard) <= max_entries
    assert len(accepted_pairs) > 5 * max_entries
    for ts, request_id in accepted_pairs:
        assert not accepted(guard, ts, request_id, now)


def test_flood_in_one_second_stays_bounded_and_recovers() -> None:
    """A flood within one second fills the guard, is refused beyond the bound, and the guard recovers a second later."""
    guard = ReplayGuard(window_s=300, max_entries=50)
    results = [accepted(guard, NOW, rid(n), NOW) for n in range(500)]
    assert all(results[:50])
    assert len(guard) <= 50
    for n in range(50):
        assert not accepted(guard, NOW, rid(n), NOW + 0.5)
    guard.check(NOW + 1, rid(10_000), now=NOW + 1)


def test_flood_of_skewed_timestamps_does_not_lock_out_honest_clients() -> None:
    """Entries with far-future timestamps do not keep honest requests out, and are not accepted again."""
    guard = ReplayGuard(window_s=300, max_entries=100)
    for n in range(100):
        guard.check(NOW + 300, rid(n), now=NOW)
    for n in range(100, 200):
        guard.check(NOW, rid(n), now=NOW)
        assert len(guard) <= 100
    for n in range(100):
        assert not accepted(guard, NOW + 300, rid(n), NOW)


def test_request_farther_than_everything_recorded_is_rejected_when_full() -> None:
    """When full, a request older than every recorded one is StaleRequest; newer time evicts the rest."""
    guard = ReplayGuard(window_s=300, max_entries=10)
    for n in range(10):
        guard.check(NOW, rid(n), now=NOW)
    with pytest.raises(StaleRequest):
        guard.check(NOW - 200, rid(100), now=NOW)
    assert len(guard) == 10
    guard.check(NOW + 1, rid(101), now=NOW + 1)
    assert len(guard) == 1


def test_zero_window() -> None:
    """With a zero window only a ts equal to now is accepted."""
    guard = ReplayGuard(window_s=0)
    guard.check(NOW, rid(1), now=NOW)
    with pytest.raises(StaleRequest):
        guard.check(NOW, rid(2), now=NOW + 0.1)


@pytest.mark.parametrize(("window_s", "max_entries"), [(-1, 10), (300, 0)])
def test_rejects_bad_limits(window_s: int, max_entries: int) -> None:
    """A negative window or a non-positive max_entries is a ValueError."""
    with pytest.raises(ValueError):
        ReplayGuard(window_s=window_s, max_entries=max_entries)


def test_threads_accept_each_id_once() -> None:
    """Across concurrent threads each request id is accepted exactly once."""
    guard = ReplayGuard(max_entries=10_000)
    wins: list[bytes] = []
    wins_lock = threading.Lock()

    def worker() -> None:
        for n in range(1000):
            if accepted(guard, NOW, rid(n), NOW):
                with wins_lock:
                    wins.append(rid(n))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [rid(n) for n in range(1000)]
    assert len(guard) == 1000


operations = st.lists(
    st.tuples(
        st.integers(0, 11),  # request id
        st.integers(-14, 14),  # ts offset from now
        st.floats(-1.0, 4.0),  # clock step
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(window_s=st.integers(0, 10), max_entries=st.integers(1, 8), ops=operations)
def test_no_pair_accepted_twice_and_bounded(
    window_s: int, max_entries: int, ops: list[tuple[int, int, float]]
) -> None:
    """For any sequence of requests no (ts, id) pair is accepted twice and the size stays within max_entries."""
    guard = ReplayGuard(window_s=window_s, max_entries=max_entries)
    now = float(NOW)
    seen: set[tuple[int, int]] = set()
    for n, offset, step in ops:
        now += step
        ts = int(now) + offset
        if accepted(guard, ts, rid(n), now):
            assert (ts, n) not in seen
            seen.add((ts, n))
        assert len(guard) <= max_entries


@settings(max_examples=200, deadline=None)
@given(window_s=st.integers(0, 10), ops=operations)
@example(window_s=0, ops=[(0, 0, -1.0)])
def test_matches_reference_when_not_full(window_s: int, ops: list[tuple[int, int, float]]) -> None:
    """Below capacity, the guard accepts, refuses as stale or as replayed exactly as the reference model does."""
    guard = ReplayGuard(window_s=window_s, max_entries=10_000)
    now = float(NOW)
    latest = float("-inf")
    recorded: dict[int, int] = {}
    for n, offset, step in ops:
        now += step
        latest = max(latest, now)
        ts = int(now) + offset
        stale = ts > now + window_s or ts < latest - window_s
        live = {m: t for m, t in recorded.items() if t >= latest - window_s}
        if stale:
            with pytest.raises(StaleRequest):
                guard.check(ts, rid(n), now=now)
        elif n in live:
            with pytest.raises(ReplayedRequest):
                guard.check(ts, rid(n), now=now)
        else:
            guard.check(ts, rid(n), now=now)
            recorded[n] = ts
