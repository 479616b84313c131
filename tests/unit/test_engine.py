"""The inference engine: backend chain, batch sizes, threads, and a damaged artifact."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
from fixtures.requests import LABELS, ROWS

from core.engine import Engine, ModelError, load_artifact


def rows(count):
    return np.asarray((ROWS * (count // len(ROWS) + 1))[:count], dtype=np.float32)


def test_litert_is_chosen_first(engine):
    """With the default chain, ai-edge-litert is the backend that loads."""
    assert engine.backend == "ai_edge_litert"


def test_chain_skips_backends_that_cannot_load(artifact_dir):
    """A backend that cannot load is skipped and the next one in the chain is used."""
    # tflite-runtime is not installed here (no wheel for this Python): the chain moves on
    chained = Engine.from_dir(artifact_dir, backends=["tflite_runtime", "ai_edge_litert"])
    assert chained.backend == "ai_edge_litert"


def test_no_backend_is_a_clear_error(artifact_dir):
    """No loadable backend, or an unknown backend name, is a ModelError that says so."""
    with pytest.raises(ModelError, match="no TFLite backend could run the model"):
        Engine.from_dir(artifact_dir, backends=["tflite_runtime"])
    with pytest.raises(ModelError, match="unknown backend"):
        Engine.from_dir(artifact_dir, backends=["onnx"])


def test_accuracy_on_held_out_rows(engine):
    """The model gives one probability per row and classifies at least 95% of held-out rows correctly."""
    probabilities = engine.predict({"features": rows(len(ROWS))})["probability"]
    assert probabilities.shape == (len(ROWS), 1)
    assert np.mean((probabilities[:, 0] >= 0.5) == np.asarray(LABELS)) >= 0.95


def test_one_interpreter_serves_every_batch_size(engine):
    """Any batch size gives, row by row, the same outputs as one large batch."""
    whole = engine.predict({"features": rows(256)})["probability"]
    for size in (1, 7, 256, 3, 1024, 1):
        assert np.array_equal(
            engine.predict({"features": rows(size)})["probability"], whole[np.arange(size) % 256]
        )


def test_threads_get_their_own_interpreter(engine):
    """Concurrent predictions from many threads give the same outputs as serial ones."""
    expected = {size: engine.predict({"features": rows(size)})["probability"] for size in (1, 5, 33, 200)}
    mismatches = []

    def work(size):
        for _ in range(50):
            if not np.array_equal(engine.predict({"features": rows(size)})["probability"], expected[size]):
                mismatches.append(size)

    threads = [threading.Thread(target=work, args=(size,)) for size in (1, 5, 33, 200) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_num_threads_is_passed_to_the_interpreter(artifact_dir):
    """An engine built with num_threads=1 predicts with the usual output shape."""
    single = Engine.from_dir(artifact_dir, num_threads=1)
    assert single.predict({"features": rows(4)})["probability"].shape == (4, 1)


class TestDamagedArtifact:
    @pytest.fixture
    def copy(self, tmp_path, artifact_dir):
        shutil.copytree(artifact_dir, tmp_path / "model")
        return tmp_path / "model"

    def test_missing_manifest(self, copy):
        """An artifact without manifest.json is a ModelError naming the file."""
        (copy / "manifest.json").unlink()
        with pytest.raises(ModelError, match=r"no manifest\.json"):
            load_artifact(copy)

    def test_corrupt_manifest(self, copy):
        """A manifest that is not valid JSON is a ModelError."""
        (copy / "manifest.json").write_text("{")
        with pytest.raises(ModelError, match="not a valid manifest"):
            load_artifact(copy)

    def test_missing_model_file(self, copy):
        """A manifest whose model file is missing is a ModelError."""
        manifest = json.loads((copy / "manifest.json").read_text())
        (copy / manifest["file"]).unlink()
        with pytest.raises(ModelError, match="missing or unreadable"):
            load_artifact(copy)

    def test_tampered_model_file(self, copy):
        """A model file whose bytes changed is a ModelError about its sha256."""
        manifest = json.loads((copy / "manifest.json").read_text())
        path = copy / manifest["file"]
        content = bytearray(path.read_bytes())
        content[len(content) // 2] ^= 0xFF
        path.write_bytes(bytes(content))
        with pytest.raises(ModelError, match="sha256"):
            load_artifact(copy)

    def test_manifest_naming_a_tensor_the_model_lacks(self, copy):
        """A manifest naming an input the model lacks is a ModelError naming that input."""
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["inputs"][0]["name"] = "pixels"
        (copy / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(ModelError, match="pixels"):
            Engine.from_dir(copy)


def misaligned_copy(array):
    """``array``'s values at an address that is not a multiple of their size (a tensor read in place
    from a request at any offset)."""
    raw = bytearray(array.nbytes + 1)
    view = np.frombuffer(raw, dtype=array.dtype, offset=1, count=array.size).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize("size", [1, 7, 1, 300])
def test_a_misaligned_input_gives_the_aligned_answer(artifact_dir, size):
    # GIVEN an engine, and rows whose bytes are not aligned to a float32
    fresh = Engine.from_dir(artifact_dir)
    aligned = rows(size)
    # WHEN it runs them, written into the input tensor through its view rather than set_tensor
    session_calls = []
    fresh.predict({"features": rows(2)})  # the interpreter exists, at another batch size
    interpreter = fresh._local.session.interpreter
    original = interpreter.set_tensor
    interpreter.set_tensor = lambda index, value: session_calls.append(index) or original(index, value)
    answer = fresh.predict({"features": misaligned_copy(aligned)})["probability"]
    # THEN the answer is the aligned rows' own, and set_tensor was not used
    assert session_calls == []
    assert np.array_equal(answer, fresh.predict({"features": aligned})["probability"])
    assert len(session_calls) == 1
