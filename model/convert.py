"""TFLite conversion into the four variants: float32, float16, dynamic-range, full int8."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from model.data import Dataset
from model.errors import BuildError
from model.source import SIGNATURE, ModelSource

VARIANTS: tuple[str, ...] = ("float32", "float16", "dynamic_range", "int8")
_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "RSQRT", "SQRT", "MAXIMUM", "MINIMUM"}
CALIBRATION_ROWS = 500


def _converter(source: ModelSource) -> tf.lite.TFLiteConverter:
    return tf.lite.TFLiteConverter.from_saved_model(str(source.saved_model_dir), signature_keys=[SIGNATURE])


def _convert(converter: tf.lite.TFLiteConverter) -> bytes:
    try:
        return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError and friends
        text = str(exc)
        ops = sorted(set(re.findall(r"\btf\.([A-Za-z0-9_]+)", text)))
        if ops or "not supported" in text.lower():
            listed = ", ".join(ops) if ops else "see the converter's log"
            raise BuildError(f"the model uses ops that TFLite builtins cannot run: {listed}") from None
        first_line = text.strip().splitlines()[0] if text.strip() else exc.__class__.__name__
        raise BuildError(f"TFLite conversion failed: {first_line[:300]}") from None


def representative_dataset(source: ModelSource, calibration: Dataset) -> Iterator[dict[str, np.ndarray]]:
    count = min(len(calibration), CALIBRATION_ROWS)
    for row in range(count):
        yield {spec.name: calibration.inputs[spec.name][row : row + 1] for spec in source.inputs}


def float_preprocessing_nodes(float_model: bytes) -> list[str]:
    """Output tensors of the elementwise ops that act on the raw inputs before the first
    weighted layer (e.g. standardization). They stay float in the int8 variant: one int8
    scale across raw features of very different ranges would erase the small ones."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_model)
    names = {int(t["index"]): str(t["name"]) for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced = {int(i) for op in ops for i in op["outputs"]}
    float_side = {int(d["index"]) for d in interpreter.get_input_details()}
    nodes: list[str] = []
    for op in ops:
        dynamic_inputs = [int(i) for i in op["inputs"] if int(i) in produced or int(i) in float_side]
        if op["op_name"] not in _ELEMENTWISE or not dynamic_inputs:
            break
        if not all(i in float_side for i in dynamic_inputs):
            break
        for output in op["outputs"]:
            float_side.add(int(output))
            nodes.append(names[int(output)])
    return nodes


def convert_variants(source: ModelSource, calibration: Dataset) -> dict[str, bytes]:
    """Convert ``source`` into every variant in :data:`VARIANTS`."""
    variants: dict[str, bytes] = {}
    variants["float32"] = _convert(_converter(source))

    converter = _converter(source)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    variants["float16"] = _convert(converter)

    converter = _converter(source)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    variants["dynamic_range"] = _convert(converter)

    variants["int8"] = _full_int8(source, calibration, float_preprocessing_nodes(variants["float32"]))
    return variants


def _full_int8(source: ModelSource, calibration: Dataset, float_nodes: list[str]) -> bytes:
    converter = _converter(source)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative_dataset(source, calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    # Per-tensor weight scales: per-channel ones cost ~12 bytes a channel in metadata,
    # as much as the weights of a small model, for no accuracy gain on it.
    converter._experimental_disable_per_channel = True
    if not float_nodes:
        return _convert(converter)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_nodes)
    try:
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: representative_dataset(source, calibration),
            debug_options=options,
        )
        return bytes(debugger.get_nondebug_quantized_model())
    except BuildError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BuildError(f"int8 quantization failed ({exc.__class__.__name__})") from None
