"""Protocol version 2 against ``litefaas serve --provider all``: ``litefaas predict --input image.npy``
on every provider, and a sealed 224x224x3 float32 image through the AWS local host's binary path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.requests import ROWS
from fixtures.serving import serving

from core.engine import Engine
from litefaas.client import Client, InvalidPayloadError
from litefaas.local.process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (ROOT / "node_modules").is_dir(), reason="npm packages not installed (run make setup)"
    ),
]


def litefaas(*argv: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "litefaas.cli", *map(str, argv)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_predict_npy_answers_on_every_provider(tmp_path):
    # GIVEN `litefaas serve --provider all` (plaintext allowed too) on three free ports
    with serving("--provider", "all", "--port", str(free_port()), "--plaintext") as served:
        assert set(served.hosts) == {"aws", "gcp", "azure"}, "".join(served.output)
        features = np.asarray(ROWS[:6], dtype=np.float32)
        image = tmp_path / "image.npy"
        np.save(image, features)
        expected = Engine.from_dir().predict({"features": features})["probability"]
        for provider, (url, _) in served.hosts.items():
            # WHEN `litefaas predict --input image.npy --out` runs against it (sealed, version 2)
            out = tmp_path / f"{provider}.npz"
            result = litefaas("predict", "--url", url, "--input", image, "--out", out)
            # THEN the outputs are the model's own
            assert result.returncode == 0, (provider, result.stderr)
            with np.load(out) as written:
                np.testing.assert_array_equal(written["probability"], expected, err_msg=provider)
            # AND the summary and the plaintext form answer the same
            summary = litefaas("predict", "--url", url, "--input", image, "--plaintext")
            assert summary.returncode == 0, (provider, summary.stderr)
            assert summary.stdout.splitlines()[0] == "probability: FP32 [6, 1] (probabilities)"
            # AND a wrong tensor is the function's sealed 422, whatever the front door
            with Client(url) as client, pytest.raises(InvalidPayloadError) as caught:
                client.predict_tensors({"features": features[:, :29]})
            assert caught.value.encrypted, provider
            # AND a 224x224x3 float32 tensor (602 KB, version 1 would need 3.2 MB) travels intact:
            # the seed model refuses its shape only once it has opened it
            big = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
            with Client(url) as client, pytest.raises(InvalidPayloadError) as refused:
                client.predict_tensors({"features": big})
            assert refused.value.encrypted and "shape" in refused.value.message, provider
