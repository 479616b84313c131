"""What each output of an imported model holds, where the file says so: ``probabilities``,
``logits``, a ``mask`` or ``boxes``.

Read from the model's metadata (the tensor's content type, its stats, its description) and from
the op that writes the output (a softmax or a logistic makes probabilities). An output the file
says nothing about has no kind; nothing is guessed from values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model.tflite_metadata import CONTENT_BOUNDING_BOX, CONTENT_IMAGE, TensorInfo

OUTPUT_KINDS = ("probabilities", "logits", "mask", "boxes")
_NORMALIZING_OPS = frozenset({"SOFTMAX", "LOGISTIC"})
# Ops that pass a tensor's values on unchanged in meaning (looked through to the op that made them).
_PASS_THROUGH_OPS = frozenset({"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "IDENTITY", "EXPAND_DIMS"})


def producers(parsed: Any, op_names: Sequence[str]) -> dict[int, tuple[str, list[int]]]:
    """For the main subgraph of a parsed ``schema_py_generated.Model``: tensor index -> (the op
    that writes it, that op's input tensors). ``op_names`` names each operator code."""
    found: dict[int, tuple[str, list[int]]] = {}
    if not parsed.SubgraphsLength():
        return found
    subgraph = parsed.Subgraphs(0)
    for o in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(o)
        name = op_names[op.OpcodeIndex()]
        inputs = [int(op.Inputs(i)) for i in range(op.InputsLength())]
        for i in range(op.OutputsLength()):
            found[int(op.Outputs(i))] = (name, inputs)
    return found


def _final_op(tensor: int, made_by: dict[int, tuple[str, list[int]]]) -> str | None:
    seen: set[int] = set()
    while tensor in made_by and tensor not in seen:
        seen.add(tensor)
        name, inputs = made_by[tensor]
        if name not in _PASS_THROUGH_OPS or not inputs:
            return name
        tensor = inputs[0]
    return None


def output_kind(
    tensor: int, shape: Sequence[int], info: TensorInfo | None, made_by: dict[int, tuple[str, list[int]]]
) -> str | None:
    """The kind of the output tensor ``tensor`` (its index), or None where the file does not say."""
    if info is not None:
        if info.content == CONTENT_BOUNDING_BOX:
            return "boxes"
        if info.content == CONTENT_IMAGE:
            return "mask"
        described = f"{info.name or ''} {info.description or ''}".lower()
        if "logit" in described:
            return "logits"
    if _final_op(tensor, made_by) in _NORMALIZING_OPS:
        return "probabilities"
    if info is None:
        return None
    if info.stats_min and info.stats_max and min(info.stats_min) >= 0 and max(info.stats_max) <= 1:
        return "probabilities"
    if info.label_file and len(shape) >= 2 and shape[-1] > 1:
        return "logits"  # scores over labelled classes, not normalized by the graph
    return None
