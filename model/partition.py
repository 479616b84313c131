"""``litefaas partition``: cut a Keras model into TFLite segments, one per function, and verify the chain.

A cut may go wherever exactly one tensor crosses from the layers before it to the layers after
it (every layer boundary of a sequential model; in a functional model, not inside a branch or
a skip connection). Segments are balanced by weight bytes or by FLOPs. Each segment folder is a
normal artifact (``manifest.json`` and ``.tflite`` files) whose input and output are the cut
tensors, so ``core`` serves it unchanged; ``chain.json`` lists the segments in order.

TensorFlow is imported lazily: the planning functions run without it.

Where the model may be cut and how the cuts are planned is ``model.partition_plan``'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.data import BREAST_CANCER_LABEL, Dataset, breast_cancer, load_calibration
from model.errors import BuildError
from model.partition_plan import (
    LayerCost,
    cut_positions,
    functional_model,
    layer_costs,
    plan_cuts,
    plan_for_limit,
    split_model,
)

if TYPE_CHECKING:
    import keras

    from model.source import ModelSource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Arrays = dict[str, np.ndarray]
Step = Callable[[str], None]
EpochProgress = Callable[[int, int, dict[str, float]], None]

CHAIN_FILE = "chain.json"
BALANCES = ("bytes", "flops")
VARIANTS = ("float32", "float16", "dynamic_range", "int8")
BYTES_PER_WEIGHT = {"float32": 4, "float16": 2, "dynamic_range": 1, "int8": 1}
FLOAT32_TOLERANCE = 1e-5
SEED_NAME = "breast_cancer_mlp"


@dataclass
class PartitionOptions:
    """What ``litefaas partition`` was asked for: ``segments`` or ``max_segment_bytes``, not both."""

    out: Path
    segments: int | None = None
    max_segment_bytes: int | None = None
    balance: str = "bytes"
    variant: str = "int8"
    source: Path | None = None
    calibration: Path | None = None
    epochs: int = 60
    seed: int = 42
    name: str | None = None
    version: str = "1.0.0"
    with_whole: bool = False


@dataclass
class PartitionResult:
    out: Path
    chain: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# --- conversion and verification -------------------------------------------------------------


def convert(source: ModelSource, calibration: Dataset, variant: str, float32: bytes | None = None) -> bytes:
    """One TFLite variant of ``source``, quantized exactly as ``litefaas build`` quantizes the whole model."""
    import tensorflow as tf

    from model.convert import _convert, _converter, _full_int8, float_preprocessing_nodes

    float32 = float32 if float32 is not None else _convert(_converter(source))
    if variant == "float32":
        return float32
    if variant == "int8":
        return _full_int8(source, calibration, float_preprocessing_nodes(float32))
    converter = _converter(source)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return _convert(converter)


def run_chain(stages: Sequence[tuple[dict[str, Any], bytes]], inputs: Arrays) -> Arrays:
    """Run ``inputs`` through each (manifest, model) in turn, as the functions would."""
    from core.engine import Engine, Manifest
    from model.evaluate import run_batched

    current = inputs
    for manifest, content in stages:
        engine = Engine(Manifest.from_json(manifest), content, num_threads=1)
        current = run_batched(engine, {name: current[name] for name in _names(manifest["inputs"])})
    return current


def _names(specs: Sequence[dict[str, Any]]) -> list[str]:
    return [str(spec["name"]) for spec in specs]


def max_abs_diff(left: Arrays, right: Arrays, left_names: Sequence[str], right_names: Sequence[str]) -> float:
    """Largest absolute difference between outputs paired by position."""
    return max(
        float(np.max(np.abs(left[a].astype(np.float64) - right[b].astype(np.float64))))
        for a, b in zip(left_names, right_names, strict=True)
    )


# --- the command ----------------------------------------------------------------------------


@dataclass
class _Origin:
    model: keras.Model
    calibration: Dataset
    evaluation: Dataset
    name: str
    feature_names: list[str]
    label_meaning: str | None


def _load_origin(options: PartitionOptions, step: Step, epoch: EpochProgress | None) -> _Origin:
    import keras

    if options.source is None:
        from model.train import train_seed_mlp

        step("loading the breast-cancer data set")
        split = breast_cancer(seed=options.seed)
        step("training the seed MLP (seeded, as litefaas build does)")
        model = train_seed_mlp(split.train, seed=options.seed, epochs=options.epochs, progress=epoch)
        return _Origin(
            model, split.train, split.test, SEED_NAME, split.test.feature_names, BREAST_CANCER_LABEL
        )
    path = options.source
    if path.is_dir() and (path / "model.keras").is_file():
        path = path / "model.keras"
    if not path.exists():
        raise BuildError(f"model not found: {path}")
    if path.is_dir() or path.suffix not in {".keras", ".h5"}:
        raise BuildError(
            f"{path}: partition needs the Keras model (.keras or .h5) to cut it; a SavedModel has no layers"
        )
    if options.calibration is None:
        raise BuildError("--calibration data.npz is required with --model (a representative dataset)")
    step(f"loading {path}")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise BuildError(f"{path} is not a loadable Keras model ({exc.__class__.__name__})") from None
    specs = [(str(t.name), tuple(t.shape)) for t in functional_model(model).inputs]
    calibration = load_calibration(options.calibration, specs)
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem) or "model"
    return _Origin(model, calibration, calibration, name, [], None)


def partition(
    options: PartitionOptions, step: Step = lambda _: None, epoch: EpochProgress | None = None
) -> PartitionResult:
    """Load or train the model, cut, convert, verify; write ``options.out`` only if all succeeded."""
    _check_options(options)
    origin = _load_origin(options, step, epoch)
    result = partition_model(
        origin.model,
        origin.calibration,
        origin.evaluation,
        options,
        step,
        name=options.name or origin.name,
        feature_names=origin.feature_names,
        label_meaning=origin.label_meaning,
    )
    if options.source is None:
        result.notes.append(_compare_with_committed(result.chain))
    return result


def _compare_with_committed(chain: dict[str, Any]) -> str:
    """Whether the retrained whole model is the committed artifact, byte for byte."""
    from model.pipeline import DEFAULT_OUT

    try:
        committed = json.loads((DEFAULT_OUT / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no committed artifact to compare the retrained model with"
    if committed.get("variant") == chain["variant"] and committed.get("sha256") == chain["whole"]["sha256"]:
        return f"the retrained whole model is byte-identical to the committed {chain['variant']} artifact"
    return "the retrained whole model differs from the committed artifact (another seed, epochs or variant)"


def _check_options(options: PartitionOptions) -> None:
    if (options.segments is None) == (options.max_segment_bytes is None):
        raise BuildError("give either --segments N or --max-segment-bytes B")
    if options.segments is not None and options.segments < 1:
        raise BuildError("--segments must be at least 1")
    if options.max_segment_bytes is not None and options.max_segment_bytes < 1:
        raise BuildError("--max-segment-bytes must be positive")
    if options.balance not in BALANCES:
        raise BuildError(f"--balance must be one of {', '.join(BALANCES)}")
    if options.variant not in VARIANTS:
        raise BuildError(f"--variant must be one of {', '.join(VARIANTS)}")


def partition_model(
    model: keras.Model,
    calibration: Dataset,
    evaluation: Dataset,
    options: PartitionOptions,
    step: Step = lambda _: None,
    *,
    name: str = "model",
    feature_names: Sequence[str] = (),
    label_meaning: str | None = None,
) -> PartitionResult:
    """Cut ``model`` as ``options`` say and write the segments and ``chain.json`` to ``options.out``."""
    from model.pipeline import _replace_dir
    from model.source import from_keras

    _check_options(options)
    variant = options.variant
    costs = layer_costs(model)
    weight_bytes = [c.weights * BYTES_PER_WEIGHT[variant] for c in costs]
    positions = cut_positions(model)
    if options.max_segment_bytes is not None:
        cuts = plan_for_limit(weight_bytes, positions, options.max_segment_bytes)
    else:
        balance = weight_bytes if options.balance == "bytes" else [c.flops for c in costs]
        cuts = plan_cuts(balance, positions, options.segments or 1)
    segments = split_model(model, cuts)
    bounds = [0, *cuts, len(costs)]

    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".litefaas-partition-", dir=out.parent))
    staging = work / "chain"
    staging.mkdir()
    try:
        step("converting the whole model for reference")
        whole_source = from_keras(model, work / "whole", name, 0)
        reference = whole_source.predict(evaluation.inputs)
        whole_float32 = convert(whole_source, calibration, "float32")
        whole_content = convert(whole_source, calibration, variant, whole_float32)
        whole = (_manifest(whole_source, name, variant, whole_content, options.version), whole_content)
        whole[0].update({"feature_names": list(feature_names), "label": _label(whole_source, label_meaning)})
        float32_whole = (
            _manifest(whole_source, name, "float32", whole_float32, options.version),
            whole_float32,
        )

        built: list[_BuiltSegment] = []
        activations = calibration
        for index, segment in enumerate(segments, start=1):
            step(f"converting segment {index} of {len(segments)}")
            source = from_keras(
                segment, work / f"segment-{index}", f"{name}.segment-{index}-of-{len(segments)}", 0
            )
            made = _build_segment(source, activations, options, name, index, len(segments))
            made.layers = costs[bounds[index - 1] : bounds[index]]
            made.write(staging, feature_names, label_meaning)
            _check_size(made, options, sum(weight_bytes[bounds[index - 1] : bounds[index]]))
            built.append(made)
            if index < len(segments):
                activations = Dataset(source.predict(activations.inputs))

        step("verifying the chain against the whole model")
        verification = _verify(variant, evaluation, reference, whole_source, float32_whole, whole, built)
        chain = _chain_manifest(name, options, whole_source, whole, built, verification)
        if options.with_whole:
            (staging / "whole").mkdir()
            (staging / "whole" / whole[0]["file"]).write_bytes(whole_content)
            _write_json(staging / "whole" / "manifest.json", whole[0])
        _write_json(staging / CHAIN_FILE, chain)
        failed = [v for v in VARIANTS if v in verification and not verification[v]["passed"]]
        if failed:
            problems = (
                f"{v}: max |Δ| {verification[v]['max_abs_diff_vs_whole']:.3g} > "
                f"tolerance {verification[v]['tolerance']:.3g}"
                for v in failed
            )
            raise BuildError("the chain does not reproduce the whole model: " + "; ".join(problems))
        _replace_dir(staging, out)
        return PartitionResult(out, chain)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class _BuiltSegment:
    """One converted segment: its source, its model in float32 (kept for the verification only) and
    in the selected variant (the one file its folder holds, so a function ships no more), its manifest."""

    source: ModelSource
    index: int
    count: int
    variant: str
    float32: bytes
    content: bytes
    manifest: dict[str, Any]
    layers: list[LayerCost] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return f"segment-{self.index}"

    @property
    def hands_on(self) -> str | None:
        return None if self.index == self.count else self.source.outputs[0].name

    def stage(self, variant: str) -> tuple[dict[str, Any], bytes]:
        """(manifest, model) of this segment in ``variant`` (float32 or the selected one)."""
        if variant == "float32":
            return {**self.manifest, "file": f"{self.source.name}.float32.tflite"}, self.float32
        return self.manifest, self.content

    def write(self, staging: Path, feature_names: Sequence[str], label_meaning: str | None) -> None:
        """The segment's folder: its ``.tflite`` file and ``manifest.json``."""
        folder = staging / self.folder
        folder.mkdir()
        last = self.index == self.count
        self.manifest["feature_names"] = list(feature_names) if self.index == 1 else []
        self.manifest["label"] = _label(self.source, label_meaning) if last else None
        (folder / self.manifest["file"]).write_bytes(self.content)
        _write_json(folder / "manifest.json", self.manifest)

    def entry(self) -> dict[str, Any]:
        """This segment as ``chain.json`` lists it."""
        return {
            "index": self.index,
            "folder": self.folder,
            "name": self.manifest["name"],
            "file": self.manifest["file"],
            "bytes": len(self.content),
            "sha256": self.manifest["sha256"],
            "takes": [t.name for t in self.source.inputs],
            "hands_on": self.hands_on,
            "outputs": self.manifest["outputs"],
            "layers": [c.name for c in self.layers],
            "weights": sum(c.weights for c in self.layers),
            "flops": sum(c.flops for c in self.layers),
        }


def _build_segment(
    source: ModelSource, calibration: Dataset, options: PartitionOptions, chain: str, index: int, count: int
) -> _BuiltSegment:
    float32 = convert(source, calibration, "float32")
    content = convert(source, calibration, options.variant, float32)
    manifest = _manifest(source, source.name, options.variant, content, options.version)
    segment = _BuiltSegment(source, index, count, options.variant, float32, content, manifest)
    manifest["segment"] = {
        "chain": chain,
        "index": index,
        "count": count,
        "takes": [t.name for t in source.inputs],
        "hands_on": segment.hands_on,
    }
    return segment


def _check_size(segment: _BuiltSegment, options: PartitionOptions, estimate: int) -> None:
    limit = options.max_segment_bytes
    if limit is not None and len(segment.content) > limit:
        raise BuildError(
            f"segment {segment.index}'s {segment.variant} file is {len(segment.content):,} bytes, over "
            f"--max-segment-bytes {limit:,} (its weights were estimated at {estimate:,}); "
            "allow more bytes or cut into more segments"
        )


def _chain_manifest(
    name: str,
    options: PartitionOptions,
    whole_source: ModelSource,
    whole: tuple[dict[str, Any], bytes],
    built: Sequence[_BuiltSegment],
    verification: dict[str, Any],
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    return {
        "format": 1,
        "kind": "chain",
        "name": name,
        "version": options.version,
        "variant": options.variant,
        "balance": "bytes" if options.max_segment_bytes is not None else options.balance,
        "max_segment_bytes": options.max_segment_bytes,
        "inputs": [t.to_json() for t in whole_source.inputs],
        "outputs": built[-1].manifest["outputs"],
        "whole": {"bytes": len(whole[1]), "sha256": whole[0]["sha256"]},
        "segments": [segment.entry() for segment in built],
        "verification": verification,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _manifest(source: ModelSource, name: str, variant: str, content: bytes, version: str) -> dict[str, Any]:
    return {
        "format": 1,
        "name": name,
        "version": version,
        "variant": variant,
        "file": f"{name}.{variant}.tflite",
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "signature": "serving_default",
        "inputs": [t.to_json() for t in source.inputs],
        "outputs": [t.to_json() for t in source.outputs],
    }


def _label(source: ModelSource, meaning: str | None) -> dict[str, Any]:
    return {"output": source.outputs[0].name, "meaning": meaning}


def _verify(
    variant: str,
    evaluation: Dataset,
    reference: Arrays,
    whole_source: ModelSource,
    whole_float32: tuple[dict[str, Any], bytes],
    whole_variant: tuple[dict[str, Any], bytes],
    built: Sequence[_BuiltSegment],
) -> dict[str, Any]:
    """Float32: the chain equals the whole float32 model within 1e-5. A quantized variant: the chain
    differs from the whole model of that variant by at most what that model itself differs from the
    Keras model on the same rows (its own error; never below 1e-5)."""
    from model.evaluate import classification_metrics

    reference_names = [t.name for t in whole_source.outputs]
    last_names = _names(built[-1].manifest["outputs"])
    report: dict[str, Any] = {"rows": len(evaluation)}
    for name in dict.fromkeys(["float32", variant]):
        whole = run_chain([whole_float32 if name == "float32" else whole_variant], evaluation.inputs)
        chain = run_chain([segment.stage(name) for segment in built], evaluation.inputs)
        whole_error = max_abs_diff(whole, reference, reference_names, reference_names)
        tolerance = FLOAT32_TOLERANCE if name == "float32" else max(whole_error, FLOAT32_TOLERANCE)
        difference = max_abs_diff(chain, whole, last_names, reference_names)
        accuracy, _ = classification_metrics(chain[last_names[0]], evaluation.labels)
        whole_accuracy, _ = classification_metrics(whole[reference_names[0]], evaluation.labels)
        report[name] = {
            "max_abs_diff_vs_whole": difference,
            "tolerance": tolerance,
            "tolerance_rule": (
                "fixed 1e-5"
                if name == "float32"
                else f"the whole {name} model's own max |Δ| from the Keras model on the same rows"
            ),
            "max_abs_diff_vs_keras": max_abs_diff(chain, reference, last_names, reference_names),
            "whole_max_abs_diff_vs_keras": whole_error,
            "accuracy": accuracy,
            "whole_accuracy": whole_accuracy,
            "passed": difference <= tolerance,
        }
    return report
