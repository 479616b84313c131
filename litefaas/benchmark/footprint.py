"""Installed footprint of a set of distributions and everything they require."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9._-]+")


def _requirements(name: str) -> list[str]:
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        match = _NAME.match(requirement)
        if match:
            names.append(match.group(0))
    return names


def closure_bytes(roots: list[str]) -> int:
    """Bytes on disk of ``roots`` and their transitive (non-extra) requirements that are installed."""
    seen: set[str] = set()
    pending = list(roots)
    total = 0
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in distribution.files or []:
            path = distribution.locate_file(file)
            try:
                total += Path(str(path)).stat().st_size
            except (OSError, AttributeError):
                continue
        pending.extend(_requirements(name))
    return total
