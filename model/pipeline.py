"""``litefaas build``: train or import, convert, measure, select, write the artifact."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from core.engine import Manifest
from model.data import BREAST_CANCER_LABEL, Dataset, breast_cancer, load_calibration
from model.errors import BuildError

if TYPE_CHECKING:
    import keras

    from model.source import ModelSource

DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts" / "breast_cancer_mlp"

Step = Callable[[str], None]
EpochProgress = Callable[[int, int, dict[str, float]], None]


@dataclass
class BuildOptions:
    out: Path = DEFAULT_OUT
    source: Path | None = None
    calibration: Path | None = None
    max_accuracy_drop: float = 0.01
    max_abs_diff: float = 0.1
    epochs: int = 60
    seed: int = 42
    name: str | None = None
    version: str = "1.0.0"
    images: dict[str, dict[str, object]] = field(default_factory=dict)
    """Image declarations (``ImageSpec.to_json()`` form) to attach to model inputs, by input name."""


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, object]
    reports: list[dict[str, object]]
    reference_accuracy: float | None
    keras_bytes: int
    notes: list[str] = field(default_factory=list)


def select_variant(
    reports: list[dict[str, object]],
    reference_accuracy: float | None,
    max_accuracy_drop: float,
    max_abs_diff: float,
) -> str:
    """The smallest variant that loads on LiteRT and stays within the accuracy budget
    (or, without labels, within ``max_abs_diff`` of the reference model)."""

    def acceptable(report: dict[str, object]) -> bool:
        if "ai_edge_litert" not in report["runtimes"]:  # type: ignore[operator]
            return False
        accuracy = report["accuracy"]
        if reference_accuracy is not None and accuracy is not None:
            return reference_accuracy - float(accuracy) <= max_accuracy_drop + 1e-12  # type: ignore[arg-type]
        return float(report["max_abs_diff"]) <= max_abs_diff  # type: ignore[arg-type]

    candidates = [r for r in reports if acceptable(r)]
    if not candidates:
        raise BuildError(
            "no variant loads on LiteRT within the accuracy budget "
            f"(--max-accuracy-drop {max_accuracy_drop}); see the table"
        )
    return str(min(candidates, key=lambda r: int(r["bytes"]))["variant"])  # type: ignore[call-overload]


def build(
    options: BuildOptions, step: Step = lambda _: None, epoch: EpochProgress | None = None
) -> BuildResult:
    """Run the whole pipeline; write ``options.out`` only once everything succeeded."""
    from model.source import from_keras, load_user_model

    out, work, staging = make_workspace(options.out)
    try:
        feature_names: list[str] = []
        label_meaning: str | None = None
        if options.source is None:
            step("loading the breast-cancer data set")
            split = breast_cancer(seed=options.seed)
            step("training the seed MLP")
            model = _train(split.train, options, epoch)
            keras_path = work / "model.keras"
            model.save(keras_path)
            source = from_keras(model, work, options.name or "breast_cancer_mlp", keras_path.stat().st_size)
            calibration, evaluation = split.train, split.test
            feature_names, label_meaning = split.test.feature_names, BREAST_CANCER_LABEL
        else:
            step(f"loading {options.source}")
            source = load_user_model(options.source, work)
            if options.name:
                source.name = options.name
            if options.calibration is None:
                raise BuildError("--calibration data.npz is required with --from (a representative dataset)")
            calibration = load_calibration(options.calibration, [(t.name, t.shape) for t in source.inputs])
            evaluation = calibration
        return convert_and_write(
            source,
            calibration,
            evaluation,
            options,
            staging,
            out,
            step,
            ArtifactExtras(
                feature_names=feature_names,
                label_meaning=label_meaning,
                input_fields=image_fields({t.name: t.shape for t in source.inputs}, options.images),
            ),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class ArtifactExtras:
    """What a built model's manifest says beyond its tensors: feature names, the label's meaning,
    per-input fields (an ``image`` declaration), ``metadata`` and small files (``labels.txt``)."""

    feature_names: list[str] = field(default_factory=list)
    label_meaning: str | None = None
    input_fields: dict[str, dict[str, object]] = field(default_factory=dict)
    metadata: dict[str, object] | None = None
    files: dict[str, str] = field(default_factory=dict)


def convert_and_write(
    source: ModelSource,
    calibration: Dataset,
    evaluation: Dataset,
    options: BuildOptions,
    staging: Path,
    out: Path,
    step: Step = lambda _: None,
    extras: ArtifactExtras | None = None,
) -> BuildResult:
    """Convert ``source`` to every variant, measure each on ``evaluation``, select one, and move
    the finished artifact from ``staging`` to ``out`` (atomically)."""
    import keras
    import tensorflow as tf

    from model.convert import convert_variants
    from model.evaluate import classification_metrics, evaluate_variant

    extras = extras or ArtifactExtras()
    for spec in source.inputs:
        if spec.dtype != "float32":
            raise BuildError(f"input {spec.name!r} is {spec.dtype}; litefaas serves float32 inputs")

    step("computing the reference outputs")
    reference = source.predict(evaluation.inputs)
    first_output = source.outputs[0].name
    reference_accuracy, reference_auc = classification_metrics(reference[first_output], evaluation.labels)

    step("converting to float32, float16, dynamic-range and int8")
    variants = convert_variants(source, calibration)
    float32_bytes = len(variants["float32"])

    reports = []
    for variant, content in variants.items():
        step(f"measuring {variant}")
        file_name = f"{source.name}.{variant}.tflite"
        (staging / file_name).write_bytes(content)
        manifest = _manifest(source, variant, file_name, content, extras, options)
        report = evaluate_variant(
            variant,
            content,
            Manifest.from_json(manifest),
            evaluation,
            reference,
            float32_bytes,
            source.reference_bytes,
        )
        if "ai_edge_litert" not in report.runtimes and variant == "float32":
            raise BuildError("the float32 model does not load on LiteRT")
        reports.append(report.to_json())

    selected = select_variant(reports, reference_accuracy, options.max_accuracy_drop, options.max_abs_diff)
    for row in reports:
        row["selected"] = row["variant"] == selected
    chosen = next(r for r in reports if r["selected"])
    file_name = f"{source.name}.{selected}.tflite"
    manifest = _manifest(source, selected, file_name, variants[selected], extras, options)
    manifest.update(
        {
            "variants": {v: f"{source.name}.{v}.tflite" for v in variants},
            "metrics": {
                "accuracy": chosen["accuracy"],
                "auc": chosen["auc"],
                "reference_accuracy": reference_accuracy,
                "reference_auc": reference_auc,
                "evaluated_rows": len(evaluation),
            },
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        }
    )
    if extras.metadata is not None:
        manifest["metadata"] = extras.metadata
    for name, text in extras.files.items():
        (staging / name).write_text(text, encoding="utf-8")
    (staging / "compression.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _replace_dir(staging, out)
    return BuildResult(out, manifest, reports, reference_accuracy, source.reference_bytes)


def image_fields(
    shapes: Mapping[str, Sequence[int | None]], images: Mapping[str, Mapping[str, object]]
) -> dict[str, dict[str, object]]:
    """``{"image": ...}`` manifest fields for the named inputs (``shapes``: input name -> caller
    shape, batch first), each declaration checked against the input's row shape."""
    from core.images import ImageSpec

    fields: dict[str, dict[str, object]] = {}
    for name, declaration in images.items():
        if name not in shapes:
            raise BuildError(
                f"--image-input {name!r}: the model has no such input (inputs: {', '.join(shapes)})"
            )
        try:
            image = ImageSpec.from_json(declaration)
        except (ValueError, KeyError, TypeError) as exc:
            raise BuildError(f"--image-input {name!r}: {exc}") from None
        row = [None if d is None or d < 0 else d for d in list(shapes[name])[1:]]
        wanted = [image.height, image.width, image.channels][: len(row)]
        fits = len(row) == 3 or (len(row) == 2 and image.channels == 1)
        if not fits or any(d is not None and d != w for d, w in zip(row, wanted, strict=True)):
            shown = [d if d is not None else -1 for d in row]
            raise BuildError(
                f"--image-input {name!r}: rows of shape {shown} cannot hold "
                f"{image.height}x{image.width} images with {image.channels} channel(s)"
            )
        fields[name] = {"image": image.to_json()}
    return fields


def image_declaration(
    size: tuple[int, int],
    *,
    channels: int = 3,
    resize: str = "bilinear",
    invert: bool = False,
    fit: str = "stretch",
    scale: float | None = None,
    offset: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> dict[str, object]:
    """A manifest ``image`` object from ``--image-*`` options (checked; ``BuildError`` says why)."""
    from core.images import ImageSpec

    if (mean is not None or std is not None) and (scale is not None or offset is not None):
        raise BuildError("--image-mean/--image-std and --image-scale/--image-offset exclude each other")
    if (mean is None) != (std is None):
        raise BuildError("image: give mean and std together (--image-mean and --image-std)")
    data: dict[str, object] = {
        "height": size[0],
        "width": size[1],
        "channels": channels,
        "resize": resize,
        "invert": invert,
        "fit": fit,
    }
    if mean is not None or std is not None:
        data |= {"mean": list(mean or ()), "std": list(std or ())}
    else:
        data |= {"scale": 1.0 if scale is None else scale, "offset": 0.0 if offset is None else offset}
    try:
        return ImageSpec.from_json(data).to_json()
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"--image-*: {exc}") from None


def make_workspace(out: Path) -> tuple[Path, Path, Path]:
    """The resolved ``out``, a scratch folder beside it, and the artifact's staging folder in it."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".litefaas-build-", dir=out.parent))
    staging = work / "artifact"
    staging.mkdir()
    return out, work, staging


def _train(train: Dataset, options: BuildOptions, epoch: EpochProgress | None) -> keras.Model:
    from model.train import train_seed_mlp

    return train_seed_mlp(train, seed=options.seed, epochs=options.epochs, progress=epoch)


def _manifest(
    source: ModelSource,
    variant: str,
    file_name: str,
    content: bytes,
    extras: ArtifactExtras,
    options: BuildOptions,
) -> dict[str, object]:
    from model.tflite_read import output_kinds_in

    kinds = output_kinds_in(content, "serving_default")
    return {
        "format": 1,
        "name": source.name,
        "version": options.version,
        "variant": variant,
        "file": file_name,
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "signature": "serving_default",
        "inputs": [t.to_json() | extras.input_fields.get(t.name, {}) for t in source.inputs],
        "outputs": [t.to_json() | _kind(kinds, t.name) for t in source.outputs],
        "feature_names": extras.feature_names,
        "label": {"output": source.outputs[0].name, "meaning": extras.label_meaning},
    }


def _kind(kinds: dict[str, str], name: str) -> dict[str, str]:
    return {"kind": kinds[name]} if name in kinds else {}


def _replace_dir(staging: Path, out: Path) -> None:
    """Move ``staging`` to ``out`` so that ``out`` is never half-written."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} exists and is not a folder")
    previous = out.with_name(f".{out.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)
    staging.rename(out)
    shutil.rmtree(previous, ignore_errors=True)
