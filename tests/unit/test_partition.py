"""Layer segments: cutting, balancing, verification, and the chain through one function per segment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fixtures.inprocess import InProcessTransport
from fixtures.requests import ROWS, make_keys

from core.app import App
from core.engine import Engine, load_artifact
from litefaas.client import ChainClient, ClientError, InvalidPayloadError, ProtocolError, SegmentError
from model.errors import BuildError
from model.partition_plan import plan_cuts, plan_for_limit, segment_costs

EPOCHS = 3  # enough for a model whose outputs are not all 0 or 1; the test is about cutting it


class TestPlanning:
    """Balancing needs no TensorFlow."""

    def test_the_largest_segment_is_as_small_as_it_can_be(self):
        """For each segment count, the cuts minimise the heaviest segment."""
        costs = [61, 3968, 8256, 65]  # the seed MLP's int8 weight bytes per layer
        assert plan_cuts(costs, [1, 2, 3], 1) == ()
        assert plan_cuts(costs, [1, 2, 3], 2) == (2,)
        assert plan_cuts(costs, [1, 2, 3], 3) == (2, 3)
        assert plan_cuts(costs, [1, 2, 3], 4) == (1, 2, 3)
        assert segment_costs(costs, (2, 3)) == [4029, 8256, 65]

    def test_ties_go_to_the_most_even_split(self):
        """Among cuts with the same heaviest segment, the most even split wins."""
        assert plan_cuts([5, 5, 10], [1, 2], 2) == (2,)
        assert plan_cuts([1, 1, 1, 1], [1, 2, 3], 2) == (2,)

    def test_only_allowed_positions_are_used(self):
        """Cuts fall only at allowed positions; asking for more segments is a BuildError."""
        assert plan_cuts([1, 1, 1, 1, 1], [4], 2) == (4,)
        with pytest.raises(BuildError, match="at most 2 segments"):
            plan_cuts([1, 1, 1, 1, 1], [4], 3)

    def test_fewest_segments_under_a_limit(self):
        """The fewest segments under a byte limit are chosen; a layer over it is a BuildError."""
        costs = [61, 3968, 8256, 65]
        assert plan_for_limit(costs, [1, 2, 3], 20_000) == ()
        assert plan_for_limit(costs, [1, 2, 3], 9_000) == (2,)
        assert plan_for_limit(costs, [1, 2, 3], 8_256) == (2, 3)
        with pytest.raises(BuildError, match="largest segment weighs 8,256 bytes"):
            plan_for_limit(costs, [1, 2, 3], 5_000)


# --- with TensorFlow ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """A briefly trained seed MLP, its data split, and a .keras file and calibration .npz of it."""
    from model.data import breast_cancer
    from model.train import train_seed_mlp

    split = breast_cancer()
    model = train_seed_mlp(split.train, epochs=EPOCHS)
    folder = tmp_path_factory.mktemp("seed")
    model.save(folder / "seed.keras")
    np.savez(folder / "cal.npz", features=split.test.inputs["features"], y=split.test.labels)
    return model, split, folder


@pytest.fixture(scope="module")
def two(seed, tmp_path_factory):
    """The seed cut into 2 int8 segments through the API, with the whole model alongside."""
    from model.data import BREAST_CANCER_LABEL
    from model.partition import PartitionOptions, partition_model

    model, split, _ = seed
    out = tmp_path_factory.mktemp("two") / "chain"
    options = PartitionOptions(out=out, segments=2, with_whole=True)
    partition_model(
        model,
        split.train,
        split.test,
        options,
        name="breast_cancer_mlp",
        feature_names=split.test.feature_names,
        label_meaning=BREAST_CANCER_LABEL,
    )
    return out


def run_partition_cli(*argv: str) -> int:
    """``litefaas partition …`` as ``litefaas.cli`` runs a command: tool and build errors exit 2."""
    from litefaas.cli.base import run
    from litefaas.cli.partition import register

    root = argparse.ArgumentParser(prog="litefaas")
    register(root.add_subparsers(dest="command"))
    return run(root, ["partition", *argv])


@pytest.fixture(scope="module")
def three(seed, tmp_path_factory):
    """The seed's .keras file cut into 3 int8 segments from the command line."""
    _, _, folder = seed
    out = tmp_path_factory.mktemp("three") / "chain"
    code = run_partition_cli(
        "--model", str(folder / "seed.keras"), "--calibration", str(folder / "cal.npz"),
        "--segments", "3", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    return out


def read_chain(folder: Path) -> dict:
    return json.loads((folder / "chain.json").read_text())


def run_segments(folder: Path, inputs: np.ndarray) -> np.ndarray:
    """The chain run locally: each segment's engine on the previous one's output."""
    current = {"features": inputs}
    for entry in read_chain(folder)["segments"]:
        current = Engine.from_dir(folder / entry["folder"]).predict(current)
    (output,) = current.values()
    return output


@pytest.mark.tensorflow
class TestCutting:
    def test_the_seed_can_be_cut_between_any_two_layers(self, seed):
        """The seed MLP can be cut after any layer, with each layer's weight bytes and FLOPs."""
        from model.partition_plan import cut_positions, layer_costs

        model, _, _ = seed
        assert cut_positions(model) == [1, 2, 3]
        costs = layer_costs(model)
        assert [c.name for c in costs] == ["standardize", "dense_128", "dense_64", "probability"]
        assert [c.weights for c in costs] == [61, 3968, 8256, 65]
        assert [c.flops for c in costs] == [30, 2 * 30 * 128, 2 * 128 * 64, 2 * 64]

    def test_no_cut_inside_a_skip_connection(self):
        """No cut falls inside a skip connection, which bounds the segment count."""
        import keras

        from model.partition import PartitionOptions, partition_model
        from model.partition_plan import cut_positions

        inputs = keras.Input((8,), name="x")
        a = keras.layers.Dense(16, name="a")(inputs)
        b = keras.layers.Dense(16, name="b")(a)
        c = keras.layers.Dense(16, name="c")(b)
        joined = keras.layers.Add(name="add")([a, c])
        model = keras.Model(inputs, keras.layers.Dense(1, name="d")(joined))
        assert cut_positions(model) == [1, 4]  # after a, after add
        with pytest.raises(BuildError, match="at most 3 segments"):
            partition_model(model, None, None, PartitionOptions(out=Path("unused"), segments=4))

    def test_sequential_model_in_float32(self, tmp_path):
        """A Sequential model cuts by FLOPs into float32 segments that match the whole model."""
        import keras

        from model.data import Dataset
        from model.partition import PartitionOptions, partition_model

        keras.utils.set_random_seed(3)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(12, activation="tanh", name="h1"),
                keras.layers.Dense(12, activation="relu", name="h2"),
                keras.layers.Dense(3, activation="softmax", name="classes"),
            ]
        )
        data = Dataset(
            {model.inputs[0].name: np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)}
        )
        options = PartitionOptions(out=tmp_path / "seq", segments=3, variant="float32", balance="flops")
        chain = partition_model(model, data, data, options, name="seq").chain
        assert [s["layers"] for s in chain["segments"]] == [["h1"], ["h2"], ["classes"]]
        assert [s["takes"] for s in chain["segments"]] == [[model.inputs[0].name], ["h1"], ["h2"]]
        assert chain["verification"]["float32"]["max_abs_diff_vs_whole"] <= 1e-5
        assert "int8" not in chain["verification"]


@pytest.mark.tensorflow
class TestSegments:
    def test_chain_manifest_lists_the_segments_in_order(self, two):
        """chain.json lists the segments in order with their layers, tensors and the chain's I/O."""
        chain = read_chain(two)
        assert chain["kind"] == "chain" and chain["variant"] == "int8"
        segments = chain["segments"]
        assert [s["folder"] for s in segments] == ["segment-1", "segment-2"]
        assert [s["layers"] for s in segments] == [["standardize", "dense_128"], ["dense_64", "probability"]]
        assert [s["takes"] for s in segments] == [["features"], ["dense_128"]]
        assert [s["hands_on"] for s in segments] == ["dense_128", None]
        assert chain["inputs"] == [{"name": "features", "shape": [None, 30], "dtype": "float32"}]
        assert chain["outputs"] == [{"name": "probability", "shape": [None, 1], "dtype": "float32"}]

    def test_each_segment_is_an_artifact_core_serves(self, two):
        """Each segment is a loadable artifact whose manifest matches chain.json and its neighbour."""
        chain = read_chain(two)
        for entry in chain["segments"]:
            manifest, content = load_artifact(two / entry["folder"])  # checks the sha256
            assert manifest.sha256 == entry["sha256"] and len(content) == entry["bytes"]
            assert manifest.raw["segment"]["index"] == entry["index"]
            assert manifest.raw["segment"]["hands_on"] == entry["hands_on"]
            assert sorted(p.name for p in (two / entry["folder"]).iterdir()) == [
                entry["file"],
                "manifest.json",
            ]
            assert entry["file"].endswith(".int8.tflite")
            assert [t.name for t in manifest.inputs] == entry["takes"]
        first, second = (load_artifact(two / s["folder"])[0] for s in chain["segments"])
        assert first.outputs[0].name == second.inputs[0].name == "dense_128"
        assert first.outputs[0].shape == second.inputs[0].shape == (None, 128)
        assert len(first.raw["feature_names"]) == 30 and second.raw["label"]["output"] == "probability"

    def test_float32_chain_equals_the_whole_model(self, two, seed, tmp_path):
        """A float32 chain gives the whole model's outputs within 1e-5."""
        from model.partition import PartitionOptions, partition_model

        model, split, _ = seed
        report = read_chain(two)["verification"]["float32"]  # the int8 chain's float32 twin, in memory
        assert report["passed"] and report["max_abs_diff_vs_whole"] <= 1e-5
        partition_model(
            model, split.train, split.test, PartitionOptions(tmp_path / "f32", 2, variant="float32")
        )
        rows = split.test.inputs["features"]
        chained = run_segments(tmp_path / "f32", rows)
        assert np.max(np.abs(chained - model.predict(rows, verbose=0))) <= 1e-5
        assert set(read_chain(tmp_path / "f32")["verification"]) == {"rows", "float32"}

    def test_int8_chain_is_within_the_int8_models_own_error(self, two, seed):
        """The int8 chain stays within the whole int8 model's own error against Keras."""
        model, split, _ = seed
        rows = split.test.inputs["features"]
        keras_outputs = model.predict(rows, verbose=0)
        whole = Engine.from_dir(two / "whole").predict({"features": rows})["probability"]
        tolerance = max(float(np.max(np.abs(whole - keras_outputs))), 1e-5)
        chained = run_segments(two, rows)
        assert np.max(np.abs(chained - whole)) <= tolerance
        report = read_chain(two)["verification"]["int8"]
        assert report["passed"] and report["tolerance"] == pytest.approx(tolerance, rel=1e-6)

    def test_three_segments_from_the_command_line(self, three, capsys):
        """The CLI writes three verified segments and chain.json, nothing else."""
        chain = read_chain(three)
        assert [s["layers"] for s in chain["segments"]] == [
            ["standardize", "dense_128"],
            ["dense_64"],
            ["probability"],
        ]
        assert all(chain["verification"][v]["passed"] for v in ("float32", "int8"))
        assert sorted(p.name for p in three.iterdir()) == [
            "chain.json",
            "segment-1",
            "segment-2",
            "segment-3",
        ]

    def test_max_segment_bytes_chooses_the_count(self, seed, tmp_path):
        """--max-segment-bytes picks the fewest segments whose files fit the limit."""
        _, _, folder = seed
        common = ["--model", str(folder / "seed.keras"), "--calibration", str(folder / "cal.npz")]
        out = tmp_path / "fits"
        assert run_partition_cli(*common, "--max-segment-bytes", "12000", "--out", str(out)) == 0
        chain = read_chain(out)
        assert len(chain["segments"]) == 2 and max(s["bytes"] for s in chain["segments"]) <= 12_000

    def test_limits_that_cannot_be_met(self, seed, tmp_path, capsys):
        """An unmeetable byte limit exits 2 saying why, and leaves no output or temporary folder."""
        _, _, folder = seed
        common = ["--model", str(folder / "seed.keras"), "--calibration", str(folder / "cal.npz")]
        out = tmp_path / "out"
        assert run_partition_cli(*common, "--max-segment-bytes", "5000", "--out", str(out)) == 2
        assert "largest segment weighs 8,256 bytes" in capsys.readouterr().err
        # the weights fit 9,000 bytes, the converted file of dense_64 does not: caught after conversion
        assert run_partition_cli(*common, "--max-segment-bytes", "9000", "--out", str(out)) == 2
        assert "segment 2's int8 file is" in capsys.readouterr().err
        assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    def test_what_cannot_be_cut(self, seed, tmp_path, capsys):
        """A SavedModel, or a cut without --calibration, exits 2 saying why."""
        _, _, folder = seed
        (tmp_path / "sm").mkdir()
        (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
        out = str(tmp_path / "out")
        assert run_partition_cli("--model", str(tmp_path / "sm"), "--segments", "2", "--out", out) == 2
        assert "a SavedModel has no layers" in capsys.readouterr().err
        assert run_partition_cli("--model", str(folder / "seed.keras"), "--segments", "2", "--out", out) == 2
        assert "--calibration" in capsys.readouterr().err


class Router(httpx.BaseTransport):
    """One in-process function per host; records every exchange."""

    def __init__(self, apps: dict[str, App]) -> None:
        self.routes = {host: InProcessTransport(app) for host, app in apps.items()}
        self.exchanges: list[tuple[str, httpx.Request, bytes, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        response = self.routes[request.url.host].handle_request(request)
        self.exchanges.append((request.url.host, request, body, response))
        return response


def segment_apps(folder: Path, order: list[int] | None = None, **extra: str) -> tuple[list[str], Router]:
    """One App per segment, each with its own key ring, at https://segN.test (``extra``: more settings)."""
    entries = read_chain(folder)["segments"]
    order = order or [e["index"] for e in entries]
    apps = {}
    for position, index in enumerate(order, start=1):
        env = {
            "LITEFAAS_PRIVATE_KEYS": make_keys().private_json,
            "LITEFAAS_MODEL_DIR": str(folder / entries[index - 1]["folder"]),
            "LITEFAAS_LOG_LEVEL": "ERROR",
            **extra,
        }
        apps[f"seg{position}.test"] = App.from_env(env)
    return [f"https://{host}" for host in apps], Router(apps)


@pytest.mark.tensorflow
class TestChainThroughFunctions:
    def test_answers_as_the_segments_do_and_nothing_travels_in_clear(self, three):
        # GIVEN three functions, one per segment, each with its own keys
        urls, router = segment_apps(three)
        rows = np.asarray(ROWS, dtype=np.float32)
        # WHEN the client drives the chain
        with ChainClient(urls, chain=three / "chain.json", transport=router) as chain:
            result = chain.predict(rows)
        # THEN the answer is the segments' own (which match the whole model: see TestSegments)
        np.testing.assert_array_equal(result.outputs, run_segments(three, rows))
        assert result.model["name"] == "seed.segment-3-of-3"
        # AND every hop went as version 2, sealed both ways, and no intermediate activation (as raw
        # float32 bytes or as text) shows in any body
        activations = Engine.from_dir(three / "segment-1").predict({"features": rows})["dense_128"]
        needles = [row.tobytes()[:64] for row in activations] + [
            json.dumps(float(v)).encode() for v in activations.ravel() if v > 0.01
        ][:50]
        predicts = [x for x in router.exchanges if x[1].url.path == "/predict"]
        assert [host for host, *_ in predicts] == ["seg1.test", "seg2.test", "seg3.test"]
        for _, request, body, response in predicts:
            assert request.headers["content-type"] == "application/litefaas"
            assert body[0] == 2
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/litefaas"
            for sent in (body, response.content):
                assert not any(needle in sent for needle in needles)

    def test_one_trace_covers_every_hop(self, three, otel):
        # GIVEN three segment functions exporting spans
        from opentelemetry.trace import SpanKind

        urls, router = segment_apps(three, LITEFAAS_OTEL="1")
        # WHEN a batch goes through the chain
        with ChainClient(urls, chain=three / "chain.json", transport=router) as chain:
            chain.predict(np.asarray(ROWS[:4], dtype=np.float32))
        spans = otel.finished()
        # THEN the chain is one span, the root of one trace that holds every other
        (root,) = [s for s in spans if s.name == "litefaas.chain"]
        assert root.parent is None
        assert {s.context.trace_id for s in spans} == {root.context.trace_id}
        by_id = {s.context.span_id: s for s in spans}
        served = [s for s in spans if s.kind is SpanKind.SERVER and s.attributes["http.route"] == "predict"]
        # AND each segment's function span is a child of the client's request to that segment, itself
        # under the chain (through the hop's fan-out span)
        assert [s.attributes["litefaas.model_sha256"] for s in served] == [
            entry["sha256"] for entry in read_chain(three)["segments"]
        ]
        for span in served:
            request = by_id[span.parent.span_id]
            assert request.kind is SpanKind.CLIENT and request.name == "POST predict"
            ancestors = []
            while request.parent is not None:
                request = by_id[request.parent.span_id]
                ancestors.append(request.name)
            assert ancestors == ["litefaas.fan_out", "litefaas.chain"]

    def test_a_large_batch_is_split_to_fit_each_function(self, three):
        """A batch over a function's max batch is split at every hop and the chain still matches."""
        urls, router = segment_apps(three)
        rows = np.tile(np.asarray(ROWS, dtype=np.float32), (20, 1))  # 1,280 rows
        with ChainClient(urls, transport=router) as chain:
            result = chain.predict(rows)
        np.testing.assert_array_equal(result.outputs, run_segments(three, rows))
        hops = [host for host, request, *_ in router.exchanges if request.url.path == "/predict"]
        # every hop is split at LITEFAAS_MAX_BATCH (1,024 rows); 128 raw float32 a row fit 4 MiB easily
        assert hops.count("seg1.test") == 2 and hops.count("seg2.test") == 2
        assert all(response.status_code == 200 for *_, response in router.exchanges)

    def test_an_error_names_the_segment(self, three):
        """A segment's error is raised as SegmentError naming the segment, its URL and the cause."""
        # GIVEN a chain miswired: the second function serves segment 3 (it takes 64 values, not 128)
        urls, router = segment_apps(three, order=[1, 3, 2])
        with ChainClient(urls, transport=router) as chain, pytest.raises(SegmentError) as caught:
            chain.predict(ROWS[:4])
        error = caught.value
        assert (error.index, error.count, error.code, error.status) == (2, 3, "invalid_payload", 422)
        assert isinstance(error.error, InvalidPayloadError)
        assert str(error).startswith("segment 2 of 3 (segment 2 at https://seg2.test): invalid_payload:")
        assert "does not match [N, 64] at axis 1" in str(error)

    def test_the_chain_manifest_catches_a_wrong_model(self, three):
        """A segment serving the wrong model is a SegmentError; a URL count unlike chain.json's is refused."""
        chain = read_chain(three)
        chain["segments"][1]["sha256"] = "0" * 64
        urls, router = segment_apps(three)
        with (
            ChainClient(urls, chain=chain, transport=router) as client,
            pytest.raises(SegmentError) as caught,
        ):
            client.predict(ROWS[:2])
        assert caught.value.index == 2 and isinstance(caught.value.error, ProtocolError)
        assert "seed.segment-2-of-3" in str(caught.value)
        with pytest.raises(ClientError, match="3 segments but 2 URLs"):
            ChainClient(urls[:2], chain=chain)
