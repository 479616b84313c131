"""``litefaas serve --provider all`` as a person runs it: three servers, encrypted answers, Ctrl-C, nothing left."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.requests import ROWS
from fixtures.serving import serving

from core.engine import Engine
from litefaas.client import Client
from litefaas.local.process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(
    not (ROOT / "node_modules").is_dir(), reason="npm packages not installed (run make setup)"
)
def test_serve_all_answers_and_stops_cleanly():
    # GIVEN `litefaas serve --provider all` started as a user would, on three free consecutive ports
    with serving("--provider", "all", "--port", str(free_port())) as served:
        assert set(served.hosts) == {"aws", "gcp", "azure"}, "".join(served.output)
        keyset_text = "".join(served.output).split("public key set:", 1)[1].split("Ctrl-C", 1)[0]
        assert len(json.loads(keyset_text)["keys"]) == 1

        # WHEN each server gets encrypted requests through the client
        expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:8], dtype=np.float32)})[
            "probability"
        ]
        for url, _ in served.hosts.values():
            with Client(url) as client:
                # THEN every answer decrypts to the model's own output
                np.testing.assert_array_equal(client.predict(ROWS[:8]).outputs, expected)
    # AND Ctrl-C stops every server, leaving no process behind (`serving` checks each group too),
    # after a summary of what each host's function logged (its health checks, the key set, the 8 rows)
    assert "no process left behind" in served.tail
    assert "requests the functions logged" in served.tail
    for host in ("aws", "gcp", "azure"):
        row = next(line for line in served.tail.splitlines() if f" {host} " in line)
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        assert int(cells[1]) >= 3 and cells[2] == "0" and cells[6] == "1", row
