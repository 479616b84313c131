"""Rewrite a TFLite flatbuffer before it is quantized: float16 weights made float32 again.

Most converted models that "use float16" store their weights as float16 constants behind
``DEQUANTIZE`` ops, which ai-edge-quantizer leaves as they are: its int8 variants of such a file
come out barely smaller than the file itself. :func:`float32_weights` folds each such
``DEQUANTIZE`` into a float32 constant (the exact values the op would produce), so the quantizer
sees the float model the file was made from.
"""

from __future__ import annotations

import numpy as np


def float32_weights(content: bytes) -> bytes | None:
    """``content`` with every float16 constant behind a ``DEQUANTIZE`` op folded into a float32
    constant; None when the model has none (the file is then quantized as it is)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    dequantize = {
        index
        for index, code in enumerate(model.operatorCodes or [])
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE
    }
    folded = 0
    for subgraph in model.subgraphs or []:
        kept = []
        for op in subgraph.operators or []:
            source = (
                subgraph.tensors[op.inputs[0]]
                if op.opcodeIndex in dequantize and len(op.inputs) == 1
                else None
            )
            buffer = model.buffers[source.buffer] if source is not None else None
            if (
                source is None
                or buffer is None
                or source.type != schema.TensorType.FLOAT16
                or buffer.data is None
            ):
                kept.append(op)
                continue
            values = np.frombuffer(bytes(np.asarray(buffer.data, dtype=np.uint8)), dtype="<f2").astype("<f4")
            constant = schema.BufferT()
            constant.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            model.buffers.append(constant)
            subgraph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            buffer.data = None  # the float16 copy, no longer read by any op
            folded += 1
        subgraph.operators = kept
    if not folded:
        return None
    builder = flatbuffers.Builder(len(content) * 3)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def unique_tensor_names(content: bytes) -> bytes | None:
    """``content`` with every tensor name made unique across its subgraphs (the quantizer refuses
    a model where two share one, as control-flow subgraphs' ``arg0`` do); None when they already are.

    The main subgraph's inputs and outputs keep their names (a model without signatures is called
    by them); any other tensor whose name was taken gets ``_{subgraph}_{index}`` appended.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    subgraphs = model.subgraphs or []
    taken: set[bytes] = set()
    if subgraphs:
        main = subgraphs[0]
        taken = {main.tensors[i].name or b"" for i in [*_indices(main.inputs), *_indices(main.outputs)]}
    renamed = 0
    for s, subgraph in enumerate(subgraphs):
        keep = {*_indices(subgraph.inputs), *_indices(subgraph.outputs)} if s == 0 else set()
        for index, tensor in enumerate(subgraph.tensors or []):
            name = tensor.name or b""
            if index in keep:
                continue
            if name in taken:
                stem, n = name + f"_{s}_{index}".encode(), 0
                new = stem
                while new in taken:
                    n += 1
                    new = stem + f"_{n}".encode()
                tensor.name, name = new, new
                renamed += 1
            taken.add(name)
    if not renamed:
        return None
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _indices(values: object) -> list[int]:
    """A flatbuffer object's index vector (a numpy array, a list, or None) as a list."""
    return [] if values is None else [int(v) for v in values]  # type: ignore[attr-defined]
