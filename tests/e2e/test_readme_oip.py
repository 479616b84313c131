"""The README's Open Inference Protocol examples, run as written against ``litefaas serve --provider all
--plaintext`` started as a person starts it; only the address is the test's own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.serving import serving

from litefaas.local.process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
README_URL = "127.0.0.1:8081"
OIP_LINE = re.compile(r"^\s+OIP at (\S+)\s+\(tritonclient url=(\S+)\)")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / "node_modules").is_dir(), reason="npm packages not installed (run make setup)"
    ),
]


def readme_example(marker: str) -> str:
    """The README's python block that starts with ``# README: <marker>``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    found = [block for block in blocks if block.startswith(f"# README: {marker}\n")]
    assert len(found) == 1, f"the README has no single '{marker}' example"
    return found[0]


def test_readme_examples_run_against_every_host():
    examples = {marker: readme_example(marker) for marker in ("tritonclient", "kserve")}
    assert all(README_URL in code for code in examples.values())
    # GIVEN `litefaas serve --provider all --plaintext`, as the README says to start it
    with serving("--provider", "all", "--plaintext", "--port", str(free_port())) as served:
        assert set(served.hosts) == {"aws", "gcp", "azure"}, "".join(served.output)
        printed = [match.groups() for line in served.output if (match := OIP_LINE.match(line))]
        # THEN it printed each host's OIP URL and the address tritonclient takes
        assert len(printed) == 3, "".join(served.output)
        for name, (base_url, _) in served.hosts.items():
            address = base_url.removeprefix("http://")
            assert (f"{base_url}/v2/models/breast_cancer_mlp", address) in printed, name
            # WHEN each README example runs as written, pointed at that host
            for marker, code in examples.items():
                run = subprocess.run(
                    [sys.executable, "-c", code.replace(README_URL, address)],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                # THEN it exits cleanly and prints four probabilities
                assert run.returncode == 0, (name, marker, run.stderr[-2000:])
                assert len(re.findall(r"\[\d\.\d+\]|\[\d\.\d+e-\d+\]", run.stdout)) == 4, (
                    name,
                    marker,
                    run.stdout,
                )
