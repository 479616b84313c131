"""Bad input, generated, through every provider in process: the protocol's answers only, no secret leaks.

Targets as in ``test_conformance.py``: the core entry, AWS Lambda for each event source (and
direct invoke where the request is one), functions-framework's app (GCP) and the real
``function_app.py`` (Azure). Each generated request is made afresh for each target (its own
response key and id) and must get an answer whose status and code are in ``PROTOCOL.md``'s
table, never a 500, the same everywhere (direct invoke is checked but not compared: Lambda parses
the event itself, so duplicated fields collapse before the handler sees them); no plaintext input
(canary values), response key or private key (base64url, hex or raw) may appear in any answer sent
in clear or in any log line.
Failures found once stay as cases in ``fixtures/fuzz_regressions.json``.

``LITEFAAS_FUZZ_EXAMPLES`` sets the examples per property (default 40; ``make reliability`` uses more).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fixtures.binary import ENCRYPTED_V2, PLAINTEXT_V2
from fixtures.conformance import PROTOCOL_TABLE
from fixtures.providers_gcp_azure import Call, provider_targets
from fixtures.requests import ENCRYPTED, FIXTURES, PLAINTEXT, ROWS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import tally

from core import crypto, logs
from core.encoding import b64u_decode, b64u_encode
from core.engine import Engine
from core.protocol import ENCRYPTED_TYPE_V2, OIP_BINARY_TYPE, OIP_HEADER_LENGTH, PLAINTEXT_TYPE_V2
from core.routing import route_of
from core.tensors import DATATYPES, join_frame, split_frame

EXAMPLES = int(os.environ.get("LITEFAAS_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
CANARY_NUMBER = 31337.0421
CANARY_TEXT = "canary-\u015d\u00e9"
CANARY_MARKS = ("31337.0421", "canary")
"""What must never be seen in clear: the canaries are planted in inputs (numbers and strings)."""
LEAK_MARKS = ("Traceback", 'File "', "private_key")
REGRESSIONS = json.loads((FIXTURES / "fuzz_regressions.json").read_text(encoding="utf-8"))
OHTTP_ANSWERS = {
    200: ("application/ohttp-keys", "message/ohttp-res"),
    400: ("text/plain", "application/problem+json"),
}
OIP = "oip"
"""The code given to an Open Inference Protocol error (``{"error": message}``, no code of its own)."""
OIP_STATUSES = frozenset({400, 403, 404, 405, 413, 415})
"""What an OIP route may answer besides 200: ``PROTOCOL.md``'s OIP errors."""


@dataclass
class Sent:
    """One request as a target got it, and what the caller keeps to read a sealed answer."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    response_key: bytes | None = None
    request_id: bytes | None = None
    secrets: list[str] = field(default_factory=list)
    raw_secrets: list[bytes] = field(default_factory=list)


Make = Callable[[], Sent]


class LogLines(logging.Handler):
    """Every line the ``litefaas`` logger writes, formatted as the function writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(repr=False)
class Harness:
    """The targets and the secrets they hold; counts what it sends."""

    keys: Any
    targets: dict[str, Call]
    log: LogLines
    private_secrets: list[str]
    private_raw: list[bytes]
    sent: int = 0

    def ask_everywhere(self, make: Make) -> Outcome:
        """Send a fresh ``make()`` to every target and read each answer; the test says what must hold."""
        outcome = Outcome()
        for name, call in self.targets.items():
            request = make()
            if name == "aws:direct" and not direct_invoke_applies(request):
                continue
            request.secrets += self.private_secrets
            request.raw_secrets += self.private_raw
            before = len(self.log.lines)
            status, headers, body = call(request.method, request.path, request.headers, request.body)
            self.sent += 1
            outcome.answers[name] = read_answer(name, request, status, headers, body, outcome)
            for line in self.log.lines[before:]:
                outcome.leaks += find_secrets(f"{name} log line", line, request.secrets)
        return outcome

    def still_serves(self) -> None:
        for name in self.targets:
            outcome = Outcome()
            request = sealed_request(self.keys, inputs=ROWS[:2])
            status, headers, body = self.targets[name](
                request.method, request.path, request.headers, request.body
            )
            answer = read_answer(name, request, status, headers, body, outcome)
            assert (answer, outcome.off_protocol) == ((200, None), []), f"{name} stopped serving"


@dataclass
class Outcome:
    """What every target answered, and what broke the protocol's rules on the way."""

    answers: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    off_protocol: list[str] = field(default_factory=list)
    """Answers not in the error table, unreadable, sealed to no key, or in an unexpected media type."""
    leaks: list[str] = field(default_factory=list)
    """A secret, an input canary or a stack trace in an answer sent in clear or in a log line."""

    @property
    def server_errors(self) -> list[str]:
        return [name for name, (status, _) in self.answers.items() if status >= 500]

    @property
    def agreed(self) -> bool:
        """Every target gave the same status and code (direct invoke aside: Lambda parses that event itself)."""
        return len({answer for name, answer in self.answers.items() if name != "aws:direct"}) == 1

    @property
    def codes(self) -> set[tuple[int, str | None]]:
        """The (status, code) pairs given, direct invoke aside."""
        return {answer for name, answer in self.answers.items() if name != "aws:direct"}


def is_oip(path: str) -> bool:
    route = route_of(path)
    return route is not None and route.oip


def direct_invoke_applies(request: Sent) -> bool:
    """A direct invoke carries a JSON object (or a version-2 body) to POST /predict with a standard type,
    or any request to an OIP route in the routed form."""
    if is_oip(request.path):
        return True
    if (request.method, request.path) != ("POST", "/predict") or request.headers not in (
        ENCRYPTED,
        PLAINTEXT,
        ENCRYPTED_V2,
        PLAINTEXT_V2,
    ):
        return False
    if request.headers in (ENCRYPTED_V2, PLAINTEXT_V2):
        return True
    try:
        return isinstance(json.loads(request.body), dict)
    except (ValueError, RecursionError):
        return False


def find_secrets(where: str, text: str, secrets_: list[str]) -> list[str]:
    return [
        f"{where} carries {secret[:12]!r}…: {text[:300]}"
        for secret in (*secrets_, *CANARY_MARKS, *LEAK_MARKS)
        if secret in text
    ]


def read_answer(
    name: str, request: Sent, status: int, headers: dict[str, str], body: bytes, outcome: Outcome
) -> tuple[int, str | None]:
    """(status, error code or None) of one answer; what breaks the protocol goes into ``outcome``."""
    outcome.leaks += [f"{name}: raw key bytes in the answer" for raw in request.raw_secrets if raw in body]
    content_type = headers.get("content-type", "").split(";")[0].strip()
    route = route_of(request.path)
    if route is not None and route.name == "ohttp-gateway" and content_type in OHTTP_ANSWERS.get(status, ()):
        return status, "ohttp"  # the gateway's own answers: test_oblivious_providers.py checks them
    sealed = request.response_key is not None and request.request_id is not None
    try:
        if content_type == "application/litefaas+json" and sealed:
            document = json.loads(crypto.open_response(request.response_key, request.request_id, body))
        elif content_type == ENCRYPTED_TYPE_V2 and sealed:
            document = split_frame(
                crypto.open_binary_response(request.response_key, request.request_id, body)
            )[0]
        elif content_type == PLAINTEXT_TYPE_V2 and request.headers.get("Content-Type") == PLAINTEXT_TYPE_V2:
            document = split_frame(body)[0]
        elif content_type == "application/json":
            text = body.decode("utf-8")
            outcome.leaks += find_secrets(f"{name} answer", text, request.secrets)
            document = json.loads(text)
        elif content_type == OIP_BINARY_TYPE and status == 200 and is_oip(request.path):
            document = json.loads(body[: int(headers[OIP_HEADER_LENGTH.lower()])])
        else:
            outcome.off_protocol.append(f"{name}: {status} answered as {content_type!r}: {body[:200]!r}")
            return status, None
    except Exception as exc:
        outcome.off_protocol.append(f"{name}: {status} answer unreadable ({exc.__class__.__name__})")
        return status, None
    if status == 200 and "error" not in document:
        return 200, None
    if is_oip(request.path):
        message = document.get("error") if isinstance(document, dict) else None
        if status not in OIP_STATUSES or not isinstance(message, str) or document.keys() != {"error"}:
            outcome.off_protocol.append(f"{name}: {status} {document!r:.200} is not an OIP error")
        return status, OIP
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if PROTOCOL_TABLE.get(code) != status or not isinstance(error.get("message") if error else None, str):
        outcome.off_protocol.append(f"{name}: {status} {code!r} is not in the protocol's table")
    return status, code


def _targets(keys, engine, plaintext: bool) -> dict[str, Call]:
    env = {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "INFO"}
    if plaintext:
        env["LITEFAAS_ALLOW_PLAINTEXT"] = "1"
    return provider_targets(env, engine, raw_gcp_paths=True)


@pytest.fixture(scope="module")
def log_lines():
    handler = LogLines()
    logger = logging.getLogger(logs.LOGGER_NAME)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def harnesses(keys, log_lines):
    engine = Engine.from_dir()
    private = [secret for b64 in keys.private_b64 for secret in (b64, b64u_decode(b64).hex())]
    private_raw = [b64u_decode(b64) for b64 in keys.private_b64]
    built = {
        plaintext: Harness(keys, _targets(keys, engine, plaintext), log_lines, private, private_raw)
        for plaintext in (False, True)
    }
    logging.getLogger(logs.LOGGER_NAME).setLevel(logging.INFO)
    yield built
    for harness in built.values():
        harness.still_serves()
    tally.record(
        "fuzz, every provider in process", **{"bad inputs tried": sum(h.sent for h in built.values())}
    )


@pytest.fixture(autouse=True)
def nothing_leaks_to_the_terminal(capfd, keys):
    """Whatever the hosts print (besides the litefaas logger) carries no secret either."""
    yield
    out, err = capfd.readouterr()
    private = [secret for b64 in keys.private_b64 for secret in (b64, b64u_decode(b64).hex())]
    assert find_secrets("stdout/stderr", out + err, private) == []


# --- requests -------------------------------------------------------------------------------------


def request_plaintext(
    inputs: Any, response_key: bytes, request_id: bytes, ts: Any = None, **changes: Any
) -> dict[str, Any]:
    document = {
        "inputs": inputs,
        "response_key": b64u_encode(response_key),
        "ts": int(time.time()) if ts is None else ts,
        "id": b64u_encode(request_id),
    }
    document.update(changes)
    return document


def secrets_of(response_key: bytes) -> list[str]:
    return [b64u_encode(response_key), response_key.hex(), base64.b64encode(response_key).decode()]


def sealed_request(
    keys,
    kid: str = "k0",
    *,
    inputs: Any = None,
    plaintext: bytes | Callable[[bytes, bytes], bytes] | None = None,
    envelope: Callable[[dict[str, Any]], bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> Sent:
    """A fresh request sealed to ``kid``; ``plaintext`` replaces the decrypted JSON, ``envelope`` the body."""
    response_key, request_id = secrets.token_bytes(16), secrets.token_bytes(16)
    if plaintext is None:
        text = json.dumps(request_plaintext(ROWS[:1] if inputs is None else inputs, response_key, request_id))
        inner = text.encode()
    elif callable(plaintext):
        inner = plaintext(response_key, request_id)
    else:
        inner = plaintext
    public, suite = keys.public_key(kid)
    sealed = crypto.seal_request(public, kid, suite, inner)
    body = envelope(sealed) if envelope else json.dumps(sealed).encode()
    return Sent(
        "POST",
        "/predict",
        dict(headers or ENCRYPTED),
        body,
        response_key,
        request_id,
        secrets_of(response_key),
        [response_key],
    )


# --- strategies -----------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
numbers = st.one_of(
    finite,
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 3.5e38, -3.5e38, 1e308, CANARY_NUMBER]),
)
scalars = st.one_of(
    numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.just(CANARY_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)
rows = st.lists(st.one_of(finite, st.just(CANARY_NUMBER)), min_size=30, max_size=30)


@st.composite
def bad_rows(draw) -> list[Any]:
    """A batch that is wrong in one place: a value, a row's length, a row's type, the row count."""
    batch = [list(row) for row in draw(st.lists(rows, min_size=1, max_size=4))]
    batch[0][0] = CANARY_NUMBER
    kind = draw(st.sampled_from(["value", "length", "row", "empty", "over", "nested"]))
    row = draw(st.integers(0, len(batch) - 1))
    if kind == "value":
        batch[row][draw(st.integers(0, 29))] = draw(scalars)
    elif kind == "length":
        batch[row] = batch[row][: draw(st.integers(0, 29))] or batch[row] + [1.0]
    elif kind == "row":
        batch[row] = draw(json_values)
    elif kind == "empty":
        batch = []
    elif kind == "over":
        batch = [batch[0]] * 1025
    else:
        depth = draw(st.integers(1, 900))
        batch[row] = json.loads("[" * depth + str(CANARY_NUMBER) + "]" * depth)
    return batch


HUGE_INT = "<an integer of 5,000 digits>"


def dumps_text(value: Any) -> str:
    """JSON as a sloppy client writes it: NaN and Infinity literals, integers past Python's 4,300 digits."""
    return json.dumps(value, allow_nan=True).replace(json.dumps(HUGE_INT), "9" * 5000)


def dumps(value: Any) -> bytes:
    return dumps_text(value).encode()


ENVELOPE_FIELDS = ("v", "kid", "suite", "ct")
RETYPED = st.one_of(
    json_values,
    st.just(HUGE_INT),
    st.sampled_from(["", "k0", "k1", "zz", "a" * 65, "\u00e9t\u00e9", "x25519-sha256-aes128gcm", "AAAA"]),
)


@st.composite
def envelope_mutations(draw) -> Callable[[dict[str, Any]], bytes]:
    """Remove, duplicate, retype or add a field of the envelope."""
    action = draw(st.sampled_from(["remove", "duplicate", "retype", "add", "version"]))
    name = draw(st.sampled_from(ENVELOPE_FIELDS))
    value = draw(RETYPED)
    version = draw(st.sampled_from([0, 2, 1.0, True, "1", -1, 2**64]))
    extra = draw(st.text(min_size=1, max_size=10).filter(lambda n: n not in ENVELOPE_FIELDS))

    def mutate(envelope: dict[str, Any]) -> bytes:
        document = dict(envelope)
        if action == "remove":
            del document[name]
        elif action == "retype":
            document[name] = value
        elif action == "add":
            document[extra] = value
        elif action == "version":
            document["v"] = version
        text = dumps_text(document)
        if action == "duplicate":
            text = "{" + f"{json.dumps(name)}:{dumps_text(value)}," + text[1:]
        return text.encode()

    return mutate


@st.composite
def ciphertext_damage(draw) -> Callable[[dict[str, Any]], bytes]:
    """Flip bits of ``enc || ciphertext``, or cut it short: the ciphertext stays valid base64url."""
    action = draw(st.sampled_from(["flip", "truncate", "extend"]))
    position = draw(st.floats(0, 1, exclude_max=True))
    bit = draw(st.integers(0, 7))
    cut = draw(st.integers(0, 64))

    def damage(envelope: dict[str, Any]) -> bytes:
        ct = bytearray(b64u_decode(envelope["ct"]))
        if action == "flip":
            ct[int(position * len(ct))] ^= 1 << bit
        elif action == "truncate":
            ct = ct[: int(position * len(ct))]
        else:
            ct += bytes(cut + 1)
        return json.dumps({**envelope, "ct": b64u_encode(bytes(ct))}).encode()

    return damage


@st.composite
def decrypted_mutations(draw) -> Callable[[bytes, bytes], bytes]:
    """The decrypted request, wrong in one way: a field removed, duplicated, retyped or added."""
    action = draw(st.sampled_from(["remove", "duplicate", "retype", "add", "not-an-object", "not-json"]))
    name = draw(st.sampled_from(["inputs", "response_key", "ts", "id"]))
    value = draw(
        st.one_of(json_values, st.just(HUGE_INT), st.sampled_from([b64u_encode(bytes(15)), "AA=", "!!"]))
    )
    extra = draw(st.text(min_size=1, max_size=8))
    garbage = draw(st.binary(max_size=64))

    def make(response_key: bytes, request_id: bytes) -> bytes:
        document = request_plaintext([[CANARY_NUMBER, *ROWS[0][1:]]], response_key, request_id)
        if action == "remove":
            del document[name]
        elif action == "retype":
            document[name] = value
        elif action == "add" and extra not in document:
            document[extra] = value
        elif action == "not-an-object":
            return dumps([document])
        elif action == "not-json":
            return garbage + b"canary"
        text = dumps_text(document)
        if action == "duplicate":
            text = "{" + f"{json.dumps(name)}:{dumps_text(value)}," + text[1:]
        return text.encode()

    return make


METHODS = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "Post"]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10),
)
PATHS = st.one_of(
    st.sampled_from(["/predict", "/keys", "/health", "/", "/predict/", "/dev/predict", "/PREDICT", "//keys"]),
    st.sampled_from(
        ["/v2", "/v2/health/live", "/v2/models/breast_cancer_mlp", "/v2/models/x/infer", "/v2/x"]
    ),
    st.sampled_from(["/.well-known/ohttp-gateway", "/api/.well-known/ohttp-gateway"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./~", max_size=30).map(lambda p: "/" + p),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/litefaas+json",
            "application/json",
            ENCRYPTED_TYPE_V2,
            PLAINTEXT_TYPE_V2,
            "APPLICATION/LITEFAAS+JSON; charset=utf-8",
            "application/json;charset=latin-1",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "",
            ";",
        ]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/+;= -", max_size=40),
)
HEADER_NAMES = st.sampled_from(
    ["X-Forwarded-For", "Accept", "Authorization", "X-Amz-Date", "Cookie", "Origin"]
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
BODIES = st.one_of(
    st.binary(max_size=300),
    json_values.map(dumps),
    st.just(b""),
    st.sampled_from([b"{", b"[]", b"null", b'"canary"', b"\xff\xfe", b'{"v":1}', b"{}" * 3]),
)


@st.composite
def random_requests(draw) -> Sent:
    headers = dict(draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3)))
    if draw(st.booleans()):
        headers[draw(st.sampled_from(["Content-Type", "content-type"]))] = draw(CONTENT_TYPES)
    return Sent(draw(METHODS), draw(PATHS), headers, draw(BODIES))


# --- properties -----------------------------------------------------------------------------------


@FUZZ
@given(request=random_requests())
def test_random_methods_paths_headers_and_bodies(harnesses, request):
    # GIVEN any method, path, headers and body WHEN every provider answers it THEN only the protocol's answers
    outcome = harnesses[False].ask_everywhere(
        lambda: Sent(request.method, request.path, dict(request.headers), request.body)
    )
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers


@FUZZ
@given(mutate=envelope_mutations(), kid=st.sampled_from(["k0", "k1", "k2"]))
def test_every_envelope_field_removed_duplicated_or_retyped(harnesses, keys, mutate, kid):
    harness = harnesses[False]
    outcome = harness.ask_everywhere(lambda: sealed_request(keys, kid, envelope=mutate))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    # AND a broken envelope is refused before decryption, in clear
    assert outcome.codes <= {(400, "invalid_envelope"), (400, "decryption_failed"), (200, None)}


@FUZZ
@given(damage=ciphertext_damage(), kid=st.sampled_from(["k0", "k1", "k2"]))
def test_bit_flips_and_truncation_of_the_ciphertext(harnesses, keys, damage, kid):
    outcome = harnesses[False].ask_everywhere(lambda: sealed_request(keys, kid, envelope=damage))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    # AND any damage to enc || ciphertext is one code, with nothing said about why
    assert outcome.codes == {(400, "decryption_failed")}


@FUZZ
@given(batch=bad_rows(), kid=st.sampled_from(["k0", "k1", "k2"]))
def test_bad_batches_inside_a_valid_envelope(harnesses, keys, batch, kid):
    outcome = harnesses[False].ask_everywhere(
        lambda: sealed_request(keys, kid, plaintext=lambda rk, rid: dumps(request_plaintext(batch, rk, rid)))
    )
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    # AND the error about the input travels sealed (only the request's holder reads it)
    assert outcome.codes <= {(422, "invalid_payload"), (413, "payload_too_large"), (200, None)}


@FUZZ
@given(make=decrypted_mutations())
def test_every_field_of_the_decrypted_request_mutated(harnesses, keys, make):
    outcome = harnesses[False].ask_everywhere(lambda: sealed_request(keys, plaintext=make))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers


@FUZZ
@given(
    inputs=st.one_of(json_values, bad_rows()),
    extra=st.dictionaries(st.text(max_size=5), json_values, max_size=2),
)
def test_plaintext_bodies_where_plaintext_is_allowed(harnesses, inputs, extra):
    body = dumps({"inputs": inputs, **extra})
    outcome = harnesses[True].ask_everywhere(lambda: Sent("POST", "/predict", dict(PLAINTEXT), body))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers


# --- version 2 -----------------------------------------------------------------------------------


def sealed_binary(keys, kid: str, frame: Callable[[dict[str, Any]], bytes], damage=None) -> Sent:
    """A version-2 request sealed to ``kid``: ``frame`` makes the framed plaintext from the header fields."""
    response_key, request_id = secrets.token_bytes(16), secrets.token_bytes(16)
    fields = {
        "response_key": b64u_encode(response_key),
        "ts": int(time.time()),
        "id": b64u_encode(request_id),
    }
    public, suite = keys.public_key(kid)
    body = crypto.seal_binary_request(public, kid, suite, frame(fields))
    return Sent(
        "POST",
        "/predict",
        dict(ENCRYPTED_V2),
        damage(body) if damage else body,
        response_key,
        request_id,
        secrets_of(response_key),
        [response_key],
    )


def good_frame(fields: dict[str, Any], rows: int = 1) -> bytes:
    tensor = {"name": "features", "datatype": "FP32", "shape": [rows, 30]}
    data = struct.pack("<f", CANARY_NUMBER) + bytes(rows * 120 - 4)
    return join_frame({"inputs": [tensor], **fields}, [data])


SHAPES = st.lists(
    st.one_of(st.integers(0, 3), st.sampled_from([30, 29, 1025, 2**31, 2**63, 2**64 + 1, -1])), max_size=4
)
TENSORS = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["features", "other", ""]),
        "datatype": st.one_of(st.sampled_from([*DATATYPES, "BYTES", "FP8", "fp32"]), json_values),
        "shape": SHAPES,
    }
)


@st.composite
def frame_mutations(draw) -> Callable[[dict[str, Any]], bytes]:
    """The framed plaintext, wrong in one way: cut, lengthened, a header field or a tensor entry changed."""
    action = draw(st.sampled_from(["truncate", "extend", "length", "tensor", "tensors", "field", "outputs"]))
    cut = draw(st.floats(0, 1, exclude_max=True))
    tail = draw(st.binary(min_size=1, max_size=64))
    length = draw(st.sampled_from([0, 1, 2**16, 2**31, 2**32 - 1]))
    tensor = draw(TENSORS)
    tensors = draw(st.lists(TENSORS, max_size=3))
    name, value = (
        draw(st.sampled_from(["inputs", "ts", "id", "response_key", "outputs", "extra"])),
        draw(RETYPED),
    )
    outputs = draw(st.one_of(st.lists(st.sampled_from(["probability", "x", ""]), max_size=3), json_values))

    def make(fields: dict[str, Any]) -> bytes:
        message = good_frame(fields)
        if action == "truncate":
            return message[: int(cut * len(message))]
        if action == "extend":
            return message + tail
        if action == "length":
            return struct.pack(">I", length) + message[4:]
        header = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 30]}], **fields}
        if action == "tensor":
            header["inputs"] = [tensor]
        elif action == "tensors":
            header["inputs"] = tensors
        elif action == "field":
            header[name] = value
        else:
            header["outputs"] = outputs
        text = dumps(header)
        return struct.pack(">I", len(text)) + text + message[len(message) - 120 :]

    return make


@st.composite
def binary_envelope_damage(draw) -> Callable[[bytes], bytes]:
    """The clear header ``0x02 L kid ids`` or ``enc || ct`` changed: a byte set, cut short, or lengthened."""
    action = draw(st.sampled_from(["set", "truncate", "extend"]))
    position = draw(st.integers(0, 40))
    byte = draw(st.integers(0, 255))
    cut = draw(st.integers(0, 200))
    tail = draw(st.binary(min_size=1, max_size=32))

    def damage(body: bytes) -> bytes:
        if action == "set":
            index = min(position, len(body) - 1)
            byte_ = byte ^ 1 if body[index] == byte else byte
            return body[:index] + bytes([byte_]) + body[index + 1 :]
        if action == "truncate":
            return body[: min(cut, len(body) - 1)]
        return body + tail

    return damage


@FUZZ
@given(damage=binary_envelope_damage(), kid=st.sampled_from(["k0", "k1", "k2"]))
def test_binary_envelopes_damaged(harnesses, keys, damage, kid):
    outcome = harnesses[False].ask_everywhere(lambda: sealed_binary(keys, kid, good_frame, damage))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    # AND a damaged version-2 envelope is refused in clear with one of the two envelope codes
    assert outcome.codes <= {(400, "invalid_envelope"), (400, "decryption_failed")}


@FUZZ
@given(mutate=frame_mutations(), kid=st.sampled_from(["k0", "k1", "k2"]))
def test_framed_messages_inside_a_valid_envelope(harnesses, keys, mutate, kid):
    outcome = harnesses[False].ask_everywhere(lambda: sealed_binary(keys, kid, mutate))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    # AND a broken frame is the protocol's 422 (413 for a batch over the limit), sealed where it can be
    assert outcome.codes <= {
        (422, "invalid_payload"),
        (413, "payload_too_large"),
        (408, "stale_request"),
        (200, None),
    }


@FUZZ
@given(mutate=frame_mutations(), garbage=st.binary(max_size=200), use_garbage=st.booleans())
def test_framed_plaintext_where_plaintext_is_allowed(harnesses, mutate, garbage, use_garbage):
    body = garbage if use_garbage else mutate({})
    outcome = harnesses[True].ask_everywhere(lambda: Sent("POST", "/predict", dict(PLAINTEXT_V2), body))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    assert outcome.codes <= {(422, "invalid_payload"), (413, "payload_too_large"), (200, None)}


# --- the Open Inference Protocol -----------------------------------------------------------------

OIP_INFER = "/v2/models/breast_cancer_mlp/infer"
OIP_CODES = {(400, OIP), (413, OIP), (200, None)}


def good_oip_input() -> dict[str, Any]:
    return {"name": "features", "shape": [1, 30], "datatype": "FP32", "data": [CANARY_NUMBER, *ROWS[0][1:]]}


OIP_FIELDS = ("id", "parameters", "inputs", "outputs", "extra")
OIP_TENSOR_FIELDS = ("name", "shape", "datatype", "parameters", "data", "extra")
PARAMETERS = st.one_of(
    st.dictionaries(
        st.sampled_from(["binary_data_size", "binary_data", "binary_data_output", "sequence_id", "x"]),
        st.one_of(st.integers(-5, 2**64), st.booleans(), st.text(max_size=5), json_values),
        max_size=3,
    ),
    json_values,
)


@st.composite
def oip_json_mutations(draw) -> bytes:
    """A JSON inference request wrong in one way: a top-level or tensor field removed, retyped or added."""
    document: dict[str, Any] = {"id": "r", "inputs": [good_oip_input()], "outputs": [{"name": "probability"}]}
    action = draw(st.sampled_from(["top", "tensor", "data", "shape", "parameters", "outputs", "duplicate"]))
    # an id or a name is echoed back to its caller as OIP asks: no canary there, only in the data
    value = json.loads(json.dumps(draw(st.one_of(RETYPED, PARAMETERS))).replace("canary", "c"))
    tensor = document["inputs"][0]
    if action == "top":
        name = draw(st.sampled_from(OIP_FIELDS))
        if draw(st.booleans()):
            document.pop(name, None)
        else:
            document[name] = value
    elif action == "tensor":
        name = draw(st.sampled_from(OIP_TENSOR_FIELDS))
        if draw(st.booleans()):
            tensor.pop(name, None)
        else:
            tensor[name] = value
    elif action == "data":
        tensor["data"] = draw(st.one_of(bad_rows(), st.lists(scalars, max_size=40), json_values))
    elif action == "shape":
        tensor["shape"] = draw(SHAPES)
        tensor["datatype"] = draw(st.sampled_from([*DATATYPES, "BYTES", "fp32"]))
    elif action == "parameters":
        document["parameters"] = draw(PARAMETERS)
        tensor["parameters"] = draw(PARAMETERS)
    elif action == "outputs":
        document["outputs"] = draw(
            st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {"name": st.sampled_from(["probability", "x", ""])},
                        optional={"parameters": PARAMETERS},
                    ),
                    max_size=3,
                ),
                json_values,
            )
        )
    else:
        document["inputs"] = [tensor, tensor]
    return dumps(document)


@st.composite
def oip_binary_mutations(draw) -> tuple[dict[str, str], bytes]:
    """A binary-data request wrong in one way: the header length, a binary_data_size, the bytes after."""
    size = draw(st.one_of(st.just(120), st.integers(0, 200), st.sampled_from([2**31, 2**64, -1, 1.5, True])))
    tensor = {
        "name": "features",
        "shape": draw(st.sampled_from([[1, 30], [2, 30], [1, 29]])),
        "datatype": "FP32",
    }
    tensor["parameters"] = {"binary_data_size": size}
    header = dumps({"inputs": [tensor], "parameters": {"binary_data_output": draw(st.booleans())}})
    data = struct.pack("<f", CANARY_NUMBER) + bytes(draw(st.integers(0, 300)))
    tail = draw(st.binary(max_size=16))
    length = draw(
        st.one_of(
            st.just(str(len(header))),
            st.integers(-2, len(header) + 400).map(str),
            st.sampled_from(["", " ", "1e2", "0x10", "9" * 30, "\u0661", str(2**64)]),
        )
    )
    return {OIP_HEADER_LENGTH: length}, header + data + tail


@FUZZ
@given(body=oip_json_mutations())
def test_oip_json_requests_mutated(harnesses, body):
    outcome = harnesses[True].ask_everywhere(
        lambda: Sent("POST", OIP_INFER, {"Content-Type": "application/json"}, body)
    )
    # THEN no provider fails or leaks, every answer is an OIP answer, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    assert outcome.codes <= OIP_CODES


@FUZZ
@given(request=oip_binary_mutations())
def test_oip_binary_requests_mutated(harnesses, request):
    headers, body = request
    outcome = harnesses[True].ask_everywhere(lambda: Sent("POST", OIP_INFER, dict(headers), body))
    # THEN no provider fails or leaks, every answer is an OIP answer, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    assert outcome.codes <= OIP_CODES


@FUZZ
@given(
    method=METHODS,
    tail=st.lists(
        st.one_of(
            st.sampled_from(["models", "breast_cancer_mlp", "versions", "1.0.0", "infer", "ready", "health"]),
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%", max_size=8),
        ),
        max_size=6,
    ),
    prefix=st.sampled_from(["", "/api", "/dev", "/v2"]),
    body=BODIES,
    plaintext=st.booleans(),
)
def test_oip_paths_and_methods(harnesses, method, tail, prefix, body, plaintext):
    path = "/".join([prefix, "v2", *tail])
    outcome = harnesses[plaintext].ask_everywhere(lambda: Sent(method, path, {}, body))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers


# --- regressions ----------------------------------------------------------------------------------


def regression_request(keys, case: dict[str, Any]) -> Sent:
    """A request of ``fuzz_regressions.json``: raw bytes, or a decrypted request sealed afresh."""
    text = case.get("prefix", "") + case.get("unit", "") * case.get("repeat", 0) + case.get("suffix", "")
    body = bytes.fromhex(case["hex"]) if "hex" in case else text.encode()
    if "sealed" not in case:
        return Sent(
            case.get("method", "POST"),
            case.get("path", "/predict"),
            dict(case.get("headers", ENCRYPTED)),
            body,
        )

    def inner(response_key: bytes, request_id: bytes) -> bytes:
        return (
            case["sealed"]
            .replace("$BODY", text)
            .replace("$RK", b64u_encode(response_key))
            .replace("$ID", b64u_encode(request_id))
            .replace("$TS", str(int(time.time())))
            .replace("$ROW", json.dumps(ROWS[0]))
            .encode()
        )

    return sealed_request(keys, case.get("kid", "k0"), plaintext=inner)


@pytest.mark.parametrize("case", REGRESSIONS["cases"], ids=lambda case: case["name"])
def test_regressions(harnesses, keys, case):
    # GIVEN a request that once broke an invariant, or that stands for a class of bad input
    harness = harnesses[bool(case.get("plaintext_allowed"))]
    # WHEN every provider answers it THEN the answer is the one recorded
    outcome = harness.ask_everywhere(lambda: regression_request(keys, case))
    # THEN no provider fails or leaks, every answer is the protocol's, and all providers agree
    assert outcome.server_errors == outcome.off_protocol == outcome.leaks == []
    assert outcome.agreed, outcome.answers
    assert outcome.codes == {(case["status"], case.get("code"))}
