"""Cold starts in fresh interpreters: import the entrypoint, load the model, answer one sealed request.

The clock starts at the first line of the child, before any import, and stops when the
answer is in hand; the parent decrypts and checks the answer. One script serves every
entrypoint, so the figures differ only by what each entrypoint imports and does.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from litefaas.paths import ROOT

ENTRYPOINTS = ("core", "aws", "gcp", "azure", "tensorflow")

_CHILD = textwrap.dedent(
    """
    import time
    started = time.perf_counter()
    import base64, json, sys
    entry, body = sys.argv[1], sys.stdin.buffer.read()
    from core.protocol import ENCRYPTED_TYPE
    headers = {"Content-Type": ENCRYPTED_TYPE}
    if entry == "core":
        from core.app import App
        answer = App.from_env().handle("POST", "/predict", headers, body).body
    elif entry == "tensorflow":
        import tensorflow
        from core.app import App
        from core.config import Settings
        from core.engine import Engine
        engine = Engine.from_dir(backends=["tensorflow"])
        engine.warm_up()
        answer = App(Settings.from_env(), engine).handle("POST", "/predict", headers, body).body
    elif entry == "aws":
        from handlers.aws.handler import handler
        event = {
            "version": "2.0", "rawPath": "/predict", "headers": {"content-type": headers["Content-Type"]},
            "requestContext": {"http": {"method": "POST", "path": "/predict"}, "domainName": "localhost"},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
        }
        answer = handler(event, None)["body"].encode()
    elif entry == "gcp":
        import functions_framework
        app = functions_framework.create_app(target="predict", source="handlers/gcp/main.py")
        answer = app.test_client().post("/predict", data=body, headers=headers).get_data()
    elif entry == "azure":
        from litefaas.local.azure_host import load_host
        answer = load_host().invoke("POST", "http://127.0.0.1/api/predict", headers, body).body
    elapsed = time.perf_counter() - started
    sys.stdout.write(json.dumps({"seconds": elapsed, "answer": answer.decode()}) + "\\n")
    """
)


@dataclass(frozen=True)
class ColdStart:
    """Median seconds from a fresh interpreter's first line to a checked answer, over ``runs``."""

    entrypoint: str
    median_s: float
    samples_s: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "median_ms": round(self.median_s * 1000, 1),
            "samples_ms": [round(s * 1000, 1) for s in self.samples_s],
        }


Seal = Callable[[], tuple[bytes, Callable[[bytes], bool]]]


def cold_start(entrypoint: str, env: Mapping[str, str], seal: Seal, runs: int = 3) -> ColdStart:
    """Run ``entrypoint`` cold ``runs`` times; ``seal`` gives a fresh request and a check for its answer."""
    if entrypoint not in ENTRYPOINTS:
        raise ValueError(f"unknown entrypoint {entrypoint!r}")
    child_env = {**env, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "LITEFAAS_LOG_LEVEL": "ERROR"}
    samples = []
    for _ in range(runs):
        body, check = seal()
        completed = subprocess.run(  # noqa: S603 - this interpreter and our own script
            [sys.executable, "-c", _CHILD, entrypoint],
            input=body,
            capture_output=True,
            env=child_env,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            tail = completed.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{entrypoint} cold start failed: {' | '.join(tail)}")
        result = json.loads(completed.stdout.decode().strip().splitlines()[-1])
        if not check(result["answer"].encode()):
            raise RuntimeError(f"{entrypoint} cold start gave a wrong answer")
        samples.append(float(result["seconds"]))
    return ColdStart(entrypoint, statistics.median(samples), tuple(samples))


def import_time(module: str, runs: int = 3) -> float:
    """Median seconds to import ``module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    samples = [
        float(
            subprocess.run(  # noqa: S603
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=300
            ).stdout.split()[-1]
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)
