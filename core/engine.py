"""LiteRT inference over a model artifact (``manifest.json`` plus ``.tflite`` files).

Any TFLite model: with or without signatures (tensors then found by name in the
interpreter's tensor details), every dtype LiteRT feeds, several named inputs and
outputs, and a batch dimension that is dynamic, fixed at 1 or absent. How a batch of
N rows runs is decided once per engine: one resized invoke where the model allows
it, else one invoke per row. A stateful model (resource variables) runs every request on an
interpreter no request has used. Over 500 lines: the manifest, the backend chain and the
per-thread interpreters are one concern, the model as the function runs it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
DEFAULT_SIGNATURE = "serving_default"
# The dtypes LiteRT takes for a model's inputs and outputs that a caller can send as numbers.
SERVABLE_DTYPES = frozenset(
    {"float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool"}
)

STATEFUL_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})
"""Ops of a model that keeps resource variables from one invoke to the next (streaming models)."""

Array = npt.NDArray[Any]
Batching = Literal["resize", "per_row"]


class ModelError(Exception):
    """The model artifact is missing, corrupt, or no backend can run it."""


class ShapeNotRunnable(ModelError):
    """A request's input shape, allowed by the model's dynamic dimensions, that the model cannot run at."""


class XnnpackRequired(ModelError):
    """The model needs the XNNPACK delegate (for custom ops only it provides), which is turned off."""


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of an integer tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of the model; ``shape[0]`` is the batch (``None``).

    ``shape`` is what a caller sends or receives: the batch, then one row. The model's
    own shape may have its batch fixed at 1, or no batch dimension at all; the engine
    serves any batch either way.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    quantization: Quantization | None = None
    example_row: tuple[int, ...] | None = None
    """A row shape the model runs at, for an input with dynamic dimensions beyond the batch (the
    build takes it from the calibration data or ``--input-shape``): the shape it is allocated at."""
    max_row_elements: int | None = None
    """For such an input, the most elements one row may have (``build`` records it)."""
    kind: str | None = None
    """An output's kind where the model file says: probabilities, logits, mask or boxes."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        quantization = data.get("quantization")
        example = data.get("example_row")
        return cls(
            name=str(data["name"]),
            shape=tuple(None if d is None or d < 0 else int(d) for d in data["shape"]),
            dtype=str(data["dtype"]),
            quantization=(
                Quantization(float(quantization["scale"]), int(quantization["zero_point"]))
                if quantization
                else None
            ),
            example_row=tuple(int(d) for d in example) if isinstance(example, list) else None,
            max_row_elements=int(data["max_row_elements"]) if data.get("max_row_elements") else None,
            kind=str(data["kind"]) if data.get("kind") else None,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantization is not None:
            data["quantization"] = self.quantization.to_json()
        if self.example_row is not None:
            data["example_row"] = list(self.example_row)
        if self.max_row_elements is not None:
            data["max_row_elements"] = self.max_row_elements
        if self.kind is not None:
            data["kind"] = self.kind
        return data

    @property
    def runnable_row(self) -> tuple[int, ...]:
        """The example row where there is one, else the row shape with every dynamic size 1."""
        if self.example_row is not None:
            return self.example_row
        return tuple(d if d > 0 else 1 for d in self.row_shape)

    @functools.cached_property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row: the shape without its batch dimension (-1 where any size goes)."""
        return tuple(d if d is not None else -1 for d in self.shape[1:])

    @functools.cached_property
    def numpy_dtype(self) -> np.dtype[Any]:
        """``dtype`` as numpy's, made once (numpy parses a dtype's name on every call given one)."""
        return np.dtype(self.dtype)


_PUBLIC_METADATA = ("display_name", "description", "author", "license")


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says about the artifact.

    ``signature`` is None for a model read by tensor names (a ``.tflite`` without
    signatures); a manifest without the key means ``serving_default``.
    """

    name: str
    version: str
    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signature: str | None
    raw: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        signature = data.get("signature", DEFAULT_SIGNATURE)
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            inputs=tuple(TensorSpec.from_json(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_json(t) for t in data["outputs"]),
            signature=None if signature is None else str(signature),
            raw=data,
        )

    @property
    def batching(self) -> Batching | None:
        """How a batch runs, as the build measured it with this runtime; None: decide at load."""
        value = self.raw.get("batching")
        return value if value in ("resize", "per_row") else None

    @property
    def xnnpack_ops(self) -> list[str]:
        """Custom ops of the model that only the XNNPACK delegate provides (the build finds them)."""
        found = self.raw.get("requires_xnnpack")
        return [str(op) for op in found] if isinstance(found, list) else []

    @property
    def stateful(self) -> bool:
        """The build found resource variables in the model (the engine also looks for itself)."""
        return self.raw.get("stateful") is True

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The model's own description (TFLite metadata or build options); empty if none."""
        found = self.raw.get("metadata")
        return found if isinstance(found, Mapping) else {}

    def public_info(self) -> dict[str, str]:
        """The model's identity as the protocol's responses carry it."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def health_info(self) -> dict[str, Any]:
        """What ``GET /health`` may show: the identity, the public metadata, the tensors."""
        info: dict[str, Any] = dict(self.public_info())
        for key in _PUBLIC_METADATA:
            value = self.metadata.get(key)
            if isinstance(value, str) and value:
                info[key] = value
        info["inputs"] = [spec.to_json() for spec in self.inputs]
        info["outputs"] = [spec.to_json() for spec in self.outputs]
        return info


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


def _without_default_delegates(backend: str, factory: InterpreterFactory) -> InterpreterFactory:
    """The backend's interpreter with its built-in ops only: no XNNPACK delegate."""
    module: Any = importlib.import_module(_BACKEND_MODULES[backend][0])
    resolvers = module.lite.experimental.OpResolverType if backend == "tensorflow" else module.OpResolverType
    return functools.partial(
        factory, experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )


def has_batch_axis(shape_signature: Sequence[int]) -> bool:
    """Whether a model tensor's first dimension is a batch: dynamic (-1) or fixed at 1."""
    return len(shape_signature) >= 1 and int(shape_signature[0]) in (-1, 1)


def row_shape_of(shape_signature: Sequence[int]) -> tuple[int, ...]:
    """A model tensor's row: without the batch dimension, -1 where any size goes."""
    dims = tuple(int(d) for d in shape_signature)
    return dims[1:] if has_batch_axis(dims) else dims


def explain_load_error(exc: BaseException) -> str:
    """The real reason a backend could not load or run a model, in one line."""
    if isinstance(exc, ModuleNotFoundError | ImportError):
        return "not installed"
    text = str(exc)
    custom = re.search(r"unresolved custom op:?\s*([^\s.,;]+)", text, re.IGNORECASE)
    if custom:
        return f"the model uses custom op {custom.group(1)}, which LiteRT's built-in ops do not include"
    builtin = re.search(r"Didn't find op for builtin opcode '([^']+)' version '(\d+)'", text)
    if builtin:
        return (
            f"the model uses op {builtin.group(1)} version {builtin.group(2)}, "
            "which this LiteRT version does not have"
        )
    if re.search(r"model identifier|not a valid flatbuffer|Could not open|flatbuffer", text, re.IGNORECASE):
        return "the file is not a valid TFLite model (not a TFLite flatbuffer, or damaged)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{exc.__class__.__name__}: {first[:300]}" if first else exc.__class__.__name__


@dataclass(frozen=True)
class _Binding:
    """One manifest tensor bound to the interpreter's tensor."""

    name: str
    index: int
    dtype: np.dtype[Any]
    batch_axis: bool
    resizable: bool  # the batch dimension is dynamic (-1) in the model


def _tensor_details(interpreter: Any, signature: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input and output details by the names a manifest uses (signature keys, else tensor names)."""
    by_index = {
        int(d["index"]): d for d in [*interpreter.get_input_details(), *interpreter.get_output_details()]
    }
    if signature is None:
        return (
            {str(d["name"]): d for d in interpreter.get_input_details()},
            {str(d["name"]): d for d in interpreter.get_output_details()},
        )
    signatures = interpreter.get_signature_list()
    if signature not in signatures:
        raise ModelError(
            f"the model has no signature {signature!r} (it has: {', '.join(signatures) or 'none'})"
        )
    runner = interpreter.get_signature_runner(signature)
    found = []
    for details in (runner.get_input_details(), runner.get_output_details()):
        found.append({name: by_index.get(int(d["index"]), d) for name, d in details.items()})
    return found[0], found[1]


def _bind(
    specs: Sequence[TensorSpec], details: Mapping[str, Any], kind: str, check_shape: bool
) -> dict[str, _Binding]:
    bindings: dict[str, _Binding] = {}
    for spec in specs:
        detail = details.get(spec.name)
        if detail is None:
            raise ModelError(
                f"the manifest names {kind} {spec.name!r}, which the model does not have "
                f"(its {kind}s: {', '.join(sorted(details)) or 'none'})"
            )
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        model_row = row_shape_of(signature)
        if check_shape and not (
            len(model_row) == len(spec.row_shape)
            and all(m in (-1, s) for m, s in zip(model_row, spec.row_shape, strict=True))
        ):
            raise ModelError(
                f"{kind} {spec.name!r}: the manifest's row shape {list(spec.row_shape)} does not fit "
                f"the model's {list(model_row)}"
            )
        dtype = np.dtype(detail["dtype"])
        if check_shape and dtype != np.dtype(spec.dtype):
            raise ModelError(
                f"{kind} {spec.name!r} is {dtype.name} in the model, {spec.dtype} in the manifest"
            )
        bindings[spec.name] = _Binding(
            spec.name,
            int(detail["index"]),
            dtype,
            has_batch_axis(signature),
            bool(signature and signature[0] == -1),
        )
    return bindings


def _sample_rows(binding: _Binding, row_shape: tuple[int, ...], count: int, seed: int) -> Array:
    rng = np.random.default_rng(seed)
    shape = (count, *(d if d > 0 else 1 for d in row_shape))
    if binding.dtype.kind == "f":
        return rng.uniform(0.0, 1.0, size=shape).astype(binding.dtype)
    if binding.dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(binding.dtype)
    return rng.integers(max(int(info.min), -100), min(int(info.max), 100) + 1, size=shape).astype(
        binding.dtype
    )


def _write_misaligned(interpreter: Any, index: int, value: Array) -> None:
    """An input whose bytes are not aligned to its element size (a tensor read in place at any
    offset of a request): ``set_tensor`` would copy it twice, once to align it, where a view of the
    input tensor takes it in one copy (half the time of a 224x224x3 image). Another shape or type
    goes to ``set_tensor``, whose error it is."""
    view = interpreter.tensor(index)()
    if view.shape != value.shape or view.dtype != value.dtype:
        del view
        interpreter.set_tensor(index, value)
        return
    view[...] = value


class _Session:
    """One interpreter with its tensor indices; used by one thread at a time."""

    def __init__(
        self,
        factory: InterpreterFactory,
        content: bytes,
        manifest: Manifest,
        num_threads: int | None,
        batching: Batching | None,
    ) -> None:
        self.interpreter = factory(model_content=content, num_threads=num_threads)
        input_details, output_details = _tensor_details(self.interpreter, manifest.signature)
        self.inputs = _bind(manifest.inputs, input_details, "input", True)
        self.outputs = _bind(manifest.outputs, output_details, "output", False)
        self.shapes: dict[str, tuple[int, ...]] = {
            name: tuple(int(d) for d in input_details[name]["shape"]) for name in self.inputs
        }
        for spec in manifest.inputs:
            binding = self.inputs[spec.name]
            if spec.example_row is not None and -1 in spec.row_shape:
                self._set_shape(binding, (1, *spec.example_row) if binding.batch_axis else spec.example_row)
        self.interpreter.allocate_tensors()
        self.batching: Batching = batching or self._default_batching()

    def _default_batching(self) -> Batching:
        every = list(self.inputs.values())
        return "resize" if all(b.batch_axis and b.resizable for b in every) else "per_row"

    def op_names(self) -> set[str]:
        """The graph's op names, as the interpreter reports them (empty where it cannot)."""
        try:
            return {str(detail.get("op_name")) for detail in self.interpreter._get_ops_details()}
        except Exception:  # noqa: BLE001 - an interpreter without the listing says nothing
            return set()

    def _set_shape(self, binding: _Binding, shape: tuple[int, ...]) -> bool:
        if self.shapes.get(binding.name) == shape:
            return False
        self.interpreter.resize_tensor_input(binding.index, list(shape), strict=False)
        self.shapes[binding.name] = shape
        return True

    def _invoke(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        interpreter = self.interpreter
        resized = False
        for name, binding in self.inputs.items():
            resized = self._set_shape(binding, inputs[name].shape) or resized
        if resized:
            interpreter.allocate_tensors()
        for name, binding in self.inputs.items():
            value = inputs[name]
            if value.flags.aligned:
                interpreter.set_tensor(binding.index, value)
            else:
                _write_misaligned(interpreter, binding.index, value)
        interpreter.invoke()
        return {name: interpreter.get_tensor(b.index) for name, b in self.outputs.items()}

    def run(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        arrays = {
            name: np.ascontiguousarray(inputs[name], dtype=binding.dtype)
            for name, binding in self.inputs.items()
        }
        if self.batching == "resize":
            return self._invoke(arrays)
        count = len(next(iter(arrays.values())))
        parts: dict[str, list[Array]] = {name: [] for name in self.outputs}
        for row in range(count):
            one = {
                name: arrays[name][row : row + 1] if b.batch_axis else arrays[name][row]
                for name, b in self.inputs.items()
            }
            for name, value in self._invoke(one).items():
                parts[name].append(value if self.outputs[name].batch_axis else value[np.newaxis])
        return {name: np.concatenate(values) for name, values in parts.items()}


class Engine:
    """Runs the artifact's selected model; safe to call from many threads.

    Each thread gets its own interpreter (TFLite interpreters are not thread-safe).
    ``batching`` is how a batch runs, decided once at load: ``resize`` (one invoke,
    the inputs resized to the batch) where the model's batch is dynamic, or fixed at 1
    and a resized run gives the same answers as one row at a time; else ``per_row``.
    """

    def __init__(
        self,
        manifest: Manifest,
        content: bytes,
        *,
        num_threads: int | None = None,
        backends: Sequence[str] = BACKEND_CHAIN,
        xnnpack: bool = True,
    ) -> None:
        if not xnnpack and manifest.xnnpack_ops:
            raise XnnpackRequired(
                f"the model's custom op(s) {', '.join(manifest.xnnpack_ops)} are provided by the XNNPACK"
                " delegate only, which is turned off"
            )
        self.xnnpack = xnnpack
        self.manifest = manifest
        self._content = content
        self.num_threads = num_threads
        self._local = threading.local()
        self.batching: Batching = "resize"
        self.stateful = manifest.stateful
        self._dynamic_rows = any(-1 in spec.row_shape for spec in manifest.inputs)
        """Resource variables: every request runs on a fresh interpreter, its rows in order, so that
        nothing one request leaves in the model's state reaches the next (another caller's)."""
        self.backend, self._factory = self._choose_backend(backends)
        logger.debug("backend chosen: %s, batching: %s", self.backend, self.batching)

    @classmethod
    def from_dir(
        cls,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        *,
        num_threads: int | None = None,
        backends: Sequence[str] = BACKEND_CHAIN,
        xnnpack: bool = True,
    ) -> Engine:
        """Load the artifact in ``model_dir`` (checking its sha256) and pick a backend."""
        manifest, content = load_artifact(model_dir)
        return cls(manifest, content, num_threads=num_threads, backends=backends, xnnpack=xnnpack)

    def _choose_backend(self, backends: Sequence[str]) -> tuple[str, InterpreterFactory]:
        problems: list[tuple[str, str]] = []
        for backend in backends:
            if backend not in _BACKEND_MODULES:
                raise ModelError(f"unknown backend {backend!r}; known: {', '.join(BACKEND_CHAIN)}")
            try:
                factory = _interpreter_class(backend)
                if not self.xnnpack:
                    factory = _without_default_delegates(backend, factory)
                recorded = self.manifest.batching
                session = _Session(factory, self._content, self.manifest, self.num_threads, recorded)
                self.stateful = self.manifest.stateful or bool(session.op_names() & STATEFUL_OPS)
                if self.stateful:
                    session.batching = "per_row"
                elif (
                    recorded is None
                    and session.batching == "per_row"
                    and self._resize_matches(factory, session)
                ):
                    session.batching = "resize"
                self.batching = session.batching
                self._local.session = session
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a backend that fails in any way is skipped
                problems.append((backend, explain_load_error(exc)))
                continue
            return backend, factory
        by_reason: dict[str, list[str]] = {}
        for backend, reason in problems:
            by_reason.setdefault(reason, []).append(backend)
        grouped = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())
        raise ModelError(f"no TFLite backend could run the model ({grouped})")

    def _resize_matches(self, factory: InterpreterFactory, session: _Session) -> bool:
        """For a batch fixed at 1: does a batch of 3 resized give what three single rows give?"""
        specs = {spec.name: spec for spec in self.manifest.inputs}
        bindings = session.inputs.values()
        if not all(b.batch_axis for b in bindings) or any(-1 in specs[b.name].row_shape for b in bindings):
            return False
        rows = {b.name: _sample_rows(b, specs[b.name].row_shape, 3, seed=7) for b in bindings}
        try:
            expected = session.run(rows)
            probe = _Session(factory, self._content, self.manifest, 1, "resize")
            got = probe.run(rows)
        except Exception:  # noqa: BLE001 - a model that cannot be resized runs row by row
            return False
        for name, value in expected.items():
            other = got.get(name)
            if other is None or other.shape != value.shape:
                return False
            if value.dtype.kind == "f":
                if not np.allclose(other, value, rtol=1e-4, atol=1e-5, equal_nan=True):
                    return False
            elif not np.array_equal(other, value):
                return False
        return True

    def _new_session(self, factory: InterpreterFactory) -> _Session:
        return _Session(factory, self._content, self.manifest, self.num_threads, self.batching)

    def predict(self, inputs: Mapping[str, Array]) -> dict[str, Array]:
        """Run one batch: ``{input_name: array}`` in, ``{output_name: array}`` out, N rows each.

        A stateful model runs each batch on an interpreter no request has used (rows in order: one
        stream); the one used is dropped, and the next request's is made at once.
        """
        session: _Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session(self._factory)
        if not self.stateful and not self._dynamic_rows:
            return session.run(inputs)
        try:
            return session.run(inputs)
        except Exception:
            if not self._dynamic_rows:
                raise
            self._local.session = None  # LiteRT may be left half-resized: the next call starts anew
            shapes = ", ".join(f"{name} {list(np.shape(value))}" for name, value in inputs.items())
            raise ShapeNotRunnable(f"the model cannot run at the input shape {shapes}") from None
        finally:
            if self.stateful:
                self._local.session = self._new_session(self._factory)

    def warm_up(self) -> None:
        """Run one zero row through the model so the first request pays no setup."""
        zeros = {
            spec.name: np.zeros((1, *spec.runnable_row), dtype=np.dtype(spec.dtype))
            for spec in self.manifest.inputs
        }
        self.predict(zeros)
