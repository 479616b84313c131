"""The Open Inference Protocol against version 2 on one 224x224x3 float32 image, side by side in one run.

    python -m litefaas.benchmark.oip_speed [--repeats N] [--json FILE]

The image model is :func:`litefaas.benchmark.core_speed.image_model` (built with TensorFlow the
first time, then reused). Three plaintext requests carry the same image: OIP JSON (``data`` as a
flat list of numbers), OIP with Triton's binary tensor data (outputs binary too) and litefaas's
version-2 framed tensors. Each is measured through the real GCP host (functions-framework on
gunicorn, 127.0.0.1, one keep-alive client) and through ``App.handle`` in process, in rounds that
take OIP binary and version 2 in turn so that the machine's noise falls on both alike (OIP JSON,
60 times slower, apart with a tenth of the repeats); the answers must agree.
Reported: request and response bytes (bodies, and the request headers each form adds), medians,
and each form's ratio to version 2's. Request logs are off (level WARNING), as in ``core_speed``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from litefaas.benchmark.timing import alternating_medians
from litefaas.paths import BUILD

DEFAULT_JSON = BUILD / "bench" / "oip_speed.json"
HEADER_LENGTH = "Inference-Header-Content-Length"


def _requests(model_name: str, input_name: str, image: Any) -> dict[str, tuple[str, dict[str, str], bytes]]:
    """(path, headers, body) of each form for the same image."""
    from core.protocol import PLAINTEXT_TYPE_V2
    from core.tensors import frame_tensors

    infer = f"/v2/models/{model_name}/infer"
    tensor = {"name": input_name, "shape": list(image.shape), "datatype": "FP32"}
    oip_json = json.dumps({"inputs": [{**tensor, "data": image.ravel().tolist()}]}).encode()
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": image.nbytes}}],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return {
        "oip_json": (infer, {"Content-Type": "application/json"}, oip_json),
        "oip_binary": (infer, {HEADER_LENGTH: str(len(header))}, header + image.tobytes()),
        "v2": (
            "/predict",
            {"Content-Type": PLAINTEXT_TYPE_V2},
            frame_tensors({}, "inputs", {input_name: image}),
        ),
    }


def _outputs(form: str, headers: Any, body: bytes) -> Any:
    import numpy as np

    from core.tensors import read_tensors, split_frame

    if form == "v2":
        header, payload = split_frame(body)
        return next(iter(read_tensors(header, "outputs", payload).values()))
    length = headers.get(HEADER_LENGTH)
    if length is None:
        entry = json.loads(body)["outputs"][0]
        return np.asarray(entry["data"], dtype=np.float32).reshape(entry["shape"])
    entry = json.loads(body[: int(length)])["outputs"][0]
    return np.frombuffer(body[int(length) :], dtype=np.float32).reshape(entry["shape"])


def _measure_forms(call: Any, repeats: int) -> dict[str, float]:
    """OIP binary and version 2 in alternating rounds; OIP JSON apart, with fewer repeats (a 3 MB
    JSON request evicts the caches, which would slow whichever request came after it)."""
    return alternating_medians(call, ["oip_binary", "v2"], repeats) | alternating_medians(
        call, ["oip_json"], max(5, repeats // 10)
    )


def measure(repeats: int = 200) -> dict[str, Any]:
    """Bytes and medians of the three forms, through the GCP host and through ``App.handle``."""
    import httpx
    import numpy as np

    from core.app import App
    from core.config import Settings
    from core.engine import Engine
    from litefaas.benchmark.core_speed import IMAGE_SIZE, image_model
    from litefaas.local.process import free_port
    from litefaas.local.serving import function_env, serving

    folder = image_model()
    engine = Engine.from_dir(folder)
    manifest = engine.manifest
    image = np.random.default_rng(5).random((1, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    requests = _requests(manifest.name, manifest.inputs[0].name, image)
    forms = list(requests)
    base = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    base |= {
        "LITEFAAS_MODEL_DIR": str(folder),
        "LITEFAAS_MAX_BODY_BYTES": str(16 * 1024 * 1024),  # OIP JSON of one image is over 4 MiB
        "LITEFAAS_LOG_LEVEL": "WARNING",
    }
    env, _ = function_env(base, allow_plaintext=True)
    app = App(Settings.from_env(env), engine)

    def in_process(form: str) -> None:
        path, headers, body = requests[form]
        assert app.handle("POST", path, headers, body).status == 200

    with serving(["gcp"], free_port(span=1), env, timeout=120) as servers, httpx.Client(timeout=60) as client:
        base_url = servers[0].spec.base_url
        answers = {}
        for form, (path, headers, body) in requests.items():
            answer = client.post(base_url + path, headers=headers, content=body)
            assert answer.status_code == 200, (form, answer.text[:300])
            answers[form] = answer

        def over_http(form: str) -> None:
            path, headers, body = requests[form]
            assert client.post(base_url + path, headers=headers, content=body).status_code == 200

        host = _measure_forms(over_http, repeats)
    handle = _measure_forms(in_process, repeats)
    reference = _outputs("v2", answers["v2"].headers, answers["v2"].content)
    for form in forms:
        np.testing.assert_allclose(
            _outputs(form, answers[form].headers, answers[form].content), reference, atol=1e-6
        )
    ms = 1000
    results: dict[str, Any] = {
        "model": f"{manifest.name}: input [1, 224, 224, 3] float32",
        "tensor_bytes": image.nbytes,
    }
    for form in forms:
        _, headers, body = requests[form]
        results[form] = {
            "request_bytes": len(body),
            "request_header_bytes": sum(len(f"{name}: {value}\r\n") for name, value in headers.items()),
            "response_bytes": len(answers[form].content),
            "gcp_host_p50_ms": round(host[form] * ms, 3),
            "app_handle_p50_ms": round(handle[form] * ms, 3),
            "gcp_host_over_v2": round(host[form] / host["v2"], 2),
            "app_handle_over_v2": round(handle[form] / handle["v2"], 2),
            "request_bytes_over_v2": len(body) - len(requests["v2"][2]),
        }
    results["target"] = "OIP binary: p50 <= 1.2x version 2's through the GCP host, <= 1 KB more bytes"
    results["repeats"] = repeats
    return results


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"OIP against version 2, plaintext: {results['model']}")
    for column in (
        "form",
        "request B",
        "+ vs v2",
        "response B",
        "GCP host p50 ms",
        "/ v2",
        "App.handle p50 ms",
        "/ v2",
    ):
        table.add_column(column, justify="left" if column == "form" else "right")
    labels = {"oip_json": "OIP JSON", "oip_binary": "OIP binary tensor data", "v2": "litefaas version 2"}
    for form, label in labels.items():
        row = results[form]
        extra_headers = row["request_header_bytes"] - results["v2"]["request_header_bytes"]
        table.add_row(
            label,
            f"{row['request_bytes']:,}",
            f"{row['request_bytes_over_v2'] + extra_headers:+,}",
            f"{row['response_bytes']:,}",
            f"{row['gcp_host_p50_ms']}",
            f"{row['gcp_host_over_v2']}×",
            f"{row['app_handle_p50_ms']}",
            f"{row['app_handle_over_v2']}×",
        )
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=200, help="requests of each form (default 200)")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})"
    )
    args = parser.parse_args(argv)
    results = measure(args.repeats)
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
