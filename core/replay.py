"""Reject stale and replayed requests with bounded memory."""

from __future__ import annotations

import bisect
import threading
import time

from core.errors import InvalidPayload, ReplayedRequest, StaleRequest


class ReplayGuard:
    """Remember request ids for as long as their timestamp is inside the window.

    A request is stale when ``|now - ts| > window_s``; otherwise its ``id`` is
    rejected as replayed if already seen, else recorded until ``ts + window_s``
    has passed (after that, the same request would be stale). Ids are grouped by
    their integer ``ts`` second, so expired seconds are dropped in one step. The
    lower bound of the window follows the latest ``now`` seen, so a clock that
    steps back cannot bring an evicted id back to life.

    Memory never exceeds ``max_entries`` ids. When the guard is full and nothing
    has expired, it shrinks the accepted window rather than forget ids: it drops
    the recorded second farthest from ``now`` (ties: the older) and from then on
    rejects every request with that ``ts`` as stale, until that second leaves the
    window anyway. A request whose ``ts`` is farther from ``now`` than every
    recorded second is rejected as stale without dropping anything. So a flood
    sheds skewed timestamps first, honest clients (``ts`` close to ``now``) lose
    only the seconds the flood filled, and a replay is never accepted. At most
    ``2 * window_s + 1`` closed seconds are remembered besides the ids.

    Thread-safe.
    """

    def __init__(self, window_s: int = 300, max_entries: int = 100_000) -> None:
        if window_s < 0:
            raise ValueError("window_s must be >= 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.window_s = window_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._ts_by_id: dict[bytes, int] = {}
        self._ids_by_ts: dict[int, set[bytes]] = {}
        self._seconds: list[int] = []
        self._closed: list[int] = []
        self._latest_now = float("-inf")

    def __len__(self) -> int:
        with self._lock:
            return len(self._ts_by_id)

    def check(self, ts: object, request_id: bytes, now: float | None = None) -> None:
        """Record ``request_id``; raise ``StaleRequest`` or ``ReplayedRequest`` instead if due.

        ``ts`` must be an integer (Unix seconds; ``bool`` is not) or ``InvalidPayload`` is raised.
        """
        if type(ts) is not int:
            raise InvalidPayload("ts must be an integer (Unix seconds)")
        if now is None:
            now = time.time()
        with self._lock:
            self._latest_now = max(self._latest_now, now)
            oldest_fresh = self._latest_now - self.window_s
            if ts > now + self.window_s or ts < oldest_fresh or (self._closed and self._is_closed(ts)):
                raise StaleRequest()
            if (self._seconds and self._seconds[0] < oldest_fresh) or self._closed:
                self._evict_before(oldest_fresh)
            if request_id in self._ts_by_id:
                raise ReplayedRequest()
            while len(self._ts_by_id) >= self.max_entries:
                self._make_room(ts, now)
            self._record(ts, request_id)

    def _record(self, ts: int, request_id: bytes) -> None:
        self._ts_by_id[request_id] = ts
        ids = self._ids_by_ts.get(ts)
        if ids is None:
            self._ids_by_ts[ts] = {request_id}
            bisect.insort(self._seconds, ts)
        else:
            ids.add(request_id)

    def _drop_second(self, second: int) -> None:
        for request_id in self._ids_by_ts.pop(second):
            del self._ts_by_id[request_id]

    def _evict_before(self, oldest_fresh: float) -> None:
        expired = bisect.bisect_left(self._seconds, oldest_fresh)
        if expired:
            for second in self._seconds[:expired]:
                self._drop_second(second)
            del self._seconds[:expired]
        del self._closed[: bisect.bisect_left(self._closed, oldest_fresh)]

    def _is_closed(self, ts: int) -> bool:
        index = bisect.bisect_left(self._closed, ts)
        return index < len(self._closed) and self._closed[index] == ts

    def _make_room(self, ts: int, now: float) -> None:
        """Close the recorded second farthest from ``now``, or reject ``ts`` if it is farther."""
        oldest, newest = self._seconds[0], self._seconds[-1]
        farthest = newest if newest - now > now - oldest else oldest
        if abs(ts - now) > abs(farthest - now):
            raise StaleRequest()
        self._drop_second(farthest)
        self._seconds.remove(farthest)
        bisect.insort(self._closed, farthest)
        if farthest == ts:
            raise StaleRequest()
