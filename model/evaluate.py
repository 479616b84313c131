"""Measure each variant: size, accuracy, AUC, agreement with Keras, LiteRT latency, runtimes."""

from __future__ import annotations

import importlib.util
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from core.engine import Engine, Manifest
from model.data import Dataset

Arrays = dict[str, np.ndarray]
RUNTIMES_CHECKED = ("ai_edge_litert", "tflite_runtime")


@dataclass
class VariantReport:
    """One row of ``compression.json``."""

    variant: str
    bytes: int
    ratio: float
    ratio_vs_keras: float
    accuracy: float | None
    auc: float | None
    max_abs_diff: float
    latency_us_b1: float
    latency_us_b256: float
    runtimes: list[str] = field(default_factory=list)
    selected: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def classification_metrics(
    probabilities: np.ndarray, labels: np.ndarray | None
) -> tuple[float | None, float | None]:
    """Accuracy and ROC AUC: binary for one output column, one-vs-rest otherwise."""
    if labels is None:
        return None, None
    from sklearn.metrics import roc_auc_score

    scores = probabilities.reshape(len(probabilities), -1)
    if scores.shape[1] == 1:
        predicted = (scores[:, 0] >= 0.5).astype(labels.dtype)
        accuracy = float(np.mean(predicted == labels.reshape(-1)))
        try:
            auc = float(roc_auc_score(labels.reshape(-1), scores[:, 0]))
        except ValueError:
            auc = None
        return accuracy, auc
    accuracy = float(np.mean(np.argmax(scores, axis=1) == labels.reshape(-1).astype(int)))
    # One-vs-rest AUC wants rows that sum to 1; a quantized softmax's rows are off by a little.
    totals = scores.astype(np.float64).sum(axis=1, keepdims=True)
    normalized = scores / np.where(totals > 0, totals, 1.0)
    try:
        auc = float(roc_auc_score(labels.reshape(-1).astype(int), normalized, multi_class="ovr"))
    except ValueError:
        auc = None
    return accuracy, auc


def run_batched(engine: Engine, inputs: Arrays, batch_size: int = 256) -> Arrays:
    count = len(next(iter(inputs.values())))
    parts: dict[str, list[np.ndarray]] = {spec.name: [] for spec in engine.manifest.outputs}
    for start in range(0, count, batch_size):
        batch = {name: np.ascontiguousarray(v[start : start + batch_size]) for name, v in inputs.items()}
        for name, value in engine.predict(batch).items():
            parts[name].append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def median_latency_us(engine: Engine, inputs: Arrays, batch_size: int, repeats: int) -> float:
    count = len(next(iter(inputs.values())))
    rows = np.arange(batch_size) % count
    batch = {name: np.ascontiguousarray(v[rows]) for name, v in inputs.items()}
    engine.predict(batch)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.predict(batch)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def loading_runtimes(manifest: Manifest, content: bytes, sample: Arrays) -> list[str]:
    """The backends that build an interpreter for this model and run one row."""
    loaded = []
    for backend in RUNTIMES_CHECKED:
        if importlib.util.find_spec(backend) is None:
            continue
        try:
            Engine(manifest, content, backends=[backend]).predict(sample)
        except Exception:  # noqa: BLE001, S112 - "does not load" is the answer here
            continue
        loaded.append(backend)
    return loaded


def evaluate_variant(
    variant: str,
    content: bytes,
    manifest: Manifest,
    evaluation: Dataset,
    reference: Arrays,
    float32_bytes: int,
    keras_bytes: int,
    *,
    repeats_b1: int = 300,
    repeats_b256: int = 60,
) -> VariantReport:
    """Everything ``compression.json`` says about one variant."""
    sample = {name: v[:1] for name, v in evaluation.inputs.items()}
    runtimes = loading_runtimes(manifest, content, sample)
    engine = Engine(manifest, content, num_threads=1)
    outputs = run_batched(engine, evaluation.inputs)
    first_output = manifest.outputs[0].name
    accuracy, auc = classification_metrics(outputs[first_output], evaluation.labels)
    max_abs_diff = max(
        float(np.max(np.abs(outputs[name].astype(np.float64) - reference[name].astype(np.float64))))
        for name in outputs
    )
    return VariantReport(
        variant=variant,
        bytes=len(content),
        ratio=round(len(content) / float32_bytes, 4),
        ratio_vs_keras=round(len(content) / keras_bytes, 4),
        accuracy=accuracy,
        auc=auc,
        max_abs_diff=max_abs_diff,
        latency_us_b1=round(median_latency_us(engine, evaluation.inputs, 1, repeats_b1), 2),
        latency_us_b256=round(median_latency_us(engine, evaluation.inputs, 256, repeats_b256), 2),
        runtimes=runtimes,
    )
