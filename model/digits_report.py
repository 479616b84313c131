"""Held-out accuracy of ``digits_cnn`` on tensors and on the same digits sent as image files,
and what decoding an image costs in the function.

Each held-out digit (never trained on, in any form) is drawn dark on light at ``size`` x
``size`` (upscaled with ``nearest`` or ``bilinear``), encoded as PNG, JPEG (quality 90) and
WebP (quality 90), decoded by :func:`core.images.images_to_batch` exactly as the function
decodes a ``BYTES`` input, and run through :class:`core.engine.Engine` on every variant of
the artifact. Needs Pillow and scikit-learn, not TensorFlow::

    python -m model.digits_report [--artifact DIR] [--size 64 --size 280] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import Engine, load_artifact
from core.images import ImageSpec, decode, image_specs, images_to_batch
from model.digits import DEFAULT_OUT, INPUT, digits_split, render
from model.evaluate import run_batched

FORMATS = ("PNG", "JPEG", "WEBP")
SIZES = ((64, "nearest"), (280, "bilinear"))


@dataclass
class FormatReport:
    """One row of the table: a way of sending the held-out digits, and what it gave."""

    form: str
    size: int | None
    upscale: str | None
    mean_file_bytes: float | None
    decode_us_median: float | None
    accuracy: dict[str, float] = field(default_factory=dict)
    """Accuracy by variant."""


def _accuracy(engine: Engine, pixels: Any, labels: Any) -> float:
    output = engine.manifest.outputs[0].name
    scores = run_batched(engine, {INPUT: np.ascontiguousarray(pixels, dtype=np.float32)})[output]
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def _engines(artifact: Path) -> dict[str, Engine]:
    manifest, _ = load_artifact(artifact)
    variants: dict[str, str] = dict(manifest.raw.get("variants", {})) or {"selected": manifest.file}
    engines = {}
    for variant, file_name in variants.items():
        content = (artifact / file_name).read_bytes()
        engines[variant] = Engine(manifest, content, num_threads=1)
    return engines


def decode_cost_us(files: Sequence[bytes], spec: ImageSpec, repeats: int = 3) -> float:
    """Median time to decode one file into the model's row (Pillow open, fit, resize, scale)."""
    samples = []
    for _ in range(repeats):
        for data in files:
            started = time.perf_counter()
            spec.prepare(decode(data, spec, "x"), np.dtype(np.float32), (8, 8, 1))
            samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def report(
    artifact: Path = DEFAULT_OUT,
    sizes: Sequence[tuple[int, str]] = SIZES,
    formats: Sequence[str] = FORMATS,
    seed: int = 42,
) -> list[FormatReport]:
    """Accuracy per variant on the held-out tensors, then per (size, format) as image files."""
    manifest, _ = load_artifact(artifact)
    spec = image_specs(manifest.raw["inputs"])[INPUT]
    engines = _engines(artifact)
    test = digits_split(seed=seed).test
    pixels, labels = test.inputs[INPUT], np.asarray(test.labels).astype(int)
    rows = [
        FormatReport(
            "tensor",
            None,
            None,
            float(pixels[0].astype(np.float32).nbytes),
            None,
            {v: _accuracy(e, pixels, labels) for v, e in engines.items()},
        )
    ]
    for size, upscale in sizes:
        for fmt in formats:
            files = [render(row, size, fmt, upscale) for row in pixels]
            batch = images_to_batch(files, spec, INPUT, np.dtype(np.float32), (8, 8, 1))
            rows.append(
                FormatReport(
                    fmt.lower(),
                    size,
                    upscale,
                    float(np.mean([len(f) for f in files])),
                    round(decode_cost_us(files, spec), 1),
                    {v: _accuracy(e, batch, labels) for v, e in engines.items()},
                )
            )
    return rows


def markdown(rows: Sequence[FormatReport]) -> str:
    variants = list(rows[0].accuracy)
    head = "| sent as | size | upscale | mean bytes | decode µs (median) | " + " | ".join(variants) + " |"
    lines = [head, "| --- | ---: | --- | ---: | ---: |" + " ---: |" * len(variants)]
    for row in rows:
        cells = [
            row.form,
            f"{row.size}x{row.size}" if row.size else "8x8",
            row.upscale or "",
            f"{row.mean_file_bytes:,.0f}" if row.mean_file_bytes is not None else "",
            f"{row.decode_us_median:,.0f}" if row.decode_us_median is not None else "",
            *(f"{row.accuracy[v]:.4f}" for v in variants),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.digits_report", description=__doc__.split("\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, action="append", help="drawing size (repeatable)")
    parser.add_argument("--upscale", default=None, choices=("nearest", "bilinear", "bicubic"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = SIZES if not args.size else [(s, args.upscale or "nearest") for s in args.size]
    rows = report(args.artifact, sizes)
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
