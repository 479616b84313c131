"""The Open Inference Protocol's codec: metadata, and inference requests and answers in JSON or binary.

``PROTOCOL.md`` ("Open Inference Protocol routes") is the contract, with the OIP specification and
Triton's binary tensor data extension for the rest: a JSON header (all of the body, or its first
``Inference-Header-Content-Length`` bytes), then each input's raw bytes where its
``parameters.binary_data_size`` says so. Tensors are checked by the same
:class:`core.tensors.ModelInputs` as version 2's; every problem is :class:`InvalidPayload` naming the
input (the app answers it ``400``), never another exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.engine import Array, Manifest, TensorSpec
from core.errors import InvalidPayload
from core.images import ImageSpec
from core.protocol import OIP_EXTENSIONS, OIP_HEADER_LENGTH, OIP_PLATFORM, SERVER_NAME, SERVER_VERSION
from core.tensors import (
    BYTES,
    DATATYPES,
    Buffer,
    ModelInputs,
    TensorHeader,
    TensorReader,
    datatype_of,
    json_object,
    tensor_bytes,
)

_REQUEST_FIELDS = frozenset({"id", "parameters", "inputs", "outputs", "model_name", "model_version"})
"""The specification's four, and the two that KServe's client adds (checked against the route's)."""
_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_FIELDS = frozenset({"name", "parameters"})
_HEADER_FIELDS = ("name", "datatype", "shape")
_STATEFUL = ("sequence_id", "sequence_start", "sequence_end")
_MAX_HEADER_DIGITS = 12
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_FLOAT_KINDS = frozenset({int, float})
_ALLOWED_TYPES: dict[str, frozenset[type]] = {"f": _FLOAT_KINDS, "i": frozenset({int}), "u": frozenset({int})}


def server_metadata() -> dict[str, Any]:
    """``GET /v2``."""
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(OIP_EXTENSIONS)}


def _metadata_tensor(spec: TensorSpec) -> dict[str, Any]:
    shape = [-1 if d is None or d < 0 else d for d in spec.shape]
    return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": shape}


def model_metadata(manifest: Manifest) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the batch and every other dynamic dimension as ``-1``."""
    return {
        "name": manifest.name,
        "versions": [manifest.version],
        "platform": OIP_PLATFORM,
        "inputs": [_metadata_tensor(spec) for spec in manifest.inputs],
        "outputs": [_metadata_tensor(spec) for spec in manifest.outputs],
    }


@dataclass(frozen=True, slots=True)
class InferRequest:
    """An inference request read and checked: the model's inputs, the outputs wanted, the caller's id."""

    arrays: dict[str, Array]
    outputs: list[tuple[str, bool]]
    """(output name, answered as binary data), in the order wanted."""
    id: str | None


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(item, str | int | float | bool) for item in value.values()
    ):
        raise InvalidPayload(f"{where}: parameters must be an object of strings, numbers and booleans")
    for name in value:
        if name.startswith("shared_memory"):
            raise InvalidPayload(f"{where}: shared memory is not available on a serverless function")
    return value


def _flag(parameters: Mapping[str, Any], name: str, where: str, default: bool) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidPayload(f"{where}: parameters.{name} must be true or false")
    return value


def _split_body(body: Buffer, header_length: str | None) -> tuple[memoryview, memoryview]:
    """The JSON header and the binary data after it, as ``Inference-Header-Content-Length`` says."""
    view = memoryview(body).cast("B")
    if header_length is None:
        return view, view[len(view) :]
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_HEADER_DIGITS:
        raise InvalidPayload(f"{OIP_HEADER_LENGTH} must be a byte count")
    length = int(text)
    if not 0 < length <= len(view):
        raise InvalidPayload(f"{OIP_HEADER_LENGTH} {length} is not within the body's {len(view)} bytes")
    return view[:length], view[length:]


def read_infer_request(
    body: Buffer,
    header_length: str | None,
    manifest: Manifest,
    max_batch: int,
    images: Mapping[str, ImageSpec] | None = None,
) -> InferRequest:
    """Read an inference request (JSON, or JSON then binary data) and check it against the model."""
    head, binary = _split_body(body, header_length)
    try:
        request = json_object(head)
    except (ValueError, RecursionError):
        raise InvalidPayload("the inference request is not a UTF-8 JSON object") from None
    unknown = request.keys() - _REQUEST_FIELDS
    if unknown:
        raise InvalidPayload(f"unknown field(s) {', '.join(sorted(unknown))[:200]}")
    for name, expected in (("model_name", manifest.name), ("model_version", manifest.version)):
        if name in request and request[name] != expected:
            raise InvalidPayload(f"{name} is not this route's model {expected}")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidPayload("id must be a string")
    parameters = _parameters(request.get("parameters"), "the request")
    for name in _STATEFUL:
        if name in parameters:
            raise InvalidPayload(f"parameters.{name}: this function keeps no state between requests")
    binary_default = _flag(parameters, "binary_data_output", "the request", False)
    arrays = _read_inputs(request.get("inputs"), binary, manifest.inputs, max_batch, images)
    outputs = _wanted_outputs(request.get("outputs"), manifest.outputs, binary_default)
    return InferRequest(arrays, outputs, request_id)


def _read_inputs(
    items: object,
    binary: memoryview,
    specs: Sequence[TensorSpec],
    max_batch: int,
    images: Mapping[str, ImageSpec] | None,
) -> dict[str, Array]:
    if not isinstance(items, list) or not items:
        raise InvalidPayload("inputs must be a non-empty list of tensors")
    checker = ModelInputs(specs, max_batch, images)
    offset = 0
    for index, item in enumerate(items):
        where = f"inputs[{index}]"
        if not isinstance(item, dict) or not item.keys() <= _INPUT_FIELDS:
            raise InvalidPayload(f"{where}: a tensor has the fields name, shape, datatype, parameters, data")
        tensor = TensorHeader.parse({key: item[key] for key in _HEADER_FIELDS if key in item}, where)
        checker.check(tensor, where)
        size = _parameters(item.get("parameters"), f"input {tensor.name}").get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise InvalidPayload(f"input {tensor.name}: data and binary_data_size both given")
            if type(size) is not int or size < 0:
                raise InvalidPayload(f"input {tensor.name}: binary_data_size must be a byte count")
            if size > len(binary) - offset:
                raise InvalidPayload(f"input {tensor.name}: binary_data_size {size} runs past the body")
            value = _binary_data(tensor, binary[offset : offset + size])
            offset += size
        elif "data" in item:
            value = _json_data(tensor, item["data"])
        else:
            raise InvalidPayload(f"input {tensor.name}: no data (give data or parameters.binary_data_size)")
        checker.add(tensor, value)
    if offset != len(binary):
        raise InvalidPayload(f"{len(binary) - offset} bytes are left over after the inputs' binary data")
    return checker.result()


def _binary_data(tensor: TensorHeader, chunk: memoryview) -> Array | list[bytes]:
    if tensor.datatype != BYTES:
        expected = tensor.elements * DATATYPES[tensor.datatype].itemsize
        if len(chunk) != expected:
            raise InvalidPayload(
                f"input {tensor.name}: binary_data_size {len(chunk)}, but {tensor.datatype}"
                f" of shape {list(tensor.shape)} is {expected} bytes"
            )
    reader = TensorReader(chunk)
    value = reader.read(tensor)
    left = len(chunk) - reader.offset
    if left:
        raise InvalidPayload(f"input {tensor.name}: {left} bytes of binary_data_size are past its elements")
    return value


def _json_data(tensor: TensorHeader, data: object) -> Array | list[bytes]:
    if not isinstance(data, list):
        raise InvalidPayload(f"input {tensor.name}: data must be a list")
    flat = _flatten(tensor, data)
    if tensor.datatype == BYTES:
        return [_base64(tensor, item) for item in flat]
    dtype = DATATYPES[tensor.datatype]
    allowed = _ALLOWED_TYPES.get(dtype.kind, frozenset({bool}))
    if not set(map(type, flat)) <= allowed:
        kind = {"f": "numbers", "b": "true or false"}.get(dtype.kind, "integers")
        raise InvalidPayload(f"input {tensor.name}: {tensor.datatype} data must be {kind}")
    if dtype.kind in "iu" and flat:
        info = np.iinfo(dtype)  # checked, not left to numpy (which only warns and wraps before 2.0)
        if min(flat) < info.min or max(flat) > info.max:
            raise InvalidPayload(f"input {tensor.name}: a value is out of range for {tensor.datatype}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.array(flat, dtype=dtype)
    except (OverflowError, ValueError):
        raise InvalidPayload(f"input {tensor.name}: a value is out of range for {tensor.datatype}") from None
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidPayload(f"input {tensor.name}: a value is out of range for {tensor.datatype}")
    return array.reshape(tensor.shape)


def _flatten(tensor: TensorHeader, data: list[Any]) -> list[Any]:
    """Row-major elements of ``data``: flat, or nested exactly as the tensor's shape."""
    count = math.prod(tensor.shape)
    if len(data) == count and not any(type(item) is list for item in data):
        return data
    level: list[Any] = [data]
    for size in tensor.shape:
        following: list[Any] = []
        for item in level:
            if type(item) is not list or len(item) != size:
                raise InvalidPayload(
                    f"input {tensor.name}: data has neither {count} elements"
                    f" nor the shape {list(tensor.shape)}"
                )
            following += item
        level = following
    if any(type(item) is list for item in level):
        raise InvalidPayload(f"input {tensor.name}: data is nested deeper than its shape")
    return level


def _base64(tensor: TensorHeader, item: object) -> bytes:
    if not isinstance(item, str):
        raise InvalidPayload(f"input {tensor.name}: BYTES data are base64 strings")
    try:
        return base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayload(f"input {tensor.name}: an element is not base64") from None


def _wanted_outputs(
    items: object, specs: Sequence[TensorSpec], binary_default: bool
) -> list[tuple[str, bool]]:
    names = [spec.name for spec in specs]
    if items is None:
        return [(name, binary_default) for name in names]
    if not isinstance(items, list) or not items:
        raise InvalidPayload("outputs must be a non-empty list of requested outputs")
    wanted: list[tuple[str, bool]] = []
    for index, item in enumerate(items):
        where = f"outputs[{index}]"
        if not isinstance(item, dict) or "name" not in item or not item.keys() <= _OUTPUT_FIELDS:
            raise InvalidPayload(f"{where}: a requested output has the fields name and parameters")
        name = item["name"]
        if not isinstance(name, str) or name not in names:
            raise InvalidPayload(f"{where}: the model has no output {str(name)[:64]!r}")
        if any(name == seen for seen, _ in wanted):
            raise InvalidPayload(f"{where}: output {name} is asked for twice")
        parameters = _parameters(item.get("parameters"), f"output {name}")
        if "classification" in parameters:
            raise InvalidPayload(f"output {name}: the classification extension is not supported")
        wanted.append((name, _flag(parameters, "binary_data", f"output {name}", binary_default)))
    return wanted


def infer_response(
    model: Mapping[str, str], request: InferRequest, outputs: Mapping[str, Array]
) -> tuple[bytes, int | None]:
    """The answer's body, and its JSON header's length where outputs follow it as binary data."""
    entries: list[dict[str, Any]] = []
    parts: list[Buffer] = []
    for name, binary in request.outputs:
        array = outputs[name]
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            data = tensor_bytes(array, datatype)
            entry["parameters"] = {"binary_data_size": sum(len(part) for part in data)}
            parts += data
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    header: dict[str, Any] = {"model_name": model["name"], "model_version": model["version"]}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = entries
    encoded = _ENCODER.encode(header).encode()
    if not parts:
        return encoded, None
    return b"".join([encoded, *parts]), len(encoded)
