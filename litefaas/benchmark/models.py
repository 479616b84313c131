"""Real model shapes on a local host: the seed MLP over version 2, a 224x224x3 image model (version 2
and as JPEG files) and the seed MLP cut into a 2-segment chain.

The image model is a small Keras conv net built here with fixed seeds (untrained: no weights are
downloaded; it is measured for its shape, not its answers), converted to a float32 ``.tflite`` and
imported with :func:`model.tflite_import.build_from_tflite` with an ``image`` declaration, so the
function also accepts JPEG files. The chain is :mod:`model.partition` on the seed MLP. Both are
built once into ``build/bench/models/`` and reused. Every model runs on the functions-framework
host (the ``gcp`` local host, one worker with 8 threads); every answer is checked.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from litefaas.benchmark.load import Run
from litefaas.benchmark.run import Step
from litefaas.paths import BUILD

MODELS = BUILD / "bench" / "models"
IMAGE_SIZE = 224
IMAGE_INPUT = "image"
DESCRIPTIONS = {
    "mlp-v1": "seed MLP, 30 features, version 1 (sealed JSON)",
    "mlp-v2": "seed MLP, 30 features, version 2 (sealed tensors)",
    "image-v2": "224x224x3 conv net, float32 tensor, version 2",
    "image-jpeg": "224x224x3 conv net, one JPEG file (BYTES), version 2",
    "chain-2": "seed MLP as 2 int8 segments on 2 hosts (ChainClient, version 1)",
}


@dataclass(frozen=True)
class ModelPlan:
    levels: tuple[int, ...]
    requests: int
    warmup: int = 5


def plan_for(quick: bool) -> ModelPlan:
    return ModelPlan((1, 16), 40) if quick else ModelPlan((1, 4, 16, 64), 300)


def image_model(out: Path = MODELS / "image224") -> Path:
    """The 224x224x3 image model's artifact (built once with TensorFlow)."""
    if (out / "manifest.json").is_file():
        return out
    import os
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from model.pipeline import image_declaration
    from model.tflite_import import build_from_tflite

    keras.utils.set_random_seed(7)
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name=IMAGE_INPUT)
    x = inputs
    for filters in (8, 16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="scores")(x)
    network = keras.Model(inputs, outputs, name="image224")
    converter = tf.lite.TFLiteConverter.from_keras_model(network)
    with tempfile.TemporaryDirectory(prefix="litefaas-image-") as scratch:
        path = Path(scratch) / "image224.tflite"
        with contextlib.redirect_stdout(io.StringIO()):
            path.write_bytes(converter.convert())
        declaration = image_declaration((IMAGE_SIZE, IMAGE_SIZE), scale=1 / 255)
        build_from_tflite(path, out, name="image224", images={IMAGE_INPUT: declaration}, latency_repeats=3)
    return out


def chain_model(out: Path = MODELS / "chain2", epochs: int = 20) -> Path:
    """The seed MLP cut into 2 int8 segments (``chain.json`` and a folder per segment)."""
    if (out / "chain.json").is_file():
        return out
    from model.data import BREAST_CANCER_LABEL, breast_cancer
    from model.partition import PartitionOptions, partition_model
    from model.train import train_seed_mlp

    split = breast_cancer()
    network = train_seed_mlp(split.train, epochs=epochs)
    partition_model(
        network,
        split.train,
        split.test,
        PartitionOptions(out=out, segments=2, with_whole=False),
        name="breast_cancer_mlp",
        feature_names=split.test.feature_names,
        label_meaning=BREAST_CANCER_LABEL,
    )
    return out


class Counting(httpx.HTTPTransport):
    """An HTTP transport that adds up the bytes of request and response bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = self.received = self.calls = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        with self.lock:
            self.sent += len(request.content)
            self.received += len(response.content)
            self.calls += 1
        return response


Call = Callable[[httpx.Client], None]


def drive(calls: Iterator[Call], requests: int, concurrency: int, make_client: Callable[[], Any]) -> Run:
    """``requests`` calls from ``calls`` with ``concurrency`` worker threads; a call raises when wrong."""
    run = Run(concurrency, 1, encrypted=True)
    lock = threading.Lock()
    work = iter([next(calls) for _ in range(requests)])

    def worker() -> None:
        client = make_client()
        try:
            while True:
                with lock:
                    call = next(work, None)
                if call is None:
                    return
                started = time.perf_counter()
                try:
                    call(client)
                    elapsed = time.perf_counter() - started
                    with lock:
                        run.latencies_s.append(elapsed)
                except Exception as exc:  # noqa: BLE001 (counted by kind, as the load runner does)
                    with lock:
                        run.errors += 1
                        kind = type(exc).__name__
                        run.error_kinds[kind] = run.error_kinds.get(kind, 0) + 1
        finally:
            client.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    run.wall_s = time.perf_counter() - started
    return run


def v2_calls(
    url: str, tensors: Callable[[int], dict[str, Any]], check: Callable[[dict[str, Any]], bool]
) -> tuple[Iterator[Call], dict[str, int]]:
    """Sealed version-2 requests (each with its own response key and id) and their checks."""
    from core.protocol import ENCRYPTED_TYPE_V2
    from litefaas.benchmark.run import fetch_key
    from litefaas.client import build_tensor_request, read_tensor_response

    key = fetch_key(url)
    index = 0
    sizes: dict[str, int] = {}

    def make() -> Call:
        nonlocal index
        index += 1
        body, request_secrets = build_tensor_request(tensors(index), key)
        sizes["request"] = len(body)

        def call(client: httpx.Client) -> None:
            response = client.post(
                f"{url}/predict", content=body, headers={"Content-Type": ENCRYPTED_TYPE_V2}
            )
            sizes["response"] = len(response.content)
            answer = read_tensor_response(
                response.status_code, response.headers.get("content-type"), response.content, request_secrets
            )
            if not check(answer):
                raise ValueError("wrong answer")

        return call

    def forever() -> Iterator[Call]:
        while True:
            yield make()

    return forever(), sizes


def jpeg_bytes(rng: np.random.Generator, size: int = IMAGE_SIZE) -> bytes:
    """A smooth synthetic photo-like picture as a JPEG (quality 85)."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + rng.random() * 6), np.cos(5 * y), np.sin(3 * (x + y))], axis=-1)
    noise = rng.normal(0, 0.05, (size, size, 3))
    pixels = np.clip((base * 0.4 + 0.5 + noise) * 255, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def measure_models(
    plan: ModelPlan, step: Step, env_base: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Build (or reuse) the models, serve each on a local host, measure; ``{model: result}``."""
    from core.engine import Engine
    from litefaas.benchmark.partition_speed import start_hosts
    from litefaas.benchmark.samples import ROWS

    advance = step("models: building the image model and the 2-segment chain (once)", 2)
    image_dir = image_model()
    advance(1)
    chain_dir = chain_model()
    advance(1)
    import json

    from model.pipeline import DEFAULT_OUT

    segments = json.loads((chain_dir / "chain.json").read_text(encoding="utf-8"))["segments"]
    hosts = {
        "mlp": (DEFAULT_OUT, 1, 8),
        "image": (image_dir, 1, 8),
        **{f"segment-{s['index']}": (chain_dir / s["folder"], 1, 8) for s in segments},
    }
    advance = step(f"models: starting {len(hosts)} functions-framework hosts", 1)
    started = time.perf_counter()
    servers: dict[str, Any] = start_hosts(hosts)
    host_start_ms = round((time.perf_counter() - started) * 1000, 1)
    advance(1)
    rows = np.asarray(ROWS, dtype=np.float32)
    mlp = Engine.from_dir(hosts["mlp"][0])
    image = Engine.from_dir(image_dir)
    image_input = image.manifest.inputs[0].name
    rng = np.random.default_rng(0)
    pictures = [rng.random((1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32) for _ in range(4)]
    jpegs = [jpeg_bytes(rng) for _ in range(4)]
    out: dict[str, dict[str, Any]] = {}
    try:
        urls = {name: server.spec.base_url for name, server in servers.items()}
        output = mlp.manifest.outputs[0].name
        expected = mlp.predict({"features": rows[:1]})[output]

        def mlp_tensors(i: int) -> dict[str, Any]:
            return {"features": rows[:1]}

        def mlp_check(got: dict[str, Any]) -> bool:
            return bool(np.allclose(np.asarray(got[output]), expected, atol=1e-6))

        cases: dict[str, tuple[str, Any]] = {}

        cases["mlp-v2"] = ("mlp", v2_calls(urls["mlp"], mlp_tensors, mlp_check))
        image_output = image.manifest.outputs[0].name

        def image_check(got: dict[str, Any]) -> bool:
            scores = np.asarray(got[image_output])
            return scores.shape == (1, 10) and abs(float(scores.sum()) - 1) < 1e-3

        def picture(i: int) -> dict[str, Any]:
            return {image_input: pictures[i % len(pictures)]}

        def jpeg(i: int) -> dict[str, Any]:
            return {image_input: [jpegs[i % len(jpegs)]]}

        cases["image-v2"] = ("image", v2_calls(urls["image"], picture, image_check))
        cases["image-jpeg"] = ("image", v2_calls(urls["image"], jpeg, image_check))
        for name, (_host, (calls, sizes)) in cases.items():
            out[name] = _measure(name, calls, sizes, plan, step, lambda: httpx.Client(timeout=60))
            out[name]["host_start_ms"] = host_start_ms
        out["chain-2"] = _measure_chain(
            [urls[f"segment-{s['index']}"] for s in segments], chain_dir, rows, plan, step
        )
        out["chain-2"]["host_start_ms"] = host_start_ms
        for name, (host, _) in cases.items():
            out[name]["model_bytes"] = _model_bytes(hosts[host][0])
        out["chain-2"]["model_bytes"] = sum(_model_bytes(chain_dir / s["folder"]) for s in segments)
    finally:
        for server in servers.values():
            with contextlib.suppress(Exception):
                server.stop()
    return out


def _model_bytes(folder: Path) -> int:
    import json

    manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    return (Path(folder) / manifest["file"]).stat().st_size if "file" in manifest else 0


def _measure(
    name: str, calls: Iterator[Call], sizes: dict[str, int], plan: ModelPlan, step: Step, make_client: Any
) -> dict[str, Any]:
    first = time.perf_counter()
    drive(calls, 1, 1, make_client)
    first_ms = round((time.perf_counter() - first) * 1000, 2)
    drive(calls, plan.warmup, min(4, plan.warmup), make_client)
    by_level: dict[int, Run] = {}
    for level in plan.levels:
        advance = step(f"{name}: {level} client(s)", plan.requests)
        by_level[level] = drive(calls, plan.requests, level, make_client)
        advance(plan.requests)
    return _summary(name, by_level, first_ms, sizes.get("request", 0), sizes.get("response", 0))


def _measure_chain(
    urls: list[str], chain_dir: Path, rows: np.ndarray, plan: ModelPlan, step: Step
) -> dict[str, Any]:
    from litefaas.client import ChainClient

    transports: list[Counting] = []

    def make_client() -> ChainClient:
        transport = Counting()
        transports.append(transport)
        return ChainClient(urls, chain=chain_dir / "chain.json", timeout=60, transport=transport)

    def forever() -> Iterator[Call]:
        i = 0
        while True:
            i += 1
            batch = rows[i % len(rows) : i % len(rows) + 1]

            def call(client: Any, batch: np.ndarray = batch) -> None:
                outputs = np.asarray(client.predict(batch).outputs)
                if outputs.shape[0] != 1 or not np.all(np.isfinite(outputs)):
                    raise ValueError("wrong answer")

            yield call

    result = _measure("chain-2", forever(), {}, plan, step, make_client)
    calls = sum(t.calls for t in transports) or 1
    predictions = sum(r["requests"] for r in result["by_concurrency"].values()) + 1 + plan.warmup
    result["request_bytes"] = round(sum(t.sent for t in transports) / predictions)
    result["response_bytes"] = round(sum(t.received for t in transports) / predictions)
    result["http_calls_per_prediction"] = round(calls / predictions, 2)
    return result


def _summary(
    name: str, by_level: dict[int, Run], first_ms: float, sent: int, received: int
) -> dict[str, Any]:
    base = by_level[min(by_level)].summary()
    return {
        "description": DESCRIPTIONS[name],
        "p50_ms": base["p50_ms"],
        "p95_ms": base["p95_ms"],
        "p99_ms": base["p99_ms"],
        "throughput_rps": max((r.summary()["throughput_rps"] or 0.0) for r in by_level.values()),
        "first_request_ms": first_ms,
        "request_bytes": sent,
        "response_bytes": received,
        "requests": sum(r.requests for r in by_level.values()),
        "errors": sum(r.errors for r in by_level.values()),
        "by_concurrency": {str(level): run.summary() for level, run in by_level.items()},
    }
