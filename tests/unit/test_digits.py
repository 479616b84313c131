"""The second built-in model, digits_cnn: the committed artifact, its image declaration, its
accuracy on held-out tensors and on the same digits sent as image files, and tensor = file
through the core entry with version-2 requests. Only the build test needs TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.binary import ENCRYPTED_V2, PLAINTEXT_V2, read_answer, seal_v2
from fixtures.requests import make_keys

from core.app import App
from core.config import Settings
from core.engine import Engine
from core.images import ImageSpec, image_specs
from model.digits import DEFAULT_OUT, IMAGE, INPUT, LABELS, OUTPUT, digits_split, render, through_images
from model.evaluate import run_batched

ARTIFACT = DEFAULT_OUT


@pytest.fixture(scope="module")
def engine():
    return Engine.from_dir(ARTIFACT)


@pytest.fixture(scope="module")
def held_out():
    test = digits_split().test
    return test.inputs[INPUT], np.asarray(test.labels).astype(int)


@pytest.fixture(scope="module")
def keys():
    return make_keys()


@pytest.fixture(scope="module")
def app(keys, engine):
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_ALLOW_PLAINTEXT": "1",
        "LITEFAAS_MODEL_DIR": str(ARTIFACT),
    }
    return App(Settings.from_env(env), engine)


def accuracy(engine, pixels, labels):
    scores = run_batched(engine, {INPUT: np.ascontiguousarray(pixels, dtype=np.float32)})[OUTPUT]
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def test_the_committed_artifact_declares_an_image_input_and_its_labels(engine):
    """The committed artifact declares its 8x8 image input, its 10 outputs and its labels file."""
    manifest = engine.manifest
    assert [(s.name, s.shape, s.dtype) for s in manifest.inputs] == [(INPUT, (None, 8, 8, 1), "float32")]
    assert [(s.name, s.shape) for s in manifest.outputs] == [(OUTPUT, (None, 10))]
    spec = image_specs(manifest.raw["inputs"])[INPUT]
    assert spec == ImageSpec.from_json(IMAGE)
    assert (spec.invert, spec.fit, spec.channels) == (True, "ink", 1)
    assert spec.scale * 255 == pytest.approx(16.0)
    assert manifest.metadata["labels_file"] == "labels.txt"
    assert (ARTIFACT / "labels.txt").read_text(encoding="utf-8").splitlines() == LABELS


def test_the_compression_table_has_four_variants_and_the_selected_one_is_served(engine):
    """All four variants are small and accurate, and the one selected is the one served."""
    rows = json.loads((ARTIFACT / "compression.json").read_text(encoding="utf-8"))
    assert [row["variant"] for row in rows] == ["float32", "float16", "dynamic_range", "int8"]
    selected = [row for row in rows if row["selected"]]
    assert len(selected) == 1 and engine.manifest.raw["variant"] == selected[0]["variant"]
    assert selected[0]["bytes"] == (ARTIFACT / engine.manifest.file).stat().st_size
    assert all(row["bytes"] < 64_000 and row["accuracy"] >= 0.97 for row in rows)


def test_accuracy_on_held_out_tensors(engine, held_out):
    """The served model classifies at least 97% of held-out digits correctly."""
    # measured 0.9806 (353 of 360) on every variant
    assert accuracy(engine, *held_out) >= 0.97


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_accuracy_on_the_same_digits_drawn_dark_on_light_as_image_files(engine, held_out, fmt):
    """Each held-out digit drawn at 64x64 and decoded exactly as the function decodes it."""
    pixels, labels = held_out
    # measured 0.975 (PNG, JPEG) and 0.972 (WebP) on the int8 variant
    assert accuracy(engine, through_images(pixels, fmt), labels) >= 0.95


def test_a_drawing_at_any_size_reads_back_close_to_its_8x8_digit(held_out):
    """A digit drawn small or large decodes to about the same 8x8 tensor, within 0..16."""
    pixels, _ = held_out
    small, large = through_images(pixels[:50], "PNG", 64), through_images(pixels[:50], "PNG", 280)
    assert small.shape == (50, 8, 8, 1) and small.dtype == np.float32
    assert small.min() >= 0.0 and small.max() <= 16.0
    assert float(np.abs(small - large).mean()) < 1.0


def _predict_v2(app, keys, tensors):
    sealed = seal_v2(keys, tensors=tensors)
    response = app.handle("POST", "/predict", ENCRYPTED_V2, sealed.body)
    header, outputs = sealed.open(response.body)
    return response.status, header, outputs


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_an_image_sent_as_a_file_answers_what_it_answers_as_a_prepared_tensor(app, keys, held_out, fmt):
    """Image files answer exactly what the same images as prepared tensors answer."""
    pixels, labels = held_out
    files = [render(row, 96, fmt) for row in pixels[:6]]
    status, header, as_files = _predict_v2(app, keys, {INPUT: files})
    assert status == 200, header
    assert header["outputs"] == [{"name": OUTPUT, "datatype": "FP32", "shape": [6, 10]}]
    prepared = through_images(pixels[:6], fmt, 96)
    status, _, as_tensor = _predict_v2(app, keys, {INPUT: prepared})
    assert status == 200
    assert np.array_equal(as_files[OUTPUT], as_tensor[OUTPUT])
    assert np.mean(np.argmax(as_files[OUTPUT], axis=1) == labels[:6]) >= 5 / 6


def test_plaintext_version_2_takes_files_too(app, held_out):
    """A plaintext version-2 request takes image files and classifies them."""
    pixels, labels = held_out
    from core.tensors import frame_tensors

    body = frame_tensors({}, "inputs", {INPUT: [render(pixels[0], 64, "PNG")]})
    response = app.handle("POST", "/predict", PLAINTEXT_V2, body)
    assert response.status == 200
    _, outputs = read_answer(response.body)
    assert int(np.argmax(outputs[OUTPUT][0])) == labels[0]


@pytest.mark.parametrize(
    ("bad", "words"),
    [(b"not an image at all", "not a JPEG, PNG or WebP"), ("truncated", "corrupt or truncated")],
)
def test_a_corrupt_file_is_a_sealed_422_naming_its_row(app, keys, held_out, bad, words):
    """A corrupt or truncated image is a sealed 422 naming its row and the reason."""
    good = render(held_out[0][0], 64, "PNG")
    broken = good[: len(good) // 2] if bad == "truncated" else bad
    status, header, outputs = _predict_v2(app, keys, {INPUT: [good, good, broken]})
    assert status == 422 and outputs == {}
    assert header["error"]["code"] == "invalid_payload"
    assert f"{INPUT}[2]" in header["error"]["message"] and words in header["error"]["message"]


def test_health_shows_the_image_declaration_and_the_labels(app):
    """/health shows the model's labels and its input's image declaration."""
    response = app.handle("GET", "/health", {}, b"")
    model = json.loads(response.body)["model"]
    assert model["name"] == "digits_cnn" and model["labels"] == LABELS
    assert model["inputs"][0]["image"] == ImageSpec.from_json(IMAGE).to_json()


@pytest.mark.tensorflow
def test_build_digits_writes_a_servable_artifact(tmp_path: Path):
    """build_digits writes four servable variants, labels and manifest, leaving no temp folder."""
    from model.digits import build_digits

    out = tmp_path / "digits"
    result = build_digits(out, epochs=2)
    names = {path.name for path in out.iterdir()}
    assert {"manifest.json", "compression.json", "labels.txt"} <= names
    assert {f"digits_cnn.{v}.tflite" for v in ("float32", "float16", "dynamic_range", "int8")} <= names
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["inputs"][0]["image"] == IMAGE and manifest["metadata"]["labels_file"] == "labels.txt"
    assert [row["variant"] for row in result.reports] == ["float32", "float16", "dynamic_range", "int8"]
    engine = Engine.from_dir(out)
    assert engine.predict({INPUT: np.zeros((3, 8, 8, 1), np.float32)})[OUTPUT].shape == (3, 10)
    assert not list(tmp_path.glob(".litefaas-build-*"))


def test_image_options_make_a_checked_declaration():
    """Image options make a declaration checked against the inputs and against each other."""
    from model.errors import BuildError
    from model.pipeline import image_declaration, image_fields

    declaration = image_declaration(
        (8, 8), channels=1, resize="box", invert=True, fit="ink", scale=16 / 255, offset=0.0
    )
    assert declaration == ImageSpec.from_json(IMAGE).to_json()
    shapes = {INPUT: (None, 8, 8, 1)}
    assert image_fields(shapes, {INPUT: declaration}) == {INPUT: {"image": declaration}}
    rgb = image_declaration((224, 224), mean=[0.5], std=[0.25])
    assert rgb["mean"] == [0.5] and "scale" not in rgb
    with pytest.raises(BuildError, match="no such input"):
        image_fields(shapes, {"image": declaration})
    with pytest.raises(BuildError, match="cannot hold"):
        image_fields(shapes, {INPUT: image_declaration((28, 28), channels=1)})
    with pytest.raises(BuildError, match="exclude each other"):
        image_declaration((8, 8), scale=1.0, mean=[0.0], std=[1.0])
    with pytest.raises(BuildError, match="fit"):
        image_declaration((8, 8), fit="crop")


@pytest.mark.tensorflow
def test_an_imported_tflite_model_carries_the_image_declaration_it_is_given(tmp_path: Path):
    """An imported .tflite keeps the image declaration given for its input."""
    from model.tflite_import import build_from_tflite

    out = tmp_path / "imported"
    build_from_tflite(ARTIFACT / "digits_cnn.float32.tflite", out, images={INPUT: IMAGE}, latency_repeats=5)
    engine = Engine.from_dir(out)
    assert image_specs(engine.manifest.raw["inputs"])[INPUT] == ImageSpec.from_json(IMAGE)


def _build_args(*argv):
    from litefaas.cli.main import parser

    return parser().parse_args(["build", *argv])


def test_build_image_flags_become_the_manifest_declaration():
    """build's --image-* flags become the input's image declaration; none give none."""
    from litefaas.cli.images import image_options

    args = _build_args(
        *("--from", "m.tflite", "--image-input", INPUT, "--image-size", "8,8", "--image-channels", "1"),
        *("--image-scale", str(16 / 255), "--image-offset", "0", "--image-invert", "--image-fit", "ink"),
        *("--image-resize", "box"),
    )
    assert image_options(args) == {INPUT: ImageSpec.from_json(IMAGE).to_json()}
    rgb = image_options(
        _build_args(
            "--image-input",
            "x",
            "--image-size",
            "224,224",
            "--image-mean",
            "0.5,0.4,0.3",
            "--image-std",
            "0.2",
        )
    )
    assert rgb["x"]["mean"] == [0.5, 0.4, 0.3] and rgb["x"]["std"] == [0.2]
    assert image_options(_build_args()) == {}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--image-size", "8,8"], "need --image-input"),
        (["--image-input", "x"], "needs --image-size"),
        (["--image-input", "x", "--image-size", "8"], "two positive whole numbers"),
        (["--image-input", "x", "--image-size", "8,8", "--image-mean", "a"], "numbers separated by commas"),
        (["--image-input", "x", "--image-size", "8,8", "--image-mean", "0.5"], "give mean and std together"),
        (
            [
                "--image-input",
                "x",
                "--image-size",
                "8,8",
                "--image-scale",
                "2",
                "--image-mean",
                "0",
                "--image-std",
                "1",
            ],
            "exclude",
        ),
    ],
)
def test_bad_image_flags_are_refused_with_a_reason(argv, words):
    """Incomplete, malformed or conflicting --image-* flags are refused saying why."""
    from litefaas.cli.images import image_options
    from litefaas.errors import ToolError
    from model.errors import BuildError

    with pytest.raises((ToolError, BuildError), match=words):
        image_options(_build_args(*argv))


def test_build_example_takes_no_model_of_its_own(capsys):
    """build --example with --from exits 2: a built-in model takes no source model."""
    from litefaas.cli.main import main

    assert main(["build", "--example", "digits", "--from", "m.keras"]) == 2
    assert "--example builds a built-in model" in capsys.readouterr().err


def test_a_bundle_of_an_image_model_vendors_a_slimmed_pillow_and_the_labels(artifact_dir):
    """Only image models bundle Pillow, without AVIF or font support, and their labels file."""
    from litefaas.packaging.bundle import has_image_input, model_files
    from litefaas.packaging.slimming import SLIMMING
    from litefaas.packaging.targets import litert_runtime, read_pins

    assert has_image_input(ARTIFACT) and not has_image_input(artifact_dir)
    pin = f"pillow=={read_pins()['pillow']}"
    assert pin in litert_runtime(images=True).requirements and pin not in litert_runtime().requirements
    assert any(name.endswith("/labels.txt") for name in model_files(ARTIFACT))
    pillow = SLIMMING["pillow"]
    for kept in (
        "PIL/Image.py",
        "PIL/_imaging.cpython-312-x86_64-linux-gnu.so",
        "PIL/_webp.cpython-312-x86_64-linux-gnu.so",
        "pillow.libs/libjpeg-6dc8d115.so.62.4.0",
        "pillow.libs/libwebp-51b0b3f7.so.7.2.0",
        "pillow.libs/libtiff-20b7e810.so.6.3.0",
    ):
        assert pillow.keeps(kept), kept
    for dropped in (
        "PIL/_avif.cpython-312-x86_64-linux-gnu.so",
        "pillow.libs/libavif-c6062d5f.so.16.4.2",
        "PIL/_imagingft.cpython-312-x86_64-linux-gnu.so",
        "pillow.libs/libharfbuzz-fb49c9fc.so.0.61450.0",
    ):
        assert not pillow.keeps(dropped), dropped
