"""The Oblivious HTTP gateway through the provider-neutral entry, called through ``litefaas.client``'s
``ObliviousTransport``: key configurations, every inner route, freshness, replay, padding, rotation,
and the errors outside and inside the encapsulation."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import httpx
import numpy as np
import pytest
from fixtures.inprocess import InProcessTransport
from fixtures.oip import INFER, SEED, binary_request, json_request, read_response
from fixtures.requests import ALL_SUITES, ROWS, make_keys

from core import bhttp
from core.app import App
from core.config import Settings
from core.crypto.ohttp import KeyConfig, decode_key_configs, default_key_id, encapsulate
from core.oblivious import padded_size
from core.protocol import OHTTP_KEYS_TYPE, OHTTP_REQUEST_TYPE, PROBLEM_DATE, PROBLEM_OHTTP_KEY
from litefaas.client import Client
from litefaas.client.oblivious import ObliviousError, ObliviousTransport

BASE = "http://fn.test"
GATEWAY = f"{BASE}/.well-known/ohttp-gateway"


def make_app(keys, engine, **env):
    return App(
        Settings.from_env(
            {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "WARNING", **env}
        ),
        engine,
    )


@pytest.fixture
def app(keys, engine):
    return make_app(keys, engine)


def oblivious_client(app, **options) -> tuple[httpx.Client, InProcessTransport]:
    carrier = InProcessTransport(app)
    return httpx.Client(transport=ObliviousTransport(GATEWAY, transport=carrier, **options)), carrier


def features(rows):
    return {"features": np.asarray(rows, dtype=np.float32)}


def test_key_configurations_name_every_key_of_the_ring(app, keys):
    # GIVEN a ring with one key per suite WHEN the gateway's keys are read
    response = app.handle("GET", "/.well-known/ohttp-gateway", {}, b"")
    configs = decode_key_configs(response.body)
    # THEN each key is a configuration, current first, with its key_id and the pairs its KEM offers
    assert response.headers["Content-Type"] == OHTTP_KEYS_TYPE
    assert [config.key_id for config in configs] == [default_key_id(kid) for kid in ("k0", "k1", "k2")]
    assert [config.kem_id for config in configs] == [0x20, 0x20, 0x647A]
    assert configs[0].algorithms == ((1, 1), (1, 3)) and configs[2].algorithms == ((1, 2),)
    assert [config.public_key for config in configs] == [
        key.public_bytes for key in (e.kem for e in app.keyring)
    ]


@pytest.mark.parametrize("key_index", [0, 1, 2])
def test_every_plaintext_route_answers_inside_though_plaintext_is_off_outside(app, engine, key_index):
    # GIVEN a function with plaintext off, and a client pinned to one of its key configurations
    config = decode_key_configs(app.keyring.gateway.key_configs)[key_index]
    client, carrier = oblivious_client(app, key_config=config)
    expected = engine.predict(features(ROWS[:3]))["probability"]
    with client:
        # WHEN version 1 and version 2 plaintext, OIP JSON and binary, health and keys go through it
        v1 = client.post(f"{BASE}/predict", json={"inputs": ROWS[:3]})
        headers, body = json_request(features(ROWS[:3]), request_id="o-1")
        oip_json = client.post(BASE + INFER, headers=headers, content=body)
        headers, body = binary_request(features(ROWS[:3]))
        oip_binary = client.post(BASE + INFER, headers=headers, content=body)
        health = client.get(f"{BASE}/health")
        keyset = client.get(f"{BASE}/keys")
        metadata = client.get(f"{BASE}/v2/models/{SEED}")
    # THEN each is answered as in clear, and the outside saw only encapsulated requests
    np.testing.assert_array_equal(np.asarray(v1.json()["outputs"], dtype=np.float32), expected)
    assert json.loads(oip_json.content)["id"] == "o-1"
    np.testing.assert_array_equal(
        read_response(oip_binary.headers, oip_binary.content)[1]["probability"], expected
    )
    assert (health.status_code, keyset.json()["keys"][0]["kid"], metadata.json()["name"]) == (200, "k0", SEED)
    assert {seen.content_type for seen in carrier.seen} == {OHTTP_REQUEST_TYPE}
    assert all(seen.path == "/.well-known/ohttp-gateway" for seen in carrier.seen)
    # AND plaintext outside is still refused
    assert (
        app.handle("POST", "/predict", {"Content-Type": "application/json"}, b'{"inputs":[]}').status == 403
    )


def test_inner_errors_travel_inside(app):
    client, _ = oblivious_client(app)
    with client:
        bad = client.post(f"{BASE}/predict", json={"inputs": [[1.0]]})
        oip_bad = client.post(BASE + INFER, json={"inputs": []})
        missing = client.get(f"{BASE}/nothing")
        nested = client.post(GATEWAY, content=b"x", headers={"content-type": OHTTP_REQUEST_TYPE})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_payload")
    assert oip_bad.status_code == 400 and "inputs must be" in oip_bad.json()["error"]
    assert (missing.status_code, nested.status_code) == (404, 404)


def _encapsulated(app, message: bytes, key_index: int = 0):
    config = decode_key_configs(app.keyring.gateway.key_configs)[key_index]
    return encapsulate(config, message)


def _request(path="/health", method="GET", date: str | None = "now", content=b"", headers=()):
    fields = list(headers)
    if date is not None:
        fields.append(("date", formatdate(usegmt=True) if date == "now" else date))
    return bhttp.encode_request(bhttp.Request(method, "https", "fn", path, fields, content))


def _answer(app, body, context):
    response = app.handle("POST", "/.well-known/ohttp-gateway", {"Content-Type": OHTTP_REQUEST_TYPE}, body)
    assert response.status == 200, response.body
    return bhttp.parse_response(context.open(response.body), 1 << 20)


@pytest.mark.parametrize("date", [None, "Mon, 01 Jan 2001 00:00:00 GMT", "not a date"])
def test_a_missing_or_stale_date_is_the_rfc_9458_date_problem(app, date):
    body, context = _encapsulated(app, _request(date=date))
    answer = _answer(app, body, context)
    assert answer.status == 400
    assert json.loads(answer.content)["type"] == PROBLEM_DATE
    assert dict(answer.headers)["content-type"] == "application/problem+json"
    assert (
        abs(
            time.time()
            - __import__("email.utils").utils.parsedate_to_datetime(dict(answer.headers)["date"]).timestamp()
        )
        < 5
    )


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_date_without_a_zone_is_utc_whatever_the_servers_time_zone(zone, monkeypatch):
    """RFC 5322's ``-0000`` (no zone given) is read as UTC, as ``GMT`` is: a function whose TZ is
    set answers as every other does."""
    from core import oblivious

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        oblivious._http_date.cache_clear()
        now = 1_796_700_000
        gmt = formatdate(now, usegmt=True)
        assert oblivious._http_date(gmt) == now
        assert oblivious._http_date(gmt.replace("GMT", "-0000")) == now
        assert oblivious._http_date(gmt.replace("GMT", "+0100")) == now - 3600
    finally:
        monkeypatch.undo()
        time.tzset()
        oblivious._http_date.cache_clear()


def test_the_same_encapsulated_request_twice_is_a_replay(app):
    body, context = _encapsulated(app, _request())
    assert _answer(app, body, context).status == 200
    replayed = _answer(app, body, context)
    assert (replayed.status, json.loads(replayed.content)["error"]["code"]) == (409, "replayed_request")


def test_errors_outside_the_encapsulation(app):
    # GIVEN requests that do not decapsulate
    body, _ = _encapsulated(app, _request())
    post = lambda data, kind=OHTTP_REQUEST_TYPE: app.handle(  # noqa: E731
        "POST", "/.well-known/ohttp-gateway", {"Content-Type": kind}, data
    )
    unknown_key = post(bytes([(body[0] + 1) % 256]) + body[1:])
    wrong_pair = post(body[:5] + b"\x00\x02" + body[7:])
    damaged = post(body[:-1] + bytes([body[-1] ^ 1]))
    short = post(body[:20])
    # THEN an unknown key or pair is the ohttp-key problem, anything else a bare 400
    assert unknown_key.status == wrong_pair.status == 400
    assert json.loads(unknown_key.body)["type"] == json.loads(wrong_pair.body)["type"] == PROBLEM_OHTTP_KEY
    assert (damaged.status, damaged.body, short.status, short.body) == (400, b"", 400, b"")
    assert post(body, "application/json").status == 415
    assert app.handle("DELETE", "/.well-known/ohttp-gateway", {}, b"").headers["Allow"] == "GET, POST"


def test_malformed_binary_http_inside_is_an_inner_400(app):
    body, context = _encapsulated(app, b"\x00\x03GE")
    answer = _answer(app, body, context)
    assert (answer.status, json.loads(answer.content)["error"]["code"]) == (400, "invalid_envelope")


@pytest.mark.parametrize("padding", [True, False])
def test_answers_are_padded_to_their_bucket_unless_turned_off(keys, engine, padding):
    app = make_app(keys, engine, LITEFAAS_OHTTP_PADDING="1" if padding else "0")
    sizes = set()
    for rows in (1, 3, 40):
        body, context = _encapsulated(
            app,
            _request(
                "/predict",
                "POST",
                content=json.dumps({"inputs": ROWS[:rows]}).encode(),
                headers=[("content-type", "application/json")],
            ),
        )
        response = app.handle(
            "POST", "/.well-known/ohttp-gateway", {"Content-Type": OHTTP_REQUEST_TYPE}, body
        )
        message = context.open(response.body)
        sizes.add(len(message))
        assert bhttp.parse_response(message, 1 << 20).status == 200
    # 1, 3 and 40 rows of one probability each: one bucket when padded, three sizes when not
    assert (sizes == {1024}) if padding else (len(sizes) == 3)


def test_padded_sizes():
    assert [padded_size(n) for n in (0, 1024, 1025, 5000, 65536, 65537, 200_000)] == [
        1024,
        1024,
        2048,
        8192,
        65536,
        131072,
        262144,
    ]


def test_the_client_transport_pads_requests_and_refetches_keys_after_a_rotation(keys, engine):
    # GIVEN a client that fetched the gateway's keys, then a function redeployed with a new ring
    app = make_app(keys, engine, LITEFAAS_ALLOW_PLAINTEXT="0")
    carrier = InProcessTransport(app)
    transport = ObliviousTransport(GATEWAY, transport=carrier)
    with httpx.Client(transport=transport) as client:
        assert client.get(f"{BASE}/health").status_code == 200
        carrier.app = make_app(make_keys(), engine)
        # WHEN it sends again THEN it fetches the new key configuration once and is answered
        assert client.get(f"{BASE}/health").status_code == 200
    posts = [seen for seen in carrier.seen if seen.method == "POST"]
    assert [seen.method for seen in carrier.seen] == ["GET", "POST", "POST", "GET", "POST"]
    # AND every encapsulated request of the same small size is one padded size
    assert len({len(seen.body) for seen in posts}) == 1


def test_a_pinned_key_that_the_gateway_no_longer_holds_is_an_error_not_a_refetch(keys, engine):
    stale = decode_key_configs(make_app(make_keys(), engine).keyring.gateway.key_configs)[0]
    client = httpx.Client(
        transport=ObliviousTransport(
            GATEWAY, key_config=stale, transport=InProcessTransport(make_app(keys, engine))
        )
    )
    with client, pytest.raises(ObliviousError, match="answered 400"):
        client.get(f"{BASE}/health")


def test_client_oblivious_predicts_with_every_version(app, engine):
    # GIVEN litefaas's own client with oblivious=True over the in-process app
    with Client(BASE, oblivious=True, transport=InProcessTransport(app)) as client:
        # WHEN it predicts rows (version 1) and tensors (version 2)
        rows = client.predict(ROWS[:4])
        tensors = client.predict_tensors(features(ROWS[:4]))
    # THEN the answers are the engine's
    expected = engine.predict(features(ROWS[:4]))["probability"]
    np.testing.assert_array_equal(rows.outputs, expected)
    np.testing.assert_array_equal(tensors["probability"], expected)


def test_key_ids_from_the_key_set_and_their_collision(engine):
    keys = make_keys(*ALL_SUITES)
    entries = json.loads(keys.private_json)
    entries[0]["ohttp_key_id"] = 7
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": json.dumps(entries)}), engine)
    assert decode_key_configs(app.keyring.gateway.key_configs)[0].key_id == 7
    entries[1]["ohttp_key_id"] = 7
    with pytest.raises(Exception, match="same ohttp key_id 7"):
        Settings.from_env({"LITEFAAS_PRIVATE_KEYS": json.dumps(entries)})
    entries[1]["ohttp_key_id"] = 256
    with pytest.raises(Exception, match="ohttp_key_id must be an integer from 0 to 255"):
        Settings.from_env({"LITEFAAS_PRIVATE_KEYS": json.dumps(entries)})


def test_key_config_encoding_round_trips():
    config = KeyConfig(3, 0x20, bytes(range(32)), ((1, 1), (1, 3)))
    assert decode_key_configs(
        config.encode() and (len(config.encode()).to_bytes(2, "big") + config.encode())
    ) == [config]


def test_a_function_without_keys_has_no_gateway(engine):
    app = App(Settings.from_env({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_LOG_LEVEL": "WARNING"}), engine)
    response = app.handle("GET", "/.well-known/ohttp-gateway", {}, b"")
    assert (response.status, json.loads(response.body)["error"]["code"]) == (404, "not_found")


def test_oversized_bodies_are_413_outside(keys, engine):
    app = make_app(keys, engine, LITEFAAS_MAX_BODY_BYTES="2048")
    response = app.handle(
        "POST", "/.well-known/ohttp-gateway", {"Content-Type": OHTTP_REQUEST_TYPE}, bytes(4096)
    )
    assert (response.status, json.loads(response.body)["error"]["code"]) == (413, "payload_too_large")


def _logging_app(keys, engine, name: str) -> tuple[App, list[str]]:
    """An app whose request lines are captured as JSON, as it writes them."""
    import logging

    from core import logs

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    capture = Capture()
    capture.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(f"litefaas.test.oblivious.{name}")
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}), engine, logger=logger)
    return app, lines


def test_the_request_log_names_the_route_and_never_an_address_or_a_payload(keys, engine):
    # GIVEN a function whose log lines are captured as it writes them
    app, lines = _logging_app(keys, engine, "addresses")
    # WHEN a request arrives encapsulated, with a forwarding header outside and inside
    body, _ = _encapsulated(
        app,
        _request(
            "/predict",
            "POST",
            content=json.dumps({"inputs": [[31337.0421, *ROWS[0][1:]]]}).encode(),
            headers=[("content-type", "application/json"), ("x-forwarded-for", "203.0.113.7")],
        ),
    )
    outer = {"Content-Type": OHTTP_REQUEST_TYPE, "X-Forwarded-For": "198.51.100.9"}
    assert app.handle("POST", "/.well-known/ohttp-gateway", outer, body).status == 200
    # THEN its one line names the gateway, the inner route and status, and nothing of the caller's
    (line,) = lines
    entry = json.loads(line)
    assert (entry["route"], entry["inner_route"], entry["inner_status"], entry["encrypted"]) == (
        "ohttp-gateway",
        "predict",
        200,
        True,
    )
    for secret in ("203.0.113.7", "198.51.100.9", "31337", "inputs"):
        assert secret not in line


def test_the_request_log_times_the_decapsulation_the_inner_request_and_the_seal(keys, engine):
    # GIVEN a function whose log lines are captured
    from fixtures.binary import plain_v2

    from core.protocol import PLAINTEXT_TYPE_V2

    app, lines = _logging_app(keys, engine, "timings")
    # WHEN a version-1 and a version-2 request arrive encapsulated
    v1 = json.dumps({"inputs": ROWS[:2]}).encode()
    v2 = plain_v2(features(ROWS[:2]))
    for content, kind in ((v1, "application/json"), (v2, PLAINTEXT_TYPE_V2)):
        body, context = _encapsulated(
            app, _request("/predict", "POST", content=content, headers=[("content-type", kind)])
        )
        assert _answer(app, body, context).status == 200
    # THEN each line has the gateway's open and seal and the inner request's decoding and
    # inference, in microseconds
    for entry in map(json.loads, lines):
        assert entry["inner_status"] == 200
        for name in ("decrypt_us", "decode_us", "infer_us", "seal_us"):
            assert type(entry[name]) is int and 0 <= entry[name] < 10_000_000, name
    assert len(lines) == 2


def test_an_answer_over_the_front_doors_limit_is_a_413_inside(keys, engine):
    # GIVEN a front door that carries at most 3,000 bytes back, and a request whose answer is larger
    app = make_app(keys, engine)
    rows = json.dumps({"inputs": ROWS[:1] * 300}).encode()
    body, context = _encapsulated(
        app, _request("/predict", "POST", content=rows, headers=[("content-type", "application/json")])
    )
    response = app.handle(
        "POST", "/.well-known/ohttp-gateway", {"Content-Type": OHTTP_REQUEST_TYPE}, body, response_limit=3000
    )
    # THEN the answer is still encapsulated, within the limit, and the 413 is inside it
    assert (response.status, response.headers["Content-Type"]) == (200, "message/ohttp-res")
    assert len(response.body) <= 3000
    inner = bhttp.parse_response(context.open(response.body), 1 << 20)
    assert (inner.status, json.loads(inner.content)["error"]["code"]) == (413, "payload_too_large")


def test_the_client_sends_header_values_as_their_bytes(app):
    client, _ = oblivious_client(app)
    with client:
        answer = client.get(f"{BASE}/health", headers={"x-note": "café €".encode()})
    assert answer.status_code == 200


def test_clients_skip_key_configurations_and_pairs_they_do_not_speak(app):
    from core.crypto.hpke_context import KDF_HKDF_SHA256

    current = decode_key_configs(app.keyring.gateway.key_configs)[0]
    unknown = KeyConfig(9, 0x0010, bytes(65), ((1, 1),))  # a P-256 key: litefaas's clients skip it
    encoded = b"".join(len(c).to_bytes(2, "big") + c for c in (unknown.encode(), current.encode()))
    assert decode_key_configs(encoded) == [current]
    offered = KeyConfig(
        current.key_id, current.kem_id, current.public_key, ((0x0002, 1), (KDF_HKDF_SHA256, 1))
    )
    body, context = encapsulate(offered, _request())
    assert body[3:7] == b"\x00\x01\x00\x01"  # HKDF-SHA256 and AES-128-GCM, the first pair it speaks
    assert _answer(app, body, context).status == 200


def test_a_failed_open_does_not_advance_the_sequence():
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from core.crypto.hpke_context import (
        KDF_HKDF_SHA256,
        KEM_X25519,
        OpenError,
        X25519Kem,
        setup_receiver,
        setup_sender,
    )

    kem = X25519Kem(X25519PrivateKey.generate())
    enc, sender = setup_sender(KEM_X25519, kem.public_bytes, b"", KDF_HKDF_SHA256, 1)
    first = sender.seal(b"one")
    receiver = setup_receiver(kem, enc, b"", KDF_HKDF_SHA256, 1)
    with pytest.raises(OpenError):
        receiver.open(first[:-1] + bytes([first[-1] ^ 1]))
    assert receiver.open(first) == b"one" and receiver.sequence == 1


def test_the_trace_context_travels_inside_never_outside(keys, engine, capsys):
    # GIVEN a function logging its requests, and a client sending through Oblivious HTTP
    app = make_app(keys, engine, LITEFAAS_LOG_LEVEL="INFO")
    carrier = InProcessTransport(app)
    capsys.readouterr()
    # WHEN the client sends a request with its trace context
    with Client(BASE, oblivious=True, transport=carrier) as client:
        client.predict(ROWS[:1])
    # THEN no outer request carries a traceparent, and the gateway's line has the inner request's trace
    assert carrier.seen and all(seen.path == "/.well-known/ohttp-gateway" for seen in carrier.seen)
    assert not any("traceparent" in seen.headers for seen in carrier.seen)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"event":"request"' in line]
    posts = [line for line in lines if line.get("inner_route") == "predict"]
    assert len(posts) == 1 and len(posts[0]["parent_span_id"]) == 16
