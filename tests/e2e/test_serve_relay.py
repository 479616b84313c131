"""``litefaas serve --provider all --relay PORT`` and ``litefaas predict --oblivious --relay …`` as the
README gives them: client → relay → each provider's gateway, and the relay sees no plaintext byte."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from fixtures.requests import ROWS
from fixtures.serving import serving

from core.engine import Engine
from litefaas.local.process import free_port
from litefaas.paths import ROOT

RELAY_LINE = re.compile(r"^relay ready at (\S+)\s+\(forwards to (\S+)\)")
CANARY = 31337.0421

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / "node_modules").is_dir(), reason="npm packages not installed (run make setup)"
    ),
]


def test_predict_through_the_relay_to_every_host(tmp_path):
    rows = [[CANARY, *ROWS[0][1:]], *ROWS[1:4]]
    source = tmp_path / "rows.json"
    source.write_text(json.dumps({"inputs": rows}))
    log = tmp_path / "relay.log"
    port, relay_port = free_port(), free_port(span=1)
    # GIVEN the three hosts and a relay, started as the README says (plaintext stays off)
    with serving(
        "--provider", "all", "--port", str(port), "--relay", str(relay_port), "--relay-log", str(log)
    ) as served:
        relays = dict(match.groups() for line in served.output if (match := RELAY_LINE.match(line.strip())))
        assert len(relays) == 3, "".join(served.output)  # one resource per host
        expected = Engine.from_dir().predict({"features": np.asarray(rows, dtype=np.float32)})["probability"]
        for name, (url, _) in served.hosts.items():
            # WHEN predict sends the rows through the relay to that host's gateway
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "litefaas.cli",
                    "predict",
                    "--url",
                    url,
                    "--input",
                    str(source),
                    "--oblivious",
                    "--relay",
                    f"http://127.0.0.1:{relay_port}/{name}",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
            )
            # THEN the answer is the model's
            assert run.returncode == 0, (name, run.stderr[-2000:])
            outputs = [json.loads(line) for line in run.stdout.splitlines()]
            np.testing.assert_allclose(outputs, expected.tolist(), rtol=1e-6)
            assert f"http://127.0.0.1:{relay_port}/{name}" in relays
    # AND the relay forwarded only encapsulated bytes: no canary, no JSON, nothing in clear
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    posts = [entry for entry in entries if entry["method"] == "POST"]
    assert len(posts) == 3 and all(entry["status"] == 200 for entry in entries)
    for entry in posts:
        forwarded = base64.b64decode(entry["request_b64"]) + base64.b64decode(entry["response_b64"])
        for plaintext in (
            b"31337.0421",
            struct.pack("<f", CANARY),
            b'"inputs"',
            b"probability",
            b"breast_cancer",
        ):
            assert plaintext not in forwarded
        assert entry["request_headers"] == {"content-type": "message/ohttp-req"} or set(
            entry["request_headers"]
        ) <= {
            "content-type",
            "accept",
        }
        assert entry["response_headers"] == {"Content-Type": "message/ohttp-res"}
