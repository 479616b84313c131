"""The Python client against the real core app, in process, over real httpx requests."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import pytest
from fixtures.inprocess import AsyncInProcessTransport, InProcessTransport
from fixtures.requests import ALL_SUITES, ROWS, make_keys

from core import crypto
from core.app import App
from core.config import Settings
from core.encoding import b64u_decode, b64u_encode
from core.errors import ERRORS_BY_CODE
from litefaas.client import (
    REMOTE_ERRORS,
    AsyncClient,
    Client,
    ClientError,
    DecryptionFailedError,
    InvalidPayloadError,
    KeyInfo,
    NetworkError,
    PlaintextDisabledError,
    PredictResult,
    ProtocolError,
    RemoteError,
    ReplayedRequestError,
    RequestSecrets,
    StaleRequestError,
    build_plaintext_request,
    build_request,
    parse_keyset,
    read_response,
    remote_error,
    select_key,
)

URL = "https://fn.test/api"
ENCRYPTED = "application/litefaas+json"


@pytest.fixture(scope="module")
def keys():
    return make_keys(*ALL_SUITES)


@pytest.fixture(scope="module")
def app(keys):
    return App.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"})


@pytest.fixture
def transport(app):
    return InProcessTransport(app)


@pytest.fixture
def function(transport):
    with Client(URL, transport=transport) as client:
        yield client


def app_with(engine, private_json=None, *, plaintext=False):
    env = {"LITEFAAS_ALLOW_PLAINTEXT": "1" if plaintext else "0"}
    if private_json:
        env["LITEFAAS_PRIVATE_KEYS"] = private_json
    return App(Settings.from_env(env), engine)


def expected_outputs(app, rows):
    return app.engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"]


def opened_request(keys, body):
    """The decrypted request a body carries (the server's view)."""
    ring = crypto.KeyRing.from_json(keys.private_json)
    return json.loads(ring.open(crypto.parse_envelope(body)))


def post(app, body, content_type=ENCRYPTED):
    reply = app.handle("POST", "/predict", {"Content-Type": content_type}, body)
    return reply.status, reply.headers["Content-Type"], reply.body


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_round_trip_every_suite(app, transport, suite):
    # GIVEN a client that seals to the function's key of one suite
    with Client(URL, suite=suite, transport=transport) as client:
        # WHEN it predicts a batch
        result = client.predict(ROWS[:5])
        used = client.key()
    # THEN the outputs are the model's own, as float32, with the model's identity
    assert used.suite == suite
    assert isinstance(result, PredictResult)
    assert result.outputs.dtype == np.float32
    np.testing.assert_array_equal(result.outputs, expected_outputs(app, ROWS[:5]))
    assert result.model == app.engine.manifest.public_info()
    assert json.loads(transport.seen[-1].body)["suite"] == suite


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_async_round_trip_every_suite(app, suite):
    """Concurrent async predictions in every suite return the model's outputs, and health answers ok."""
    transport = AsyncInProcessTransport(app)

    async def scenario():
        async with AsyncClient(URL, suite=suite, transport=transport) as client:
            results = await asyncio.gather(*(client.predict(ROWS[i : i + 2]) for i in range(3)))
            return results, await client.health(), await client.key()

    results, health, used = asyncio.run(scenario())
    assert used.suite == suite
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result.outputs, expected_outputs(app, ROWS[i : i + 2]))
    assert health["status"] == "ok"


@pytest.mark.parametrize("key_bytes", [16, 32])
def test_response_key_sizes(app, keys, transport, key_bytes):
    """A 16- or 32-byte response key is sent as asked and still opens the sealed answer."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    body, secrets = build_request(ROWS[:2], key, response_key_bytes=key_bytes)
    assert len(secrets.response_key) == key_bytes
    assert len(b64u_decode(opened_request(keys, body)["response_key"])) == key_bytes
    document = read_response(*post(app, body), secrets)
    np.testing.assert_array_equal(np.float32(document["outputs"]), expected_outputs(app, ROWS[:2]))
    with Client(URL, transport=transport, response_key_bytes=key_bytes) as client:
        assert client.predict(ROWS[:1]).outputs.shape == (1, 1)


def test_every_request_is_fresh(keys, function, transport):
    # WHEN the same batch is predicted twice
    function.predict(ROWS[:1])
    function.predict(ROWS[:1])
    # THEN each request carried its own response key and id, and the current time
    bodies = [seen.body for seen in transport.seen if seen.path.endswith("/predict")]
    requests = [opened_request(keys, body) for body in bodies]
    assert len({r["id"] for r in requests}) == 2
    assert len({r["response_key"] for r in requests}) == 2
    assert all(len(b64u_decode(r["id"])) == 16 for r in requests)
    assert all(abs(r["ts"] - time.time()) < 5 for r in requests)
    assert set(requests[0]) == {"inputs", "response_key", "ts", "id"}


def test_keys_fetched_once_and_refreshed_on_demand(function, transport):
    """The key set is fetched once for many predictions and again only on refresh_keys()."""
    function.predict(ROWS[:1])
    function.predict(ROWS[:1])
    assert [seen.path for seen in transport.seen].count("/api/keys") == 1
    function.refresh_keys()
    assert [seen.path for seen in transport.seen].count("/api/keys") == 2


def test_numpy_inputs(app, function):
    """A float64 array or a list of float32 rows predicts the same as the plain rows."""
    batch = np.asarray(ROWS[:4], dtype=np.float64)
    np.testing.assert_array_equal(function.predict(batch).outputs, expected_outputs(app, ROWS[:4]))
    rows = [np.float32(row) for row in ROWS[:2]]
    np.testing.assert_array_equal(function.predict(rows).outputs, expected_outputs(app, ROWS[:2]))


def test_multi_input_mapping_is_sent_by_name(keys):
    """A mapping of inputs is sent by name, each value as nested lists."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    body, _ = build_request({"a": np.zeros((2, 3)), "b": [np.ones(2), [1, 2]]}, key)
    assert opened_request(keys, body)["inputs"] == {"a": [[0.0] * 3] * 2, "b": [[1.0, 1.0], [1, 2]]}


def test_stale_request(app, keys):
    """A request an hour old is refused as a sealed 408 stale_request."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    body, secrets = build_request(ROWS[:1], key, now=time.time() - 3600)
    with pytest.raises(StaleRequestError) as caught:
        read_response(*post(app, body), secrets)
    assert (caught.value.status, caught.value.code, caught.value.encrypted) == (408, "stale_request", True)


def test_replayed_request(keys, transport):
    # GIVEN one sealed request body
    key = KeyInfo.from_json(keys.public["keys"][0])
    body, secrets = build_request(ROWS[:1], key)
    # WHEN it is sent twice
    with httpx.Client(transport=transport) as http:
        first, second = (
            http.post(f"{URL}/predict", content=body, headers={"Content-Type": ENCRYPTED}) for _ in range(2)
        )
    # THEN the second is refused, in a sealed error
    assert read_response(first.status_code, first.headers["content-type"], first.content, secrets)["outputs"]
    with pytest.raises(ReplayedRequestError) as caught:
        read_response(second.status_code, second.headers["content-type"], second.content, secrets)
    assert (caught.value.status, caught.value.encrypted) == (409, True)


def test_invalid_payload_says_which_row(function):
    """A short row is refused as a sealed 422 naming the row and the feature count."""
    rows = [ROWS[0], ROWS[1][:29]]
    with pytest.raises(InvalidPayloadError) as caught:
        function.predict(rows)
    error = caught.value
    assert (error.status, error.code, error.encrypted) == (422, "invalid_payload", True)
    assert "row 1" in error.message and "expected 30 features, got 29" in error.message


def test_plaintext_mode(app, transport):
    """A plaintext client sends one JSON request to /predict, without fetching keys."""
    with Client(URL, plaintext=True, transport=transport) as client:
        result = client.predict(ROWS[:3])
    np.testing.assert_array_equal(result.outputs, expected_outputs(app, ROWS[:3]))
    assert [(seen.path, seen.content_type) for seen in transport.seen] == [
        ("/api/predict", "application/json")
    ]
    assert json.loads(transport.seen[0].body) == {"inputs": ROWS[:3]}


def test_plaintext_refused_where_disabled(app, keys):
    """Plaintext to a function that disables it raises a plain 403 PlaintextDisabledError."""
    closed = InProcessTransport(app_with(app.engine, keys.private_json))
    with (
        Client(URL, plaintext=True, transport=closed) as client,
        pytest.raises(PlaintextDisabledError) as caught,
    ):
        client.predict(ROWS[:1])
    assert (caught.value.status, caught.value.encrypted) == (403, False)


def test_tampered_response_is_a_protocol_error(app, keys):
    """A tampered answer, or one read with another request's secrets, is a ProtocolError."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    body, secrets = build_request(ROWS[:1], key)
    status, content_type, answer = post(app, body)
    sealed = json.loads(answer)
    ct = bytearray(b64u_decode(sealed["ct"]))
    ct[0] ^= 1
    tampered = json.dumps({**sealed, "ct": b64u_encode(bytes(ct))}).encode()
    with pytest.raises(ProtocolError) as caught:
        read_response(status, content_type, tampered, secrets)
    assert caught.value.status == 200
    _, other_secrets = build_request(ROWS[:1], key)
    with pytest.raises(ProtocolError):
        read_response(status, content_type, answer, other_secrets)


def test_tampering_in_transit_reaches_the_caller_as_protocol_error(app):
    """An answer altered in transit raises ProtocolError from predict()."""

    def flip_last_char(request: httpx.Request) -> httpx.Response:
        answer = InProcessTransport(app).handle_request(request)
        document = json.loads(answer.read())
        if "ct" in document:
            document["ct"] = document["ct"][:-1] + ("A" if document["ct"][-1] != "A" else "B")
        return httpx.Response(answer.status_code, headers=answer.headers, json=document)

    with Client(URL, transport=httpx.MockTransport(flip_last_char)) as client, pytest.raises(ProtocolError):
        client.predict(ROWS[:1])


@pytest.mark.parametrize(
    ("status", "content_type", "body", "why"),
    [
        (200, "text/html", b"<html>", "type 'text/html'"),
        (200, "application/json", b"not json", "not a JSON object"),
        (502, "application/json", b'{"message": "Bad Gateway"}', "Bad Gateway"),
        (200, "application/json", b'{"error": {"code": "x", "message": "y"}}', "not a litefaas error"),
        (200, "application/json", b'{"outputs": [[0.5]], "model": {}}', "answered in plaintext"),
    ],
)
def test_answers_outside_the_protocol(status, content_type, body, why):
    """An answer that is not a litefaas answer raises ProtocolError saying why."""
    secrets = RequestSecrets(bytes(16), bytes(16))
    with pytest.raises(ProtocolError, match=why):
        read_response(status, content_type, body, secrets)


def test_plaintext_request_does_not_accept_a_sealed_answer():
    """A sealed answer to a plaintext request is a ProtocolError."""
    with pytest.raises(ProtocolError, match="answered sealed"):
        read_response(200, ENCRYPTED, b"{}", None)


def test_unknown_kid_is_decryption_failed(app, keys):
    """Sealing to a key the function does not hold gives a plain 400 DecryptionFailedError."""
    stranger = make_keys().public
    stranger["keys"][0]["kid"] = "k0"
    with (
        Client(URL, keyset=stranger, transport=InProcessTransport(app)) as client,
        pytest.raises(DecryptionFailedError) as caught,
    ):
        client.predict(ROWS[:1])
    assert (caught.value.status, caught.value.encrypted) == (400, False)


def test_kid_selection(app, transport):
    # GIVEN a function with keys k0, k1, k2
    with Client(URL, kid="k1", transport=transport) as client:
        # WHEN the client asks for the second key
        result = client.predict(ROWS[:1])
    # THEN it seals to k1 and the function still answers
    np.testing.assert_array_equal(result.outputs, expected_outputs(app, ROWS[:1]))
    assert json.loads(transport.seen[-1].body)["kid"] == "k1"
    with Client(URL, kid="k9", transport=transport) as client, pytest.raises(ClientError, match="'k9'"):
        client.predict(ROWS[:1])


def test_rotation_refreshes_the_key_set_once(app):
    # GIVEN a client that fetched the key set of the old deployment
    old, new = make_keys(), make_keys(crypto.X25519_CHACHA20)
    transport = InProcessTransport(app_with(app.engine, old.private_json))
    with Client(URL, transport=transport) as client:
        assert client.key().suite == crypto.DEFAULT_SUITE
        # WHEN the function is redeployed with only a new key
        transport.app = app_with(app.engine, new.private_json)
        result = client.predict(ROWS[:1])
        # THEN the client fetched the keys again and sealed to the new one
        assert client.key().suite == crypto.X25519_CHACHA20
    np.testing.assert_array_equal(result.outputs, expected_outputs(app, ROWS[:1]))
    assert [seen.path for seen in transport.seen] == [
        "/api/keys",
        "/api/predict",
        "/api/keys",
        "/api/predict",
    ]


def test_a_pinned_key_set_is_not_refreshed(app, keys):
    """A key set given to the client is used as is: a failure does not fetch /keys."""
    transport = InProcessTransport(app_with(app.engine, keys.private_json))
    with (
        Client(URL, keyset=make_keys().public, transport=transport) as client,
        pytest.raises(DecryptionFailedError),
    ):
        client.predict(ROWS[:1])
    assert [seen.path for seen in transport.seen] == ["/api/predict"]


def test_health(function, app):
    """health() returns status ok and the model's public identity."""
    health = function.health()
    assert health["status"] == "ok" and health["model"].items() >= app.engine.manifest.public_info().items()


def test_network_error_is_typed():
    """A refused connection raises NetworkError naming the key fetch that failed."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client(URL, transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(NetworkError, match="keys"),
    ):
        client.predict(ROWS[:1])


def test_every_protocol_code_has_a_typed_error():
    """Every protocol error code maps to its RemoteError subclass; unknown codes to RemoteError."""
    assert set(REMOTE_ERRORS) == set(ERRORS_BY_CODE)
    for code, error in ERRORS_BY_CODE.items():
        raised = remote_error(error.status, code, "m", encrypted=False)
        assert isinstance(raised, REMOTE_ERRORS[code]) and isinstance(raised, RemoteError)
    assert type(remote_error(418, "teapot", "m", encrypted=False)) is RemoteError


def test_key_set_parsing_and_selection(keys):
    """Unknown suites are skipped, keys are chosen by suite, and malformed key sets are refused."""
    parsed = parse_keyset({"keys": [*keys.public["keys"], {"kid": "future", "suite": "s", "public_key": ""}]})
    assert [key.kid for key in parsed] == ["k0", "k1", "k2"]
    assert select_key(parsed).kid == "k0"
    assert select_key(parsed, suite=crypto.MLKEM768_X25519_AES256).kid == "k2"
    assert KeyInfo.from_json(parsed[1].to_json()) == parsed[1]
    for bad in ({}, {"keys": []}, {"keys": [{"kid": "bad kid", "suite": "s", "public_key": ""}]}):
        with pytest.raises(ProtocolError):
            parse_keyset(bad)


def test_bad_inputs_fail_before_sending(keys):
    """Non-finite, non-numeric or malformed inputs and a bad key size raise ClientError locally."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    for bad in ([[float("nan")] * 30], [[object()]], "rows", 3):
        with pytest.raises(ClientError):
            build_request(bad, key)
    with pytest.raises(ClientError):
        build_request(ROWS[:1], key, response_key_bytes=24)
    assert json.loads(build_plaintext_request(np.zeros((1, 2)))) == {"inputs": [[0.0, 0.0]]}


def test_secrets_never_show_in_repr_or_errors(keys):
    """Request secrets and input values never appear in a repr or an error message."""
    key = KeyInfo.from_json(keys.public["keys"][0])
    _, secrets = build_request(ROWS[:1], key)
    text = repr(secrets)
    assert b64u_encode(secrets.response_key) not in text and b64u_encode(secrets.id) not in text
    assert RequestSecrets.from_json(secrets.to_json()) == secrets
    with pytest.raises(ClientError) as caught:
        build_request([[123456.789] * 29 + [float("inf")]], key)
    assert "123456" not in str(caught.value)
