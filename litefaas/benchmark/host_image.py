"""The sealed 224x224x3 image through the GCP host as served: functions-framework on gunicorn with
its uvicorn worker (ASGI, as deployed), on 127.0.0.1, one keep-alive client sending one request at
a time. Its p50 and the server's minor page faults per request (from ``/proc``): what the
in-process figures of section 4 leave out, the sockets and the allocator of a long-lived server."""

from __future__ import annotations

import http.client
import os
import statistics
import time
from pathlib import Path
from typing import Any

from litefaas.local.process import free_port, group_minor_faults


def measure(keys: Any, folder: Path, requests: int = 200, warm: int = 30) -> dict[str, Any]:
    """``requests`` sealed version-2 images after ``warm`` more (``keys``: the bench's
    :func:`~litefaas.benchmark.samples.make_keys`); times in ms."""
    import numpy as np

    from core.engine import Engine
    from core.protocol import ENCRYPTED_TYPE_V2
    from litefaas.client import KeyInfo, build_tensor_request
    from litefaas.local.gcp import launch_spec
    from litefaas.local.server import LocalServer

    manifest = Engine.from_dir(folder).manifest
    env = dict(os.environ)
    env.update(
        LITEFAAS_PRIVATE_KEYS=keys.private_json, LITEFAAS_MODEL_DIR=str(folder), LITEFAAS_LOG_LEVEL="WARNING"
    )
    key = KeyInfo.from_json(keys.public["keys"][0])
    image = np.random.default_rng(5).random((1, *manifest.inputs[0].row_shape), dtype=np.float32)
    bodies = [build_tensor_request({manifest.inputs[0].name: image}, key)[0] for _ in range(warm + requests)]
    port = free_port()
    with LocalServer("gcp", launch_spec(port, env)) as server:
        server.wait_healthy()
        assert server.pid is not None
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        times: list[float] = []
        faults_before = 0
        for index, body in enumerate(bodies):
            if index == warm:
                faults_before = group_minor_faults(server.pid)
            started = time.perf_counter()
            connection.request("POST", "/predict", body, {"Content-Type": ENCRYPTED_TYPE_V2})
            answer = connection.getresponse()
            answer.read()
            if index >= warm:
                times.append(time.perf_counter() - started)
            if answer.status != 200:
                raise RuntimeError(f"the GCP host answered {answer.status}:\n{server.log_tail()}")
        faults = group_minor_faults(server.pid) - faults_before
        connection.close()
    return {
        "server": "functions-framework, gunicorn + uvicorn (ASGI), 127.0.0.1, one keep-alive client",
        "request_bytes": len(bodies[0]),
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p90_ms": round(statistics.quantiles(times, n=10)[-1] * 1000, 3),
        "page_faults_per_request": round(faults / requests, 2),
    }
