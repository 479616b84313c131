"""Version 2's framed message: a 4-byte header length, a JSON header, then raw tensor bytes.

``PROTOCOL.md`` ("Version 2: binary tensors") is the contract. Both sides live here: the function
parses requests and frames responses, a client frames requests and parses responses. Tensor
bytes are read in place (``np.frombuffer`` on the received buffer); every problem is
:class:`InvalidPayload` naming the input, never another exception.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from core.encoding import compact_json, strict_json
from core.engine import TensorSpec
from core.errors import InvalidPayload, PayloadTooLarge
from core.images import ImageSpec, images_to_batch
from core.validate import check_row_elements

Array = npt.NDArray[Any]
Buffer = bytes | bytearray | memoryview

BYTES = "BYTES"
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "INT8": np.dtype("i1"),
    "UINT16": np.dtype("<u2"),
    "INT16": np.dtype("<i2"),
    "UINT32": np.dtype("<u4"),
    "INT32": np.dtype("<i4"),
    "UINT64": np.dtype("<u8"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_BY_NUMPY = {dtype.newbyteorder("="): name for name, dtype in DATATYPES.items()}
TENSOR_FIELDS = frozenset({"name", "datatype", "shape"})
_LENGTH = struct.Struct(">I")
_ELEMENT_LENGTH = struct.Struct("<I")
_MAX_RANK = 32
_encode_header = compact_json()


@functools.lru_cache(maxsize=64)  # a model's few dtypes, asked for at every request
def datatype_of(dtype: npt.DTypeLike) -> str:
    """The Open Inference Protocol name of a numpy dtype (``float32`` -> ``FP32``)."""
    resolved = np.dtype(dtype)
    try:
        return _BY_NUMPY[resolved.newbyteorder("=")]
    except KeyError:
        raise ValueError(f"dtype {resolved} has no version-2 datatype") from None


def json_object(text: Buffer) -> dict[str, Any]:
    """A UTF-8 JSON object with no duplicate field and no NaN or Infinity; ``ValueError`` otherwise."""
    document = strict_json(bytes(text).decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("not an object")
    return document


def split_frame(message: Buffer) -> tuple[dict[str, Any], memoryview]:
    """The header object and a view of the tensor bytes after it."""
    view = memoryview(message).cast("B")
    if len(view) < _LENGTH.size:
        raise InvalidPayload("the message is shorter than its 4-byte header length")
    (length,) = _LENGTH.unpack_from(view)
    end = _LENGTH.size + length
    if end > len(view):
        raise InvalidPayload(f"the header length {length} runs past the end of the message")
    try:
        header = json_object(view[_LENGTH.size : end])
    except (ValueError, RecursionError):
        raise InvalidPayload("the message header is not a UTF-8 JSON object") from None
    return header, view[end:]


def join_frame(header: Mapping[str, Any], tensors: Iterable[Buffer] = ()) -> bytes:
    """Frame a header and the tensors' bytes (already in the header's order)."""
    return _joined(_encode_header(header).encode(), tensors)


def _joined(encoded_header: bytes, tensors: Iterable[Buffer]) -> bytes:
    return b"".join([_LENGTH.pack(len(encoded_header)), encoded_header, *tensors])


class TensorHeader(NamedTuple):
    """One entry of a header's ``inputs`` or ``outputs`` (a tuple: a frozen dataclass's fields cost
    a request 1 µs to set)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @classmethod
    def parse(cls, item: object, where: str) -> TensorHeader:
        if not isinstance(item, dict) or item.keys() != TENSOR_FIELDS:
            raise InvalidPayload(f"{where}: each tensor has exactly the fields datatype, name, shape")
        name, datatype, shape = item["name"], item["datatype"], item["shape"]
        if not isinstance(name, str) or not name:
            raise InvalidPayload(f"{where}: name must be a non-empty string")
        if not isinstance(datatype, str) or (datatype != BYTES and datatype not in DATATYPES):
            raise InvalidPayload(f"{where} ({name[:64]}): unknown datatype")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= _MAX_RANK
            or any(type(d) is not int or d < 0 for d in shape)
        ):
            raise InvalidPayload(
                f"{where} ({name[:64]}): shape must be a list of 1 to 32 non-negative integers"
            )
        return cls(name, datatype, tuple(shape))

    @property
    def elements(self) -> int:
        """How many values the shape holds."""
        return math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class TensorReader:
    """Reads the tensors a header declares from the bytes after it, in order, in place."""

    def __init__(self, payload: memoryview) -> None:
        self._payload = payload
        self._offset = 0

    def read(self, tensor: TensorHeader) -> Array | list[bytes]:
        """The tensor's array, or the list of byte strings of a ``BYTES`` tensor."""
        if tensor.datatype == BYTES:
            return self._read_bytes(tensor)
        dtype = DATATYPES[tensor.datatype]
        size = tensor.elements * dtype.itemsize
        if size > len(self._payload) - self._offset:
            raise InvalidPayload(f"input {tensor.name}: {size} bytes declared, fewer left in the message")
        array = np.frombuffer(self._payload, dtype=dtype, count=tensor.elements, offset=self._offset)
        self._offset += size
        return array.reshape(tensor.shape)

    def _read_bytes(self, tensor: TensorHeader) -> list[bytes]:
        if len(tensor.shape) != 1:
            raise InvalidPayload(f"input {tensor.name}: a BYTES tensor has shape [N]")
        items: list[bytes] = []
        for index in range(tensor.shape[0]):
            if _ELEMENT_LENGTH.size > len(self._payload) - self._offset:
                raise InvalidPayload(f"input {tensor.name}: element {index} is missing")
            (length,) = _ELEMENT_LENGTH.unpack_from(self._payload, self._offset)
            start = self._offset + _ELEMENT_LENGTH.size
            if length > len(self._payload) - start:
                raise InvalidPayload(f"input {tensor.name}: element {index} runs past the end of the message")
            items.append(bytes(self._payload[start : start + length]))
            self._offset = start + length
        return items

    @property
    def offset(self) -> int:
        """How many bytes have been read."""
        return self._offset

    def finish(self) -> None:
        """Refuse bytes after the last tensor."""
        left = len(self._payload) - self._offset
        if left:
            raise InvalidPayload(f"{left} bytes are left over after the last tensor")

    def finish_if_last(self, last: bool) -> None:
        """Refuse left-over bytes before the expensive work on the last tensor starts."""
        if last:
            self.finish()


def tensor_bytes(value: Array | Sequence[bytes], datatype: str) -> list[Buffer]:
    """The wire bytes of one tensor: little-endian C order, or length-prefixed elements for ``BYTES``."""
    if datatype == BYTES:
        parts: list[Buffer] = []
        for item in value:
            element = bytes(item)
            parts += [_ELEMENT_LENGTH.pack(len(element)), element]
        return parts
    array: Any = np.ascontiguousarray(value, dtype=DATATYPES[datatype])
    return [memoryview(array).cast("B")]


class Framer:
    """Frames messages whose header is ``fixed`` (encoded once, here) and ``key``: the tensors'
    list, as a server answers every request with its model's information and its outputs."""

    def __init__(self, fixed: Mapping[str, Any], key: str) -> None:
        others = {name: value for name, value in fixed.items() if name != key}
        self._start = _encode_header({**others, key: None})[: -len("null}")]

    def frame(self, tensors: Mapping[str, Array | Sequence[bytes]]) -> bytes:
        """A framed message listing ``tensors`` (name -> array or ``BYTES`` items)."""
        entries: list[dict[str, Any]] = []
        parts: list[Buffer] = []
        for name, value in tensors.items():
            if isinstance(value, np.ndarray):
                datatype, shape = datatype_of(value.dtype), list(value.shape)
            else:
                datatype, shape = BYTES, [len(value)]
            entries.append({"name": name, "datatype": datatype, "shape": shape})
            parts += tensor_bytes(value, datatype)
        return _joined((self._start + _encode_header(entries) + "}").encode(), parts)


def frame_tensors(
    header: Mapping[str, Any], key: str, tensors: Mapping[str, Array | Sequence[bytes]]
) -> bytes:
    """A framed message whose ``header[key]`` lists ``tensors`` (name -> array or ``BYTES`` items)."""
    return Framer(header, key).frame(tensors)


def read_tensors(header: Mapping[str, Any], key: str, payload: memoryview) -> dict[str, Array | list[bytes]]:
    """The tensors ``header[key]`` declares, read from ``payload`` (client side: a response's outputs)."""
    items = header.get(key)
    if not isinstance(items, list):
        raise InvalidPayload(f"the header has no {key} list")
    reader = TensorReader(payload)
    tensors = {}
    for index, item in enumerate(items):
        tensor = TensorHeader.parse(item, f"{key}[{index}]")
        tensors[tensor.name] = reader.read(tensor)
    reader.finish()
    return tensors


class ModelInputs:
    """Checks a request's tensors against the model's inputs, one by one, in the request's order.

    Every input once, by name, with the model input's own datatype (no implicit casts), ``shape[0]``
    the batch (1 to ``max_batch``, the same for all) and the rest the model's row shape. An input
    declared in ``images`` also takes ``BYTES`` of shape ``[N]``: N encoded images, decoded here.
    Shared by every format that carries tensors (version 2's frames, OIP's JSON and binary data).
    """

    def __init__(
        self, specs: Sequence[TensorSpec], max_batch: int, images: Mapping[str, ImageSpec] | None = None
    ) -> None:
        self._specs = specs
        self._by_name = {spec.name: spec for spec in specs}
        self._max_batch = max_batch
        self._images = images or {}
        self._batch: int | None = None
        self.arrays: dict[str, Array] = {}

    def check(self, tensor: TensorHeader, where: str) -> None:
        """Refuse a tensor the model does not take, before its bytes are read."""
        spec = self._by_name.get(tensor.name)
        if spec is None:
            raise InvalidPayload(f"{where}: the model has no input {tensor.name[:64]!r}")
        if tensor.name in self.arrays:
            raise InvalidPayload(f"input {tensor.name}: given twice")
        image = tensor.datatype == BYTES and tensor.name in self._images
        _check_tensor(tensor, spec, self._max_batch, image)
        if self._batch is not None and tensor.shape[0] != self._batch:
            raise InvalidPayload(
                f"input {tensor.name}: batch {tensor.shape[0]}, other inputs have {self._batch}"
            )
        self._batch = tensor.shape[0]

    def add(self, tensor: TensorHeader, value: Array | list[bytes]) -> None:
        """Take a checked tensor's value (encoded images are decoded to the model's input)."""
        spec = self._by_name[tensor.name]
        if not isinstance(value, list):
            self.arrays[tensor.name] = value
            return
        image = self._images.get(tensor.name)
        if image is None:
            raise InvalidPayload(f"input {tensor.name}: this model input takes {datatype_of(spec.dtype)}")
        dtype = spec.numpy_dtype
        self.arrays[tensor.name] = images_to_batch(value, image, tensor.name, dtype, spec.row_shape)

    def result(self) -> dict[str, Array]:
        """The arrays, once every model input was given."""
        missing = [spec.name for spec in self._specs if spec.name not in self.arrays]
        if missing:
            raise InvalidPayload(f"missing input(s): {', '.join(missing)}")
        return self.arrays


def model_inputs(
    items: object,
    payload: memoryview,
    specs: Sequence[TensorSpec],
    max_batch: int,
    images: Mapping[str, ImageSpec] | None = None,
) -> dict[str, Array]:
    """A version-2 header's ``inputs`` read from ``payload`` and checked by :class:`ModelInputs`."""
    if not isinstance(items, list):
        raise InvalidPayload("inputs must be a list of tensors")
    checker = ModelInputs(specs, max_batch, images)
    reader = TensorReader(payload)
    for index, item in enumerate(items):
        tensor = TensorHeader.parse(item, f"inputs[{index}]")
        checker.check(tensor, f"inputs[{index}]")
        value = reader.read(tensor)
        if isinstance(value, list):
            reader.finish_if_last(index == len(items) - 1)
        checker.add(tensor, value)
    arrays = checker.result()
    reader.finish()
    return arrays


def _check_tensor(tensor: TensorHeader, spec: TensorSpec, max_batch: int, image: bool) -> None:
    expected = datatype_of(spec.dtype)
    if tensor.datatype != expected and not image:
        raise InvalidPayload(f"input {tensor.name}: datatype {tensor.datatype}, the model takes {expected}")
    row_shape = () if image else spec.row_shape
    if len(tensor.shape) != len(row_shape) + 1:
        raise InvalidPayload(
            f"input {tensor.name}: shape has {len(tensor.shape)} dimensions, expected {len(row_shape) + 1}"
            f" (batch, then {list(row_shape)})"
        )
    batch = tensor.shape[0]
    if batch < 1:
        raise InvalidPayload(f"input {tensor.name}: the batch is empty")
    if batch > max_batch:
        raise PayloadTooLarge(f"input {tensor.name}: batch of {batch} rows is over the limit of {max_batch}")
    if tensor.shape[1:] != row_shape:  # else every size is the model's own
        for axis, (got, want) in enumerate(zip(tensor.shape[1:], row_shape, strict=True), start=1):
            if got < 1 or (want != -1 and got != want):
                expected_shape = ", ".join("?" if size == -1 else str(size) for size in row_shape)
                raise InvalidPayload(
                    f"input {tensor.name}: shape {list(tensor.shape)} does not match"
                    f" [N, {expected_shape}] at axis {axis}"
                )
    if not image:
        check_row_elements(spec, tensor.shape, f"input {tensor.name}")


def wanted_outputs(value: object, specs: Sequence[TensorSpec]) -> list[str]:
    """The output names a header's optional ``outputs`` asks for, in its order; all when absent."""
    names = [spec.name for spec in specs]
    if value is None:
        return names
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise InvalidPayload("outputs must be a non-empty list of output names")
    unknown = [name[:64] for name in value if name not in names]
    if unknown:
        raise InvalidPayload(f"the model has no output(s) {', '.join(map(repr, unknown))}")
    if len(set(value)) != len(value):
        raise InvalidPayload("outputs names an output twice")
    return list(value)
