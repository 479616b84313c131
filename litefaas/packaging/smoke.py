"""The smoke test of a live function: ``GET /health``, ``GET /keys``, one sealed prediction whose
decrypted answer must equal the local model's (``litefaas check --url …``, ``deploy --check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from litefaas.packaging.targets import PackageError

TOLERANCE = 1e-5


@dataclass
class SmokeReport:
    url: str
    lines: list[str] = field(default_factory=list)


def _sample_rows(count: int) -> np.ndarray:
    from litefaas.benchmark.samples import ROWS

    return np.asarray(ROWS[:count], dtype=np.float32)


def check(url: str, *, model_dir: Path | None = None, rows: int = 2, timeout: float = 60) -> SmokeReport:
    """Check the function at ``url``; raise :class:`PackageError` naming the first step that fails."""
    from core.engine import DEFAULT_MODEL_DIR, Engine
    from litefaas.client import Client
    from litefaas.client.errors import ClientError

    report = SmokeReport(url.rstrip("/"))
    engine = Engine.from_dir(model_dir or DEFAULT_MODEL_DIR)
    name, output = engine.manifest.inputs[0].name, engine.manifest.outputs[0].name
    batch = _sample_rows(rows)
    try:
        with Client(report.url, timeout=timeout) as client:
            health = client.health()
            served = (health.get("model") or {}).get("name") or (health.get("model") or {}).get("id") or "?"
            report.lines.append(f"GET /health: ok (model {served})")
            keys = client.keys()
            report.lines.append(f"GET /keys: {len(keys)} key(s), current {keys[0].kid} ({keys[0].suite})")
            result = client.predict(batch.tolist())
    except ClientError as exc:
        raise PackageError(f"{report.url}: {exc}") from None
    got = np.asarray(result.outputs if not isinstance(result.outputs, dict) else result.outputs[output])
    want = engine.predict({name: batch})[output]
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=TOLERANCE):
        raise PackageError(f"{report.url}: the sealed prediction differs from the local model's outputs")
    report.lines.append(
        f"POST /predict (sealed to {keys[0].kid}): {rows} rows decrypted, equal to the local model "
        f"(max |diff| {float(np.max(np.abs(got - want))):.2g})"
    )
    return report
