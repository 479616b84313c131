"""Oblivious HTTP against an implementation no one here wrote, both ways, on real local hosts.

``tests/interop/ohttp.mjs`` is written only on npm's ``@hpke/core`` (+ ChaCha20-Poly1305, X-Wing)
and ``bhttp-js``. As a client it round-trips every key and algorithm pair each of the three local
hosts offers, with inner version-1 and OIP requests; as a gateway it answers litefaas's Python
``ObliviousTransport``. A plain relay (``litefaas.local.relay``) sits in front where the test says.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import numpy as np
import pytest
from fixtures.oip import INFER, read_response
from fixtures.requests import ALL_SUITES, ROWS, make_keys

from core.protocol import PROVIDERS
from litefaas.client.oblivious import ObliviousTransport
from litefaas.local.process import free_port
from litefaas.local.relay import Relay
from litefaas.local.serving import function_env, serving
from litefaas.paths import ROOT

INTEROP = ROOT / "tests" / "interop"
CANARY = 31337.0421

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("node") is None or not (INTEROP / "node_modules" / "@hpke" / "core").is_dir(),
        reason="node and tests/interop's npm packages are needed: run `make setup`",
    ),
]


@pytest.fixture(scope="module")
def hosts():
    keys = make_keys(*ALL_SUITES)
    base = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    base |= {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_LOG_LEVEL": "WARNING"}
    env, _ = function_env(base)
    with serving(PROVIDERS, free_port(span=len(PROVIDERS)), env, timeout=120) as servers:
        yield {server.name: server.spec.base_url for server in servers}


def node_client(gateway: str, inners: list[dict], relay: str | None = None) -> list[dict]:
    argv = ["node", str(INTEROP / "ohttp.mjs"), "client", gateway, *([relay] if relay else [])]
    run = subprocess.run(
        argv, input=json.dumps(inners), capture_output=True, text=True, timeout=120, cwd=INTEROP
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def inner_requests(rows) -> list[dict]:
    date = formatdate(usegmt=True)
    oip = {
        "inputs": [
            {
                "name": "features",
                "shape": [len(rows), 30],
                "datatype": "FP32",
                "data": np.ravel(rows).tolist(),
            }
        ]
    }
    return [
        {
            "method": "POST",
            "url": "https://function.example/predict",
            "headers": {"content-type": "application/json", "date": date},
            "body_b64": base64.b64encode(json.dumps({"inputs": rows}).encode()).decode(),
        },
        {
            "method": "POST",
            "url": f"https://function.example{INFER}",
            "headers": {"content-type": "application/json", "date": date},
            "body_b64": base64.b64encode(json.dumps(oip).encode()).decode(),
        },
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_independent_client_round_trips_every_key_and_pair(hosts, engine, provider):
    # GIVEN a host holding one key of each suite, with plaintext off
    rows = [[CANARY, *ROWS[0][1:]], *ROWS[1:3]]
    expected = engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"]
    # WHEN the Node client sends version-1 and OIP requests through every key and algorithm pair
    lines = node_client(hosts[provider] + "/.well-known/ohttp-gateway", inner_requests(rows))
    # THEN there are five pairs (two per X25519 key, one for X-Wing) and every answer opens to the model's
    assert sorted({(line["kem_id"], line["aead_id"]) for line in lines}) == [
        (0x20, 1),
        (0x20, 3),
        (0x647A, 2),
    ]
    assert len(lines) == 5 * 2
    for line in lines:
        assert (line["outer_status"], line["outer_type"], line["status"]) == (
            200,
            "message/ohttp-res",
            200,
        ), line
        body = base64.b64decode(line["body_b64"])
        if "inference-header-content-length" in line["headers"] or body.startswith(b'{"model_name"'):
            outputs = read_response(line["headers"], body)[1]["probability"]
        else:
            outputs = np.asarray(json.loads(body)["outputs"], dtype=np.float32)
        np.testing.assert_array_equal(outputs, expected)
        assert line["padded_length"] == 1024  # small answers are padded to the first bucket


def test_the_python_transport_against_an_independent_gateway():
    # GIVEN the Node gateway on a free port
    port = free_port(span=1)
    gateway = subprocess.Popen(
        ["node", str(INTEROP / "ohttp.mjs"), "gateway", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=INTEROP,
    )
    try:
        assert gateway.stdout is not None and "listening" in gateway.stdout.readline()
        body = json.dumps({"inputs": ROWS[:2]}).encode()
        # WHEN litefaas's transport sends a request through it (keys fetched, then padded)
        transport = ObliviousTransport(f"http://127.0.0.1:{port}/.well-known/ohttp-gateway")
        with httpx.Client(transport=transport) as client:
            answer = client.post(
                "https://function.example/predict?x=1",
                content=body,
                headers={"content-type": "application/json"},
            )
    finally:
        assert gateway.stdin is not None
        gateway.stdin.close()
        gateway.wait(timeout=10)
    # THEN the gateway decapsulated what was sent, with a Date, and the answer came back through it
    echo = answer.json()
    assert answer.status_code == 201
    assert (echo["method"], echo["url"]) == ("POST", "https://function.example/predict?x=1")
    assert echo["headers"]["content-type"] == "application/json" and "date" in echo["headers"]
    assert echo["content_sha256"] == hashlib.sha256(body).hexdigest()
    assert echo["message_length"] == 1024


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Recorder.seen.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Type", "message/ohttp-res")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        return


def test_the_relay_forwards_the_body_and_nothing_of_the_caller(tmp_path):
    # GIVEN a recording upstream behind the relay
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    relay = Relay(0, {"fn": f"http://127.0.0.1:{upstream.server_address[1]}"}, tmp_path / "relay.log").start()
    try:
        # WHEN a caller posts with identifying headers
        answer = httpx.post(
            f"{relay.url}/fn",
            content=b"\x01sealed",
            headers={
                "content-type": "message/ohttp-req",
                "x-forwarded-for": "203.0.113.9",
                "cookie": "who=me",
                "user-agent": "caller/1.0",
                "forwarded": "for=203.0.113.9",
            },
        )
        missing = httpx.post(f"{relay.url}/nothing", content=b"x")
    finally:
        relay.stop()
        upstream.shutdown()
    # THEN the gateway got the body, its type (and the caller's Accept), Host and length, and nothing else
    path, headers, body = _Recorder.seen[-1]
    assert (answer.status_code, answer.content, missing.status_code) == (200, b"ok", 404)
    assert (path, body) == ("/.well-known/ohttp-gateway", b"\x01sealed")
    assert {name.lower() for name in headers} == {"host", "content-type", "content-length", "accept"}
    logged = [json.loads(line) for line in (tmp_path / "relay.log").read_text().splitlines()]
    assert base64.b64decode(logged[0]["request_b64"]) == b"\x01sealed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_kserve_client_through_the_oblivious_transport(hosts, engine, provider):
    # GIVEN KServe's InferenceRESTClient with litefaas's AsyncObliviousTransport, and a host with plaintext off
    import asyncio

    kserve = pytest.importorskip("kserve", reason="the dev extra installs kserve")
    from kserve.protocol.infer_type import InferInput, InferRequest

    from litefaas.client.oblivious import AsyncObliviousTransport, gateway_url_of

    rows = np.asarray(ROWS[:3], dtype=np.float32)

    async def infer():
        transport = AsyncObliviousTransport(gateway_url_of(hosts[provider]))
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", transport=transport, timeout=30))
        try:
            tensor = InferInput("features", list(rows.shape), "FP32")
            tensor.set_data_from_numpy(rows, binary_data=True)
            request = InferRequest("breast_cancer_mlp", [tensor])
            return await client.infer(hosts[provider], request, model_name="breast_cancer_mlp")
        finally:
            await client.close()

    # WHEN it infers: an OIP request, encapsulated, to a function that refuses OIP in clear
    response = asyncio.run(infer())
    # THEN it works unchanged and answers what LiteRT answers
    np.testing.assert_array_equal(
        response.outputs[0].as_numpy(), engine.predict({"features": rows})["probability"]
    )
