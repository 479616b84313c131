"""``litefaas serve --provider all`` as a person runs it: three servers, encrypted answers, Ctrl-C, nothing left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fixtures.requests import ROWS

from core.engine import Engine
from litefaas.client import Client
from litefaas.local.process import free_port, group_alive

ROOT = Path(__file__).resolve().parent.parent.parent
READY = re.compile(r"^(aws|gcp|azure) ready at (\S+)\s+\(pid (\d+);")

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(
    not (ROOT / "node_modules").is_dir(), reason="npm packages not installed (run make setup)"
)
def test_serve_all_answers_and_stops_cleanly():
    # GIVEN `litefaas serve --provider all` started as a user would, on three free consecutive ports
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITEFAAS_")}
    env["COLUMNS"] = "300"
    command = [sys.executable, "-m", "litefaas.cli", "serve", "--provider", "all", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    servers: dict[str, tuple[str, int]] = {}
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if match := READY.match(line.strip()):
                servers[match[1]] = (match[2], int(match[3]))
            if line.startswith("Ctrl-C stops every server"):
                break
        assert set(servers) == {"aws", "gcp", "azure"}, "".join(output)
        keyset_text = "".join(output).split("public key set:", 1)[1].split("Ctrl-C", 1)[0]
        assert len(json.loads(keyset_text)["keys"]) == 1

        # WHEN each server gets encrypted requests through the client
        expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:8], dtype=np.float32)})[
            "probability"
        ]
        for url, _ in servers.values():
            with Client(url) as client:
                # THEN every answer decrypts to the model's own output
                np.testing.assert_array_equal(client.predict(ROWS[:8]).outputs, expected)
    finally:
        # AND Ctrl-C stops every server, leaving no process behind
        process.send_signal(signal.SIGINT)
        tail, _ = process.communicate(timeout=60)
    assert process.returncode == 0, tail
    assert "no process left behind" in tail
    for name, (_, pid) in servers.items():
        assert not group_alive(pid), f"{name} left processes behind"
