"""A model to convert: the built-in seed MLP or a user's Keras file or SavedModel folder."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import BuildError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import tensorflow as tf

Arrays = dict[str, np.ndarray]
SIGNATURE = "serving_default"
_NAME_OK = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class ModelSource:
    """A SavedModel ready for the TFLite converter, with its signature and a reference predictor."""

    name: str
    saved_model_dir: Path
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    reference_bytes: int
    predict: Callable[[Arrays], Arrays]


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _shape(tensor_shape: object) -> tuple[int | None, ...]:
    dims = tf.TensorShape(tensor_shape).as_list()
    return tuple(None if i == 0 else d for i, d in enumerate(dims))


def from_keras(model: keras.Model, work_dir: Path, name: str, reference_bytes: int) -> ModelSource:
    """Export a Keras model as a SavedModel whose signature names every input and output."""
    input_names = [str(t.name) for t in model.inputs]
    output_names = [str(n) for n in getattr(model, "output_names", [])] or [
        f"output_{i}" for i in range(len(model.outputs))
    ]
    for tensor_name in input_names + output_names:
        if not _NAME_OK.fullmatch(tensor_name):
            raise BuildError(f"tensor name {tensor_name!r} cannot be a TFLite signature name")
    if len(set(input_names)) != len(input_names) or len(set(output_names)) != len(output_names):
        raise BuildError("the model's input or output names are not unique")
    specs = [
        tf.TensorSpec(_shape(t.shape), tf.as_dtype(t.dtype), name=n)
        for t, n in zip(model.inputs, input_names, strict=True)
    ]

    def call(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        result = model(list(tensors) if len(tensors) > 1 else tensors[0], training=False)
        values = list(result) if isinstance(result, list | tuple) else [result]
        return dict(zip(output_names, values, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE, fn=call, input_signature=specs)
    export_dir = work_dir / "saved_model"
    archive.write_out(str(export_dir), verbose=False)

    def predict(inputs: Arrays) -> Arrays:
        batch = [inputs[n] for n in input_names]
        result = model.predict(batch if len(batch) > 1 else batch[0], verbose=0, batch_size=1024)
        values = list(result) if isinstance(result, list | tuple) else [result]
        return {n: np.asarray(v) for n, v in zip(output_names, values, strict=True)}

    return ModelSource(
        name=name,
        saved_model_dir=export_dir,
        inputs=[
            TensorInfo(n, _shape(t.shape), str(t.dtype))
            for t, n in zip(model.inputs, input_names, strict=True)
        ],
        outputs=[
            TensorInfo(n, _shape(t.shape), str(t.dtype))
            for t, n in zip(model.outputs, output_names, strict=True)
        ],
        reference_bytes=reference_bytes,
        predict=predict,
    )


def from_saved_model(path: Path, name: str) -> ModelSource:
    """Use a SavedModel folder's ``serving_default`` signature as it is."""
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - TF raises many kinds here
        raise BuildError(f"{path} is not a loadable SavedModel ({exc.__class__.__name__})") from None
    signatures = getattr(loaded, "signatures", {})
    if SIGNATURE not in signatures:
        raise BuildError(
            f"SavedModel {path} has no {SIGNATURE!r} signature (has: {', '.join(signatures) or 'none'})"
        )
    function = signatures[SIGNATURE]
    input_specs = function.structured_input_signature[1]
    output_specs = function.structured_outputs
    inputs = [TensorInfo(n, _shape(s.shape), s.dtype.name) for n, s in sorted(input_specs.items())]
    outputs = [TensorInfo(n, _shape(s.shape), s.dtype.name) for n, s in sorted(output_specs.items())]

    def predict(batch: Arrays) -> Arrays:
        result = function(**{n: tf.constant(v) for n, v in batch.items()})
        return {n: t.numpy() for n, t in result.items()}

    return ModelSource(name, path, inputs, outputs, _tree_bytes(path), predict)


def load_user_model(path: Path, work_dir: Path) -> ModelSource:
    """Import ``--from``: a ``.keras``/``.h5`` file or a SavedModel folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem if path.is_file() else path.name) or "model"
    if not path.exists():
        raise BuildError(f"model not found: {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise BuildError(f"{path} is a folder without saved_model.pb: not a SavedModel")
        return from_saved_model(path, name)
    if path.suffix not in {".keras", ".h5"}:
        raise BuildError(f"{path}: expected a .keras or .h5 file, or a SavedModel folder")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        raise BuildError(f"{path} is not a loadable Keras model ({exc.__class__.__name__})") from None
    return from_keras(model, work_dir, name, _tree_bytes(path))
