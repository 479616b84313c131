"""Deploy settings per cloud from a simulated policy, as ``providers/<cloud>.yml`` keys.

``serverless.yml`` reads every provider-specific value with ``${file(./providers/<cloud>.yml):key}``;
the recommendation is one such block per cloud. For one application of the trace:

- warm instances (Lambda ``provisionedConcurrency``, Cloud Run functions ``minInstances``, Azure Flex
  ``alwaysReady``): the time-weighted median number of instances the policy kept alive;
- the ceiling (Lambda ``reservedConcurrency``, ``maxInstances``, ``maximumInstanceCount``): the most
  instances it ever had, or the peak of concurrent requests, plus 25 % headroom, rounded up (Azure
  Flex accepts 40 to 1000);
- per-instance concurrency (``concurrency``, ``perInstanceConcurrency``): the simulated one. Lambda
  runs one request per instance, so its figures are scaled by it.

A static setting cannot follow a policy that changes over the day; these values are the level the
policy holds half the time and the peak it needed.
"""

from __future__ import annotations

import math
from typing import Any

HEADROOM = 1.25


class RecommendError(ValueError):
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
            "alwaysReady": warm,
            "maximumInstanceCount": min(max(ceiling, limits["min"]), limits["max"]),
            "perInstanceConcurrency": concurrency,
        },
    }


def to_yaml(settings: dict[str, Any]) -> str:
    """The settings as three ``providers/<cloud>.yml`` blocks."""
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
        lines = [f"# providers/{cloud}.yml ({service})"]
        lines += [f"{key}: {value}" for key, value in settings[cloud].items()]
        blocks.append("\n".join(lines) + "\n")
    return head + "---\n".join(blocks)
