"""Policies by name: the one place that knows every policy, the litefaas policy included.

Apart from ``policies`` so that the litefaas policy, which builds on histogram's classes there,
can be named here without an import cycle.
"""

from __future__ import annotations

import re

from litefaas.simulate.litefaas_policy import Litefaas
from litefaas.simulate.policies import (
    POLICY_HELP,
    FixedKeepAlive,
    Histogram,
    Kpa,
    Policy,
    PolicyError,
    Provisioned,
)


def parse(names: list[str]) -> list[Policy]:
    """Policies from their names (``fixed-10m``, ``provisioned-2``, ``histogram``, ``kpa``, ``litefaas``)."""
    policies: list[Policy] = []
    for name in names:
        fixed = re.fullmatch(r"fixed-(\d+(?:\.\d+)?)([smh])", name)
        provisioned = re.fullmatch(r"provisioned-(\d+)", name)
        if fixed:
            unit = {"s": 1, "m": 60, "h": 3600}[fixed.group(2)]
            policies.append(FixedKeepAlive(float(fixed.group(1)) * unit, name))
        elif provisioned:
            policies.append(Provisioned(int(provisioned.group(1))))
        elif name == "histogram":
            policies.append(Histogram())
        elif name == "kpa":
            policies.append(Kpa())
        elif name == "litefaas":
            policies.append(Litefaas())
        else:
            raise PolicyError(f"unknown policy {name!r} (known: {POLICY_HELP})")
    if len({p.name for p in policies}) != len(policies):
        raise PolicyError("a policy is named twice")
    return policies
