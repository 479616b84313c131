"""The discrete-event simulation of one application's instance pool under one policy.

Events are arrivals (sorted), completions (a heap) and the policy's control events (a pre-warm, an
unload of the idle pool, a floor of instances that changes over time). Idle instances sit on a
stack and are reused last in, first out, so the instance freed when ``k`` requests were running is
the one taken when ``k`` run again; an idle instance whose deadline has passed is gone (evicted at
its deadline, found lazily).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

INF = math.inf
DRAIN = math.nextafter(INF, 0.0)  # after every event, before 'never'


class Decision(NamedTuple):
    """What happens to an instance that has just gone idle.

    ``deadline``: when it is evicted if still idle (``<= now``: at once). With ``prewarm_at`` finite,
    ``prewarm_count`` instances are ready at ``prewarm_at``, to be evicted at ``prewarm_deadline`` if
    unused: the idle ones still there (kept to ``prewarm_deadline`` at least), and new ones loading
    for the rest. ``unload_at``: if nothing has run since, every idle instance is evicted then (the
    application is unloaded; at once when ``<= now``); an unload due at or after a pre-warm is
    dropped, since the pre-warm decides what stays. A request arriving while nothing runs cancels a
    pending pre-warm and a pending unload. ``renew_s``: when the first request after a pre-warm
    arrives, the idle instances are kept at least ``renew_s`` from then, so a pre-warmed pool is not
    lost while the busy period it was loaded for is still arriving."""

    deadline: float
    prewarm_at: float = INF
    prewarm_deadline: float = 0.0
    prewarm_count: int = 1
    unload_at: float = INF
    renew_s: float = 0.0


class AppPolicy(Protocol):
    """What a policy decides for one application (see :mod:`litefaas.simulate.policies`).

    ``pinned`` instances are ready all day; ``keep_alive_s``, when set, is a fixed keep-alive and
    ``on_idle`` is not called; ``schedule`` lists ``(time, count)`` changes of a floor of instances
    (an autoscaler's desired count): instances are started to reach it and idle ones beyond it go."""

    pinned: int
    keep_alive_s: float | None
    schedule: list[tuple[float, int]]
    tracks_levels: bool

    def on_idle(self, t: float, running: int) -> Decision | float:
        """An instance went idle at ``t``; ``running`` requests are still in flight in the app. A plain
        number is a deadline (the common case, cheaper than a :class:`Decision`)."""
        ...

    def on_arrival(self, t: float, running: int) -> None:
        """A request arrived at ``t``, making ``running`` in flight; called when ``running`` is 1, or
        on every arrival when ``tracks_levels``."""
        ...


@dataclass
class AppRun:
    cold: np.ndarray
    wait_s: np.ndarray
    created: np.ndarray
    evicted: np.ndarray
    busy_s: float
    reactive_starts: int
    prewarm_starts: int
    end_s: float
    max_in_flight: int

    @property
    def instance_s(self) -> float:
        return float(self.evicted.sum() - self.created.sum())


def run_app(
    times: list[float],
    durations: list[float],
    policy: AppPolicy,
    cold_start_s: float,
    concurrency: int,
    horizon_s: float,
) -> AppRun:
    """Replay one application's requests (seconds; sorted arrivals) against its instance pool."""
    n = len(times)
    cold = bytearray(n)
    wait = [0.0] * n
    created: list[float] = [0.0] * policy.pinned
    evicted: list[float] = []
    heap: list[tuple[float, int, list]] = []  # type: ignore[type-arg]
    # an instance: [deadline, ready_at, in_flight, busy_since, pinned]
    idle: list[list] = []  # type: ignore[type-arg]
    partial: list[list] = []  # type: ignore[type-arg]
    pinned_idle: list[list] = [[INF, 0.0, 0, 0.0, True] for _ in range(policy.pinned)]  # type: ignore[type-arg]
    cap = concurrency
    keep_alive = policy.keep_alive_s
    on_idle = policy.on_idle
    on_arrival = policy.on_arrival
    every_arrival = policy.tracks_levels
    schedule = [(t, k) for t, k in policy.schedule if t <= horizon_s]
    next_step = schedule[0][0] if schedule else INF
    step = 0
    prewarm_at, prewarm_deadline, prewarm_count = INF, 0.0, 0
    prewarm_renew_s = renew_s = 0.0
    unload_at = INF
    live = floor = in_flight = seq = peak = 0
    soonest = INF  # no idle instance has an earlier finite deadline
    reactive = prewarmed = 0
    busy_s = 0.0
    last = 0.0
    heappush, heappop = heapq.heappush, heapq.heappop
    next_control = next_step
    for i in range(n + 1):
        t = times[i] if i < n else DRAIN
        while (heap and heap[0][0] <= t) or next_control <= t:
            if heap and heap[0][0] <= next_control:
                now, _, inst = heappop(heap)
                last = now
                in_flight -= 1
                inst[2] -= 1
                if inst[2]:
                    if cap > 1 and inst[2] == cap - 1:
                        partial.append(inst)
                    continue
                if cap > 1:
                    busy_s += now - inst[3]
                if inst[4]:
                    pinned_idle.append(inst)
                    continue
                if keep_alive is not None:
                    deadline = now + keep_alive
                else:
                    decision = on_idle(now, in_flight)
                    if isinstance(decision, float):
                        deadline = decision
                    else:
                        deadline = decision.deadline
                        if decision.prewarm_at < INF:
                            prewarm_at = (
                                max(decision.prewarm_at, now) if decision.prewarm_at <= horizon_s else INF
                            )
                            prewarm_deadline = decision.prewarm_deadline
                            prewarm_count = decision.prewarm_count
                            prewarm_renew_s = decision.renew_s
                        if decision.unload_at <= now:
                            if idle and not floor:
                                live -= _evict_all(idle, evicted, now)
                                soonest = INF
                        elif decision.unload_at <= horizon_s and decision.unload_at < prewarm_at:
                            unload_at = decision.unload_at
                        next_control = min(next_step, prewarm_at, unload_at)
                if floor and live > floor and soonest < now:
                    live -= _purge(idle, evicted, now)
                    soonest = min((x[0] for x in idle), default=INF)
                if live <= floor:
                    inst[0] = INF
                    idle.append(inst)
                elif deadline <= now:
                    evicted.append(now)
                    live -= 1
                else:
                    inst[0] = deadline
                    idle.append(inst)
                    if deadline < soonest:
                        soonest = deadline
            else:
                now = next_control
                if unload_at <= now and unload_at <= prewarm_at:
                    unload_at = INF
                    if not floor:
                        live -= _evict_all(idle, evicted, now)
                        soonest = INF
                elif next_step <= prewarm_at:
                    if soonest < now:
                        live -= _purge(idle, evicted, now)
                        soonest = min((x[0] for x in idle), default=INF)
                    floor = schedule[step][1]
                    step += 1
                    next_step = schedule[step][0] if step < len(schedule) else INF
                    while live > floor and idle:
                        evicted.append(min(idle.pop()[0], now))
                        live -= 1
                    for kept in idle:
                        kept[0] = INF
                    for _ in range(floor - live):
                        idle.insert(0, [INF, now + cold_start_s, 0, 0.0, False])
                        created.append(now)
                        live += 1
                        prewarmed += 1
                else:
                    prewarm_at = INF
                    if idle:
                        live -= _purge(idle, evicted, now)
                        soonest = min((x[0] for x in idle), default=INF)
                    # instances still idle (kept alive for scale-out) are the pre-warmed ones: kept
                    # to the pre-warm's deadline; only the missing ones load, below them
                    for kept in idle[max(0, len(idle) - prewarm_count) :]:
                        if kept[0] < prewarm_deadline:
                            kept[0] = prewarm_deadline
                    starts = prewarm_count - len(idle) if len(idle) < prewarm_count else 0
                    for _ in range(starts):
                        idle.insert(0, [prewarm_deadline, now + cold_start_s, 0, 0.0, False])
                        created.append(now)
                    if starts and prewarm_deadline < soonest:
                        soonest = prewarm_deadline
                    live += starts
                    prewarmed += starts
                    renew_s = prewarm_renew_s
                next_control = min(next_step, prewarm_at, unload_at)
        if i == n:
            break
        in_flight += 1
        if in_flight > peak:
            peak = in_flight
        if in_flight == 1:
            if prewarm_at < INF or unload_at < INF:
                prewarm_at = unload_at = INF
                next_control = next_step
            if renew_s:
                renewed = t + renew_s
                for kept in idle:
                    if t <= kept[0] < renewed:
                        kept[0] = renewed
                renew_s = 0.0
            on_arrival(t, 1)
        elif every_arrival:
            on_arrival(t, in_flight)
        target: list | None = None  # type: ignore[type-arg]
        if pinned_idle:
            target = pinned_idle.pop()
        else:
            if cap > 1:
                while partial and not 0 < partial[-1][2] < cap:
                    partial.pop()
                if partial and partial[-1][1] <= t:
                    target = partial.pop()
            while target is None and idle:
                candidate = idle.pop()
                if candidate[0] >= t:
                    target = candidate
                else:
                    evicted.append(candidate[0])
                    live -= 1
            if target is None and partial:
                target = partial.pop()
        if target is None:
            target = [INF, t + cold_start_s, 0, 0.0, False]
            created.append(t)
            live += 1
            reactive += 1
            cold[i] = 1
        start = target[1]
        if start > t:
            cold[i] = 1
            wait[i] = start - t
        else:
            start = t
        target[2] += 1
        if cap > 1:
            if target[2] == 1:
                target[3] = start
            if target[2] < cap:
                partial.append(target)
        seq += 1
        heappush(heap, (start + durations[i], seq, target))
    end = max(horizon_s, last)
    evicted.extend(min(inst[0], end) for inst in idle)
    evicted.extend(end for _ in range(len(pinned_idle)))
    if cap == 1:
        busy_s = math.fsum(durations)
    return AppRun(
        cold=np.frombuffer(bytes(cold), dtype=np.uint8).astype(bool),
        wait_s=np.asarray(wait),
        created=np.asarray(created),
        evicted=np.asarray(evicted),
        busy_s=busy_s,
        reactive_starts=reactive,
        prewarm_starts=prewarmed,
        end_s=end,
        max_in_flight=peak,
    )


def _evict_all(idle: list[list], evicted: list[float], t: float) -> int:  # type: ignore[type-arg]
    """Evict every idle instance at ``t`` (or at its deadline, if earlier); return how many."""
    evicted.extend(inst[0] if inst[0] < t else t for inst in idle)
    count = len(idle)
    idle.clear()
    return count


def _purge(idle: list[list], evicted: list[float], t: float) -> int:  # type: ignore[type-arg]
    """Evict the idle instances whose deadline is before ``t``; return how many."""
    expired = [inst[0] for inst in idle if inst[0] < t]
    if expired:
        evicted.extend(expired)
        idle[:] = [inst for inst in idle if inst[0] >= t]
    return len(expired)
