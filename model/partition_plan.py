"""Where a Keras model may be cut into segments, and where to cut it: the layer graph and the plan.

A cut may go wherever exactly one tensor crosses from the layers before it to the layers after it
(every layer boundary of a sequential model; in a functional model, not inside a branch or a skip
connection). The planning functions balance segments by weight bytes or FLOPs and need no
TensorFlow; the graph functions take a Keras model. ``model.partition`` converts and verifies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model.errors import BuildError

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerCost:
    """One layer call of the model, in execution order, with what it weighs."""

    name: str
    weights: int
    flops: int


# --- planning (no TensorFlow) ---------------------------------------------------------------


def plan_cuts(costs: Sequence[int], allowed: Sequence[int], segments: int) -> tuple[int, ...]:
    """Where to cut ``costs`` (one per layer, in order) into ``segments`` parts.

    ``allowed`` are the positions a cut may take (a cut at ``p`` ends a segment after layer
    ``p - 1``). The plan minimizes the largest segment's cost, then the sum of squared costs
    (the most even split among equally good ones).
    """
    count = len(costs)
    positions = sorted({p for p in allowed if 0 < p < count})
    if segments < 1:
        raise BuildError("the number of segments must be at least 1")
    if segments - 1 > len(positions):
        raise BuildError(
            f"the model can be cut in {len(positions)} place(s) only, so into at most "
            f"{len(positions) + 1} segments (asked for {segments})"
        )
    prefix = [0]
    for cost in costs:
        prefix.append(prefix[-1] + int(cost))
    ends = [*positions, count]
    # best[k][end] = (largest cost, sum of squares, cuts) for the layers before ``end`` in k segments
    best: list[dict[int, tuple[int, int, tuple[int, ...]]]] = [{0: (0, 0, ())}]
    for _ in range(segments):
        layer: dict[int, tuple[int, int, tuple[int, ...]]] = {}
        for end in ends:
            for start, (largest, squares, cuts) in best[-1].items():
                if start >= end:
                    continue
                part = prefix[end] - prefix[start]
                candidate = (max(largest, part), squares + part * part, (*cuts, start) if start else cuts)
                if end not in layer or candidate[:2] < layer[end][:2]:
                    layer[end] = candidate
        best.append(layer)
    if count not in best[segments]:
        raise BuildError(f"the model cannot be cut into {segments} segments")
    return best[segments][count][2]


def segment_costs(costs: Sequence[int], cuts: Sequence[int]) -> list[int]:
    """The total cost of each segment that ``cuts`` make."""
    bounds = [0, *cuts, len(costs)]
    return [int(sum(costs[a:b])) for a, b in itertools.pairwise(bounds)]


def plan_for_limit(costs: Sequence[int], allowed: Sequence[int], limit: int) -> tuple[int, ...]:
    """The fewest segments whose every cost is at most ``limit`` (``--max-segment-bytes``)."""
    positions = sorted({p for p in allowed if 0 < p < len(costs)})
    for segments in range(1, len(positions) + 2):
        cuts = plan_cuts(costs, positions, segments)
        if max(segment_costs(costs, cuts)) <= limit:
            return cuts
    cuts = (*positions,)
    heaviest = max(segment_costs(costs, cuts))
    raise BuildError(
        f"no cut fits --max-segment-bytes {limit:,}: even cut at every place a single tensor "
        f"crosses ({len(positions) + 1} segments) the largest segment weighs {heaviest:,} bytes"
    )


# --- the model graph ------------------------------------------------------------------------


def functional_model(model: keras.Model) -> keras.Model:
    import keras

    if isinstance(model, keras.Sequential):
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise BuildError("the Sequential model has no input shape yet; give it a keras.Input first")
        return inner
    if not hasattr(model, "_nodes_by_depth"):
        raise BuildError("only Sequential and functional Keras models can be cut (not subclassed ones)")
    return model


def layer_nodes(model: keras.Model) -> list[Any]:
    """The model's layer calls (graph nodes) in execution order, inputs excluded."""
    graph = functional_model(model)
    nodes: list[Any] = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        nodes.extend(node for node in graph._nodes_by_depth[depth] if node.operation and not node.is_input)
    return nodes


def cut_positions(model: keras.Model) -> list[int]:
    """Positions ``p`` (a cut after the ``p``-th layer call) where exactly one float32 tensor,
    the only output of its layer, crosses from the layers before to the layers after."""
    graph = functional_model(model)
    nodes = layer_nodes(model)
    outputs = {id(t) for t in graph.outputs}
    last_use: dict[int, int] = {}
    for index, node in enumerate(nodes):
        for tensor in node.input_tensors:
            last_use[id(tensor)] = index
    produced_by: dict[int, int] = {}
    live: set[int] = {id(t) for t in graph.inputs if id(t) in last_use}
    positions = []
    for index, node in enumerate(nodes):
        live = {t for t in live if last_use.get(t, -1) > index or t in outputs}
        for tensor in node.outputs:
            produced_by[id(tensor)] = index
            if last_use.get(id(tensor), -1) > index or id(tensor) in outputs:
                live.add(id(tensor))
        if index == len(nodes) - 1 or len(live) != 1:
            continue
        (crossing,) = live
        if crossing in outputs or crossing not in produced_by:
            continue
        producer = nodes[produced_by[crossing]]
        tensor = producer.outputs[0]
        if len(producer.outputs) == 1 and str(tensor.dtype) == "float32":
            positions.append(index + 1)
    return positions


def layer_costs(model: keras.Model) -> list[LayerCost]:
    """Weights and an estimate of multiply-adds ×2 per row for each layer call."""
    costs = []
    for node in layer_nodes(model):
        layer = node.operation
        weights = int(sum(math.prod(w.shape) for w in getattr(layer, "weights", [])))
        out_values = sum(math.prod(d or 1 for d in t.shape[1:]) for t in node.outputs)
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(kernel.shape) >= 2:
            flops = 2 * math.prod(kernel.shape) * out_values // max(int(kernel.shape[-1]), 1)
        elif weights and hasattr(layer, "layers"):
            flops = 2 * weights
        else:
            flops = out_values
        costs.append(LayerCost(str(layer.name), weights, int(flops)))
    return costs


def split_model(model: keras.Model, cuts: Sequence[int]) -> list[keras.Model]:
    """The segments as Keras models sharing the model's layers; each input of a later segment is
    named like the tensor the segment before hands on (the name of the layer that makes it)."""
    import keras

    graph = functional_model(model)
    nodes = layer_nodes(model)
    bounds = [0, *cuts, len(nodes)]
    entering: list[Any] = list(graph.inputs)
    entering_names = [str(t.name) for t in graph.inputs]
    segments = []
    for number, (start, stop) in enumerate(itertools.pairwise(bounds), start=1):
        new_inputs = [
            keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=name)
            for t, name in zip(entering, entering_names, strict=True)
        ]
        tensors = {id(t): new for t, new in zip(entering, new_inputs, strict=True)}
        for node in nodes[start:stop]:
            args, kwargs = node.arguments.fill_in(tensors)
            result = node.operation(*args, **kwargs)
            for original, made in zip(node.outputs, keras.tree.flatten(result), strict=True):
                tensors[id(original)] = made
        leaving = list(graph.outputs) if stop == len(nodes) else [nodes[stop - 1].outputs[0]]
        made_outputs = [tensors[id(t)] for t in leaving]
        segment = keras.Model(
            new_inputs if len(new_inputs) > 1 else new_inputs[0],
            made_outputs if len(made_outputs) > 1 else made_outputs[0],
            name=f"segment_{number}",
        )
        segments.append(segment)
        entering = leaving
        entering_names = [str(n) for n in segment.output_names]
    return segments
