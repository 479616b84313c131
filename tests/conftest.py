"""Shared fixtures: the committed model artifact and a throw-away key ring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "model" / "artifacts" / "breast_cancer_mlp"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def artifact_dir() -> Path:
    return ARTIFACT


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
