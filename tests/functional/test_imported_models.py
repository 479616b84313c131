"""Imported .tflite models served through every provider in process: the core entry, AWS Lambda
(HTTP API and direct invoke), GCP (functions-framework) and Azure (the real function app).

Each answer equals LiteRT run directly on the artifact's selected file, for models without a
signature, with a batch fixed at 1, with uint8 inputs and outputs, with two inputs and three
outputs (one of them bool), and with TFLite metadata (which ``GET /health`` may show).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.oip import binary_request, json_request, read_response
from fixtures.providers_gcp_azure import provider_targets
from fixtures.requests import ENCRYPTED, PLAINTEXT, seal
from fixtures.tflite_models import SERVABLE, built_artifacts, litert_direct, made_models, sample_inputs

from core.engine import Engine, ShapeNotRunnable

pytestmark = pytest.mark.tensorflow


def _providers(keys, folder):
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_ALLOW_PLAINTEXT": "1",
        "LITEFAAS_MODEL_DIR": str(folder),
        "LITEFAAS_LOG_LEVEL": "WARNING",
    }
    engine = Engine.from_dir(folder)
    return engine, provider_targets(env, engine, aws_kinds=("http_api_v2", "direct"))


def _request_inputs(manifest, arrays):
    if len(manifest.inputs) == 1:
        return arrays[manifest.inputs[0].name].tolist()
    return {name: value.tolist() for name, value in arrays.items()}


def _answer_outputs(manifest, outputs):
    if len(manifest.outputs) == 1:
        return {manifest.outputs[0].name: outputs}
    return outputs


@pytest.mark.parametrize("name", SERVABLE)
def test_every_provider_answers_what_litert_answers_on_the_selected_file(keys, name):
    folder = built_artifacts()[name]
    engine, providers = _providers(keys, folder)
    manifest = engine.manifest
    arrays = sample_inputs(manifest, 4, seed=3)
    expected = litert_direct(folder / manifest.file, manifest.signature, arrays)
    inputs = _request_inputs(manifest, arrays)
    for provider, call in providers.items():
        sealed = seal(keys, inputs=inputs)
        status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
        assert status == 200, (provider, body)
        answer = sealed.open(body)
        assert answer["model"] == manifest.public_info()
        got = _answer_outputs(manifest, answer["outputs"])
        for spec in manifest.outputs:
            value = np.asarray(got[spec.name])
            assert value.shape == (4, *spec.row_shape), provider
            np.testing.assert_allclose(
                value.astype(np.float64), expected[spec.name].astype(np.float64), atol=1e-6
            )
            if spec.dtype == "bool":
                assert value.dtype == np.bool_
        status, _, body = call("POST", "/predict", PLAINTEXT, json.dumps({"inputs": inputs}).encode())
        assert status == 200 and json.loads(body)["outputs"] == answer["outputs"], provider
        if provider != "aws:direct":  # a direct invoke carries a prediction request only
            status, _, body = call("GET", "/health", {}, b"")
            assert status == 200 and json.loads(body)["model"]["name"] == manifest.name, provider


def test_inputs_out_of_a_uint8_range_are_refused_by_every_provider(keys):
    _, providers = _providers(keys, built_artifacts()["uint8_image"])
    row = np.zeros((8, 8, 3), dtype=int).tolist()
    row[0][0][0] = 256
    for provider, call in providers.items():
        sealed = seal(keys, inputs=[row])
        status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
        assert status == 422, provider
        assert "whole numbers from 0 to 255" in sealed.open(body)["error"]["message"]


@pytest.mark.parametrize("name", SERVABLE)
def test_oip_json_and_binary_answer_what_litert_answers_on_every_provider(keys, name):
    # GIVEN an imported model (uint8 or int32 inputs, bool outputs, a fixed batch, no signature)
    folder = built_artifacts()[name]
    engine, providers = _providers(keys, folder)
    manifest = engine.manifest
    arrays = sample_inputs(manifest, 3, seed=5)
    expected = litert_direct(folder / manifest.file, manifest.signature, arrays)
    path = f"/v2/models/{manifest.name}/versions/{manifest.version}/infer"
    for form, make in (("json", json_request), ("binary", binary_request)):
        headers, body = make(arrays)
        for provider, call in providers.items():
            # WHEN every provider answers it as OIP JSON and as binary tensor data
            status, response_headers, response_body = call("POST", path, headers, body)
            assert status == 200, (provider, form, response_body[:300])
            header, outputs = read_response(response_headers, response_body)
            # THEN each output has the model's own datatype and LiteRT's values
            assert [entry["name"] for entry in header["outputs"]] == [spec.name for spec in manifest.outputs]
            for spec in manifest.outputs:
                assert outputs[spec.name].dtype == np.dtype(spec.dtype), (provider, form)
                np.testing.assert_allclose(
                    outputs[spec.name].astype(np.float64), expected[spec.name].astype(np.float64), atol=1e-6
                )


def test_oip_integers_out_of_range_or_not_whole_are_400(keys):
    _, providers = _providers(keys, built_artifacts()["uint8_image"])
    for bad in (256, -1, 1.5):
        data = [0] * (8 * 8 * 3)
        data[0] = bad
        document = {"inputs": [{"name": "image", "shape": [1, 8, 8, 3], "datatype": "UINT8", "data": data}]}
        for provider, call in providers.items():
            status, _, body = call("POST", "/v2/models/uint8_image/infer", {}, json.dumps(document).encode())
            assert status == 400, (provider, bad)
            assert "UINT8" in json.loads(body)["error"], provider


def test_a_stateful_model_carries_nothing_from_one_request_to_the_next_on_every_provider(keys):
    # GIVEN a streaming model with a resource variable, imported and served on every provider
    folder = built_artifacts()["stateful"]
    engine, providers = _providers(keys, folder)
    assert engine.manifest.stateful and engine.stateful
    caller_a = [[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]
    caller_b = [[9.0, 9.0, 9.0, 9.0]]
    # LiteRT reused as it is, the bug: caller B's answer changes after caller A's request
    from ai_edge_litert.interpreter import Interpreter

    reused = Interpreter(model_path=str(folder / engine.manifest.file))
    reused.allocate_tensors()
    index, out = reused.get_input_details()[0]["index"], reused.get_output_details()[0]["index"]
    leaked = []
    for row in [*caller_b, *caller_a, *caller_b]:
        reused.set_tensor(index, np.asarray([row], dtype=np.float32))
        reused.invoke()
        leaked.append(reused.get_tensor(out)[0].tolist())
    assert leaked[0] != leaked[-1]
    for provider, call in providers.items():
        answers = []
        # WHEN caller B asks, then caller A (two rows, one stream), then caller B again, twice
        for rows in (caller_b, caller_a, caller_b, caller_b):
            sealed = seal(keys, inputs=rows)
            status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
            assert status == 200, (provider, body)
            answers.append(sealed.open(body)["outputs"])
        # THEN B's answer never changes, and A's two rows are one stream from a fresh state
        assert answers[0] == answers[2] == answers[3], provider
        assert answers[0] == [[18.0, 18.0, 18.0, 18.0]], provider
        assert answers[1] == [[2.0, 4.0, 6.0, 8.0], [9.0, 8.0, 7.0, 6.0]], provider


def test_inspect_says_a_model_is_stateful(capsys):
    from litefaas.cli.main import main

    folder = built_artifacts()["stateful"]
    assert main(["inspect", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stateful"] is True
    assert main(["inspect", str(folder)]) == 0
    assert "stateful" in capsys.readouterr().out


def test_a_model_with_a_dynamic_length_is_built_at_a_real_shape_and_serves_any_length(keys, tmp_path, capsys):
    from core.engine import Manifest
    from litefaas.cli.main import main
    from model.errors import BuildError
    from model.tflite_import import build_from_tflite

    source = made_models()["dynamic_length"]
    # GIVEN a model whose input is [-1, -1] and which cannot run at its default shape [1, 1]
    assert main(["inspect", str(source)]) == 0
    assert "[N, ?]" in capsys.readouterr().out
    # WHEN it is built with neither calibration data nor --input-shape THEN the build says what to give
    with pytest.raises(
        BuildError, match=r"samples have dynamic dimensions beyond the batch: give --calibration"
    ):
        build_from_tflite(source, tmp_path / "refused", latency_repeats=2)
    # WHEN it is built with --input-shape samples=160
    folder = build_from_tflite(
        source, tmp_path / "dyn", input_shapes={"samples": (160,)}, latency_repeats=2
    ).out
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["inputs"][0]["example_row"] == [160] and manifest["inputs"][0]["shape"] == [None, None]
    # (without the example row, the engine fails at cold start, its warm-up at [1, 1]: the bug this fixes)
    raw = {**manifest, "inputs": [{k: v for k, v in manifest["inputs"][0].items() if k != "example_row"}]}
    with pytest.raises(ShapeNotRunnable, match=r"samples \[1, 1\]"):
        Engine(Manifest.from_json(raw), (folder / manifest["file"]).read_bytes()).warm_up()
    # THEN every provider serves rows of any length the model takes: one shape per request
    engine, providers = _providers(keys, folder)
    for length in (160, 48, 1024):
        rows = np.random.default_rng(length).normal(size=(3, length)).astype(np.float32)
        expected = engine.predict({"samples": rows})["embedding"]
        for provider, call in providers.items():
            sealed = seal(keys, inputs=rows.tolist())
            status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
            assert status == 200, (provider, length, body)
            np.testing.assert_allclose(
                np.asarray(sealed.open(body)["outputs"], dtype=np.float32), expected, rtol=1e-5
            )
            headers, oip_body = binary_request({"samples": rows})
            status, response_headers, answer = call(
                "POST", "/v2/models/dynamic_length/infer", headers, oip_body
            )
            assert status == 200, (provider, length, answer[:200])
            np.testing.assert_allclose(
                read_response(response_headers, answer)[1]["embedding"], expected, rtol=1e-5
            )
    # AND a row over the limit the build recorded (16 times the example's elements) is refused with
    # a 413 on every provider, version 1 and OIP alike, and one at the limit is served
    assert manifest["inputs"][0]["max_row_elements"] == 16 * 160
    for length, wanted in ((16 * 160, 200), (16 * 160 + 16, 413)):
        rows = np.zeros((1, length), dtype=np.float32)
        for provider, call in providers.items():
            sealed = seal(keys, inputs=rows.tolist())
            status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
            assert status == wanted, (provider, length, body[:200])
            headers, oip_body = binary_request({"samples": rows})
            status, _, answer = call("POST", "/v2/models/dynamic_length/infer", headers, oip_body)
            assert status == wanted, (provider, length, answer[:200])
            if wanted == 413:
                assert b"over the model's limit of 2560" in answer
                assert "over the model's limit" in sealed.open(body)["error"]["message"]
    # AND a length within the limit that the model cannot run at (not a multiple of 16) is a 422
    # (OIP: a 400) naming the shape, never a 500, and the next request is served as before
    for provider, call in providers.items():
        sealed = seal(keys, inputs=np.zeros((1, 100)).tolist())
        status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
        assert status == 422, (provider, body[:200])
        assert sealed.open(body)["error"]["message"] == (
            "inputs: the model cannot run at the input shape samples [1, 100]"
        )
        headers, oip_body = binary_request({"samples": np.zeros((2, 100), dtype=np.float32)})
        status, _, answer = call("POST", "/v2/models/dynamic_length/infer", headers, oip_body)
        assert status == 400 and b"cannot run at the input shape samples [2, 100]" in answer, provider
        sealed = seal(keys, inputs=np.ones((1, 160)).tolist())
        status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
        assert status == 200, (provider, body[:200])
    # AND version-1 rows of two lengths in one request are refused, naming the row
    sealed = seal(keys, inputs=[[0.0] * 160, [0.0] * 48])
    status, _, body = providers["core"]("POST", "/predict", ENCRYPTED, sealed.body)
    assert status == 422 and "row" in sealed.open(body)["error"]["message"]


def test_the_row_limit_is_chosen_checked_and_run_at_build_time(tmp_path):
    from model.errors import BuildError
    from model.tflite_import import build_from_tflite, parse_row_limits

    source = made_models()["dynamic_length"]
    # GIVEN the dynamic-length model, built at rows of 160 samples
    # WHEN the limit is given THEN it is recorded, after the model ran at a row that size
    folder = build_from_tflite(
        source,
        tmp_path / "limited",
        input_shapes={"samples": (160,)},
        max_row_elements=parse_row_limits(["samples=1000"]),
        latency_repeats=2,
    ).out
    assert json.loads((folder / "manifest.json").read_text())["inputs"][0]["max_row_elements"] == 1000
    # WHEN a limit is below the example row, names no dynamic input, or is not a number THEN it is refused
    with pytest.raises(BuildError, match=r"samples=100 is below the 160 elements"):
        build_from_tflite(
            source, tmp_path / "r1", input_shapes={"samples": (160,)}, max_row_elements={"samples": 100}
        )
    with pytest.raises(BuildError, match=r"names no input with dynamic dimensions beyond the batch: x"):
        build_from_tflite(
            source, tmp_path / "r2", input_shapes={"samples": (160,)}, max_row_elements={"x": 9}
        )
    for bad in ("samples", "samples=0", "samples=ten", "=5"):
        with pytest.raises(BuildError, match="expected NAME=N"):
            parse_row_limits([bad])
    # WHEN a model that takes rows of at most 512 samples is built at 160 with the default limit
    # (16 times 160) THEN the build says it does not run at the limit, and a limit it runs at is taken
    bounded = made_models()["bounded_length"]
    with pytest.raises(BuildError, match=r"does not run at the largest rows allowed \(samples=2560 elements"):
        build_from_tflite(bounded, tmp_path / "r3", input_shapes={"samples": (160,)}, latency_repeats=2)
    build_from_tflite(
        bounded, tmp_path / "ok", input_shapes={"samples": (160,)}, max_row_elements={"samples": 512}
    )
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3").exists()


def test_tensor_names_shared_across_subgraphs_no_longer_stop_the_quantizer(keys, tmp_path):
    from model.tflite_import import build_from_tflite, quantize_variant

    source = made_models()["shared_arg_names"]
    # GIVEN a model whose loop subgraphs both name a tensor arg0, which the quantizer refuses as it is
    with pytest.raises(ValueError, match="Tensor name arg0 is not unique"):
        quantize_variant(source.read_bytes(), "weight_only_int8")
    # WHEN it is built
    result = build_from_tflite(source, tmp_path / "loop", latency_repeats=2)
    # THEN every variant is made (the names made unique first), and the selected one answers as
    # LiteRT answers the original file, on every provider
    assert not result.skipped, result.skipped
    assert {"float16", "weight_only_int8", "dynamic_range"} <= set(result.manifest["variants"])
    _, providers = _providers(keys, result.out)
    x = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
    expected = litert_direct(source, "serving_default", {"x": x})["y"]
    for provider, call in providers.items():
        sealed = seal(keys, inputs=x.tolist())
        status, _, body = call("POST", "/predict", ENCRYPTED, sealed.body)
        assert status == 200, (provider, body)
        np.testing.assert_allclose(np.asarray(sealed.open(body)["outputs"]), expected, atol=0.1)


def test_the_kind_of_each_output_is_read_from_the_file_and_shown_by_predict(keys, tmp_path, capsys):
    from fixtures.tflite_models import HEADS_OUTPUTS

    from litefaas.cli.outputs import kinds_of, summary_lines
    from model.tflite_import import build_from_tflite

    # GIVEN a model with four outputs whose metadata lists them in the graph's order, which is
    # neither the signature's nor their tensor indices'
    folder = build_from_tflite(made_models()["heads"], tmp_path / "heads", latency_repeats=2).out
    manifest = json.loads((folder / "manifest.json").read_text())
    # THEN each output's kind is the file's: the label file's scores are logits, the sigmoid's
    # probabilities, the bounding-box and image metadata boxes and a mask
    assert {o["name"]: o.get("kind") for o in manifest["outputs"]} == HEADS_OUTPUTS
    # AND /health lists them on every provider, and predict's summary reads each by its kind
    engine, providers = _providers(keys, folder)
    for provider, call in providers.items():
        status, _, body = call("GET", "/health", {}, b"")
        assert status == 200, provider
        health = json.loads(body)["model"]
        assert kinds_of(health) == HEADS_OUTPUTS, provider
    x = np.random.default_rng(3).normal(size=(2, 8)).astype(np.float32)
    outputs = engine.predict({"x": x})
    lines = summary_lines(outputs, ["north", "east", "south", "west"], None, HEADS_OUTPUTS)
    text = "\n".join(lines)
    assert "logits: FP32 [2, 4] (logits)" in text and "mask: FP32 [2, 4, 4] (mask)" in text
    logits = outputs["logits"][0]
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = ["north", "east", "south", "west"][int(np.argmax(logits))]
    assert f"row 0: {top} (p {p.max():.4f}, logit {logits.max():.4g})" in text
    assert "row 0: 2 box(es): [" in text and "row 0: mask 4×4: values" in text


def test_a_custom_op_only_xnnpack_provides_is_named_recorded_and_needed_at_start(keys, tmp_path, capsys):
    from core.app import App
    from core.errors import ConfigError
    from litefaas.cli.main import main
    from model.tflite_import import build_from_tflite

    source = made_models()["xnnpack_only"]
    # GIVEN MediaPipe's Convolution2DTransposeBias, which only LiteRT's XNNPACK delegate provides
    assert main(["inspect", str(source)]) == 0
    assert "XNNPACK only" in capsys.readouterr().out
    folder = build_from_tflite(source, tmp_path / "xnn", latency_repeats=2).out
    manifest = json.loads((folder / "manifest.json").read_text())
    # THEN the manifest records the need, and the function serves it with XNNPACK on (the default)
    assert manifest["requires_xnnpack"] == ["Convolution2DTransposeBias"]
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_MODEL_DIR": str(folder),
        "LITEFAAS_LOG_LEVEL": "ERROR",
    }
    app = App.from_env(env)
    assert app.engine.predict({"x": np.ones((1, 4, 4, 2), dtype=np.float32)})["y"].shape == (1, 8, 8, 4)
    # AND with LITEFAAS_XNNPACK=0 the function refuses to start, naming the variable and the op
    with pytest.raises(ConfigError) as refused:
        App.from_env({**env, "LITEFAAS_XNNPACK": "0"})
    assert (
        refused.value.variable == "LITEFAAS_XNNPACK" and "Convolution2DTransposeBias" in refused.value.problem
    )
