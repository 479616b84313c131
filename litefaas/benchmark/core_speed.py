"""Speed of the runtime core, measured side by side in one run (medians over many runs).

    python -m litefaas.benchmark.core_speed [--repeats N] [--cold-runs N] [--json FILE]

1. Cold start: a fresh process imports the core, loads the model and answers one
   encrypted request, against a fresh process that imports TensorFlow and does the
   same with ``tf.lite`` (skipped where TensorFlow is not installed).
2. Warm, batch 1, encrypted: one request through ``App.handle`` over one HPKE
   decrypt of the same envelope.
3. Warm, batch 1, plaintext: one request through ``App.handle`` over a raw
   interpreter set-invoke-get of the same row.

Request logs are off (level WARNING) for 2 and 3, as the ratios are about the request
path; ``handle_with_json_request_log_us`` adds the cost of one JSON log line per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from litefaas.paths import ROOT

COLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    started = time.perf_counter()
    kind, private_json, body = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    env = {"LITEFAAS_PRIVATE_KEYS": private_json, "LITEFAAS_LOG_LEVEL": "ERROR"}
    if kind == "core":
        from core.app import App
        app = App.from_env(env)
    else:
        import tensorflow
        from core.app import App
        from core.config import Settings
        from core.engine import Engine
        engine = Engine.from_dir(backends=["tensorflow"])
        engine.warm_up()
        app = App(Settings.from_env(env), engine)
    response = app.handle("POST", "/predict", {"Content-Type": "application/litefaas+json"}, body)
    elapsed = time.perf_counter() - started
    sys.stdout.write(f"{elapsed} {response.status} {app.engine.backend} {response.body.decode()}\\n")
    """
)


def cold_start(kind: str, keys, runs: int) -> tuple[float, str]:
    """Median seconds from process start (before any import) to the first encrypted answer."""
    from litefaas.benchmark.samples import seal

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    samples, backend = [], ""
    for _ in range(runs):
        sealed = seal(keys)
        out = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", COLD_SCRIPT, kind, keys.private_json, sealed.body.decode()],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=ROOT,
        )
        seconds, status, backend, body = out.stdout.strip().splitlines()[-1].split(" ", 3)
        assert status == "200", out.stdout
        sealed.open(body.encode())
        samples.append(float(seconds))
    return statistics.median(samples), backend


def median_us(function, repeats: int) -> float:
    for _ in range(min(200, repeats)):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5000)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    import importlib.util
    import logging

    import numpy as np

    from core import crypto
    from core.app import App
    from core.config import Settings
    from core.engine import Engine
    from litefaas.benchmark.samples import ENCRYPTED, PLAINTEXT, ROWS, make_keys, seal

    keys = make_keys()
    results: dict[str, object] = {}

    engine = Engine.from_dir()
    settings = Settings.from_env(
        {
            "LITEFAAS_PRIVATE_KEYS": keys.private_json,
            "LITEFAAS_ALLOW_PLAINTEXT": "1",
            "LITEFAAS_REPLAY_WINDOW_S": "300",
        }
    )
    logger = logging.getLogger("litefaas.bench")
    logger.disabled = True
    app = App(settings, engine, logger=logger)

    # Warm, encrypted: every request needs a fresh id (replay guard), so seal a pool up front.
    pool = [seal(keys) for _ in range(args.repeats + 200)]
    bodies = iter(pool)
    envelope = crypto.parse_envelope(pool[0].body)
    ring = settings.keyring
    assert ring is not None
    decrypt_us = median_us(lambda: ring.open(envelope), args.repeats)
    handle_encrypted_us = median_us(
        lambda: app.handle("POST", "/predict", ENCRYPTED, next(bodies).body), args.repeats
    )
    results["warm_encrypted"] = {
        "handle_us": round(handle_encrypted_us, 2),
        "hpke_decrypt_us": round(decrypt_us, 2),
        "ratio": round(handle_encrypted_us / decrypt_us, 2),
        "target": "<= 3",
    }

    # Warm, plaintext against the raw interpreter, same row.
    from ai_edge_litert.interpreter import Interpreter

    content = Path(Settings.model_dir, engine.manifest.file).read_bytes()
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    row = np.asarray(ROWS[:1], dtype=np.float32)

    def raw() -> None:
        interpreter.set_tensor(input_index, row)
        interpreter.invoke()
        interpreter.get_tensor(output_index)

    raw_us = median_us(raw, args.repeats)
    body = json.dumps({"inputs": ROWS[:1]}).encode()
    handle_plain_us = median_us(lambda: app.handle("POST", "/predict", PLAINTEXT, body), args.repeats)
    from core.logs import JsonFormatter

    logged = logging.getLogger("litefaas.bench.logged")
    sink = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    sink.setFormatter(JsonFormatter())
    logged.addHandler(sink)
    logged.setLevel(logging.INFO)
    logged.propagate = False
    logging_app = App(settings, engine, logger=logged)
    handle_logged_us = median_us(
        lambda: logging_app.handle("POST", "/predict", PLAINTEXT, body), args.repeats
    )
    results["warm_plaintext"] = {
        "handle_us": round(handle_plain_us, 2),
        "raw_interpreter_us": round(raw_us, 2),
        "ratio": round(handle_plain_us / raw_us, 2),
        "target": "<= 10",
        "handle_with_json_request_log_us": round(handle_logged_us, 2),
    }

    core_s, core_backend = cold_start("core", keys, args.cold_runs)
    results["cold_start"] = {"core_ms": round(core_s * 1000, 1), "core_backend": core_backend}
    if importlib.util.find_spec("tensorflow") is not None:
        tf_s, _ = cold_start("tensorflow", keys, max(3, args.cold_runs // 2))
        results["cold_start"].update(  # type: ignore[union-attr]
            {"tensorflow_ms": round(tf_s * 1000, 1), "speedup": round(tf_s / core_s, 1), "target": ">= 15"}
        )

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
