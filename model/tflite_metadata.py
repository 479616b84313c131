"""TFLite model metadata (the ``TFLITE_METADATA`` buffer and the label files zipped onto the model),
read by hand with the ``flatbuffers`` runtime: the ``tflite_support`` package is not needed.

Field slots follow ``metadata_schema.fbs`` (ModelMetadata, SubGraphMetadata, TensorMetadata,
ProcessUnit/NormalizationOptions, AssociatedFile). Anything unreadable is skipped: metadata
describes a model, it never stops one from being served.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any

METADATA_NAME = b"TFLITE_METADATA"
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
_LABEL_FILE_TYPES = {2, 3}  # TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS
CONTENT_FEATURE, CONTENT_IMAGE, CONTENT_BOUNDING_BOX = 1, 2, 3  # the ContentProperties union


@dataclass
class TensorInfo:
    name: str | None = None
    description: str | None = None
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    label_file: str | None = None
    content: int = 0
    """What the tensor holds, by the ``ContentProperties`` union's type (0 where unsaid)."""
    stats_min: list[float] = field(default_factory=list)
    stats_max: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        if self.mean or self.std:
            data["normalization"] = {"mean": self.mean, "std": self.std}
        if self.label_file:
            data["label_file"] = self.label_file
        return data


@dataclass
class ModelInfo:
    """What the model says about itself (all optional)."""

    name: str | None = None
    description: str | None = None
    version: str | None = None
    author: str | None = None
    license: str | None = None
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    associated_files: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    present: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"from_tflite_metadata": self.present}
        for key in ("name", "description", "version", "author", "license"):
            value = getattr(self, key)
            if value:
                data[key] = value
        for key, tensors in (("inputs", self.inputs), ("outputs", self.outputs)):
            described = [t.to_json() for t in tensors]
            if any(described):
                data[key] = described
        if self.associated_files:
            data["associated_files"] = self.associated_files
        if self.labels:
            data["labels"] = self.labels
        return data


class _Table:
    """A flatbuffer table: fields by slot number."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable = vtable
        self.vtable_size = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, slot: int) -> int:
        entry = 4 + 2 * slot
        if entry >= self.vtable_size:
            return 0
        offset: int = struct.unpack_from("<H", self.buf, self.vtable + entry)[0]
        return offset

    def _indirect(self, at: int) -> int:
        target: int = at + struct.unpack_from("<I", self.buf, at)[0]
        return target

    def string(self, slot: int) -> str | None:
        offset = self._field(slot)
        if not offset:
            return None
        start = self._indirect(self.pos + offset)
        length = struct.unpack_from("<I", self.buf, start)[0]
        return self.buf[start + 4 : start + 4 + length].decode("utf-8", "replace")

    def byte(self, slot: int, default: int = 0) -> int:
        offset = self._field(slot)
        value: int = self.buf[self.pos + offset] if offset else default
        return value

    def table(self, slot: int) -> _Table | None:
        offset = self._field(slot)
        return _Table(self.buf, self._indirect(self.pos + offset)) if offset else None

    def _vector(self, slot: int) -> tuple[int, int]:
        offset = self._field(slot)
        if not offset:
            return 0, 0
        start = self._indirect(self.pos + offset)
        return struct.unpack_from("<I", self.buf, start)[0], start + 4

    def tables(self, slot: int) -> list[_Table]:
        count, start = self._vector(slot)
        return [_Table(self.buf, self._indirect(start + 4 * i)) for i in range(count)]

    def floats(self, slot: int) -> list[float]:
        count, start = self._vector(slot)
        return [float(v) for v in struct.unpack_from(f"<{count}f", self.buf, start)] if count else []


def _root(buf: bytes) -> _Table:
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def _tensor_info(table: _Table) -> TensorInfo:
    info = TensorInfo(name=table.string(0), description=table.string(1))
    content = table.table(3)
    if content is not None:
        info.content = content.byte(0)
    stats = table.table(5)
    if stats is not None:
        info.stats_max, info.stats_min = stats.floats(0), stats.floats(1)
    for unit in table.tables(4):  # process_units
        if unit.byte(0) == _NORMALIZATION_OPTIONS:
            options = unit.table(1)
            if options is not None:
                info.mean, info.std = options.floats(0), options.floats(1)
    for associated in table.tables(6):  # associated_files
        if associated.byte(2) in _LABEL_FILE_TYPES and associated.string(0):
            info.label_file = associated.string(0)
    return info


def parse_model_metadata(buf: bytes) -> ModelInfo:
    """A ``ModelMetadata`` flatbuffer (the ``TFLITE_METADATA`` buffer) as :class:`ModelInfo`."""
    root = _root(buf)
    info = ModelInfo(
        name=root.string(0),
        description=root.string(1),
        version=root.string(2),
        author=root.string(4),
        license=root.string(5),
        present=True,
    )
    info.associated_files = [f.string(0) or "" for f in root.tables(6) if f.string(0)]
    for subgraph in root.tables(3)[:1]:
        info.inputs = [_tensor_info(t) for t in subgraph.tables(2)]
        info.outputs = [_tensor_info(t) for t in subgraph.tables(3)]
        info.associated_files += [f.string(0) or "" for f in subgraph.tables(4) if f.string(0)]
        for tensor in [*subgraph.tables(2), *subgraph.tables(3)]:
            info.associated_files += [f.string(0) or "" for f in tensor.tables(6) if f.string(0)]
    return info


def packed_files(content: bytes) -> dict[str, bytes]:
    """The files zipped onto the end of a ``.tflite`` (how metadata ships label files)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError):
        return {}


def read_metadata(content: bytes, model: Any) -> ModelInfo:
    """The model's metadata where it carries some; an empty :class:`ModelInfo` otherwise.

    ``model`` is the parsed ``schema_py_generated.Model`` of ``content``.
    """
    info = ModelInfo()
    with contextlib.suppress(Exception):
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != METADATA_NAME:
                continue
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            if hasattr(data, "tobytes"):
                info = parse_model_metadata(data.tobytes())
            break
    files = packed_files(content)
    label_file = next(
        (t.label_file for t in info.outputs if t.label_file and t.label_file in files), None
    ) or next((name for name in files if "label" in name.lower()), None)
    if label_file is not None:
        with contextlib.suppress(UnicodeDecodeError):
            lines = [line.strip() for line in files[label_file].decode("utf-8").splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            info.labels = lines
    if files and not info.associated_files:
        info.associated_files = sorted(files)
    return info
