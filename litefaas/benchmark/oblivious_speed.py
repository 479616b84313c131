"""Oblivious HTTP against litefaas's version-2 seal, side by side in one run (``core_speed``'s section 5).

For the seed model's batch-1 row and, where the image model is built, one 224x224x3 float32 image:
the same framed version-2 request sealed three ways, version 2's own envelope, and Oblivious HTTP
(RFC 9458) with the gateway's padding on and off (the client pads its request in the first only).
Each goes through the GCP entry point in process (functions-framework's real Flask app, called as
its WSGI server calls it), in rounds taking the three in turn; every request is sealed afresh
beforehand (replay), and the answers are opened and checked. Reported: bytes on the wire each way,
medians, and Oblivious HTTP's time over version 2's (target ≤ 1.2×).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from email.utils import formatdate
from pathlib import Path
from typing import Any

from litefaas.benchmark.timing import alternating_medians
from litefaas.benchmark.wsgi import gcp_wsgi_app, wsgi_post

FORMS = ("v2_sealed", "ohttp_padded", "ohttp_unpadded")


def _case(name: str, tensors: Mapping[str, Any], env: Mapping[str, str], repeats: int) -> dict[str, Any]:
    import numpy as np

    from core import bhttp
    from core.crypto.ohttp import decode_key_configs, encapsulate
    from core.oblivious import padded_size
    from core.protocol import ENCRYPTED_TYPE_V2, OHTTP_REQUEST_TYPE, PLAINTEXT_TYPE_V2
    from core.tensors import frame_tensors
    from litefaas.client import KeyInfo, build_tensor_request, read_tensor_response

    padded_app = gcp_wsgi_app({**env, "LITEFAAS_OHTTP_PADDING": "1"})
    unpadded_app = gcp_wsgi_app({**env, "LITEFAAS_OHTTP_PADDING": "0"})
    from core.config import Settings

    settings = Settings.from_env(env)
    assert settings.keyring is not None
    key = KeyInfo.from_json(settings.keyring.public_keyset()["keys"][0])
    config = decode_key_configs(settings.keyring.gateway.key_configs)[0]
    framed = frame_tensors({}, "inputs", tensors)

    def ohttp_body(pad: bool) -> tuple[bytes, Any]:
        inner = bhttp.Request(
            "POST",
            "https",
            "fn",
            "/predict",
            [("content-type", PLAINTEXT_TYPE_V2), ("date", formatdate(usegmt=True))],
            framed,
        )
        message = bhttp.encode_request(inner)
        if pad:
            message += bytes(padded_size(len(message)) - len(message))
        return encapsulate(config, message)

    pools: dict[str, list[Any]] = {
        "v2_sealed": [build_tensor_request(tensors, key) for _ in range(repeats + 4)],
        "ohttp_padded": [ohttp_body(True) for _ in range(repeats + 4)],
        "ohttp_unpadded": [ohttp_body(False) for _ in range(repeats + 4)],
    }
    first = {form: pool[-1] for form, pool in pools.items()}
    answers = {
        "v2_sealed": wsgi_post(padded_app, "/predict", ENCRYPTED_TYPE_V2, first["v2_sealed"][0]),
        "ohttp_padded": wsgi_post(
            padded_app, "/.well-known/ohttp-gateway", OHTTP_REQUEST_TYPE, first["ohttp_padded"][0]
        ),
        "ohttp_unpadded": wsgi_post(
            unpadded_app, "/.well-known/ohttp-gateway", OHTTP_REQUEST_TYPE, first["ohttp_unpadded"][0]
        ),
    }
    reference = next(
        iter(
            read_tensor_response(
                200, ENCRYPTED_TYPE_V2, answers["v2_sealed"][1], first["v2_sealed"][1]
            ).values()
        )
    )
    for form in ("ohttp_padded", "ohttp_unpadded"):
        answer = bhttp.parse_response(first[form][1].open(answers[form][1]), 1 << 30)
        assert answer.status == 200, answer.content[:200]
        opened = next(iter(read_tensor_response(200, PLAINTEXT_TYPE_V2, answer.content, None).values()))
        assert np.array_equal(opened, reference), form
    iterators = {form: iter(pool[:-1]) for form, pool in pools.items()}

    def call(form: str) -> Callable[[], None]:
        app = unpadded_app if form == "ohttp_unpadded" else padded_app
        path, kind = (
            ("/predict", ENCRYPTED_TYPE_V2)
            if form == "v2_sealed"
            else ("/.well-known/ohttp-gateway", OHTTP_REQUEST_TYPE)
        )
        return lambda: _check(wsgi_post(app, path, kind, next(iterators[form])[0]))

    calls = {form: call(form) for form in FORMS}
    times = alternating_medians(lambda form: calls[form](), list(FORMS), repeats)
    ms = 1000
    result: dict[str, Any] = {"case": name}
    for form in FORMS:
        result[form] = {
            "request_bytes": len(first[form][0]),
            "response_bytes": len(answers[form][1]),
            "gcp_entry_ms": round(times[form] * ms, 3),
            "over_v2": round(times[form] / times["v2_sealed"], 2),
        }
    result["target"] = "Oblivious HTTP <= 1.2x version 2's time"
    return result


def _check(answer: tuple[str, bytes]) -> None:
    assert answer[0].startswith("200"), answer


def measure(private_json: str, repeats: int, image_dir: Path | None) -> dict[str, Any]:
    """The seed row, and the image where ``image_dir`` holds the image model."""
    import numpy as np

    from litefaas.benchmark.samples import ROWS

    base = {"LITEFAAS_PRIVATE_KEYS": private_json, "LITEFAAS_LOG_LEVEL": "WARNING"}
    results = {
        "seed_row": _case(
            "seed model, batch 1", {"features": np.asarray(ROWS[:1], dtype=np.float32)}, base, repeats
        )
    }
    if image_dir is not None:
        from core.engine import Engine

        name = Engine.from_dir(image_dir).manifest.inputs[0].name
        image = np.random.default_rng(5).random((1, 224, 224, 3), dtype=np.float32)
        env = {**base, "LITEFAAS_MODEL_DIR": str(image_dir)}
        results["image"] = _case("224x224x3 float32 image", {name: image}, env, max(10, repeats // 20))
    return results


def print_table(results: Mapping[str, Any]) -> None:
    labels = {
        "v2_sealed": "version 2 sealed",
        "ohttp_padded": "Oblivious HTTP, padded",
        "ohttp_unpadded": "Oblivious HTTP, no padding",
    }
    for case in results.values():
        print(f"\n{case['case']}: through the GCP entry point in process")
        print(f"{'':28}  {'request B':>10}  {'response B':>10}  {'ms':>8}  {'/ v2':>6}")
        for form, label in labels.items():
            row = case[form]
            sizes = f"{row['request_bytes']:>10,}  {row['response_bytes']:>10,}"
            print(f"{label:28}  {sizes}  {row['gcp_entry_ms']:>8}  {row['over_v2']:>6}")
