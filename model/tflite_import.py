"""``litefaas build --from model.tflite``: import a TFLite model this project did not build.

The model is read and checked by :mod:`model.tflite_read`; here it is compressed with
ai-edge-quantizer (weight-only int8, dynamic-range int8, float16 weights), every variant is
measured against the original, and the artifact folder is written atomically, the original kept
as a variant. No TensorFlow is needed: LiteRT and the quantizer work on the flatbuffer itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import (
    Engine,
    Manifest,
    ModelError,
    TensorSpec,
    explain_load_error,
)
from model.errors import BuildError
from model.tflite_metadata import ModelInfo
from model.tflite_read import ORIGINAL, ImportedTensor, TFLiteModel, read_tflite
from model.tflite_rewrite import float32_weights, unique_tensor_names

Arrays = dict[str, np.ndarray]
Step = Callable[[str], None]
# Variants made with ai-edge-quantizer, in the order they are tried.
QUANTIZED_VARIANTS: tuple[str, ...] = ("float16", "weight_only_int8", "dynamic_range")
GENERATED_ROWS = 16
ROW_ELEMENTS_HEADROOM = 16
"""An input with dynamic dimensions beyond the batch takes rows of up to this many times the
elements of the row it was built at, unless ``--max-row-elements`` says otherwise."""
_NAME_OK = re.compile(r"[^A-Za-z0-9_.\-]")


def quantize_variant(content: bytes, variant: str) -> bytes:
    """One ai-edge-quantizer variant of a float model (raises with the quantizer's reason)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    worker = quantizer.Quantizer(bytearray(content))
    if variant == "weight_only_int8":
        worker.load_quantization_recipe(recipe.weight_only_wi8_afp32())
    elif variant == "dynamic_range":
        worker.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif variant == "float16":
        worker.add_weight_only_config(
            regex=".*",
            operation_name=TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
    else:
        raise ValueError(f"unknown variant {variant!r}")
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        result = worker.quantize(enable_progress_report=False)
    return bytes(result.quantized_model)


def make_variants(model: TFLiteModel, step: Step = lambda _: None) -> tuple[dict[str, bytes], dict[str, str]]:
    """The original plus every quantizer variant that could be made; the others with their reason.

    A model whose weights are float16 already (behind ``DEQUANTIZE`` ops) is quantized from its
    float32 values (:func:`model.tflite_rewrite.float32_weights`); its original is the float16 variant.
    Tensor names are made unique first where two share one, which the quantizer refuses.
    """
    variants = {ORIGINAL: model.content}
    skipped: dict[str, str] = {}
    float32 = float32_weights(model.content)
    source = unique_tensor_names(float32 or model.content) or float32
    for variant in QUANTIZED_VARIANTS:
        if variant == "float16" and float32 is not None:
            skipped[variant] = "the model's weights are float16 already: the original is this variant"
            continue
        step(f"quantizing: {variant}")
        try:
            content = quantize_variant(source or model.content, variant)
        except Exception as exc:  # noqa: BLE001 - the quantizer's reason is reported, not fatal
            text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
            reason = f"{exc.__class__.__name__}: {text[:200]}" if text else exc.__class__.__name__
            skipped[variant] = f"the quantizer cannot make it: {reason}"
            continue
        if content == model.content or len(content) >= len(model.content):
            skipped[variant] = "no weights the quantizer could compress (the file would not be smaller)"
            continue
        variants[variant] = content
    return variants, skipped


# ---------------------------------------------------------------------------------- measuring


def parse_input_ranges(items: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``name=lo,hi`` items (``--input-range``) as ``{name: (lo, hi)}``."""
    ranges: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, bounds = item.partition("=")
        parts = bounds.split(",")
        try:
            low, high = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            low = high = float("nan")
        if not sep or not name or len(parts) != 2 or not low <= high:
            raise BuildError(f"--input-range {item!r}: expected NAME=LOW,HIGH with LOW <= HIGH")
        ranges[name] = (low, high)
    return ranges


def parse_input_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=D1,D2,…`` items (``--input-shape``: one row's shape, without the batch)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise BuildError(f"--input-shape {item!r}: expected NAME=D1,D2,… with positive sizes (one row)")
        shapes[name] = shape
    return shapes


def parse_row_limits(items: Sequence[str]) -> dict[str, int]:
    """``NAME=N`` items (``--max-row-elements``: the most elements one row of the input may have)."""
    limits: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise BuildError(f"--max-row-elements {item!r}: expected NAME=N with N a positive whole number")
        limits[name] = int(count)
    return limits


def row_limits(
    tensors: Sequence[ImportedTensor], shapes: Mapping[str, tuple[int, ...]], given: Mapping[str, int]
) -> dict[str, int]:
    """The most elements one row of each dynamic-shaped input may have: ``given``, else
    :data:`ROW_ELEMENTS_HEADROOM` times its example row's."""
    dynamic = {t.name for t in tensors if -1 in t.row_shape}
    unknown = sorted(set(given) - dynamic)
    if unknown:
        raise BuildError(
            "--max-row-elements names no input with dynamic dimensions beyond the batch: "
            + ", ".join(unknown)
        )
    limits = {}
    for name in sorted(dynamic):
        example = math.prod(shapes[name])
        limits[name] = given.get(name, ROW_ELEMENTS_HEADROOM * example)
        if limits[name] < example:
            raise BuildError(
                f"--max-row-elements {name}={limits[name]} is below the {example} elements of the row the"
                f" model is built at ({list(shapes[name])})"
            )
    return limits


def largest_rows(
    tensors: Sequence[ImportedTensor], shapes: Mapping[str, tuple[int, ...]], limits: Mapping[str, int]
) -> dict[str, tuple[int, ...]]:
    """For each dynamic-shaped input, its example row with the first dynamic dimension grown to
    the limit (by a whole factor, so a size the model needs a multiple of stays one)."""
    rows = {}
    for tensor in tensors:
        if tensor.name not in limits:
            continue
        row = list(shapes[tensor.name])
        axis = tensor.row_shape.index(-1)
        row[axis] *= max(1, limits[tensor.name] // math.prod(row))
        rows[tensor.name] = tuple(row)
    return rows


def example_rows(
    tensors: Sequence[ImportedTensor], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """``--input-shape``'s rows, checked against each input's own (fixed sizes must match)."""
    by_name = {t.name: t for t in tensors}
    unknown = sorted(set(shapes) - set(by_name))
    if unknown:
        raise BuildError(f"--input-shape names no model input: {', '.join(unknown)}")
    for name, row in shapes.items():
        model_row = by_name[name].row_shape
        if len(row) != len(model_row) or any(m not in (-1, d) for m, d in zip(model_row, row, strict=True)):
            shown = ", ".join("?" if m < 0 else str(m) for m in model_row)
            raise BuildError(f"--input-shape {name}: {list(row)} does not fit the input's row [{shown}]")
    return dict(shapes)


def generated_inputs(
    tensors: Sequence[ImportedTensor],
    ranges: Mapping[str, tuple[float, float]],
    rows: int,
    seed: int = 0,
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> Arrays:
    """Rows within each input's dtype and declared range (float default 0..1; integers their whole
    range up to 0..255; bool 0/1), of ``shapes``' row where given (else a dynamic dimension is 1)."""
    unknown = set(ranges) - {t.name for t in tensors}
    if unknown:
        raise BuildError(f"--input-range names no model input: {', '.join(sorted(unknown))}")
    rng = np.random.default_rng(seed)
    arrays: Arrays = {}
    for tensor in tensors:
        row = (shapes or {}).get(tensor.name) or tuple(d if d > 0 else 1 for d in tensor.row_shape)
        shape = (rows, *row)
        dtype = np.dtype(tensor.dtype)
        if dtype.kind == "b":
            arrays[tensor.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif dtype.kind == "f":
            low, high = ranges.get(tensor.name, (0.0, 1.0))
            arrays[tensor.name] = rng.uniform(low, high, size=shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            low, high = ranges.get(tensor.name, (max(float(info.min), -128.0), min(float(info.max), 255.0)))
            low, high = max(np.ceil(low), info.min), min(np.floor(high), info.max)
            if low > high:
                raise BuildError(f"--input-range for {tensor.name!r} holds no {dtype.name} value")
            arrays[tensor.name] = rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    return arrays


def _dequantized(value: np.ndarray, spec: TensorSpec) -> np.ndarray:
    as_float = value.astype(np.float64)
    if spec.quantization is not None:
        as_float = (as_float - spec.quantization.zero_point) * spec.quantization.scale
    return as_float


def _latency_us(engine: Engine, inputs: Arrays, repeats: int) -> float:
    one = {name: np.ascontiguousarray(v[:1]) for name, v in inputs.items()}
    engine.predict(one)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.predict(one)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


@dataclass
class ImportResult:
    out: Path
    manifest: dict[str, Any]
    reports: list[dict[str, Any]]
    skipped: dict[str, str]
    model: TFLiteModel
    notes: list[str] = field(default_factory=list)
    same_as: dict[str, str] = field(default_factory=dict)
    """Variants the quantizer made byte for byte like an earlier one: variant -> that one."""


def distinct_variants(variants: Mapping[str, bytes]) -> tuple[dict[str, bytes], dict[str, str]]:
    """The variants whose bytes differ from every earlier one's, and the others -> the earlier one
    they repeat (a model whose weights are already float16 makes three identical "variants")."""
    kept: dict[str, bytes] = {}
    same_as: dict[str, str] = {}
    for variant, content in variants.items():
        earlier = next((name for name, bytes_ in kept.items() if bytes_ == content), None)
        if earlier is None:
            kept[variant] = content
        else:
            same_as[variant] = earlier
    return kept, same_as


def _check_runs_at(
    engine: Engine,
    tensors: Sequence[ImportedTensor],
    rows: Mapping[str, tuple[int, ...]],
    limits: Mapping[str, int],
) -> None:
    """Run the model once at its largest rows: a limit the model cannot run at is refused now."""
    shapes = {t.name: rows.get(t.name) or tuple(d if d > 0 else 1 for d in t.row_shape) for t in tensors}
    try:
        engine.predict(generated_inputs(tensors, {}, 1, shapes=shapes))
    except Exception as exc:  # noqa: BLE001 - LiteRT fails to resize or run in many ways
        reason = str(exc) if isinstance(exc, ModelError) else explain_load_error(exc)
        named = ", ".join(f"{name}={limits[name]}" for name in rows)
        raise BuildError(
            f"the model does not run at the largest rows allowed ({named} elements:"
            f" {', '.join(f'{n} {list(r)}' for n, r in rows.items())}): {reason}; give a smaller"
            f" --max-row-elements {next(iter(rows))}=N"
        ) from None


def _manifest_for(
    model: TFLiteModel, name: str, version: str, variant: str, file_name: str, content: bytes
) -> dict[str, Any]:
    inputs, outputs = model.manifest_tensors()
    manifest: dict[str, Any] = {
        "format": 1,
        "name": name,
        "version": version,
        "variant": variant,
        "file": file_name,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "signature": model.signature,
        "inputs": inputs,
        "outputs": outputs,
    }
    if model.stateful:
        manifest["stateful"] = True
    if model.xnnpack_ops:
        manifest["requires_xnnpack"] = list(model.xnnpack_ops)
    return manifest


def build_from_tflite(
    path: Path,
    out_dir: Path,
    *,
    signature: str | None = None,
    calibration: Path | None = None,
    input_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_abs_diff: float = 0.1,
    max_accuracy_drop: float = 0.01,
    name: str | None = None,
    version: str | None = None,
    labels: Path | None = None,
    images: Mapping[str, Mapping[str, Any]] | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    max_row_elements: Mapping[str, int] | None = None,
    latency_repeats: int = 100,
    step: Step = lambda _: None,
) -> ImportResult:
    """Import ``path`` (a ``.tflite`` or a folder holding one) into the artifact folder ``out_dir``.

    Everything is checked and measured in a scratch folder first; ``out_dir`` is replaced
    only at the end, and on any refusal (:class:`BuildError`) nothing is written. An input with
    dynamic dimensions beyond the batch is allocated, measured and recorded (``example_row``) at the
    row shape of the calibration data, or of ``input_shapes`` (``--input-shape NAME=D1,D2,…``),
    and takes rows of up to ``max_row_elements`` elements (checked by running the model at that
    size; default :data:`ROW_ELEMENTS_HEADROOM` times the example row).
    """
    from model.evaluate import classification_metrics
    from model.pipeline import _replace_dir, image_fields, select_variant

    step(f"reading {path}")
    model = read_tflite(Path(path), signature)
    input_fields = image_fields({t.name: t.spec().shape for t in model.inputs}, images or {})
    model_name = name or _NAME_OK.sub("_", model.path.stem) or "model"
    model_name = _NAME_OK.sub("_", model_name)
    model_version = version or model.info.version or "1.0.0"
    label_list = _read_labels(labels) if labels is not None else model.info.labels

    shapes = example_rows(model.inputs, input_shapes or {})
    if calibration is not None:
        from model.data import load_calibration

        dataset = load_calibration(calibration, [(t.name, t.spec().shape) for t in model.inputs])
        evaluation = {t.name: dataset.inputs[t.name].astype(np.dtype(t.dtype)) for t in model.inputs}
        truth = dataset.labels
        shapes = {
            t.name: tuple(evaluation[t.name].shape[1:]) for t in model.inputs if -1 in t.row_shape
        } | shapes
    else:
        missing = [t.name for t in model.inputs if -1 in t.row_shape and t.name not in shapes]
        if missing:
            raise BuildError(
                f"input(s) {', '.join(missing)} have dynamic dimensions beyond the batch: give --calibration"
                " data, or --input-shape NAME=D1,D2,… (one row's shape) to allocate and measure the model at"
            )
        evaluation = generated_inputs(model.inputs, input_ranges or {}, GENERATED_ROWS, shapes=shapes)
        truth = None
    limits = row_limits(model.inputs, shapes, max_row_elements or {})
    for tensor_name, row in shapes.items():
        input_fields.setdefault(tensor_name, {})["example_row"] = list(row)
    for tensor_name, limit in limits.items():
        input_fields[tensor_name]["max_row_elements"] = limit

    variants, skipped = make_variants(model, step)
    variants, same_as = distinct_variants(variants)
    reports: list[dict[str, Any]] = []
    reference: dict[str, np.ndarray] | None = None
    reference_accuracy: float | None = None
    outputs_by_variant: dict[str, dict[str, np.ndarray]] = {}
    for variant, content in list(variants.items()):
        step(f"measuring {variant}")
        file_name = f"{model_name}.{variant}.tflite"
        measured = _manifest_for(model, model_name, model_version, variant, file_name, content)
        for entry in measured["inputs"]:
            entry.update(input_fields.get(entry["name"], {}))
        loaded = Manifest.from_json(measured)
        try:
            engine = Engine(loaded, content, num_threads=1, backends=["ai_edge_litert"])
            outputs = engine.predict(evaluation)
        except (ModelError, Exception) as exc:  # noqa: BLE001
            reason = str(exc) if isinstance(exc, ModelError) else explain_load_error(exc)
            if variant == ORIGINAL:
                raise BuildError(f"{model.path}: LiteRT cannot run the model: {reason}") from None
            skipped[variant] = f"does not run on LiteRT: {reason}"
            del variants[variant]
            continue
        if variant == ORIGINAL and limits:
            _check_runs_at(engine, model.inputs, largest_rows(model.inputs, shapes, limits), limits)
        outputs_by_variant[variant] = outputs
        first = loaded.outputs[0]
        accuracy, auc = classification_metrics(_dequantized(outputs[first.name], first), truth)
        if reference is None:
            reference, reference_accuracy = outputs, accuracy
        diff = max(
            (
                float(np.max(np.abs(_dequantized(outputs[s.name], s) - _dequantized(reference[s.name], s))))
                if outputs[s.name].size
                else 0.0
            )
            for s in loaded.outputs
        )
        reports.append(
            {
                "variant": variant,
                "bytes": len(content),
                "ratio": round(len(content) / len(model.content), 4),
                "ratio_vs_keras": None,
                "accuracy": accuracy,
                "auc": auc,
                "max_abs_diff": diff,
                "latency_us_b1": round(_latency_us(engine, evaluation, latency_repeats), 2),
                "latency_us_b256": None,
                "runtimes": ["ai_edge_litert"],
                "batching": engine.batching,
                "selected": False,
            }
        )
    selected = select_variant(reports, reference_accuracy, max_accuracy_drop, max_abs_diff)
    for report in reports:
        report["selected"] = report["variant"] == selected

    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".litefaas-import-", dir=out.parent))
    try:
        staging = work / "artifact"
        staging.mkdir()
        for variant, content in variants.items():
            (staging / f"{model_name}.{variant}.tflite").write_bytes(content)
        manifest = _manifest_for(
            model, model_name, model_version, selected, f"{model_name}.{selected}.tflite", variants[selected]
        )
        for entry in manifest["inputs"]:
            entry.update(input_fields.get(entry["name"], {}))
        chosen = next(r for r in reports if r["selected"])
        manifest.update(
            {
                "variants": {v: f"{model_name}.{v}.tflite" for v in variants},
                "variants_not_made": skipped,
                "variants_same_as": same_as,
                "batching": chosen["batching"],
                "metrics": {
                    "accuracy": chosen["accuracy"],
                    "auc": chosen["auc"],
                    "reference_accuracy": reference_accuracy,
                    "max_abs_diff": chosen["max_abs_diff"],
                    "evaluated_rows": len(next(iter(evaluation.values()))),
                    "evaluated_on": "calibration data" if calibration is not None else "generated inputs",
                },
                "source": {
                    "file": model.path.name,
                    "bytes": len(model.content),
                    "sha256": model.sha256,
                    "signatures": model.signatures,
                    "ops": model.ops,
                    "min_runtime_version": model.min_runtime_version,
                },
                "metadata": _metadata_json(model.info, model_name, model_version, label_list, staging),
                "quantizer": _quantizer_version(),
                "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            }
        )
        (staging / "compression.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ImportResult(out, manifest, reports, skipped, model, same_as=same_as)


def _read_labels(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(
            f"--labels {path}: cannot read it as UTF-8 text ({exc.__class__.__name__})"
        ) from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise BuildError(f"--labels {path} is empty")
    return labels


def _metadata_json(
    info: ModelInfo, name: str, version: str, labels: list[str], staging: Path
) -> dict[str, Any]:
    data = info.to_json()
    if info.name:
        data["display_name"] = info.name  # the file's own name for itself; the artifact's is the file's stem
    data["name"], data["version"] = name, version
    if labels:
        (staging / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        data["labels_file"] = "labels.txt"
        data["labels_count"] = len(labels)
    data.pop("labels", None)
    return data


def _quantizer_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ai-edge-quantizer")
    except metadata.PackageNotFoundError:
        return None
