"""Bundle sizes per cloud and architecture, beside the same function bundled with TensorFlow.

    python -m litefaas.benchmark.bundle_sizes [--out DIR] [--no-tensorflow] [--verify] [--json FILE]

Every bundle is built by ``litefaas.packaging`` the same way (target wheels fetched with pip's
cross-platform options, the same slimming rules, the same zip): the LiteRT bundle that
``litefaas package`` ships, and a comparison bundle whose runtime is ``tensorflow-cpu``
(``tensorflow`` on arm64, which has no -cpu wheel) with every dependency pip resolves for it,
in place of ``ai-edge-litert``; ``core`` then runs the model on ``tf.lite``. The TensorFlow wheels
are large (about 250 MB each): they are downloaded once into ``build/wheels`` and reused.

``--verify`` also answers an encrypted request with each LiteRT bundle alone in an isolated
Python 3.12 (``python3.12 -I -S``), where one is found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from litefaas.benchmark.compare import BUNDLE_SIZES
from litefaas.packaging.bundle import build_bundle
from litefaas.packaging.proof import find_python, verify_bundle
from litefaas.packaging.targets import (
    AWS_TARGET_UNZIPPED,
    AWS_TARGET_ZIPPED,
    RUNTIME_DISTRIBUTIONS,
    Runtime,
    Target,
    normalize,
    pinned,
    read_pins,
)
from litefaas.paths import BUILD

TARGETS = (
    Target("aws", "x86_64"),
    Target("aws", "arm64"),
    Target("gcp", "x86_64"),
    Target("azure", "x86_64"),
)


def tensorflow_runtime(target: Target) -> Runtime:
    """The same function on TensorFlow: tensorflow-cpu (or tensorflow on arm64) in place of LiteRT."""
    pins = read_pins()
    version = pins[normalize("tensorflow-cpu")]
    framework = "tensorflow-cpu" if target.arch == "x86_64" else "tensorflow"
    names = [name for name in RUNTIME_DISTRIBUTIONS if name != "ai-edge-litert"]
    requirements = (*pinned(names, pins), f"{framework}=={version}")
    return Runtime("tensorflow", requirements, with_dependencies=True)


def measure(target: Target, runtime: Runtime | None, out: Path, verify: bool) -> dict[str, Any]:
    bundle = build_bundle(target, out, runtime=runtime, enforce_limits=False, step=_say)
    row: dict[str, Any] = {
        "cloud": target.cloud,
        "arch": target.arch,
        "runtime": runtime.name if runtime else "litert",
        "bundle": bundle.path.name,
        "zipped_bytes": bundle.zipped_bytes,
        "unzipped_bytes": bundle.unzipped_bytes,
        "files": bundle.files,
    }
    if verify and runtime is None:
        python = find_python(target.python)
        if python is None or target.arch != "x86_64":
            row["verified"] = "skipped: no python3.12 for this architecture here"
        else:
            report = verify_bundle(bundle.path, target, python)
            row["verified"] = f"Python {report.python} -I -S"
    return row


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUILD / "bench-bundles", help="bundle folder")
    parser.add_argument("--no-tensorflow", action="store_true", help="skip the TensorFlow comparison")
    parser.add_argument("--verify", action="store_true", help="prove each LiteRT bundle in python3.12 -I -S")
    parser.add_argument(
        "--json",
        type=Path,
        default=BUNDLE_SIZES,
        help="also write the rows as JSON (litefaas bench reads this file for its baseline)",
    )
    args = parser.parse_args()
    rows = []
    for target in TARGETS:
        print(f"{target.cloud} {target.arch} (LiteRT)", file=sys.stderr)
        rows.append(measure(target, None, args.out, args.verify))
    if not args.no_tensorflow:
        for target in (Target("aws", "x86_64"), Target("aws", "arm64")):
            print(f"{target.cloud} {target.arch} (TensorFlow)", file=sys.stderr)
            rows.append(measure(target, tensorflow_runtime(target), args.out, False))
    print("| cloud | arch | runtime | zipped MB | unzipped MB | files | AWS targets (25 / 80 MB) |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- |")
    for row in rows:
        zipped, unzipped = row["zipped_bytes"], row["unzipped_bytes"]
        within = zipped <= AWS_TARGET_ZIPPED and unzipped <= AWS_TARGET_UNZIPPED
        verdict = ("within" if within else "over") if row["cloud"] == "aws" else ""
        sizes = f"{zipped / 1e6:.1f} | {unzipped / 1e6:.1f}"
        print(f"| {row['cloud']} | {row['arch']} | {row['runtime']} | {sizes} | {row['files']} | {verdict} |")
    for row in rows:
        if "verified" in row:
            print(f"{row['bundle']}: verified {row['verified']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
