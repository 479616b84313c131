// ObliviousClient against a real local function (functions-framework serving handlers/gcp/main.py)
// with plaintext off and one key per suite: every key's answers equal the Python client's.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { ObliviousClient, ProtocolError, decodeBinaryHttpResponse, encodeBinaryHttpRequest, paddedSize, parseKeyConfigs } from "../src/index.js";
import { ROOT, SKIP_PYTHON, helper, startGcp } from "./python.js";

const SAMPLE = [join(ROOT, "litefaas", "data", "breast_cancer_rows.json"), join(ROOT, "tests", "fixtures", "breast_cancer_rows.json")].find(existsSync);
const ROWS = SAMPLE ? JSON.parse(readFileSync(SAMPLE, "utf8")).rows.slice(0, 5) : [];

describe("Binary HTTP and padding", () => {
  it("pads to the gateway's buckets", () => {
    assert.deepEqual([0, 1024, 1025, 5000, 65536, 65537].map(paddedSize), [1024, 1024, 2048, 8192, 65536, 131072]);
  });

  it("encodes a known-length request that starts with its control data", () => {
    const message = encodeBinaryHttpRequest({ method: "GET", scheme: "https", authority: "a", path: "/health", headers: [["Date", "x"]], content: new Uint8Array(0) }, 64);
    assert.equal(message.length, 64);
    assert.deepEqual([...message.subarray(0, 5)], [0, 3, 71, 69, 84]); // framing 0, "GET"
  });

  it("sends a field value without the spaces and tabs around it", () => {
    const message = encodeBinaryHttpRequest({ method: "GET", scheme: "", authority: "", path: "/", headers: [["X", " \ta b\t "]], content: new Uint8Array(0) });
    const section = [...message.subarray(9)]; // after framing 0, "GET", "", "", "/"
    assert.deepEqual(section.slice(0, 7), [6, 1, 120, 3, 97, 32, 98]); // one line: "x", "a b"
  });

  it("decodes known- and indeterminate-length responses and refuses a truncated length", () => {
    const known = Uint8Array.of(1, 0x40, 200, 0, 2, 111, 107, 0, 0, 0);
    assert.deepEqual(decodeBinaryHttpResponse(known), { status: 200, headers: [], content: Uint8Array.of(111, 107) });
    const indeterminate = Uint8Array.of(3, 0x41, 0x94, 0, 1, 120, 0, 0);
    assert.equal(decodeBinaryHttpResponse(indeterminate).status, 404);
    assert.throws(() => decodeBinaryHttpResponse(Uint8Array.of(1, 0x40)), ProtocolError);
  });
});

describe("ObliviousClient and a real local function (gcp)", { skip: SKIP_PYTHON, timeout: 180_000 }, () => {
  let server;
  let expected;
  let configs;

  before(async () => {
    const { private_json: privateJson } = await helper({ op: "keys" });
    server = await startGcp({ LITEFAAS_PRIVATE_KEYS: privateJson });
    expected = await helper({ op: "predict", base_url: server.baseUrl, rows: ROWS });
    configs = parseKeyConfigs(new Uint8Array(await (await fetch(`${server.baseUrl}/.well-known/ohttp-gateway`)).arrayBuffer()));
  });

  after(async () => {
    await server?.stop();
  });

  it("finds the three keys' configurations, X-Wing last", () => {
    assert.deepEqual(configs.map((c) => c.kemId), [0x20, 0x20, 0x647a]);
  });

  for (const index of [0, 1, 2]) {
    it(`key ${index}: version 1, version 2 and health give the Python client's answers`, async () => {
      const client = new ObliviousClient(server.baseUrl, { keyId: configs[index].keyId });
      assert.deepEqual(await client.predict(ROWS), expected);
      const tensors = await client.predictTensors({ features: { datatype: "FP32", shape: [ROWS.length, 30], data: Float32Array.from(ROWS.flat()) } });
      assert.deepEqual(Array.from(tensors.outputs.probability.data), expected.outputs.flat());
      assert.equal((await client.health()).status, "ok");
    });
  }

  it("sends its trace context inside the encapsulated request, never outside", async () => {
    const given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const outer = [];
    const recording = (url, init) => {
      const body = init?.body;
      assert.ok(body === undefined || body instanceof Uint8Array, "an outer body is bytes");
      outer.push({ url: String(url), headers: { ...(init?.headers ?? {}) }, body: body ?? null });
      return fetch(url, init);
    };
    const client = new ObliviousClient(server.baseUrl, { keyId: configs[0].keyId, traceparent: given, fetch: recording });
    assert.deepEqual(await client.predict(ROWS), expected);
    // every outer request goes to the gateway with no trace header, and no body carries the trace in clear
    assert.ok(outer.length >= 1 && outer.every((seen) => seen.url === `${server.baseUrl}/.well-known/ohttp-gateway`));
    assert.ok(outer.every((seen) => !Object.keys(seen.headers).some((name) => name.toLowerCase() === "traceparent")));
    const needle = new TextEncoder().encode("0af7651916cd43dd8448eb211c80319c");
    const holds = (bytes) => bytes.some((_, i) => needle.every((byte, j) => bytes[i + j] === byte));
    assert.ok(outer.every((seen) => seen.body === null || !holds(seen.body)));
    // the gateway's line for the inner request is in the caller's trace, under the caller's span
    const innerLines = () =>
      server
        .log()
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line))
        .filter((line) => line.event === "request" && line.inner_route === "predict" && line.trace_id === given.slice(3, 35));
    for (let waited = 0; innerLines().length === 0 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    const inner = innerLines();
    assert.equal(inner.length, 1);
    assert.equal(inner[0].parent_span_id, given.slice(36, 52));
  });

  it("a pinned key configuration of another gateway is a ProtocolError, not an answer", async () => {
    // the gateway's own key id with another X25519 public key: its request does not decrypt (a bare 400)
    const other = new Uint8Array(2 + 3 + 32 + 2 + 4);
    other.set([0, 41, configs[0].keyId, 0, 0x20], 0);
    other.set(new Uint8Array(configs[1].publicKey), 5);
    other.set([0, 4, 0, 1, 0, 1], 37);
    await assert.rejects(new ObliviousClient(server.baseUrl, { keyConfig: other }).health(), ProtocolError);
    const zero = other.slice();
    zero.fill(0, 5, 37);
    await assert.rejects(new ObliviousClient(server.baseUrl, { keyConfig: zero }).health(), /cannot encapsulate to key/);
  });
});
