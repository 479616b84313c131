"""Deploy settings per cloud from a simulated policy, as the parameters ``serverless.yml`` reads.

Each cloud gets the parameters its deploy uses (``litefaas deploy --cloud X --param name=value``,
or a stage's block under ``params`` in ``serverless.yml``). For one application of the trace:

- warm instances (Lambda ``provisionedConcurrency``; ``minInstances``: Cloud Run functions minimum
  instances, Azure Flex always-ready instances): the time-weighted median number of instances the
  policy kept alive;
- the ceiling (Lambda ``reservedConcurrency``; ``maxInstances``: Cloud Run maximum instances, Azure
  maximum instance count): the most instances it ever had, or the peak of concurrent requests, plus
  25 % headroom, rounded up (Azure Flex accepts 40 to 1000);
- per-instance ``concurrency`` (Cloud Run, Azure Flex): the simulated one. Lambda runs one request
  per instance, so its figures are scaled by it.

A static setting cannot follow a policy that changes over the day; these values are the level the
policy holds half the time and the peak it needed.
"""

from __future__ import annotations

import math
from typing import Any

from litefaas.errors import ToolError

HEADROOM = 1.25


class RecommendError(ToolError, ValueError):
    """No application to recommend for."""


def recommend(
    result: dict[str, Any], policy: str, concurrency: int, prices: dict[str, Any], app: str | None = None
) -> dict[str, Any]:
    """Settings per cloud for ``app`` (a HashApp or its prefix; default: the busiest application)."""
    if policy not in result["policies"]:
        raise RecommendError(f"policy {policy!r} was not simulated (add it with --policy)")
    apps = result["policies"][policy]["apps"]
    if app:
        matches = [a for a in apps if a["app"].startswith(app)]
        if len(matches) != 1:
            raise RecommendError(f"{len(matches)} applications match {app!r}")
        chosen = matches[0]
    elif apps:
        chosen = max(apps, key=lambda a: a["invocations"])
    else:
        raise RecommendError("the trace has no application")
    warm = int(chosen["instances_median"])
    peak_instances = max(int(chosen["instances_max"]), math.ceil(chosen["max_in_flight"] / concurrency))
    ceiling = max(1, math.ceil(peak_instances * HEADROOM))
    lambda_ceiling = max(1, math.ceil(max(chosen["max_in_flight"], peak_instances * concurrency) * HEADROOM))
    limits = prices["clouds"]["azure"].get("max_instances", {"min": 40, "max": 1000})
    return {
        "policy": policy,
        "app": chosen["app"],
        "invocations": chosen["invocations"],
        "memory_mb": chosen["memory_mb"],
        "instances_median": warm,
        "instances_max": int(chosen["instances_max"]),
        "max_in_flight": int(chosen["max_in_flight"]),
        "aws": {"provisionedConcurrency": warm * concurrency, "reservedConcurrency": lambda_ceiling},
        "gcp": {"minInstances": warm, "maxInstances": ceiling, "concurrency": concurrency},
        "azure": {
            "minInstances": warm,
            "maxInstances": min(max(ceiling, limits["min"]), limits["max"]),
            "concurrency": concurrency,
        },
    }


def to_yaml(settings: dict[str, Any]) -> str:
    """The settings as one ``params`` block and one ``litefaas deploy`` command per cloud."""
    head = (
        f"# litefaas simulate --recommend: policy {settings['policy']}, app {settings['app']}\n"
        f"# {settings['invocations']:,} invocations in the trace, {settings['memory_mb']:.0f} MB each; "
        f"instances kept: median {settings['instances_median']}, max {settings['instances_max']}; "
        f"peak concurrent requests {settings['max_in_flight']}\n"
    )
    blocks = []
    for cloud, service in (
        ("aws", "AWS Lambda"),
        ("gcp", "Cloud Run functions"),
        ("azure", "Azure Functions Flex"),
    ):
        params = settings[cloud]
        command = " ".join(f"--param {key}={value}" for key, value in params.items())
        lines = [f"# {cloud} ({service}): litefaas deploy --cloud {cloud} {command}", "params:", "  prod:"]
        lines += [f"    {key}: {value}" for key, value in params.items()]
        blocks.append("\n".join(lines) + "\n")
    return head + "---\n".join(blocks)
