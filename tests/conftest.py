"""Shared fixtures: the committed model artifact and a throw-away key ring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# `make test` (and so CI) explores the same examples on every run; `make reliability` and a bare
# pytest search afresh each time, and any failure found there is kept as an explicit @example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "model" / "artifacts" / "breast_cancer_mlp"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def artifact_dir() -> Path:
    return ARTIFACT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def keys():
    """A fresh key ring with one key per suite: ``k0`` (X25519 + AES-128-GCM, current), ``k1``, ``k2``."""
    from fixtures.requests import ALL_SUITES, make_keys

    return make_keys(*ALL_SUITES)


@pytest.fixture(scope="session")
def engine():
    """The committed seed model, loaded once for the whole run."""
    from core.engine import Engine

    return Engine.from_dir(ARTIFACT)


@pytest.fixture
def otel():
    """OpenTelemetry's SDK recording in memory (the process's providers from the first use on),
    cleared for this test."""
    from fixtures.otel import recorded

    found = recorded()
    found.spans.clear()
    return found
