"""How ``litefaas predict`` shows and saves a function's outputs: JSON lines, a summary, an ``.npz``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litefaas.errors import CommandError

if TYPE_CHECKING:
    from litefaas.client import Outputs, PartialFailure

TOP_CLASSES = 3


def output_lines(outputs: Outputs) -> list[str]:
    """One JSON line per row: the row's outputs, or ``{name: outputs}`` for several output tensors."""
    if isinstance(outputs, dict):
        rows = len(next(iter(outputs.values()), []))
        return [json.dumps({name: batch[i].tolist() for name, batch in outputs.items()}) for i in range(rows)]
    return [json.dumps(row.tolist()) for row in outputs]


def partial_lines(failure: PartialFailure) -> list[str]:
    """One JSON line per row of a partly failed fan-out: its outputs, or ``null`` if it has no answer."""
    lines = ["null"] * failure.rows
    for shard in failure.succeeded:
        lines[shard.start : shard.stop] = output_lines(shard.outputs)
    return lines


def describe_outputs(outputs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each output's datatype and shape."""
    from core.tensors import datatype_of

    described = {}
    for name, value in outputs.items():
        if hasattr(value, "dtype"):
            described[name] = {"datatype": datatype_of(value.dtype), "shape": list(value.shape)}
        else:
            described[name] = {"datatype": "BYTES", "shape": [len(value)]}
    return described


def save_outputs(path: Path, outputs: Mapping[str, Any]) -> None:
    """The outputs in a new ``.npz`` (one array per output name)."""
    import numpy as np

    if path.exists():
        raise CommandError(f"{path} already exists; refusing to overwrite it")
    arrays = {
        name: value if hasattr(value, "dtype") else np.array(value, dtype=bytes)
        for name, value in outputs.items()
    }
    try:
        with open(path, "xb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) and labels[index] else f"class {index}"


def top_classes(row: Any, labels: Sequence[str], k: int = TOP_CLASSES) -> str:
    """``label (score), …`` for a row's ``k`` highest scores."""
    import numpy as np

    order = np.argsort(-np.asarray(row, dtype=np.float64), kind="stable")[:k]
    return ", ".join(f"{_label(labels, int(i))} ({float(row[i]):.4f})" for i in order)


def _is_scores(value: Any) -> bool:
    return hasattr(value, "dtype") and value.dtype.kind == "f" and value.ndim == 2 and value.shape[1] > 1


def summary_lines(
    outputs: Mapping[str, Any], labels: Sequence[str], row_names: Sequence[str] | None = None
) -> list[str]:
    """Names, shapes and datatypes of the outputs; for an [N, K] float output, each row's top classes."""
    lines = []
    for name, info in describe_outputs(outputs).items():
        lines.append(f"{name}: {info['datatype']} {info['shape']}")
        value = outputs[name]
        if _is_scores(value):
            for index, row in enumerate(value):
                where = row_names[index] if row_names and index < len(row_names) else f"row {index}"
                lines.append(f"  {where}: {top_classes(row, labels)}")
        elif hasattr(value, "dtype") and value.ndim == 2 and value.shape[1] == 1 and len(value) <= 100:
            lines.extend(f"  row {index}: {float(row[0]):.6g}" for index, row in enumerate(value))
    return lines


def labels_of(model: Mapping[str, Any]) -> list[str]:
    labels = model.get("labels")
    return [str(label) for label in labels] if isinstance(labels, list) else []
