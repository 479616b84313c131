"""The Oblivious HTTP gateway through every provider in process (the core entry, every AWS event
source and a routed direct invoke, functions-framework's app, the real Azure function app): the same
key configurations, the same decapsulated answers, and, fuzzed, only the contract's answers outside
(200, a bare 400, the ``ohttp-key`` problem, 413, 415) and inside (the protocol's error table)."""

from __future__ import annotations

import json
from email.utils import formatdate

import numpy as np
import pytest
from fixtures.conformance import PROTOCOL_STATUSES
from fixtures.oip import INFER, binary_request, read_response
from fixtures.providers_gcp_azure import provider_targets
from fixtures.requests import ROWS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import bhttp
from core.crypto.ohttp import decode_key_configs, encapsulate
from core.protocol import OHTTP_KEYS_TYPE, OHTTP_REQUEST_TYPE, OHTTP_RESPONSE_TYPE, PROBLEM_TYPE

GATEWAY = "/.well-known/ohttp-gateway"
OUTSIDE = {"text/plain", OHTTP_RESPONSE_TYPE, PROBLEM_TYPE, "application/json"}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def providers(keys, engine):
    return provider_targets(
        {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "WARNING"}, engine
    )


@pytest.fixture(scope="module")
def configs(providers):
    status, headers, body = providers["core"]("GET", GATEWAY, {}, b"")
    assert status == 200 and headers["content-type"] == OHTTP_KEYS_TYPE
    return decode_key_configs(body)


def inner(method, path, headers=(), content=b"", date=True) -> bytes:
    fields = [*headers, *([("date", formatdate(usegmt=True))] if date else [])]
    return bhttp.encode_request(bhttp.Request(method, "https", "fn", path, fields, content))


def test_every_provider_publishes_the_same_key_configurations(providers):
    answers = {name: call("GET", GATEWAY, {}, b"") for name, call in providers.items()}
    assert {name: (a[0], a[1]["content-type"]) for name, a in answers.items()} == {
        name: (200, OHTTP_KEYS_TYPE) for name in answers
    }
    assert len({a[2] for a in answers.values()}) == 1


@pytest.mark.parametrize("key_index", [0, 1, 2], ids=["x25519-aes128", "x25519-chacha20", "x-wing"])
def test_every_provider_answers_encapsulated_requests_alike(providers, configs, engine, key_index):
    # GIVEN three inner requests (version 1 plaintext, OIP binary, health) for one key configuration
    headers, body = binary_request({"features": np.asarray(ROWS[:2], dtype=np.float32)})
    requests = {
        "v1": inner(
            "POST",
            "/predict",
            [("content-type", "application/json")],
            json.dumps({"inputs": ROWS[:2]}).encode(),
        ),
        "oip": inner("POST", INFER, [(name.lower(), value) for name, value in headers.items()], body),
        "health": inner("GET", "/health"),
    }
    expected = engine.predict({"features": np.asarray(ROWS[:2], dtype=np.float32)})["probability"]
    for provider, call in providers.items():
        for name, message in requests.items():
            # WHEN each is encapsulated afresh and sent to the provider's gateway
            config = configs[key_index]
            encapsulated, context = encapsulate(config, message, config.algorithms[-1])
            status, response_headers, response_body = call(
                "POST", GATEWAY, {"Content-Type": OHTTP_REQUEST_TYPE}, encapsulated
            )
            # THEN it is an encapsulated response that opens to the inner answer
            assert (status, response_headers["content-type"]) == (200, OHTTP_RESPONSE_TYPE), (provider, name)
            answer = bhttp.parse_response(context.open(response_body), 1 << 20)
            assert answer.status == 200, (provider, name, answer.content[:200])
            if name == "v1":
                np.testing.assert_array_equal(
                    np.asarray(json.loads(answer.content)["outputs"], dtype=np.float32), expected
                )
            elif name == "oip":
                np.testing.assert_array_equal(
                    read_response(dict(answer.headers), answer.content)[1]["probability"], expected
                )
            else:
                assert json.loads(answer.content)["status"] == "ok"


# --- fuzzing ---------------------------------------------------------------------------------------


def _outside(providers, body: bytes, content_type: str = OHTTP_REQUEST_TYPE):
    answers = {}
    for name, call in providers.items():
        status, headers, response_body = call("POST", GATEWAY, {"Content-Type": content_type}, body)
        answers[name] = (status, headers.get("content-type", "").split(";")[0], response_body)
    return answers


@FUZZ
@given(
    data=st.binary(max_size=1300), content_type=st.sampled_from([OHTTP_REQUEST_TYPE, "application/json", ""])
)
def test_any_body_outside_gets_only_the_contracts_answers(providers, data, content_type):
    answers = _outside(providers, data, content_type)
    assert {a[0] for a in answers.values()} <= {400, 413, 415}
    assert {a[1] for a in answers.values()} <= OUTSIDE
    assert len({(a[0], a[1]) for name, a in answers.items() if name != "aws:direct"}) == 1


@FUZZ
@given(
    position=st.integers(0, 1400),
    byte=st.integers(0, 255),
    cut=st.one_of(st.none(), st.integers(0, 1200)),
    key_index=st.integers(0, 2),
)
def test_damaged_encapsulations_never_open_and_say_nothing(
    providers, configs, position, byte, cut, key_index
):
    encapsulated, _ = encapsulate(configs[key_index], inner("GET", "/health"))
    damaged = bytearray(encapsulated)
    damaged[position % len(damaged)] ^= byte or 1
    body = bytes(damaged[:cut] if cut is not None else damaged)
    answers = _outside(providers, body)
    # a damaged key id or algorithm is the ohttp-key problem, any other damage a bare 400
    for status, kind, response_body in answers.values():
        assert status == 400 and (kind, response_body) in {("text/plain", b""), (PROBLEM_TYPE, response_body)}


@FUZZ
@given(
    message=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda method, path, date, content: inner(
                method, path, [("content-type", "application/json")], content, date
            ),
            st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
            st.sampled_from(
                ["/predict", "/health", "/keys", INFER, "/v2", GATEWAY, "/x", "/v2/models/x/ready"]
            ),
            st.booleans(),
            st.one_of(st.binary(max_size=100), st.just(json.dumps({"inputs": ROWS[:1]}).encode())),
        ),
    ),
    key_index=st.integers(0, 2),
)
def test_any_inner_message_gets_an_inner_answer_from_the_error_table(providers, configs, message, key_index):
    statuses = set()
    for name, call in providers.items():
        encapsulated, context = encapsulate(configs[key_index], message)
        status, headers, body = call("POST", GATEWAY, {"Content-Type": OHTTP_REQUEST_TYPE}, encapsulated)
        assert (status, headers["content-type"]) == (200, OHTTP_RESPONSE_TYPE), name
        answer = bhttp.parse_response(context.open(body), 1 << 20)
        assert answer.status in PROTOCOL_STATUSES, (name, answer.status, answer.content[:200])
        statuses.add(answer.status)
    assert len(statuses) == 1
