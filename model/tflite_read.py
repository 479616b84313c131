"""Read a TFLite model this project did not build: its tensors, ops and metadata, and whether
LiteRT can serve it.

Inputs and outputs by signature where the file has one, else from the interpreter's tensor details;
what LiteRT cannot serve (custom ops, a damaged file, string tensors) is refused with a
:class:`model.errors.BuildError` that says why. No TensorFlow: LiteRT reads the flatbuffer itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import (
    SERVABLE_DTYPES,
    STATEFUL_OPS,
    Quantization,
    TensorSpec,
    explain_load_error,
    row_shape_of,
)
from model.errors import BuildError
from model.output_kinds import output_kind, producers
from model.tflite_metadata import ModelInfo, read_metadata

DEFAULT_SIGNATURE = "serving_default"
ORIGINAL = "original"
"""The variant name of the file as it was given (an artifact keeps it among its variants)."""
# Custom ops that LiteRT's built-in op resolver registers all the same.
_RESOLVED_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})


@dataclass(frozen=True)
class ImportedTensor:
    """One input or output as the model declares it."""

    name: str  # the signature key, or the tensor name without a signature
    tensor: str  # the tensor's name in the graph
    index: int
    dtype: str
    shape_signature: tuple[int, ...]  # -1 where the size is dynamic
    quantization: Quantization | None
    kind: str | None = None  # an output's kind where the file says (model.output_kinds)

    @property
    def row_shape(self) -> tuple[int, ...]:
        return row_shape_of(self.shape_signature)

    @property
    def batch(self) -> str:
        """``dynamic``, ``fixed at 1`` or ``none`` (the tensor has no batch dimension)."""
        if not self.shape_signature or self.shape_signature[0] not in (-1, 1):
            return "none"
        return "dynamic" if self.shape_signature[0] == -1 else "fixed at 1"

    def spec(self) -> TensorSpec:
        return TensorSpec(
            self.name,
            (None, *(d if d >= 0 else None for d in self.row_shape)),
            self.dtype,
            self.quantization,
            kind=self.kind,
        )

    def to_json(self) -> dict[str, Any]:
        data = self.spec().to_json()
        data["model_shape"] = list(self.shape_signature)
        if self.tensor != self.name:
            data["tensor"] = self.tensor
        return data


@dataclass
class TFLiteModel:
    """What a ``.tflite`` file holds, read without running it."""

    path: Path
    content: bytes
    signature: str | None
    signatures: list[str]
    inputs: list[ImportedTensor]
    outputs: list[ImportedTensor]
    ops: dict[str, int]  # op name -> how many times the graph uses it
    custom_ops: list[str]
    subgraphs: int
    info: ModelInfo
    min_runtime_version: str | None = None
    xnnpack_ops: list[str] = field(default_factory=list)
    """Custom ops only LiteRT's XNNPACK delegate provides: the model runs only with it on."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def stateful(self) -> bool:
        """Resource variables: state kept from one invoke to the next (a streaming model)."""
        return not STATEFUL_OPS.isdisjoint(self.ops)

    def manifest_tensors(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return [t.to_json() for t in self.inputs], [t.to_json() for t in self.outputs]


def find_tflite(path: Path) -> Path:
    """``path`` itself, or the one ``.tflite`` file of a folder (an artifact's selected file)."""
    if not path.exists():
        raise BuildError(f"model not found: {path}")
    if path.is_file():
        return path
    manifest = path / "manifest.json"
    if manifest.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            chosen = path / str(data.get("variants", {}).get(ORIGINAL) or data["file"])
            if chosen.is_file():
                return chosen
    found = sorted(path.glob("*.tflite"))
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise BuildError(f"{path} must hold exactly one .tflite file (found: {listed})")
    return found[0]


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {
        int(value): name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def _read_ops(content: bytes) -> tuple[dict[str, int], list[str], int, str | None, Any, list[str]]:
    """Op counts, custom op names, subgraph count, min runtime version, the parsed model, and the
    name of each operator code."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(content, 0)
    names = _builtin_names()
    codes: list[tuple[str, bool]] = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            codes.append((custom.decode("utf-8", "replace") if custom else "CUSTOM", True))
        else:
            codes.append((names.get(builtin, f"BUILTIN_{builtin}"), False))
    ops: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            name = codes[subgraph.Operators(o).OpcodeIndex()][0]
            ops[name] = ops.get(name, 0) + 1
    custom_ops = sorted({name for name, custom in codes if custom} - _RESOLVED_CUSTOM_OPS)
    min_runtime = None
    for m in range(model.MetadataLength()):
        entry = model.Metadata(m)
        if entry.Name() == b"min_runtime_version":
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray):
                min_runtime = bytes(data).split(b"\0")[0].decode("ascii", "replace") or None
    return ops, custom_ops, model.SubgraphsLength(), min_runtime, model, [name for name, _ in codes]


def _interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=content, num_threads=1)


def _quantization(detail: Mapping[str, Any]) -> Quantization | None:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale or np.dtype(detail["dtype"]).kind == "f":
        return None
    return Quantization(float(scale), int(zero_point))


def _tensor(name: str, detail: Mapping[str, Any]) -> ImportedTensor:
    dtype = np.dtype(detail["dtype"])
    return ImportedTensor(
        name=name,
        tensor=str(detail["name"]),
        index=int(detail["index"]),
        dtype=dtype.name if dtype.kind not in "OSU" else "string",
        shape_signature=tuple(int(d) for d in detail.get("shape_signature", detail["shape"])),
        quantization=_quantization(detail),
    )


def read_tflite(path: Path, signature: str | None = None, *, check: bool = True) -> TFLiteModel:
    """Read a ``.tflite`` file; with ``check``, refuse (:class:`BuildError`, one line) what
    LiteRT cannot serve: not a flatbuffer, damaged, custom ops, string tensors."""
    file = find_tflite(path)
    try:
        content = file.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read {file} ({exc.strerror or exc.__class__.__name__})") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise BuildError(f"{file} is not a TFLite model (not a TFLite flatbuffer: no TFL3 identifier)")
    try:
        interpreter = _interpreter(content)
        ops, custom_ops, subgraphs, min_runtime, parsed, op_names = _read_ops(content)
    except Exception as exc:  # noqa: BLE001 - the flatbuffer verifier and reader raise many kinds
        reason = explain_load_error(exc)
        if "not a valid TFLite model" in reason:
            reason = "not a valid TFLite flatbuffer"
        raise BuildError(f"{file} is damaged: {reason}") from None
    if check:
        try:
            interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001
            reason = explain_load_error(exc)
            unresolved = re.search(r"custom op (\S+),", reason)
            if unresolved:
                named = custom_ops if unresolved.group(1) in custom_ops else [unresolved.group(1)]
                flex = (
                    " (TensorFlow ops: they need the Flex delegate)"
                    if any(n.startswith("Flex") for n in named)
                    else ""
                )
                which = "custom op" if len(named) == 1 else "custom ops"
                reason = (
                    f"the model uses {which} {', '.join(named)}{flex}, "
                    "which LiteRT's built-in ops do not include"
                )
            raise BuildError(f"{file}: {reason}") from None
    xnnpack_ops = _xnnpack_only(content, custom_ops) if check else []
    signatures = list(interpreter.get_signature_list())
    chosen = _choose_signature(file, signatures, signature)
    if chosen is None:
        inputs = [_tensor(str(d["name"]), d) for d in interpreter.get_input_details()]
        outputs = [_tensor(str(d["name"]), d) for d in interpreter.get_output_details()]
    else:
        runner = interpreter.get_signature_runner(chosen)
        inputs = [_tensor(n, d) for n, d in runner.get_input_details().items()]
        outputs = [_tensor(n, d) for n, d in runner.get_output_details().items()]
    info = read_metadata(content, parsed)
    model = TFLiteModel(
        path=file,
        content=content,
        signature=chosen,
        signatures=signatures,
        inputs=inputs,
        outputs=_with_kinds(outputs, info, parsed, op_names),
        ops=ops,
        custom_ops=custom_ops,
        subgraphs=subgraphs,
        info=info,
        min_runtime_version=min_runtime,
        xnnpack_ops=xnnpack_ops,
    )
    if check:
        _check_tensors(file, model)
    return model


def _with_kinds(
    outputs: list[ImportedTensor], info: ModelInfo, parsed: Any, op_names: list[str]
) -> list[ImportedTensor]:
    """The outputs, each with its kind where the metadata or the graph says (metadata lists the
    main subgraph's outputs in their order there, which need not be the signature's)."""
    try:
        made_by = producers(parsed, op_names)
        subgraph = parsed.Subgraphs(0)
        graph_outputs = [int(subgraph.Outputs(i)) for i in range(subgraph.OutputsLength())]
    except Exception:  # noqa: BLE001 - a graph that cannot be walked says nothing of its outputs
        return outputs
    described = dict(zip(graph_outputs, info.outputs, strict=False))
    return [
        dataclasses.replace(t, kind=output_kind(t.index, t.shape_signature, described.get(t.index), made_by))
        for t in outputs
    ]


def output_kinds_in(content: bytes, signature: str | None) -> dict[str, str]:
    """The kinds of a model's outputs (by output name) that its metadata or graph says."""
    interpreter = _interpreter(content)
    *_, parsed, op_names = _read_ops(content)
    if signature is None:
        details = {str(d["name"]): d for d in interpreter.get_output_details()}
    else:
        details = interpreter.get_signature_runner(signature).get_output_details()
    outputs = _with_kinds(
        [_tensor(n, d) for n, d in details.items()], read_metadata(content, parsed), parsed, op_names
    )
    return {t.name: t.kind for t in outputs if t.kind}


def _xnnpack_only(content: bytes, custom_ops: list[str]) -> list[str]:
    """The custom ops (of a model that allocates with LiteRT's defaults) that it cannot resolve
    without its default delegate, XNNPACK: MediaPipe's ``Convolution2DTransposeBias`` and kin."""
    if not custom_ops:
        return []
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(
        model_content=content,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    try:
        plain.allocate_tensors()
        plain.invoke()  # an unresolved op is found when its node first runs
    except Exception as exc:  # noqa: BLE001 - LiteRT says which op it could not resolve
        unresolved = re.findall(r"unresolved custom op:? (\S+?)[.,]", str(exc))
        return sorted({op for op in unresolved if op in custom_ops})
    return []


def _choose_signature(file: Path, signatures: list[str], wanted: str | None) -> str | None:
    if wanted is not None:
        if wanted not in signatures:
            raise BuildError(
                f"{file} has no signature {wanted!r} (it has: {', '.join(signatures) or 'none'})"
            )
        return wanted
    if not signatures:
        return None
    if DEFAULT_SIGNATURE in signatures:
        return DEFAULT_SIGNATURE
    if len(signatures) == 1:
        return signatures[0]
    raise BuildError(f"{file} has several signatures ({', '.join(signatures)}): choose one with --signature")


def _check_tensors(file: Path, model: TFLiteModel) -> None:
    if not model.inputs:
        raise BuildError(f"{file}: the model has no inputs")
    for kind, tensors in (("input", model.inputs), ("output", model.outputs)):
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise BuildError(f"{file}: the model's {kind} names are not unique ({', '.join(names)})")
        for tensor in tensors:
            if tensor.dtype not in SERVABLE_DTYPES:
                what = "a string" if tensor.dtype == "string" else f"a {tensor.dtype}"
                raise BuildError(
                    f"{file}: {kind} {tensor.name!r} is {what} tensor; litefaas sends and receives "
                    "numbers only (float, int, uint and bool tensors)"
                )


# ---------------------------------------------------------------------------------- compression
