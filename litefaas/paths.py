"""Where things are in the project: its root, and the folders the tools write under it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project's root (``serverless.yml``, ``core/``, ``handlers/``, ``node_modules/``)."""
BUILD = ROOT / "build"
"""Caches and reports: wheels, platform layers, deploy plans, benchmark results."""
OSLS_BIN = ROOT / "node_modules" / "osls" / "bin" / "serverless.js"
"""The Serverless Framework (osls) that packages, deploys and runs serverless-offline."""


def trace_search_path() -> list[Path]:
    """Where a trace name is looked up: ``$LITEFAAS_TRACES``, then ``../shared/traces`` beside the repo."""
    import os

    folders = [Path(p) for p in os.environ.get("LITEFAAS_TRACES", "").split(os.pathsep) if p]
    return [*folders, ROOT.parent / "shared" / "traces"]
