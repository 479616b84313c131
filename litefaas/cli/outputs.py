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


def softmax(row: Any) -> Any:
    """Probabilities from one row of logits."""
    import numpy as np

    values = np.asarray(row, dtype=np.float64)
    exp = np.exp(values - values.max())
    return exp / exp.sum()


def top_classes(row: Any, labels: Sequence[str], k: int = TOP_CLASSES, *, logits: bool = False) -> str:
    """``label (score), …`` for a row's ``k`` highest scores; logits are shown with their softmax."""
    import numpy as np

    order = np.argsort(-np.asarray(row, dtype=np.float64), kind="stable")[:k]
    if logits:
        p = softmax(row)
        return ", ".join(f"{_label(labels, int(i))} (p {p[i]:.4f}, logit {float(row[i]):.4g})" for i in order)
    return ", ".join(f"{_label(labels, int(i))} ({float(row[i]):.4f})" for i in order)


def _is_scores(value: Any) -> bool:
    return hasattr(value, "dtype") and value.dtype.kind == "f" and value.ndim == 2 and value.shape[1] > 1


def _mask_line(row: Any, labels: Sequence[str]) -> str:
    """A mask row: its size, and the share of its pixels per class (or its value range)."""
    import numpy as np

    values = np.asarray(row)
    size = "×".join(str(d) for d in values.shape)
    if values.ndim == 3 and values.shape[-1] > 1:
        classes = np.argmax(values, axis=-1)
        shares = np.bincount(classes.ravel(), minlength=values.shape[-1]) / classes.size
        top = np.argsort(-shares, kind="stable")[:TOP_CLASSES]
        return f"mask {size}: " + ", ".join(f"{_label(labels, int(i))} {shares[i]:.0%}" for i in top)
    return f"mask {size}: values {float(values.min()):.4g}..{float(values.max()):.4g}"


def _boxes_line(row: Any) -> str:
    import numpy as np

    values = np.asarray(row, dtype=np.float64).reshape(-1, np.asarray(row).shape[-1])
    shown = "; ".join("[" + ", ".join(f"{v:.3g}" for v in box) + "]" for box in values[:3])
    more = f" (and {len(values) - 3} more)" if len(values) > 3 else ""
    return f"{len(values)} box(es): {shown}{more}"


def summary_lines(
    outputs: Mapping[str, Any],
    labels: Sequence[str],
    row_names: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """Names, shapes, datatypes and kinds of the outputs; per row, what its kind says: the top
    classes of probabilities or logits (an [N, K] float output of no kind is read as scores), a
    mask's class shares, the first boxes."""
    kinds = kinds or {}
    lines = []
    for name, info in describe_outputs(outputs).items():
        kind = kinds.get(name)
        lines.append(f"{name}: {info['datatype']} {info['shape']}" + (f" ({kind})" if kind else ""))
        value = outputs[name]
        if not hasattr(value, "dtype"):
            continue

        def where(index: int) -> str:
            return row_names[index] if row_names and index < len(row_names) else f"row {index}"

        if kind == "mask" and value.ndim >= 3:
            lines.extend(f"  {where(i)}: {_mask_line(row, labels)}" for i, row in enumerate(value))
        elif kind == "boxes" and value.ndim >= 2:
            lines.extend(f"  {where(i)}: {_boxes_line(row)}" for i, row in enumerate(value))
        elif kind in (None, "probabilities", "logits") and _is_scores(value):
            logits = kind == "logits"
            lines.extend(
                f"  {where(i)}: {top_classes(row, labels, logits=logits)}" for i, row in enumerate(value)
            )
        elif value.ndim == 2 and value.shape[1] == 1 and len(value) <= 100:
            lines.extend(f"  row {index}: {float(row[0]):.6g}" for index, row in enumerate(value))
    return lines


def kinds_of(model: Mapping[str, Any]) -> dict[str, str]:
    """Each output's kind, as the function's ``/health`` lists it."""
    outputs = model.get("outputs")
    if not isinstance(outputs, list):
        return {}
    return {
        str(o["name"]): str(o["kind"])
        for o in outputs
        if isinstance(o, dict) and o.get("kind") and "name" in o
    }


def labels_of(model: Mapping[str, Any]) -> list[str]:
    labels = model.get("labels")
    return [str(label) for label in labels] if isinstance(labels, list) else []
