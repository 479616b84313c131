"""LiteRT inference over a model artifact (``manifest.json`` plus ``.tflite`` files)."""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger("litefaas")

BACKEND_CHAIN: tuple[str, ...] = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_BACKEND_MODULES = {
    "ai_edge_litert": ("ai_edge_litert.interpreter", "Interpreter"),
    "tflite_runtime": ("tflite_runtime.interpreter", "Interpreter"),
    "tensorflow": ("tensorflow", "lite.Interpreter"),
}
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model" / "artifacts" / "breast_cancer_mlp"

Array = npt.NDArray[Any]


class ModelError(Exception):
    """The model artifact is missing, corrupt, or no backend can run it."""


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of the model; ``shape[0]`` is the batch (``None``)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(
            name=str(data["name"]),
            shape=tuple(None if d is None or d < 0 else int(d) for d in data["shape"]),
            dtype=str(data["dtype"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @functools.cached_property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row: the shape without its batch dimension."""
        return tuple(d if d is not None else -1 for d in self.shape[1:])


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says about the artifact."""

    name: str
    version: str
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signature: str
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            signature=str(data.get("signature", "serving_default")),
            raw=data,
        )

    def public_info(self) -> dict[str, str]:
        """The model's identity as the protocol's responses carry it."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def load_artifact(model_dir: str | Path) -> tuple[Manifest, bytes]:
    """Read the manifest and the selected ``.tflite`` file, checking its sha256."""
    folder = Path(model_dir)
    manifest_path = folder / "manifest.json"
    try:
        manifest = Manifest.from_json(json.loads(manifest_path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ModelError(f"no manifest.json in {folder}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{manifest_path} is not a valid manifest ({exc.__class__.__name__})") from None
    model_path = folder / manifest.file
    try:
        content = model_path.read_bytes()
    except OSError:
        raise ModelError(f"model file {model_path} is missing or unreadable") from None
    if hashlib.sha256(content).hexdigest() != manifest.sha256:
        raise ModelError(f"model file {model_path} does not match the sha256 in its manifest")
    return manifest, content


InterpreterFactory = Callable[..., Any]


def _interpreter_class(backend: str) -> InterpreterFactory:
    module_name, attribute_path = _BACKEND_MODULES[backend]
    found: Any = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        found = getattr(found, attribute)
    factory: InterpreterFactory = found
    return factory


class _Session:
    """One interpreter with its tensor indices; used by one thread at a time."""

    def __init__(
        self,
        factory: InterpreterFactory,
        content: bytes,
        manifest: Manifest,
        num_threads: int | None,
    ) -> None:
        self.interpreter = factory(model_content=content, num_threads=num_threads)
        runner = self.interpreter.get_signature_runner(manifest.signature)
        input_details = runner.get_input_details()
        output_details = runner.get_output_details()
        del runner
        try:
            self.input_index = {spec.name: int(input_details[spec.name]["index"]) for spec in manifest.inputs}
            self.output_index = {
                spec.name: int(output_details[spec.name]["index"]) for spec in manifest.outputs
            }
        except KeyError as exc:
            raise ModelError(f"manifest names a tensor the model does not have: {exc.args[0]}") from None
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.interpreter.allocate_tensors()

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        interpreter = self.interpreter
        resized = False
        for name, index in self.input_index.items():
            shape = inputs[name].shape
            if self.shapes.get(name) != shape:
                interpreter.resize_tensor_input(index, shape)
                self.shapes[name] = shape
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for name, index in self.input_index.items():
            interpreter.set_tensor(index, inputs[name])
        interpreter.invoke()
        return {name: interpreter.get_tensor(index) for name, index in self.output_index.items()}


class Engine:
    """Runs the artifact's selected model; safe to call from many threads.

    Each thread gets its own interpreter (TFLite interpreters are not thread-safe);
    one interpreter serves every batch size by resizing its inputs.
    """

    def __init__(
        self,
        manifest: Manifest,
        content: bytes,
        *,
        num_threads: int | None = None,
        backends: Sequence[str] = BACKEND_CHAIN,
    ) -> None:
        self.manifest = manifest
        self._content = content
        self.num_threads = num_threads
        self._local = threading.local()
        self.backend, self._factory = self._choose_backend(backends)
        logger.debug("backend chosen: %s", self.backend)

    @classmethod
    def from_dir(
        cls,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        *,
        num_threads: int | None = None,
        backends: Sequence[str] = BACKEND_CHAIN,
    ) -> Engine:
        """Load the artifact in ``model_dir`` (checking its sha256) and pick a backend."""
        manifest, content = load_artifact(model_dir)
        return cls(manifest, content, num_threads=num_threads, backends=backends)

    def _choose_backend(self, backends: Sequence[str]) -> tuple[str, InterpreterFactory]:
        problems: list[str] = []
        for backend in backends:
            if backend not in _BACKEND_MODULES:
                raise ModelError(f"unknown backend {backend!r}; known: {', '.join(BACKEND_CHAIN)}")
            try:
                factory = _interpreter_class(backend)
                self._local.session = self._new_session(factory)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a backend that fails in any way is skipped
                problems.append(f"{backend}: {exc.__class__.__name__}")
                continue
            return backend, factory
        raise ModelError("no TFLite backend could run the model (" + "; ".join(problems) + ")")

    def _new_session(self, factory: InterpreterFactory) -> _Session:
        return _Session(factory, self._content, self.manifest, self.num_threads)

    def predict(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one batch: ``{input_name: array}`` in, ``{output_name: array}`` out."""
        try:
            session: _Session = self._local.session
        except AttributeError:
            session = self._local.session = self._new_session(self._factory)
        return session.run(inputs)

    def warm_up(self) -> None:
        """Run one zero row through the model so the first request pays no setup."""
        zeros = {
            spec.name: np.zeros((1, *spec.row_shape), dtype=np.dtype(spec.dtype))
            for spec in self.manifest.inputs
        }
        self.predict(zeros)
