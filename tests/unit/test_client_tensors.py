"""The Python client's version 2 (binary tensors) against the real core app, in process, real HPKE."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
from fixtures.binary import read_answer
from fixtures.inprocess import AsyncInProcessTransport, InProcessTransport
from fixtures.requests import ALL_SUITES, ROWS, make_keys

from core import crypto
from core.app import App
from core.config import Settings
from core.engine import Engine
from core.protocol import ENCRYPTED_TYPE_V2, PLAINTEXT_TYPE_V2
from core.tensors import frame_tensors, join_frame, split_frame
from litefaas.client import (
    AsyncClient,
    Client,
    ClientError,
    DecryptionFailedError,
    InvalidPayloadError,
    PartialFailure,
    PayloadTooLargeError,
    PlaintextDisabledError,
    ProtocolError,
    ReplayedRequestError,
    TensorResult,
    build_tensor_request,
    read_tensor_response,
    tensor_rows_per_request,
)
from litefaas.client.tensor_wire import REQUEST_OVERHEAD_BYTES, normalize_tensors
from model.digits import DEFAULT_OUT as DIGITS
from model.digits import INPUT, OUTPUT, digits_split, render

URL = "https://fn.test"


@pytest.fixture(scope="module")
def keys():
    return make_keys(*ALL_SUITES)


@pytest.fixture(scope="module")
def app(keys, engine):
    env = {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"}
    return App(Settings.from_env(env), engine)


@pytest.fixture(scope="module")
def digits_app(keys):
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_ALLOW_PLAINTEXT": "1",
        "LITEFAAS_MODEL_DIR": str(DIGITS),
    }
    return App(Settings.from_env(env), Engine.from_dir(DIGITS))


@pytest.fixture(scope="module")
def digits():
    test = digits_split().test
    return test.inputs[INPUT][:8].astype(np.float32), np.asarray(test.labels[:8]).astype(int)


def features(n=5, start=0):
    return np.asarray(ROWS[start : start + n], dtype=np.float32)


def expected(app, x):
    return app.engine.predict({"features": x})["probability"]


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_predict_tensors_every_suite(app, suite):
    # GIVEN a client sealing to the function's key of one suite
    transport = InProcessTransport(app)
    with Client(URL, suite=suite, transport=transport) as client:
        # WHEN it sends the seed model's input as a raw float32 tensor
        result = client.predict_tensors({"features": features()})
    # THEN the answer is the model's, by name, in the model's datatype, with the model's identity
    assert isinstance(result, TensorResult) and list(result) == ["probability"]
    assert result["probability"].dtype == np.float32 and result["probability"].shape == (5, 1)
    np.testing.assert_array_equal(result["probability"], expected(app, features()))
    assert result.model == app.engine.manifest.public_info()
    assert result.outputs.keys() == {"probability"}
    # AND the wire carried version 2: the binary envelope, ~ the tensor's bytes plus a little
    seen = transport.seen[-1]
    assert seen.content_type == ENCRYPTED_TYPE_V2 and seen.body[0] == 2
    assert len(seen.body) - features().nbytes <= REQUEST_OVERHEAD_BYTES


def test_a_lone_array_goes_to_the_single_input_and_outputs_can_be_chosen(app):
    """A bare array feeds the only input, outputs can be named, and model info is fetched once."""
    transport = InProcessTransport(app)
    with Client(URL, transport=transport) as client:
        result = client.predict_tensors(features(3), outputs=["probability"])
        again = client.predict_tensors(features(2))
    np.testing.assert_array_equal(result["probability"], expected(app, features(3)))
    assert again["probability"].shape == (2, 1)
    assert sum(seen.path.endswith("/health") for seen in transport.seen) == 1  # model info cached


def test_plaintext_client_sends_the_plaintext_media_type(app):
    """A plaintext client sends a framed version-2 plaintext request carrying only the inputs."""
    transport = InProcessTransport(app)
    with Client(URL, plaintext=True, transport=transport) as client:
        result = client.predict_tensors({"features": features(4)})
    assert transport.seen[-1].content_type == PLAINTEXT_TYPE_V2
    header, _ = split_frame(transport.seen[-1].body)
    assert header.keys() == {"inputs"}
    np.testing.assert_array_equal(result["probability"], expected(app, features(4)))


def test_plaintext_refused_is_a_plain_json_error(keys, engine):
    """Plaintext tensors to a function that disables plaintext raise a plain 403 error."""
    off = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}), engine)
    with (
        Client(URL, plaintext=True, transport=InProcessTransport(off)) as client,
        pytest.raises(PlaintextDisabledError) as caught,
    ):
        client.predict_tensors({"features": features(1)})
    assert caught.value.status == 403 and caught.value.encrypted is False


def test_sealed_errors_are_typed_and_marked_encrypted(app):
    """A wrong datatype, output or input name raises a sealed 422 InvalidPayloadError saying which."""
    with Client(URL, transport=InProcessTransport(app)) as client:
        with pytest.raises(InvalidPayloadError) as wrong_dtype:
            client.predict_tensors({"features": features(2).astype(np.float64)})
        with pytest.raises(InvalidPayloadError) as wrong_output:
            client.predict_tensors({"features": features(2)}, outputs=["nope"])
        with pytest.raises(InvalidPayloadError) as wrong_name:
            client.predict_tensors({"pixels": features(2)})
    assert wrong_dtype.value.encrypted and wrong_dtype.value.status == 422
    assert "datatype FP64, the model takes FP32" in wrong_dtype.value.message
    assert "no output" in wrong_output.value.message
    assert "no input 'pixels'" in wrong_name.value.message


def test_plaintext_framed_error_is_typed_and_not_encrypted(app):
    """A framed plaintext error is typed and marked not encrypted."""
    with (
        Client(URL, plaintext=True, transport=InProcessTransport(app)) as client,
        pytest.raises(InvalidPayloadError) as caught,
    ):
        client.predict_tensors({"features": features(2)[:, :29]})
    assert caught.value.encrypted is False and "axis 1" in caught.value.message


def test_errors_before_decryption_are_plain_json(app, keys):
    """Sealing to a foreign key gives a plain 400 DecryptionFailedError."""
    foreign = make_keys()
    with (
        Client(URL, keyset=foreign.public, transport=InProcessTransport(app)) as client,
        pytest.raises(DecryptionFailedError) as caught,
    ):
        client.predict_tensors({"features": features(1)})
    assert caught.value.encrypted is False and caught.value.status == 400


def test_replayed_body_is_a_sealed_409(app):
    """A version-2 body sent twice is refused the second time with a sealed ReplayedRequestError."""
    key = Client(URL, transport=InProcessTransport(app)).key()
    body, secrets = build_tensor_request({"features": features(1)}, key)
    first = app.handle("POST", "/predict", {"Content-Type": ENCRYPTED_TYPE_V2}, body)
    second = app.handle("POST", "/predict", {"Content-Type": ENCRYPTED_TYPE_V2}, body)
    assert read_tensor_response(first.status, first.headers["Content-Type"], first.body, secrets)
    with pytest.raises(ReplayedRequestError) as caught:
        read_tensor_response(second.status, second.headers["Content-Type"], second.body, secrets)
    assert caught.value.encrypted


def test_answers_outside_the_protocol(app):
    """Each kind of answer outside the version-2 protocol raises ProtocolError saying why."""
    key = Client(URL, transport=InProcessTransport(app)).key()
    _, secrets = build_tensor_request({"features": features(1)}, key)
    _, other = build_tensor_request({"features": features(1)}, key)
    reply = app.handle(
        "POST",
        "/predict",
        {"Content-Type": ENCRYPTED_TYPE_V2},
        build_tensor_request({"features": features(1)}, key)[0],
    )
    with pytest.raises(ProtocolError, match="does not decrypt"):
        read_tensor_response(reply.status, ENCRYPTED_TYPE_V2, reply.body, other)
    with pytest.raises(ProtocolError, match="answered in plaintext"):
        ok = join_frame({"outputs": [], "model": {}})
        read_tensor_response(200, PLAINTEXT_TYPE_V2, ok, secrets)
    with pytest.raises(ProtocolError, match="answered sealed"):
        read_tensor_response(200, ENCRYPTED_TYPE_V2, b"\x02" + bytes(40), None)
    with pytest.raises(ProtocolError, match="not a framed message"):
        read_tensor_response(200, PLAINTEXT_TYPE_V2, b"\x00\x00\x00\x09{}", None)
    with pytest.raises(ProtocolError, match="do not match its header"):
        bad = join_frame({"outputs": [{"name": "y", "datatype": "FP32", "shape": [2]}], "model": {}}, [b"x"])
        read_tensor_response(200, PLAINTEXT_TYPE_V2, bad, None)
    with pytest.raises(ProtocolError, match="version-2 request was answered with application/json"):
        read_tensor_response(200, "application/json", b'{"outputs": [], "model": {}}', None)
    with pytest.raises(ProtocolError, match="not a litefaas answer"):
        read_tensor_response(502, "text/html", b"<html>bad gateway</html>", None)


def test_rotation_refreshes_the_key_set_once(keys, engine):
    """After a key rotation the client fetches the key set once more and the prediction succeeds."""
    old = make_keys()
    transport = InProcessTransport(
        App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": old.private_json}), engine)
    )
    with Client(URL, transport=transport) as client:
        client.predict_tensors({"features": features(1)})
        transport.app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}), engine)
        result = client.predict_tensors({"features": features(1)})
    assert result["probability"].shape == (1, 1)
    assert sum(seen.path.endswith("/keys") for seen in transport.seen) == 2


def test_fan_out_splits_along_axis_0_under_the_body_limit(app):
    """Fan-out splits rows into requests under the body limit and joins the outputs in order."""
    transport = InProcessTransport(app)
    x = np.asarray((ROWS * 20)[:100], dtype=np.float32)  # 100 rows of 120 bytes
    limit = REQUEST_OVERHEAD_BYTES + 160 + 120 * 10  # ten rows a request
    with Client(URL, transport=transport, max_body_bytes=limit, max_batch=1000) as client:
        result = client.predict_tensors({"features": x}, fan_out=3)
    bodies = [seen.body for seen in transport.seen if seen.path.endswith("/predict")]
    assert len(bodies) == 10 and all(len(body) <= limit for body in bodies)
    np.testing.assert_array_equal(result["probability"], expected(app, x))
    assert result.model == app.engine.manifest.public_info()


def test_fan_out_respects_max_batch_and_reports_partial_failure(keys, engine):
    """Fan-out keeps shards within max_batch; larger batches raise PayloadTooLargeError."""
    small = App(
        Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_MAX_BATCH": "4"}), engine
    )
    x = features(10)
    with Client(URL, transport=InProcessTransport(small), max_batch=4) as client:
        result = client.predict_tensors({"features": x}, fan_out=2)
    np.testing.assert_array_equal(result["probability"], expected(small, x))
    with (
        Client(URL, transport=InProcessTransport(small), max_batch=8) as client,
        pytest.raises(PayloadTooLargeError),
    ):
        client.predict_tensors({"features": x})


class FailingShard(InProcessTransport):
    """Answers 503 to every predict request whose batch is ``bad_rows`` rows."""

    bad_rows = 3

    def handle_request(self, request):
        body = request.read()
        if request.url.path.endswith("/predict") and len(body) > 200:
            ring = crypto.KeyRing.from_json(self.private_json)
            header, _ = split_frame(ring.open(crypto.parse_binary_envelope(body)))
            if header["inputs"][0]["shape"][0] == self.bad_rows:
                self.seen.append(None)
                return httpx.Response(503, json={"message": "Service Unavailable"}, request=request)
        return self.answer(request, body)


def test_a_failing_shard_is_retried_then_reported(app, keys):
    """Failing shards are retried, then reported with their row ranges and the shards that succeeded."""
    transport = FailingShard(app)
    transport.private_json = keys.private_json
    x = features(8)  # 8 rows, max_batch 3: shards of 2, 3, 3
    with Client(URL, transport=transport, max_batch=3) as client:
        client.retry_delay_s = 0
        with pytest.raises(PartialFailure) as caught:
            client.predict_tensors({"features": x}, fan_out=1, retries=1)
    failure = caught.value
    assert failure.rows == 8 and failure.failed_ranges == [range(2, 5), range(5, 8)]
    assert [(s.start, s.stop) for s in failure.succeeded] == [(0, 2)]
    np.testing.assert_array_equal(failure.succeeded[0].outputs["probability"], expected(app, x[:2]))
    assert transport.seen.count(None) == 4  # each failing shard: first try and one retry


def test_rows_per_request_counts_raw_bytes():
    """Rows per request follow the raw tensor bytes under the body limit, capped by batch and at least 1."""
    x = normalize_tensors({"a": np.zeros((10, 224, 224, 3), np.float32), "b": np.zeros((10, 4), np.int64)})
    per_row = 224 * 224 * 3 * 4 + 32
    assert (
        tensor_rows_per_request(x, 1024, 4 * 1024 * 1024)
        == (4 * 1024 * 1024 - REQUEST_OVERHEAD_BYTES - 320) // per_row
    )
    assert tensor_rows_per_request(x, 2, 4 * 1024 * 1024) == 2
    assert tensor_rows_per_request(x, 1024, 100_000) == 1


@pytest.mark.parametrize(
    ("tensors", "words"),
    [
        ({}, "non-empty mapping"),
        ({"x": np.zeros((2, 3), np.complex64)}, "no version-2 datatype"),
        ({"x": np.float32(1)}, "expected a numpy array"),
        ({"x": np.zeros((), np.float32)}, "batch axis"),
        ({"x": np.zeros((2, 3), np.float32), "y": np.zeros((3, 3), np.float32)}, "same batch"),
        ({"x": np.zeros((0, 3), np.float32)}, "empty"),
        ({"x": ["not bytes"]}, "expected a numpy array or a list of bytes"),
    ],
)
def test_bad_tensors_fail_before_sending(app, tensors, words):
    """Malformed tensors raise ClientError and no predict request is sent."""
    transport = InProcessTransport(app)
    with Client(URL, transport=transport) as client, pytest.raises(ClientError, match=words):
        client.predict_tensors(tensors)
    assert not any(seen.path.endswith("/predict") for seen in transport.seen)


def test_any_dtype_travels_raw(keys):
    """Any dtype or byte order is framed as its own little-endian bytes with request metadata."""
    # the framed bytes are the array's own, little-endian, whatever its dtype or byte order
    x = np.arange(6, dtype=">i4").reshape(2, 3)
    key = Client(URL, keyset=keys.public).key()
    body, _ = build_tensor_request({"ids": x}, key)
    ring = crypto.KeyRing.from_json(keys.private_json)
    header, payload = split_frame(ring.open(crypto.parse_binary_envelope(body)))
    assert header["inputs"] == [{"name": "ids", "datatype": "INT32", "shape": [2, 3]}]
    assert bytes(payload) == x.astype("<i4").tobytes()
    assert {"response_key", "ts", "id"} <= header.keys()


def test_predict_images_sends_files_to_the_image_input(digits_app, keys, digits):
    """Image files go to the image input as BYTES, by name or as a bare list, and are classified."""
    pixels, labels = digits
    files = [render(row, 64, "PNG") for row in pixels]
    transport = InProcessTransport(digits_app)
    with Client(URL, transport=transport) as client:
        by_name = client.predict_images({INPUT: files})
        lone = client.predict_images(files[:3])
    assert by_name[OUTPUT].shape == (8, 10)
    assert np.mean(np.argmax(by_name[OUTPUT], axis=1) == labels) >= 7 / 8
    np.testing.assert_array_equal(lone[OUTPUT], by_name[OUTPUT][:3])
    ring = crypto.KeyRing.from_json(keys.private_json)
    header, _ = split_frame(ring.open(crypto.parse_binary_envelope(transport.seen[-1].body)))
    assert header["inputs"] == [{"name": INPUT, "datatype": "BYTES", "shape": [3]}]


def test_predict_images_plaintext_and_fan_out(keys, digits):
    """Plaintext image predictions give the same outputs with or without fan-out."""
    pixels, _labels = digits
    env = {"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_MODEL_DIR": str(DIGITS)}
    plain = App(Settings.from_env(env), Engine.from_dir(DIGITS))
    files = [render(row, 48, "JPEG") for row in pixels]
    with Client(URL, plaintext=True, transport=InProcessTransport(plain)) as client:
        whole = client.predict_images(files)
        split = client.predict_images(files, fan_out=4)
    np.testing.assert_array_equal(whole[OUTPUT], split[OUTPUT])


def test_an_image_to_a_model_without_an_image_input_is_a_sealed_422(app):
    """An image sent to a model with no image input is a sealed 422 naming the datatype it takes."""
    png = render(np.zeros((8, 8, 1), np.float32), 16, "PNG")
    with (
        Client(URL, transport=InProcessTransport(app)) as client,
        pytest.raises(InvalidPayloadError) as caught,
    ):
        client.predict_images([png])
    assert caught.value.encrypted and caught.value.status == 422
    assert "takes FP32" in caught.value.message


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_async_predict_tensors_and_images(app, digits_app, digits, suite):
    """The async client predicts tensors and images, concurrently and with fan-out, in every suite."""
    pixels, _ = digits
    files = [render(row, 32, "PNG") for row in pixels[:2]]

    async def scenario():
        async with AsyncClient(URL, suite=suite, transport=AsyncInProcessTransport(app)) as client:
            results = await asyncio.gather(
                *(client.predict_tensors({"features": features(2, i)}) for i in range(3)),
                client.predict_tensors(features(6), fan_out=3),
            )
        async with AsyncClient(URL, suite=suite, transport=AsyncInProcessTransport(digits_app)) as client:
            images = await client.predict_images(files, fan_out=2)
        return results, images

    results, images = asyncio.run(scenario())
    for i, result in enumerate(results[:3]):
        np.testing.assert_array_equal(result["probability"], expected(app, features(2, i)))
    np.testing.assert_array_equal(results[3]["probability"], expected(app, features(6)))
    assert images[OUTPUT].shape == (2, 10)


def test_async_errors_are_typed(app):
    """The async client raises the same typed sealed errors as the sync one."""

    async def scenario():
        async with AsyncClient(URL, transport=AsyncInProcessTransport(app)) as client:
            await client.predict_tensors({"features": features(1).astype(np.float16)})

    with pytest.raises(InvalidPayloadError) as caught:
        asyncio.run(scenario())
    assert caught.value.encrypted


def test_v1_predict_is_unchanged(app):
    """predict() still sends a version-1 JSON envelope and returns the model's outputs."""
    transport = InProcessTransport(app)
    with Client(URL, transport=transport) as client:
        result = client.predict(ROWS[:2])
    assert transport.seen[-1].content_type == "application/litefaas+json"
    assert json.loads(transport.seen[-1].body).keys() == {"v", "kid", "suite", "ct"}
    np.testing.assert_array_equal(result.outputs, expected(app, features(2)))


def test_framed_plaintext_success_reads_outputs_by_name():
    """A framed plaintext answer reads outputs by name with their dtypes and the model's identity."""
    body = frame_tensors({"model": {"name": "m"}}, "outputs", {"a": np.ones((2, 2), np.uint8), "b": [b"xy"]})
    result = read_tensor_response(200, PLAINTEXT_TYPE_V2, body, None)
    assert result["a"].dtype == np.uint8 and result["b"] == [b"xy"] and result.model == {"name": "m"}
    assert "a: uint8[2, 2]" in repr(result)
    assert read_answer(body)[0]["model"] == {"name": "m"}
