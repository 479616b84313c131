"""Importing .tflite models this project did not build: read, refuse, compress, select, write, inspect, serve.

The models are made with TensorFlow inside the tests (tests/fixtures/tflite_models.py), once per run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.tflite_models import LABELS, built_artifacts, litert_direct, made_models, sample_inputs

from core.engine import Engine, Manifest, ModelError, TensorSpec, load_artifact
from core.errors import InvalidPayload
from core.validate import inputs_to_arrays


@pytest.fixture(scope="session")
def models():
    return made_models()


@pytest.fixture(scope="session")
def artifacts():
    return built_artifacts()


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


# ------------------------------------------------------------------------------ reading and building


@pytest.mark.tensorflow
def test_model_without_signature_is_read_from_tensor_details(artifacts):
    """A model without a signature is described from its tensor details: names, batch-free shapes and op counts."""
    manifest = _manifest(artifacts["conv_nosig"])
    assert manifest["signature"] is None
    assert manifest["inputs"] == [
        {"name": "image", "shape": [None, 16, 16, 3], "dtype": "float32", "model_shape": [1, 16, 16, 3]}
    ]
    assert manifest["outputs"][0]["name"] == "Identity"
    assert manifest["outputs"][0]["shape"] == [None, 4]
    assert manifest["source"]["ops"]["CONV_2D"] == 1


@pytest.mark.tensorflow
def test_every_variant_is_written_measured_and_the_smallest_within_budget_selected(artifacts, models):
    """Every variant is written and measured, the original kept as is, the smallest within budget selected."""
    folder = artifacts["conv_nosig"]
    manifest = _manifest(folder)
    reports = json.loads((folder / "compression.json").read_text())
    variants = {r["variant"]: r for r in reports}
    assert set(variants) == {"original", "float16", "weight_only_int8", "dynamic_range"}
    assert (folder / manifest["variants"]["original"]).read_bytes() == models["conv_nosig"].read_bytes()
    for name, report in variants.items():
        assert (folder / manifest["variants"][name]).stat().st_size == report["bytes"]
        assert report["latency_us_b1"] > 0
    assert variants["original"]["max_abs_diff"] == 0 and variants["original"]["ratio"] == 1
    within = [r for r in reports if r["max_abs_diff"] <= 0.1]
    assert manifest["variant"] == min(within, key=lambda r: r["bytes"])["variant"]
    assert variants[manifest["variant"]]["bytes"] < variants["original"]["bytes"]
    assert [r["variant"] for r in reports if r["selected"]] == [manifest["variant"]]
    load_artifact(folder)  # the sha256 matches the selected file


@pytest.mark.tensorflow
def test_a_tight_budget_keeps_the_original(models, tmp_path):
    """With a zero output-difference budget the original is selected."""
    from model.tflite_import import build_from_tflite

    result = build_from_tflite(
        models["two_in_three_out"], tmp_path / "a", max_abs_diff=0.0, latency_repeats=2
    )
    assert result.manifest["variant"] == "original"


@pytest.mark.tensorflow
def test_batch_fixed_at_one_runs_row_by_row_when_it_cannot_be_resized(artifacts):
    """A batch fixed at 1 runs row by row when it cannot be resized, and is resized when that gives the same answers."""
    fixed = Engine.from_dir(artifacts["fixed_batch"])
    assert _manifest(artifacts["fixed_batch"])["inputs"][0]["model_shape"] == [1, 12]
    assert fixed.batching == "per_row"
    conv = Engine.from_dir(
        artifacts["conv_nosig"]
    )  # fixed at 1 too, but a resized batch gives the same answers
    assert conv.batching == "resize"


@pytest.mark.tensorflow
def test_a_cold_start_takes_the_batching_the_build_measured(artifacts, monkeypatch):
    """The manifest's recorded batching is used at load: no probe of a resized batch at cold start."""
    # GIVEN artifacts whose build recorded how a batch runs
    assert _manifest(artifacts["fixed_batch"])["batching"] == "per_row"
    assert _manifest(artifacts["conv_nosig"])["batching"] == "resize"

    def no_probe(*_: object) -> bool:
        raise AssertionError("probed at load although the manifest says")

    monkeypatch.setattr(Engine, "_resize_matches", no_probe)
    # WHEN they are loaded THEN the engine runs as recorded
    assert Engine.from_dir(artifacts["fixed_batch"]).batching == "per_row"
    assert Engine.from_dir(artifacts["conv_nosig"]).batching == "resize"


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    "name", ["conv_nosig", "fixed_batch", "uint8_image", "two_in_three_out", "with_metadata"]
)
def test_engine_answers_equal_litert_run_directly_on_the_selected_file(artifacts, name):
    """The engine's outputs, in dtype, shape and value, equal LiteRT's on the selected file, for any batch size."""
    folder = artifacts[name]
    engine = Engine.from_dir(folder)
    manifest = engine.manifest
    inputs = sample_inputs(manifest, 7)
    got = engine.predict(inputs)
    expected = litert_direct(folder / manifest.file, manifest.signature, inputs)
    assert set(got) == {spec.name for spec in manifest.outputs}
    for spec in manifest.outputs:
        assert got[spec.name].dtype == np.dtype(spec.dtype)
        assert got[spec.name].shape == (7, *spec.row_shape)
        np.testing.assert_allclose(
            got[spec.name].astype(np.float64), expected[spec.name].astype(np.float64), atol=1e-6
        )
    for size in (1, 3):
        part = engine.predict({n: v[:size] for n, v in inputs.items()})
        for spec in manifest.outputs:
            np.testing.assert_allclose(
                part[spec.name].astype(np.float64), got[spec.name][:size].astype(np.float64), atol=1e-6
            )


@pytest.mark.tensorflow
def test_quantized_uint8_model_keeps_its_quantization_parameters(artifacts):
    """A uint8 model keeps its quantization parameters through the manifest, and float16 is not made for it."""
    manifest = Manifest.from_json(_manifest(artifacts["uint8_image"]))
    (image,), (probabilities,) = manifest.inputs, manifest.outputs
    assert image.dtype == "uint8" and probabilities.dtype == "uint8"
    assert image.quantization is not None and 0 < image.quantization.scale < 0.01
    assert probabilities.quantization is not None
    assert (
        json.loads(json.dumps(probabilities.to_json()))["quantization"]["zero_point"]
        == probabilities.quantization.zero_point
    )
    report = {
        r["variant"]: r for r in json.loads((artifacts["uint8_image"] / "compression.json").read_text())
    }
    assert "original" in report
    assert "float16" in _manifest(artifacts["uint8_image"])["variants_not_made"]


@pytest.mark.tensorflow
def test_two_inputs_three_outputs_by_signature_names(artifacts):
    """A signature model's tensors are named and typed by its signature."""
    manifest = _manifest(artifacts["two_in_three_out"])
    assert manifest["signature"] == "serving_default"
    assert [(t["name"], t["dtype"]) for t in manifest["inputs"]] == [("a", "float32"), ("b", "int32")]
    assert {t["name"]: t["dtype"] for t in manifest["outputs"]} == {
        "mixed": "float32",
        "total": "float32",
        "positive": "bool",
    }


@pytest.mark.tensorflow
def test_metadata_and_packed_labels_reach_the_manifest_and_health(artifacts):
    """TFLite metadata and packed labels reach the manifest and /health; the public info stays name, version and sha256."""
    folder = artifacts["with_metadata"]
    manifest = _manifest(folder)
    metadata = manifest["metadata"]
    assert metadata["from_tflite_metadata"] is True
    # the artifact is named after its file; the name the file gives itself is its display name
    assert (manifest["name"], metadata["display_name"]) == ("with_metadata", "Tiny classifier")
    assert metadata["description"] == "Sorts 16x16 images into 4 classes."
    assert (metadata["author"], metadata["license"], manifest["version"]) == (
        "litefaas tests",
        "Apache-2.0",
        "2.1.0",
    )
    assert metadata["inputs"][0]["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert (folder / metadata["labels_file"]).read_text().split() == LABELS
    health = Manifest.from_json(manifest).health_info()
    assert health["description"] == metadata["description"] and health["license"] == "Apache-2.0"
    assert health["display_name"] == "Tiny classifier"
    assert Manifest.from_json(manifest).public_info().keys() == {"name", "version", "sha256"}


@pytest.mark.tensorflow
def test_name_version_and_labels_options(models, tmp_path):
    """--name, --version and --labels set the manifest, the labels file and the file names."""
    from model.tflite_import import build_from_tflite

    labels = tmp_path / "classes.txt"
    labels.write_text("a\nb\nc\nd\n")
    result = build_from_tflite(
        models["conv_nosig"],
        tmp_path / "out",
        name="my-model",
        version="3.0.1",
        labels=labels,
        latency_repeats=2,
    )
    assert (result.manifest["name"], result.manifest["version"]) == ("my-model", "3.0.1")
    assert (result.out / "labels.txt").read_text().split() == ["a", "b", "c", "d"]
    assert (result.out / "my-model.original.tflite").is_file()


@pytest.mark.tensorflow
def test_calibration_labels_give_accuracy(models, tmp_path):
    """Labelled calibration data gives each variant an accuracy, noted as evaluated on calibration data."""
    from model.tflite_import import build_from_tflite

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (24, 16, 16, 3)).astype(np.float32)
    reference = litert_direct(models["conv_nosig"], None, {"image": x})["Identity"]
    np.savez(tmp_path / "cal.npz", x=x, y=np.argmax(reference, axis=1))
    result = build_from_tflite(
        models["conv_nosig"], tmp_path / "out", calibration=tmp_path / "cal.npz", latency_repeats=2
    )
    original = next(r for r in result.reports if r["variant"] == "original")
    assert original["accuracy"] == 1.0
    assert result.manifest["metrics"]["evaluated_on"] == "calibration data"


@pytest.mark.tensorflow
def test_input_ranges(models):
    """--input-range is parsed strictly, generated inputs keep to range and dtype, an unknown input is refused."""
    from model.errors import BuildError
    from model.tflite_import import generated_inputs, parse_input_ranges
    from model.tflite_read import read_tflite

    assert parse_input_ranges(["a=-1,1", "b=0,5"]) == {"a": (-1.0, 1.0), "b": (0.0, 5.0)}
    for bad in ["a", "a=1", "a=2,1", "=0,1", "a=x,1"]:
        with pytest.raises(BuildError, match="--input-range"):
            parse_input_ranges([bad])
    model = read_tflite(models["two_in_three_out"])
    arrays = generated_inputs(model.inputs, {"a": (-3.0, -2.0), "b": (5.0, 6.0)}, 50)
    assert arrays["a"].min() >= -3 and arrays["a"].max() <= -2 and arrays["a"].dtype == np.float32
    assert set(np.unique(arrays["b"])) <= {5, 6} and arrays["b"].dtype == np.int32
    with pytest.raises(BuildError, match="names no model input"):
        generated_inputs(model.inputs, {"nope": (0.0, 1.0)}, 2)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("custom_op", "the model uses custom op Digamma, which LiteRT's built-in ops do not include"),
        ("corrupt", "is damaged: not a valid TFLite flatbuffer"),
        ("not_tflite", "is not a TFLite model"),
    ],
)
def test_models_that_cannot_run_are_refused_with_nothing_written(models, tmp_path, name, message):
    """A model LiteRT cannot run is one single-line BuildError naming the cause, and nothing is written."""
    from model.errors import BuildError
    from model.tflite_import import build_from_tflite

    out = tmp_path / "parent" / "out"
    with pytest.raises(BuildError, match=message) as caught:
        build_from_tflite(models[name], out)
    assert "\n" not in str(caught.value)
    assert not out.parent.exists()


@pytest.mark.tensorflow
def test_string_inputs_are_refused(tmp_path):
    """A model with a string input is a BuildError naming it, and nothing is written."""
    import tensorflow as tf

    from model.errors import BuildError
    from model.tflite_import import build_from_tflite

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def forward(text):
        return tf.reshape(text, [-1, 1])

    path = tmp_path / "strings.tflite"
    path.write_bytes(
        tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()]).convert()
    )
    with pytest.raises(BuildError, match="input 'text' is a string tensor"):
        build_from_tflite(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.tensorflow
def test_a_folder_holding_one_tflite_and_signature_choice(models, tmp_path):
    """A folder with exactly one .tflite is read; an unknown signature or a second .tflite is a BuildError."""
    from model.errors import BuildError
    from model.tflite_read import find_tflite, read_tflite

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "x.tflite").write_bytes(models["fixed_batch"].read_bytes())
    assert find_tflite(folder) == folder / "x.tflite"
    assert read_tflite(folder).signature == "serving_default"
    with pytest.raises(BuildError, match="has no signature 'other'"):
        read_tflite(folder, "other")
    (folder / "y.tflite").write_bytes(b"")
    with pytest.raises(BuildError, match=r"exactly one \.tflite"):
        find_tflite(folder)


@pytest.mark.tensorflow
def test_engine_load_errors_name_the_real_cause(models):
    """Engine load errors name the real cause: a custom op, a damaged file, an unknown input or a missing signature."""
    manifest = Manifest.from_json(
        {
            "name": "c",
            "version": "1",
            "file": "c.tflite",
            "sha256": "",
            "signature": None,
            "inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}],
            "outputs": [{"name": "Identity", "shape": [None, 4], "dtype": "float32"}],
        }
    )
    with pytest.raises(ModelError, match="custom op Digamma, which LiteRT's built-in ops do not include"):
        Engine(manifest, models["custom_op"].read_bytes(), backends=["ai_edge_litert"])
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        Engine(manifest, models["corrupt"].read_bytes(), backends=["ai_edge_litert"])
    conv = models["conv_nosig"].read_bytes()
    with pytest.raises(
        ModelError, match=r"names input 'x', which the model does not have \(its inputs: image"
    ):
        Engine(manifest, conv, backends=["ai_edge_litert"])
    with pytest.raises(ModelError, match=r"no signature 'serving_default' \(it has: none"):
        Engine(
            Manifest.from_json({**manifest.raw, "signature": "serving_default"}),
            conv,
            backends=["ai_edge_litert"],
        )


# ------------------------------------------------------------------------------ inspect


@pytest.mark.tensorflow
def test_inspect_a_tflite_file_and_an_artifact(models, artifacts):
    """inspect describes a .tflite file and an artifact as JSON-safe data, and says why a model cannot be served."""
    from model.inspect import describe

    info = describe(models["two_in_three_out"])
    assert info["kind"] == "tflite" and info["servable"] and info["signature"] == "serving_default"
    assert [t["name"] for t in info["inputs"]] == ["a", "b"] and info["inputs"][0]["batch"] == "dynamic"
    assert "whole numbers -2147483648..2147483647 (int32)" in info["accepts"]["b"]
    refused = describe(models["custom_op"])
    assert (
        not refused["servable"] and "Digamma" in refused["problem"] and refused["custom_ops"] == ["Digamma"]
    )
    artifact = describe(artifacts["fixed_batch"])
    assert artifact["kind"] == "artifact" and artifact["batching"] == "per_row"
    assert artifact["inputs"][0]["batch"] == "fixed at 1"
    assert set(artifact["variants"]) >= {"original"} and artifact["compression"]
    json.dumps(artifact)


# ------------------------------------------------------------------------------ validation of any dtype (no TF)


def test_integer_and_boolean_inputs_take_whole_numbers_in_range():
    """Integer and boolean inputs accept only whole numbers in the dtype's range, on both parsing paths."""
    uint8 = [TensorSpec("image", (None, 2), "uint8")]
    array = inputs_to_arrays([[0, 255], [3, 4.0]], uint8, 10)["image"]
    assert array.dtype == np.uint8 and array.tolist() == [[0, 255], [3, 4]]
    fast = inputs_to_arrays([[0, 255], [3, 4]], uint8, 10, no_literals=True)["image"]
    assert fast.tolist() == [[0, 255], [3, 4]]
    for bad, row in (([[0, 256]], 0), ([[1, 2], [-1, 0]], 1), ([[1, 2], [0.5, 0]], 1)):
        for no_literals in (False, True):
            with pytest.raises(
                InvalidPayload, match=f"row {row}: values must be whole numbers from 0 to 255"
            ):
                inputs_to_arrays(bad, uint8, 10, no_literals=no_literals)
    flags = [TensorSpec("flag", (None, 1), "bool")]
    assert inputs_to_arrays([[1], [0]], flags, 10)["flag"].tolist() == [[True], [False]]
    with pytest.raises(InvalidPayload, match="0 or 1"):
        inputs_to_arrays([[2]], flags, 10)
    with pytest.raises(InvalidPayload, match="found a boolean"):
        inputs_to_arrays([[True]], flags, 10)
    wide = [TensorSpec("ids", (None, 2), "int64")]
    assert inputs_to_arrays([[2**40, -3]], wide, 10)["ids"].tolist() == [[2**40, -3]]


def test_seed_manifest_still_reads_and_writes_the_same(artifact_dir):
    """The seed manifest reads and writes back unchanged, with serving_default as the default signature."""
    raw = json.loads((artifact_dir / "manifest.json").read_text())
    manifest = Manifest.from_json(raw)
    assert manifest.signature == "serving_default"
    assert [s.to_json() for s in manifest.inputs] == raw["inputs"]
    assert [s.to_json() for s in manifest.outputs] == raw["outputs"]
    assert manifest.health_info()["name"] == "breast_cancer_mlp"
    assert (
        Manifest.from_json({k: v for k, v in raw.items() if k != "signature"}).signature == "serving_default"
    )


def test_variants_with_the_same_bytes_are_one_variant():
    """A variant byte for byte like an earlier one is not listed apart; it names the one it repeats."""
    from model.tflite_import import distinct_variants

    kept, same_as = distinct_variants(
        {"original": b"a", "float16": b"b", "weight_only_int8": b"b", "dynamic_range": b"a"}
    )
    assert list(kept) == ["original", "float16"]
    assert same_as == {"weight_only_int8": "float16", "dynamic_range": "original"}


@pytest.mark.tensorflow
def test_a_model_whose_variants_repeat_lists_them_once(artifacts):
    manifest = _manifest(artifacts["stateful"])
    assert manifest["stateful"] is True
    assert set(manifest["variants"]) == {"original", "float16"}
    assert manifest["variants_same_as"] == {"weight_only_int8": "float16", "dynamic_range": "float16"}


@pytest.mark.tensorflow
def test_a_model_with_float16_weights_is_quantized_from_its_float32_values(models, artifacts):
    """Variants of a file whose weights are float16 behind DEQUANTIZE ops are made from the float32
    values: the int8 ones are much smaller than the file, and float16 is the original itself."""
    from model.tflite_import import quantize_variant
    from model.tflite_rewrite import float32_weights

    source = models["fp16_weights"].read_bytes()
    # as it is, the quantizer leaves the float16 weights alone (the problem)
    assert len(quantize_variant(source, "weight_only_int8")) > 0.95 * len(source)
    manifest = _manifest(artifacts["fp16_weights"])
    report = {
        r["variant"]: r for r in json.loads((artifacts["fp16_weights"] / "compression.json").read_text())
    }
    assert report["weight_only_int8"]["bytes"] < 0.65 * report["original"]["bytes"]
    assert report["dynamic_range"]["bytes"] < 0.65 * report["original"]["bytes"]
    assert "float16 already" in manifest["variants_not_made"]["float16"]
    assert float32_weights((artifacts["stateful"] / "stateful.original.tflite").read_bytes()) is None


def test_input_shapes_are_parsed_and_checked_against_the_model():
    """--input-shape NAME=D1,D2,… gives one row's shape; fixed sizes must match the model's."""
    from model.errors import BuildError
    from model.tflite_import import example_rows, parse_input_shapes
    from model.tflite_read import ImportedTensor

    assert parse_input_shapes(["samples=160", "image=8,8,3"]) == {"samples": (160,), "image": (8, 8, 3)}
    for bad in ("samples", "samples=", "samples=0", "samples=a,2", "=3"):
        with pytest.raises(BuildError, match="--input-shape"):
            parse_input_shapes([bad])
    tensor = ImportedTensor("image", "image", 0, "float32", (-1, -1, 8, 3), None)
    assert example_rows([tensor], {"image": (32, 8, 3)}) == {"image": (32, 8, 3)}
    with pytest.raises(BuildError, match=r"does not fit the input's row \[\?, 8, 3\]"):
        example_rows([tensor], {"image": (32, 9, 3)})
    with pytest.raises(BuildError, match="names no model input: other"):
        example_rows([tensor], {"other": (1,)})
