"""``litefaas build``: the seed model, imported models, and every way the input can be wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from litefaas.cli.main import main
from model.pipeline import select_variant

COMPRESSION_KEYS = {
    "variant",
    "bytes",
    "ratio",
    "accuracy",
    "auc",
    "max_abs_diff",
    "latency_us_b1",
    "latency_us_b256",
    "selected",
}
MANIFEST_KEYS = {
    "name",
    "version",
    "sha256",
    "file",
    "inputs",
    "outputs",
    "feature_names",
    "label",
    "tensorflow_version",
    "created",
}


def report(variant, size, accuracy, runtimes=("ai_edge_litert",), diff=0.0):
    return {
        "variant": variant,
        "bytes": size,
        "accuracy": accuracy,
        "max_abs_diff": diff,
        "runtimes": list(runtimes),
    }


class TestSelection:
    def test_smallest_within_the_accuracy_budget(self):
        """The smallest variant whose accuracy drop is within the budget is selected."""
        reports = [report("float32", 100, 0.97), report("dynamic_range", 40, 0.965), report("int8", 30, 0.95)]
        assert select_variant(reports, 0.97, 0.01, 0.1) == "dynamic_range"
        assert select_variant(reports, 0.97, 0.02, 0.1) == "int8"

    def test_a_variant_litert_cannot_load_is_never_chosen(self):
        """A variant ai-edge-litert cannot load is never selected, however small."""
        reports = [report("float32", 100, 0.97), report("int8", 30, 0.97, runtimes=())]
        assert select_variant(reports, 0.97, 0.01, 0.1) == "float32"

    def test_without_labels_the_output_difference_decides(self):
        """Without labels, the smallest variant within the output-difference budget is selected."""
        reports = [
            report("float32", 100, None),
            report("int8", 30, None, diff=0.3),
            report("float16", 50, None, diff=0.01),
        ]
        assert select_variant(reports, None, 0.01, 0.1) == "float16"


def test_committed_artifact_is_whole(artifact_dir):
    """The committed artifact has a full manifest, a matching sha256, and four variants with one selected."""
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest.keys() >= MANIFEST_KEYS
    assert hashlib.sha256((artifact_dir / manifest["file"]).read_bytes()).hexdigest() == manifest["sha256"]
    rows = json.loads((artifact_dir / "compression.json").read_text())
    assert [r["variant"] for r in rows] == ["float32", "float16", "dynamic_range", "int8"]
    assert all(r.keys() >= COMPRESSION_KEYS for r in rows)
    assert sum(r["selected"] for r in rows) == 1


def test_help_is_instant_and_imports_no_tensorflow():
    """Building the CLI parser imports neither tensorflow nor numpy."""
    import subprocess
    import sys

    code = "import sys; from litefaas.cli.main import parser; parser(); print('tensorflow' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "model"
    assert main(["build", "--out", str(out)]) == 0
    return out


@pytest.mark.tensorflow
class TestSeedBuild:
    def test_writes_the_artifact(self, built):
        """The seed build writes the manifest, the report and all four variants, and leaves no temporary files."""
        names = {p.name for p in built.iterdir()}
        assert {"manifest.json", "compression.json"} <= names
        assert {
            f"breast_cancer_mlp.{v}.tflite" for v in ("float32", "float16", "dynamic_range", "int8")
        } <= names
        assert not [p for p in built.parent.iterdir() if p.name.startswith(".")]

    def test_accuracy_and_compression(self, built):
        """The seed model is >= 95% accurate; int8 is selected at <= 45% of the size for <= 1 point of accuracy."""
        rows = {r["variant"]: r for r in json.loads((built / "compression.json").read_text())}
        assert all(r.keys() >= COMPRESSION_KEYS for r in rows.values())
        assert rows["float32"]["accuracy"] >= 0.95
        assert rows["float32"]["ratio"] == 1.0
        assert rows["int8"]["ratio"] <= 0.45
        assert rows["float32"]["accuracy"] - rows["int8"]["accuracy"] <= 0.01
        assert rows["int8"]["selected"]
        assert "ai_edge_litert" in rows["int8"]["runtimes"]
        assert rows["float32"]["max_abs_diff"] < 1e-4

    def test_manifest_describes_the_selected_file(self, built):
        """The manifest names the int8 file, its sha256, its tensors and its 30 feature names."""
        manifest = json.loads((built / "manifest.json").read_text())
        assert manifest.keys() >= MANIFEST_KEYS
        assert manifest["file"] == "breast_cancer_mlp.int8.tflite"
        assert hashlib.sha256((built / manifest["file"]).read_bytes()).hexdigest() == manifest["sha256"]
        assert manifest["inputs"] == [{"name": "features", "shape": [None, 30], "dtype": "float32"}]
        assert manifest["outputs"] == [
            {"name": "probability", "shape": [None, 1], "dtype": "float32", "kind": "probabilities"}
        ]
        assert len(manifest["feature_names"]) == 30

    def test_core_serves_raw_features(self, built):
        """The built model classifies raw feature rows at least 95% accurately through the core engine."""
        from fixtures.requests import LABELS, ROWS

        from core.engine import Engine

        engine = Engine.from_dir(built)
        probabilities = engine.predict({"features": np.asarray(ROWS, dtype=np.float32)})["probability"]
        accuracy = float(np.mean((probabilities[:, 0] >= 0.5) == np.asarray(LABELS)))
        assert accuracy >= 0.95


def _multi_io_model(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(1)
    left = keras.Input(shape=(4,), name="left")
    right = keras.Input(shape=(2, 3), name="right")
    joined = keras.layers.Concatenate()([left, keras.layers.Flatten()(right)])
    hidden = keras.layers.Dense(8, activation="relu")(joined)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(hidden)
    keras.Model([left, right], [score, classes]).save(path)


@pytest.mark.tensorflow
class TestImport:
    def test_keras_file_with_several_inputs_and_outputs(self, tmp_path):
        # GIVEN a Keras file with two inputs and two outputs, and calibration data with labels
        _multi_io_model(tmp_path / "multi.keras")
        rng = np.random.default_rng(0)
        np.savez(
            tmp_path / "cal.npz",
            left=rng.normal(size=(64, 4)),
            right=rng.normal(size=(64, 2, 3)),
            y=rng.integers(0, 2, size=64),
        )
        # WHEN it is built
        out = tmp_path / "out"
        code = main(
            [
                "build",
                "--from",
                str(tmp_path / "multi.keras"),
                "--calibration",
                str(tmp_path / "cal.npz"),
                "--out",
                str(out),
                "--max-accuracy-drop",
                "1",
            ]
        )
        # THEN the manifest names every tensor and the core runs it by name
        assert code == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert [t["name"] for t in manifest["inputs"]] == ["left", "right"]
        assert [t["name"] for t in manifest["outputs"]] == ["score", "classes"]
        from fixtures.requests import ENCRYPTED, make_keys, seal

        from core.app import App
        from core.config import Settings
        from core.engine import Engine

        engine = Engine.from_dir(out)
        keys = make_keys()
        app = App(
            Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_MODEL_DIR": str(out)}),
            engine,
        )
        inputs = {"left": rng.normal(size=(3, 4)).tolist(), "right": rng.normal(size=(3, 2, 3)).tolist()}
        sealed = seal(keys, inputs=inputs)
        answer = sealed.open(app.handle("POST", "/predict", ENCRYPTED, sealed.body).body)
        assert set(answer["outputs"]) == {"score", "classes"}
        assert np.asarray(answer["outputs"]["classes"]).shape == (3, 3)
        wrong = seal(keys, inputs={"left": inputs["left"]})
        response = app.handle("POST", "/predict", ENCRYPTED, wrong.body)
        assert response.status == 422
        assert "missing ['right']" in wrong.open(response.body)["error"]["message"]

    def test_saved_model_folder(self, tmp_path):
        """A SavedModel folder builds with unlabelled calibration: no accuracy, float32 output identical to the source."""
        import tensorflow as tf

        class Doubler(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
            def serve(self, x):
                return {"y": tf.nn.relu(x) * 2.0}

        module = Doubler()
        tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
        np.savez(tmp_path / "cal.npz", x=np.random.default_rng(0).normal(size=(32, 5)))
        out = tmp_path / "out"
        assert (
            main(
                [
                    "build",
                    "--from",
                    str(tmp_path / "sm"),
                    "--calibration",
                    str(tmp_path / "cal.npz"),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        rows = json.loads((out / "compression.json").read_text())
        assert all(r["accuracy"] is None for r in rows)
        assert rows[0]["max_abs_diff"] < 1e-6


@pytest.mark.tensorflow
class TestBadInput:
    """Every problem: one clear message, exit code 2, nothing written or changed in --out."""

    @pytest.fixture
    def out(self, tmp_path):
        folder = tmp_path / "out"
        folder.mkdir()
        (folder / "keep.txt").write_text("untouched")
        return folder

    def run(self, capsys, out, *args):
        code = main(["build", *args, "--out", str(out)])
        message = capsys.readouterr().err
        assert code == 2
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
        assert "Traceback" not in message
        return message

    def test_missing_model(self, capsys, out, tmp_path):
        """A missing model file fails cleanly, saying the model was not found."""
        assert "model not found" in self.run(
            capsys, out, "--from", str(tmp_path / "nope.keras"), "--calibration", "x.npz"
        )

    def test_corrupt_model(self, capsys, out, tmp_path):
        """A corrupt Keras file fails cleanly, saying it is not loadable."""
        (tmp_path / "bad.keras").write_bytes(b"not a zip")
        message = self.run(capsys, out, "--from", str(tmp_path / "bad.keras"), "--calibration", "x.npz")
        assert "not a loadable Keras model" in message

    def test_folder_that_is_not_a_saved_model(self, capsys, out, tmp_path):
        """A folder that is not a SavedModel fails cleanly, saying so."""
        (tmp_path / "empty").mkdir()
        assert "not a SavedModel" in self.run(
            capsys, out, "--from", str(tmp_path / "empty"), "--calibration", "x"
        )

    def test_unsupported_ops(self, capsys, out, tmp_path):
        """A model using an op TFLite lacks fails cleanly, naming the op."""
        import tensorflow as tf

        class Determinant(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 3, 3], tf.float32, name="x")])
            def serve(self, x):
                return {"y": tf.linalg.det(x)}

        module = Determinant()
        tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
        np.savez(tmp_path / "cal.npz", x=np.eye(3, dtype=np.float32)[None].repeat(4, axis=0))
        message = self.run(
            capsys, out, "--from", str(tmp_path / "sm"), "--calibration", str(tmp_path / "cal.npz")
        )
        assert "MatrixDeterminant" in message

    def test_calibration_of_the_wrong_shape(self, capsys, out, tmp_path):
        """Calibration data of the wrong shape fails cleanly, naming the input and both shapes."""
        _multi_io_model(tmp_path / "multi.keras")
        np.savez(tmp_path / "cal.npz", left=np.zeros((8, 5)), right=np.zeros((8, 2, 3)))
        message = self.run(
            capsys, out, "--from", str(tmp_path / "multi.keras"), "--calibration", str(tmp_path / "cal.npz")
        )
        assert "'left'" in message and "[5]" in message and "[4]" in message

    def test_calibration_missing_an_input(self, capsys, out, tmp_path):
        """Calibration data missing an input fails cleanly, naming the input."""
        _multi_io_model(tmp_path / "multi.keras")
        np.savez(tmp_path / "cal.npz", left=np.zeros((8, 4)))
        message = self.run(
            capsys, out, "--from", str(tmp_path / "multi.keras"), "--calibration", str(tmp_path / "cal.npz")
        )
        assert "no array for model input 'right'" in message

    def test_corrupt_calibration_file(self, capsys, out, tmp_path):
        """An unreadable calibration file fails cleanly, saying so."""
        _multi_io_model(tmp_path / "multi.keras")
        (tmp_path / "cal.npz").write_bytes(b"garbage")
        message = self.run(
            capsys, out, "--from", str(tmp_path / "multi.keras"), "--calibration", str(tmp_path / "cal.npz")
        )
        assert "not a readable .npz" in message
