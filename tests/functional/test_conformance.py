"""One table of requests through every provider in process: the same status, code and answer everywhere.

Providers: the core entry itself; AWS Lambda for each event source (REST v1 single- and
multi-value, HTTP API v2, Function URL, ALB single- and multi-value, direct invoke);
functions-framework's real app and test client (GCP); the real ``function_app.py`` with
real ``azure.functions`` types (Azure).
"""

from __future__ import annotations

import json

import pytest
from fixtures.binary import ENCRYPTED_V2, PLAINTEXT_V2
from fixtures.conformance import CASES, CORS_ORIGIN, Answer, Case, read_answer
from fixtures.providers_gcp_azure import Call, provider_targets
from fixtures.requests import ENCRYPTED, PLAINTEXT

from core.protocol import ENCRYPTED_TYPE, ENCRYPTED_TYPE_V2
from core.routing import route_of

SEALED_TYPES = {1: ENCRYPTED_TYPE, 2: ENCRYPTED_TYPE_V2}


def _targets(keys, engine, plaintext: bool) -> dict[str, Call]:
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_LOG_LEVEL": "WARNING",
        "LITEFAAS_CORS_ORIGINS": CORS_ORIGIN,
    }
    if plaintext:
        env["LITEFAAS_ALLOW_PLAINTEXT"] = "1"
    return provider_targets(env, engine)


@pytest.fixture(scope="module")
def providers(keys, engine):
    return {False: _targets(keys, engine, False), True: _targets(keys, engine, True)}


def _direct_invoke_applies(method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
    """A direct invoke carries only a request body to POST /predict with a standard type."""
    if (method, path) != ("POST", "/predict") or headers not in (
        ENCRYPTED,
        PLAINTEXT,
        ENCRYPTED_V2,
        PLAINTEXT_V2,
    ):
        return False
    if headers in (ENCRYPTED_V2, PLAINTEXT_V2):
        return True
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _ask(case: Case, keys, call: Call, name: str) -> Answer | None:
    answer = None
    method, path, headers, body, sealed = case.make(keys)
    if name == "aws:direct" and not _direct_invoke_applies(method, path, headers, body):
        return None
    for _ in range(case.repeat):
        status, response_headers, response_body = call(method, path, headers, body)
        answer = read_answer(status, response_headers, response_body, sealed)
        if case.sealed_answer:
            assert response_headers["content-type"] == SEALED_TYPES[case.version], name
    return answer


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_provider_answers_alike(case: Case, keys, providers):
    # GIVEN one request of the table, made afresh for each provider
    answers = {}
    for name, call in providers[case.plaintext_allowed].items():
        # WHEN each provider answers it
        answer = _ask(case, keys, call, name)
        if answer is not None:
            answers[name] = answer
    # THEN every status, error code and decrypted answer is the protocol's and the same everywhere
    assert {name: (a.status, a.code) for name, a in answers.items()} == {
        name: (case.status, case.code) for name in answers
    }
    reference = answers["core"].payload
    assert {name: a.payload for name, a in answers.items()} == {name: reference for name in answers}
    # AND a 405 names the route's one method in Allow, everywhere
    if case.status == 405:
        method = route_of(case.make(keys)[1]).method
        assert {name: a.allow for name, a in answers.items()} == {name: method for name in answers}
    # AND an allowed origin is named back by every provider, another origin by none
    assert {name: a.allow_origin for name, a in answers.items()} == {
        name: answers["core"].allow_origin for name in answers
    }
    assert len(answers) >= 9 or case.make(keys)[1] != "/predict"
