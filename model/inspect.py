"""``litefaas inspect``: what a ``.tflite`` file or an artifact folder holds and what its function accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import Engine, ModelError, load_artifact
from core.oip import model_metadata
from model.errors import BuildError
from model.tflite_read import ImportedTensor, read_tflite


def _accepts(tensor: dict[str, Any]) -> str:
    """What a caller sends for one input, in words."""
    dtype = np.dtype(tensor["dtype"])
    row = ["any" if d is None or d < 0 else d for d in tensor["shape"][1:]]
    if dtype.kind == "f":
        values = f"finite numbers ({dtype.name})"
    elif dtype.kind == "b":
        values = "0 or 1 (bool)"
    else:
        info = np.iinfo(dtype)
        values = f"whole numbers {info.min}..{info.max} ({dtype.name})"
    accepted = f"N rows of shape {row}: {values}"
    if tensor.get("max_row_elements"):
        accepted += f"; at most {tensor['max_row_elements']:,} elements a row"
    elif "any" in row:
        accepted += "; the same shape for every row of a request"
    return accepted


def _tensor_json(tensor: ImportedTensor) -> dict[str, Any]:
    data = tensor.to_json()
    data["batch"] = tensor.batch
    return data


def describe_tflite(path: Path, signature: str | None = None) -> dict[str, Any]:
    """A ``.tflite`` file: tensors, ops, size, metadata, and whether litefaas can serve it (and why not)."""
    model = read_tflite(path, signature, check=False)
    problem = None
    xnnpack_ops: list[str] = []
    try:
        xnnpack_ops = read_tflite(path, signature, check=True).xnnpack_ops
    except BuildError as exc:
        problem = str(exc)
    inputs = [_tensor_json(t) for t in model.inputs]
    outputs = [_tensor_json(t) for t in model.outputs]
    return {
        "kind": "tflite",
        "file": str(model.path),
        "bytes": len(model.content),
        "sha256": model.sha256,
        "signature": model.signature,
        "signatures": model.signatures,
        "inputs": inputs,
        "outputs": outputs,
        "ops": model.ops,
        "custom_ops": model.custom_ops,
        "subgraphs": model.subgraphs,
        "min_runtime_version": model.min_runtime_version,
        "metadata": model.info.to_json(),
        "servable": problem is None,
        "problem": problem,
        "accepts": {t["name"]: _accepts(t) for t in inputs} if problem is None else {},
        "stateful": model.stateful,
        "xnnpack_ops": xnnpack_ops,
    }


def describe_artifact(folder: Path) -> dict[str, Any]:
    """An artifact folder: its manifest, its variants and their sizes, the selected file's ops,
    how the engine batches, and what the function accepts."""
    try:
        manifest, content = load_artifact(folder)
    except ModelError as exc:
        raise BuildError(str(exc)) from None
    raw = dict(manifest.raw)
    variants = {}
    for variant, file_name in dict(raw.get("variants", {})).items():
        file = folder / file_name
        variants[variant] = {"file": file_name, "bytes": file.stat().st_size if file.is_file() else None}
    reports: list[dict[str, Any]] = []
    compression = folder / "compression.json"
    if compression.is_file():
        try:
            reports = json.loads(compression.read_text(encoding="utf-8"))
        except ValueError:
            reports = []
    selected = describe_tflite(folder / manifest.file, manifest.signature)
    try:
        batching: str | None = Engine(manifest, content, num_threads=1).batching
        problem = selected["problem"]
    except ModelError as exc:
        batching, problem = None, str(exc)
    inputs = [spec.to_json() for spec in manifest.inputs]
    return {
        "kind": "artifact",
        "folder": str(folder),
        "name": manifest.name,
        "version": manifest.version,
        "variant": raw.get("variant"),
        "file": manifest.file,
        "bytes": len(content),
        "sha256": manifest.sha256,
        "signature": manifest.signature,
        "inputs": [{**t, **_model_side(t["name"], selected["inputs"])} for t in inputs],
        "outputs": [{**s.to_json(), **_model_side(s.name, selected["outputs"])} for s in manifest.outputs],
        "ops": selected["ops"],
        "variants": variants,
        "variants_not_made": raw.get("variants_not_made", {}),
        "variants_same_as": raw.get("variants_same_as", {}),
        "compression": reports,
        "metadata": raw.get("metadata", {}),
        "health": manifest.health_info(),
        "oip": model_metadata(manifest),
        "batching": batching,
        "servable": problem is None,
        "problem": problem,
        "accepts": {t["name"]: _accepts(t) for t in inputs},
        "stateful": manifest.stateful or selected["stateful"],
        "xnnpack_ops": manifest.xnnpack_ops or selected["xnnpack_ops"],
    }


def _model_side(name: str, tensors: list[dict[str, Any]]) -> dict[str, Any]:
    found = next((t for t in tensors if t["name"] == name), None)
    return {"model_shape": found["model_shape"], "batch": found["batch"]} if found else {}


def describe(path_or_artifact: str | Path) -> dict[str, Any]:
    """:func:`describe_artifact` for a folder with ``manifest.json``, else :func:`describe_tflite`."""
    path = Path(path_or_artifact)
    if path.is_dir() and (path / "manifest.json").is_file():
        return describe_artifact(path)
    return describe_tflite(path)
