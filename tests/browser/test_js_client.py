"""The JavaScript client (``clients/js/dist/litefaas.js``) in a real browser: headless Chromium
(Debian's ``chromium``, driven by Playwright with ``executable_path``; nothing is downloaded).

A page served from 127.0.0.1 (a secure context: WebCrypto's X25519 needs one) imports the built
module and calls real local functions, one per provider, through a same-origin proxy on the page's
own server; the answers are compared with the Python client's. The cross-origin tests call the
functions directly, started with ``LITEFAAS_CORS_ORIGINS`` naming the page's origin.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import crypto
from litefaas.client import Client, RemoteError

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent.parent
DIST = ROOT / "clients" / "js" / "dist" / "litefaas.js"
REPORT = ROOT / "build" / "browser"
SUITES = tuple(crypto.SUITES)
PROVIDERS = ("aws", "gcp", "azure")
CORS_REASON = "the local AWS host answers CORS itself"

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>litefaas client test page</title></head>
<body><p id="status">loading</p>
<script type="module">
import * as litefaas from "/litefaas.js";
window.litefaas = litefaas;
document.getElementById("status").textContent = "ready";
</script></body></html>
"""

# Runs in the page: call one function, return the answer or the error's fields as JSON.
CALL = """async ({ url, method, args, options }) => {
  const { Client, RemoteError, NetworkError, ProtocolError } = window.litefaas;
  const client = new Client(url, options);
  try {
    const result = await client[method](...args);
    if (method === "predict") return { ok: true, outputs: result.outputs, model: result.model };
    const outputs = {};
    for (const [name, t] of Object.entries(result.outputs)) outputs[name] = { datatype: t.datatype, shape: t.shape, data: Array.from(t.data) };
    return { ok: true, outputs, model: result.model };
  } catch (e) {
    return { ok: false, name: e.name, message: e.message, code: e.code ?? null, status: e.status ?? null, sealed: e.sealed ?? null,
             remote: e instanceof RemoteError, network: e instanceof NetworkError, protocol: e instanceof ProtocolError };
  }
}"""


# Runs in the page: the same calls through Oblivious HTTP, with the key of the given key_id.
OBLIVIOUS_CALL = """async ({ url, keyIndex }) => {
  const { ObliviousClient, parseKeyConfigs } = window.litefaas;
  const keys = new Uint8Array(await (await fetch(`${url}/.well-known/ohttp-gateway`)).arrayBuffer());
  const config = parseKeyConfigs(keys)[keyIndex];
  const client = new ObliviousClient(url, { keyId: config.keyId });
  try {
    const rows = await client.predict(window.ROWS);
    const tensors = await client.predictTensors({ features: { datatype: "FP32", shape: [window.ROWS.length, 30], data: Float32Array.from(window.ROWS.flat()) } });
    return { ok: true, kem: config.kemId, outputs: rows.outputs, model: rows.model, tensors: Array.from(tensors.outputs.probability.data) };
  } catch (e) {
    return { ok: false, name: e.name, message: e.message };
  }
}"""


def _rows() -> list[list[float]]:
    for candidate in (ROOT / "litefaas" / "data", ROOT / "tests" / "fixtures"):
        path = candidate / "breast_cancer_rows.json"
        if path.is_file():
            rows: list[list[float]] = json.loads(path.read_text(encoding="utf-8"))["rows"]
            return rows[:8]
    raise FileNotFoundError("breast_cancer_rows.json")


ROWS = _rows()


def _launchers() -> tuple[Any, Any, Any]:
    """The project's local-host launcher, server class and port finder."""
    try:
        from litefaas.local.process import free_port
        from litefaas.local.server import LocalServer
        from litefaas.local.serving import launch_spec
    except ImportError:  # the layout before litefaas.local
        from litefaas.serve import launch_spec  # type: ignore[no-redef]
        from litefaas.serve_common import LocalServer, free_port  # type: ignore[no-redef]
    return launch_spec, LocalServer, free_port


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True
    upstreams: dict[str, str]


class _PageHandler(BaseHTTPRequestHandler):
    """``/``: the test page; ``/litefaas.js``: the built module; ``/fn/<provider>/…``: that function."""

    server: _PageServer

    def log_message(self, *_: object) -> None:
        pass

    def _reply(
        self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _proxy(self) -> None:
        _, _, provider, *rest = self.path.split("/", 3)
        upstream = self.server.upstreams.get(provider)
        if upstream is None:
            self._reply(404, "text/plain", b"no such function")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(
            f"{upstream}/{rest[0] if rest else ''}", data=body, method=self.command
        )
        for name in ("Content-Type", "Accept"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, headers, data = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, data = error.code, error.headers, error.read()
        self._reply(status, headers.get("Content-Type", "application/octet-stream"), data)

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._reply(200, "text/html; charset=utf-8", PAGE)
        elif self.path == "/litefaas.js":
            self._reply(200, "text/javascript; charset=utf-8", DIST.read_bytes())
        elif self.path.startswith("/fn/"):
            self._proxy()
        else:
            self._reply(404, "text/plain", b"not found")

    def do_POST(self) -> None:
        if self.path.startswith("/fn/"):
            self._proxy()
        else:
            self._reply(405, "text/plain", b"method not allowed")


@contextlib.contextmanager
def _page_server() -> Iterator[_PageServer]:
    server = _PageServer(("127.0.0.1", 0), _PageHandler)
    server.upstreams = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _origin(server: _PageServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[_PageServer, _PageServer]]:
    """The page's server (listed in LITEFAAS_CORS_ORIGINS) and another origin that is not."""
    with _page_server() as allowed, _page_server() as other:
        yield allowed, other


@pytest.fixture(scope="module")
def functions(
    pages: tuple[_PageServer, _PageServer], keys: Any, chromium_path: str
) -> Iterator[dict[str, str]]:
    """One local host per provider (AWS only where the npm packages are installed), base URL by name."""
    launch_spec, local_server, free_port = _launchers()
    allowed, other = pages
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    env |= {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_CORS_ORIGINS": _origin(allowed),
        "PYTHONUNBUFFERED": "1",
    }
    providers = [
        p for p in PROVIDERS if p != "aws" or (ROOT / "node_modules" / "serverless-offline").is_dir()
    ]
    servers = []
    try:
        for provider in providers:
            servers.append(local_server(provider, launch_spec(provider, free_port(), env)).start())
        for server in servers:
            server.wait_healthy(timeout=120)
        urls = {server.name: server.spec.base_url for server in servers}
        allowed.upstreams.update(urls)
        other.upstreams.update(urls)
        yield urls
    finally:
        for server in servers:
            server.stop()


def _open(browser: Any, origin: str) -> Any:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{origin}/")
    page.wait_for_function("window.litefaas !== undefined", timeout=15_000)
    assert not errors, errors
    return page


@pytest.fixture(scope="module")
def page(browser: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str]) -> Iterator[Any]:
    opened = _open(browser, _origin(pages[0]))
    yield opened
    opened.close()


def _call(page: Any, url: str, method: str, args: list[Any], **options: Any) -> dict[str, Any]:
    return dict(page.evaluate(CALL, {"url": url, "method": method, "args": args, "options": options}))


def _v2_or_skip(answer: dict[str, Any], provider: str) -> dict[str, Any]:
    """Skip where the function does not take version 2 yet (415)."""
    if not answer["ok"] and answer["status"] == 415 and answer["code"] == "unsupported_media_type":
        pytest.skip("this function does not serve protocol version 2 yet (415)")
    return answer


def _python_answer(base_url: str, suite: str) -> Any:
    with Client(base_url, suite=suite) as client:
        return client.predict(ROWS)


def test_the_module_loads_in_a_secure_context(page: Any) -> None:
    # GIVEN the test page served from 127.0.0.1
    # WHEN it has imported the built module
    exported = page.evaluate("Object.keys(window.litefaas).sort()")
    # THEN the page is a secure context (WebCrypto X25519) and the client and its errors are there
    assert page.evaluate("window.isSecureContext") is True
    assert {"Client", "RemoteError", "NetworkError", "ProtocolError"} <= set(exported)
    assert page.locator("#status").text_content() == "ready"


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_version_1_in_the_browser_matches_the_python_client(
    page: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str], provider: str, suite: str
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    # GIVEN a function holding one key per suite, reached through the page's own origin
    url = f"{_origin(pages[0])}/fn/{provider}"
    # WHEN the page seals the rows to the suite's key and the Python client does the same
    answer = _call(page, url, "predict", [ROWS], suite=suite)
    expected = _python_answer(functions[provider], suite)
    # THEN both open to the same outputs from the same model
    assert answer["ok"], answer
    np.testing.assert_array_equal(np.asarray(answer["outputs"], dtype=np.float32), expected.outputs)
    assert answer["model"] == expected.model


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_version_2_in_the_browser_matches_the_python_client(
    page: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str], provider: str, suite: str
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    url = f"{_origin(pages[0])}/fn/{provider}"
    # GIVEN the rows as one FP32 tensor [N, 30], built in the page as a Float32Array
    tensor = {"datatype": "FP32", "shape": [len(ROWS), 30]}
    script = """async ({ url, suite, rows, tensor }) => {
      const client = new window.litefaas.Client(url, { suite });
      try {
        const result = await client.predictTensors({ features: { ...tensor, data: Float32Array.from(rows.flat()) } });
        const [name, out] = Object.entries(result.outputs)[0];
        return { ok: true, name, datatype: out.datatype, shape: out.shape, data: Array.from(out.data), model: result.model };
      } catch (e) { return { ok: false, code: e.code ?? null, status: e.status ?? null, message: e.message }; }
    }"""
    # WHEN the page sends it sealed with version 2
    answer = _v2_or_skip(
        page.evaluate(script, {"url": url, "suite": suite, "rows": ROWS, "tensor": tensor}), provider
    )
    expected = _python_answer(functions[provider], suite)
    # THEN the typed output holds the Python client's numbers
    assert answer["ok"], answer
    assert answer["datatype"] == "FP32"
    assert answer["shape"] == [len(ROWS), 1]
    np.testing.assert_array_equal(
        np.asarray(answer["data"], dtype=np.float32).reshape(-1, 1), expected.outputs
    )
    assert answer["model"] == expected.model


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_sealed_error_surfaces_as_remote_error_with_its_code(
    page: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str], provider: str
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    url = f"{_origin(pages[0])}/fn/{provider}"
    # GIVEN a row one feature short, sealed in the page
    # WHEN the function answers
    answer = _call(page, url, "predict", [[ROWS[0][:29]]])
    # THEN the page holds a RemoteError with the protocol's code, marked as sealed, as the Python client sees it
    assert not answer["ok"]
    assert answer["remote"] and answer["name"] == "RemoteError"
    assert (answer["status"], answer["code"], answer["sealed"]) == (422, "invalid_payload", True)
    with Client(functions[provider]) as client, pytest.raises(RemoteError) as python_error:
        client.predict([ROWS[0][:29]])
    assert python_error.value.code == answer["code"]
    assert python_error.value.message == answer["message"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_images_travel_as_bytes_and_a_non_image_input_is_a_sealed_error(
    page: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str], provider: str
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    url = f"{_origin(pages[0])}/fn/{provider}"
    # GIVEN a PNG drawn on a canvas in the page, as a Blob, for the seed model's tabular input
    script = """async ({ url }) => {
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 8;
      canvas.getContext("2d").fillRect(2, 2, 4, 4);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      try {
        await new window.litefaas.Client(url).predictImages({ features: [blob, new Uint8Array(await blob.arrayBuffer())] });
        return { ok: true };
      } catch (e) { return { ok: false, name: e.name, code: e.code ?? null, status: e.status ?? null, sealed: e.sealed ?? null }; }
    }"""
    # WHEN the page sends it as BYTES [2]
    answer = _v2_or_skip(page.evaluate(script, {"url": url}), provider)
    # THEN the function opened it and refused it, sealed: that input is not an image
    assert not answer["ok"]
    assert (answer["name"], answer["status"], answer["code"], answer["sealed"]) == (
        "RemoteError",
        422,
        "invalid_payload",
        True,
    )


@pytest.mark.parametrize("key_index", [0, 1, 2], ids=["x25519-aes128", "x25519-chacha20", "x-wing"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_oblivious_client_in_the_browser_matches_the_python_client(
    page: Any,
    pages: tuple[_PageServer, _PageServer],
    functions: dict[str, str],
    provider: str,
    key_index: int,
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    # GIVEN a function with plaintext off, reached through the page's own origin
    url = f"{_origin(pages[0])}/fn/{provider}"
    page.evaluate("(rows) => { window.ROWS = rows; }", ROWS)
    # WHEN the page sends rows and tensors through Oblivious HTTP with one of its keys
    answer = dict(page.evaluate(OBLIVIOUS_CALL, {"url": url, "keyIndex": key_index}))
    expected = _python_answer(functions[provider], SUITES[0])
    # THEN both open to the Python client's outputs
    assert answer["ok"], answer
    assert answer["kem"] == (0x647A if key_index == 2 else 0x20)
    np.testing.assert_array_equal(np.asarray(answer["outputs"], dtype=np.float32), expected.outputs)
    np.testing.assert_array_equal(np.asarray(answer["tensors"], dtype=np.float32), expected.outputs.ravel())
    assert answer["model"] == expected.model


@pytest.mark.parametrize("provider", ["gcp", "azure"])
def test_oblivious_client_from_a_listed_origin_calls_the_gateway_directly(
    page: Any, functions: dict[str, str], provider: str
) -> None:
    # GIVEN a function listing the page's origin WHEN the page calls its gateway cross-origin
    page.evaluate("(rows) => { window.ROWS = rows; }", ROWS)
    answer = dict(page.evaluate(OBLIVIOUS_CALL, {"url": functions[provider], "keyIndex": 0}))
    # THEN the preflight lets the encapsulated request through and it answers
    assert answer["ok"], answer
    np.testing.assert_array_equal(
        np.asarray(answer["outputs"], dtype=np.float32),
        _python_answer(functions[provider], SUITES[0]).outputs,
    )


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_listed_origin_calls_the_function_directly(
    page: Any, functions: dict[str, str], provider: str, request: pytest.FixtureRequest
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    # GIVEN the page's origin in the function's LITEFAAS_CORS_ORIGINS, and the function on another origin
    # WHEN the page calls the function itself (a preflighted cross-origin POST)
    answer = _call(page, functions[provider], "predict", [ROWS[:2]])
    if not answer["ok"] and answer["network"]:
        request.applymarker(pytest.mark.xfail(reason=CORS_REASON, strict=False))
    # THEN the browser lets the answer through
    assert answer["ok"], answer
    assert len(answer["outputs"]) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_another_origin_is_refused(
    browser: Any, pages: tuple[_PageServer, _PageServer], functions: dict[str, str], provider: str
) -> None:
    if provider not in functions:
        pytest.skip(f"{provider}'s local host is not available (npm packages not installed)")
    # GIVEN a page on an origin the function does not list
    other = _open(browser, _origin(pages[1]))
    try:
        # WHEN it calls the function directly
        answer = _call(other, functions[provider], "predict", [ROWS[:1]])
    finally:
        other.close()
    if provider == "aws" and answer["ok"]:
        pytest.xfail(
            f"{CORS_REASON}: serverless-offline's own CORS layer answers every origin's preflight, so the"
            " function's refusal (which the cloud's OPTIONS routes reach) is not reached locally"
        )
    # THEN the browser refuses it, and the client says it is a network error
    assert not answer["ok"]
    assert answer["network"] and answer["name"] == "NetworkError", answer


def test_sealing_a_224x224_image_in_the_browser(page: Any, pages: tuple[_PageServer, _PageServer]) -> None:
    # GIVEN a 224×224×3 float32 tensor (602 KB) and each suite's key of a function
    url = f"{_origin(pages[0])}/fn/gcp"
    script = """async ({ url, runs }) => {
      const { Client, sealRequestV2 } = window.litefaas;
      const keys = await new Client(url).keys();
      const data = new Float32Array(224 * 224 * 3).map((_, i) => (i % 255) / 255);
      const tensors = { image: { datatype: "FP32", shape: [1, 224, 224, 3], data } };
      const result = {};
      for (const key of keys) {
        const times = [];
        let bytes = 0;
        for (let i = 0; i < runs + 2; i++) {
          const start = performance.now();
          const prepared = await sealRequestV2(tensors, key);
          const elapsed = performance.now() - start;
          if (i >= 2) times.push(elapsed);  // the first two warm the key import and the JIT
          bytes = prepared.body.length;
        }
        result[key.suite] = { times, bytes };
      }
      return result;
    }"""
    # WHEN the page seals it 20 times per suite (key import, framing, HPKE: everything before fetch)
    measured = page.evaluate(script, {"url": url, "runs": 20})
    summary = {
        suite: {
            "median_ms": round(statistics.median(m["times"]), 2),
            "min_ms": round(min(m["times"]), 2),
            "body_bytes": m["bytes"],
            "runs": len(m["times"]),
        }
        for suite, m in measured.items()
    }
    summary["browser"] = page.evaluate("navigator.userAgent")
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / "sealing_224.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    # THEN every suite seals it, carrying the raw 602,112 bytes plus a few hundred, well under a second
    for suite in SUITES:
        assert 224 * 224 * 3 * 4 < summary[suite]["body_bytes"] < 224 * 224 * 3 * 4 + 2048
        assert summary[suite]["median_ms"] < 1000, summary
