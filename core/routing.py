"""Which route a request's path names: litefaas's own three, or an Open Inference Protocol route.

Providers may put a prefix in front (``/api`` on Azure, a stage on API Gateway): litefaas's routes
are told by the path's last segment, OIP's by the first ``v2`` segment after which the rest is an
OIP route. Routing happens here once, for every way a request arrives.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from urllib.parse import unquote

from core.protocol import OIP_PREFIX, ROUTES

OIP_SERVER = "v2"
OIP_LIVE = "v2/health/live"
OIP_READY = "v2/health/ready"
OIP_MODEL = "v2/models"
OIP_MODEL_READY = "v2/models/ready"
OIP_INFER = "v2/models/infer"
OIP_UNKNOWN = "v2/unknown"
OHTTP_GATEWAY = "ohttp-gateway"
_WELL_KNOWN = ".well-known"
_HEALTH = {"live": OIP_LIVE, "ready": OIP_READY}
_MODEL_ACTIONS = {"ready": OIP_MODEL_READY, "infer": OIP_INFER}


@dataclass(frozen=True, slots=True)
class Route:
    """A route: its name (one of a fixed set, safe to log), its method(s) (``Allow``'s form), and
    the model it names."""

    name: str
    method: str
    model: str | None = None
    version: str | None = None
    oip: bool = field(init=False)
    methods: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "oip", self.name.startswith(OIP_SERVER))
        object.__setattr__(self, "methods", tuple(self.method.split(", ")))


def _oip_route(rest: list[str]) -> Route | None:
    """The OIP route of the segments after ``v2``; None when they are not one."""
    if not rest:
        return Route(OIP_SERVER, "GET")
    if len(rest) == 2 and rest[0] == "health" and rest[1] in _HEALTH:
        return Route(_HEALTH[rest[1]], "GET")
    if rest[0] != "models" or len(rest) < 2 or not rest[1]:
        return None
    model, tail, version = rest[1], rest[2:], None
    if len(tail) >= 2 and tail[0] == "versions" and tail[1]:
        version, tail = tail[1], tail[2:]
    if not tail:
        return Route(OIP_MODEL, "GET", model, version)
    if len(tail) == 1 and tail[0] in _MODEL_ACTIONS:
        name = _MODEL_ACTIONS[tail[0]]
        return Route(name, "POST" if name == OIP_INFER else "GET", model, version)
    return None


@functools.lru_cache(maxsize=1024)
def route_of(path: str) -> Route | None:
    """The route ``path`` names, or None. A path under ``v2`` that is no OIP route is ``v2/unknown``.

    ``path`` is as the request line carried it, percent-encoded: each segment is decoded here, once
    (so ``/pre%64ict`` is ``/predict`` and ``%2F`` stays inside its segment), on every provider.
    Cached: a function sees the same few paths again and again (routes are immutable).
    """
    segments = [unquote(segment) for segment in path.split("?", 1)[0].rstrip("/").split("/")]
    under_oip = False
    for index, segment in enumerate(segments):
        if segment == OIP_PREFIX:
            route = _oip_route(segments[index + 1 :])
            if route is not None:
                return route
            under_oip = True
    last = segments[-1]
    if last == OHTTP_GATEWAY and len(segments) >= 2 and segments[-2] == _WELL_KNOWN:
        return Route(OHTTP_GATEWAY, "GET, POST")
    if last in ROUTES:
        return Route(last, ROUTES[last])
    return Route(OIP_UNKNOWN, "GET") if under_oip else None
