// Unit tests: base64url, framing, tensors, headers, answers; no network, no Python.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  Client,
  ClientError,
  NetworkError,
  ProtocolError,
  RemoteError,
  SUITES,
  b64uDecode,
  b64uEncode,
  decodeFrame,
  decodeTensors,
  encodeFrame,
  encodeTensor,
  frameRequest,
  headerV2,
  imageTensors,
  newTraceparent,
  parseKeyset,
  readResponseV1,
  readResponseV2,
  requestInfoV1,
  requestInfoV2,
  responseAad,
} from "../src/index.js";

const bytes = (...values) => new Uint8Array(values);
const text = (s) => new TextEncoder().encode(s);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe("b64u", () => {
  it("encodes without padding, like Node's base64url, for every length", () => {
    for (let n = 0; n < 40; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 251) & 0xff);
      const encoded = b64uEncode(data);
      assert.equal(encoded, Buffer.from(data).toString("base64url"));
      assert.ok(!encoded.includes("="));
      assert.deepEqual(b64uDecode(encoded), data);
    }
  });

  it("decodes with or without padding", () => {
    assert.deepEqual(b64uDecode("-_8"), bytes(0xfb, 0xff));
    assert.deepEqual(b64uDecode("-_8="), bytes(0xfb, 0xff));
    assert.deepEqual(b64uDecode("AA=="), bytes(0));
    assert.deepEqual(b64uDecode(""), bytes());
  });

  it("rejects other characters, impossible lengths and non-canonical trailing bits", () => {
    for (const bad of ["+/8", "ab/c", "A", "AAAAA", "a b", "AB=", "AB===", "AB\n", "é", "AB=C"]) {
      assert.throws(() => b64uDecode(bad), TypeError, bad);
    }
    assert.throws(() => b64uDecode("AB"), /canonical/); // 'B' leaves a non-zero unused bit
    assert.deepEqual(b64uDecode("AA"), bytes(0));
  });
});

describe("framing", () => {
  it("writes the header length as 4 bytes big-endian, then the JSON header, then the chunks", () => {
    const frame = encodeFrame({ a: 1 }, [bytes(9, 8), bytes(7)]);
    assert.deepEqual(frame.subarray(0, 4), bytes(0, 0, 0, 7));
    assert.equal(new TextDecoder().decode(frame.subarray(4, 11)), '{"a":1}');
    assert.deepEqual(frame.subarray(11), bytes(9, 8, 7));
    const { header, body } = decodeFrame(frame);
    assert.deepEqual(header, { a: 1 });
    assert.deepEqual(body, bytes(9, 8, 7));
  });

  it("refuses a frame whose header runs past its end, is not JSON or not an object", () => {
    assert.throws(() => decodeFrame(bytes(0, 0)), ProtocolError);
    assert.throws(() => decodeFrame(concat(bytes(0, 0, 0, 9), text("{}"))), /past its end/);
    assert.throws(() => decodeFrame(concat(bytes(0, 0, 0, 2), text("{x"))), /not UTF-8 JSON/);
    assert.throws(() => decodeFrame(concat(bytes(0, 0, 0, 2), text("[]"))), /not a JSON object/);
  });

  it("lays tensors out little-endian, row-major, without copying a typed array", () => {
    const data = new Float32Array([1, -2, 0.5, 3]);
    const [chunk] = encodeTensor({ datatype: "FP32", shape: [2, 2], data });
    assert.equal(chunk.buffer, data.buffer);
    assert.deepEqual(chunk.subarray(0, 4), bytes(0x00, 0x00, 0x80, 0x3f)); // 1.0f
    assert.deepEqual(encodeTensor({ datatype: "INT64", shape: [1], data: [-2] })[0], bytes(0xfe, ...Array(7).fill(0xff)));
    assert.deepEqual(encodeTensor({ datatype: "UINT16", shape: [2], data: [1, 0x0102] })[0], bytes(1, 0, 2, 1));
    assert.deepEqual(encodeTensor({ datatype: "BOOL", shape: [3], data: [true, false, 1] })[0], bytes(1, 0, 1));
    assert.deepEqual(encodeTensor({ datatype: "FP16", shape: [1], data: new Uint16Array([0x3c00]) })[0], bytes(0x00, 0x3c));
    assert.deepEqual(encodeTensor({ datatype: "FP64", shape: [1], data: new ArrayBuffer(8) })[0], new Uint8Array(8));
  });

  it("honours a typed array's offset into a larger buffer", () => {
    const whole = new Int32Array([1, 2, 3, 4]);
    const [chunk] = encodeTensor({ datatype: "INT32", shape: [2], data: whole.subarray(1, 3) });
    assert.deepEqual(chunk, bytes(2, 0, 0, 0, 3, 0, 0, 0));
  });

  it("prefixes each BYTES element with its 4-byte little-endian length", () => {
    const chunks = encodeTensor({ datatype: "BYTES", shape: [2], data: [bytes(0xff, 0xd8, 0xff), new ArrayBuffer(0)] });
    assert.deepEqual(concat(...chunks), bytes(3, 0, 0, 0, 0xff, 0xd8, 0xff, 0, 0, 0, 0));
  });

  it("refuses wrong element counts, kinds, datatypes and shapes", () => {
    assert.throws(() => encodeTensor({ datatype: "FP32", shape: [2, 3], data: new Float32Array(5) }), /holds 6 elements, data has 5/);
    assert.throws(() => encodeTensor({ datatype: "FP32", shape: [1], data: new Float64Array(1) }), /must be a Float32Array/);
    assert.throws(() => encodeTensor({ datatype: "FP33", shape: [1], data: [1] }), /unknown datatype/);
    assert.throws(() => encodeTensor({ datatype: "FP32", shape: [-1], data: [] }), /non-negative/);
    assert.throws(() => encodeTensor({ datatype: "FP32", shape: [1.5], data: [] }), /non-negative/);
    assert.throws(() => encodeTensor({ datatype: "BYTES", shape: [2], data: [bytes(1)] }), /holds 2/);
    assert.throws(() => encodeTensor({ datatype: "FP32", shape: [1], data: "1" }), ClientError);
  });

  it("reads every datatype back, aligned, and refuses missing or extra bytes", () => {
    const specs = [
      { name: "a", datatype: "FP32", shape: [1, 2] },
      { name: "b", datatype: "UINT8", shape: [3] },
      { name: "c", datatype: "INT64", shape: [1] },
      { name: "d", datatype: "BYTES", shape: [1] },
    ];
    const body = concat(
      ...encodeTensor({ datatype: "FP32", shape: [1, 2], data: new Float32Array([0.25, -1]) }),
      bytes(1, 2, 3), // the INT64 after it starts at an odd offset
      ...encodeTensor({ datatype: "INT64", shape: [1], data: new BigInt64Array([-5n]) }),
      ...encodeTensor({ datatype: "BYTES", shape: [1], data: [text("hi")] }),
    );
    const tensors = decodeTensors(specs, body);
    assert.deepEqual(tensors.a, { datatype: "FP32", shape: [1, 2], data: new Float32Array([0.25, -1]) });
    assert.deepEqual(tensors.b.data, bytes(1, 2, 3));
    assert.deepEqual(tensors.c.data, new BigInt64Array([-5n]));
    assert.deepEqual(tensors.d.data, [text("hi")]);
    assert.throws(() => decodeTensors(specs, body.subarray(0, body.length - 1)), /cut short/);
    assert.throws(() => decodeTensors(specs.slice(0, 1), body.subarray(0, 9)), /after its last tensor/);
    assert.throws(() => decodeTensors(specs.slice(0, 1), body.subarray(0, 7)), /fewer tensor bytes/);
    assert.throws(() => decodeTensors([{ name: "x", datatype: "F", shape: [1] }], body), /unknown output datatype/);
  });

  it("frames a request: inputs in order, outputs when asked, secrets when sealed", () => {
    const frame = frameRequest(
      { x: { datatype: "FP32", shape: [1, 2], data: new Float32Array([1, 2]) }, y: { datatype: "UINT8", shape: [1], data: bytes(7) } },
      { outputs: ["o"], responseKey: new Uint8Array(16), id: new Uint8Array(16), ts: 1764000000 },
    );
    const { header, body } = decodeFrame(frame);
    assert.deepEqual(header, {
      inputs: [
        { name: "x", datatype: "FP32", shape: [1, 2] },
        { name: "y", datatype: "UINT8", shape: [1] },
      ],
      outputs: ["o"],
      response_key: "AAAAAAAAAAAAAAAAAAAAAA",
      ts: 1764000000,
      id: "AAAAAAAAAAAAAAAAAAAAAA",
    });
    assert.equal(body.length, 9);
    assert.deepEqual(Object.keys(decodeFrame(frameRequest({ x: { datatype: "UINT8", shape: [0], data: [] } })).header), ["inputs"]);
    assert.throws(() => frameRequest({}), ClientError);
    assert.throws(() => frameRequest({ x: { datatype: "UINT8", shape: [0], data: [] } }, { outputs: "o" }), /list of output names/);
  });

  it("turns images into BYTES tensors of shape [N]", async () => {
    const tensors = await imageTensors({ image: [new Blob([bytes(1, 2)]), bytes(3).buffer, bytes(4, 5, 6)] });
    assert.deepEqual(tensors.image.shape, [3]);
    assert.equal(tensors.image.datatype, "BYTES");
    assert.deepEqual(tensors.image.data, [bytes(1, 2), bytes(3), bytes(4, 5, 6)]);
    await assert.rejects(imageTensors({ image: [] }), ClientError);
  });
});

describe("headers, info and associated data", () => {
  it("writes 0x02 L kid kem kdf aead with each suite's RFC 9180 ids", () => {
    assert.deepEqual(headerV2("k0", "x25519-sha256-aes128gcm"), concat(bytes(2, 2), text("k0"), bytes(0, 0x20, 0, 1, 0, 1)));
    assert.deepEqual(headerV2("a.b-c_9", "x25519-sha256-chacha20poly1305").subarray(9), bytes(0, 0x20, 0, 1, 0, 3));
    assert.deepEqual(headerV2("k", "mlkem768x25519-sha256-aes256gcm").subarray(3), bytes(0x64, 0x7a, 0, 1, 0, 2));
    assert.equal(headerV2("x".repeat(64), "x25519-sha256-aes128gcm")[1], 64);
    assert.throws(() => headerV2("x".repeat(65), "x25519-sha256-aes128gcm"), ClientError);
    assert.throws(() => headerV2("a/b", "x25519-sha256-aes128gcm"), ClientError);
    assert.throws(() => headerV2("k", "nope"), /unknown suite/);
  });

  it("binds requests and answers as PROTOCOL.md says", () => {
    assert.deepEqual(requestInfoV1("k0", "x25519-sha256-aes128gcm"), text("litefaas/1 request\0k0\0x25519-sha256-aes128gcm"));
    assert.deepEqual(requestInfoV2(bytes(2, 1, 0x6b)), concat(text("litefaas/2 request\0"), bytes(2, 1, 0x6b)));
    assert.deepEqual(responseAad(1, bytes(1, 2)), concat(text("litefaas/1 response\0"), bytes(1, 2)));
    assert.deepEqual(responseAad(2, bytes(1, 2)), concat(text("litefaas/2 response\0"), bytes(1, 2)));
    assert.deepEqual(Object.keys(SUITES).sort(), [
      "mlkem768x25519-sha256-aes256gcm",
      "x25519-sha256-aes128gcm",
      "x25519-sha256-chacha20poly1305",
    ]);
  });
});

describe("key sets", () => {
  it("keeps the keys of known suites, in order, and refuses a malformed set", () => {
    const keys = parseKeyset({
      keys: [
        { kid: "future", suite: "x448-sha512-aes256gcm", public_key: "AA" },
        { kid: "k0", suite: "x25519-sha256-aes128gcm", public_key: b64uEncode(new Uint8Array(32)) },
      ],
    });
    assert.deepEqual(keys.map((k) => k.kid), ["k0"]);
    assert.equal(keys[0].publicKey.length, 32);
    assert.throws(() => parseKeyset([]), ProtocolError);
    assert.throws(() => parseKeyset({ keys: [{ kid: "k", suite: "x448", public_key: "AA" }] }), /no key of a suite/);
    assert.throws(() => parseKeyset({ keys: [{ kid: "k/0", suite: "x25519-sha256-aes128gcm", public_key: "AA" }] }), /valid kid/);
    assert.throws(() => parseKeyset({ keys: [{ kid: "k", suite: "x25519-sha256-aes128gcm", public_key: "A+" }] }), /base64url/);
  });
});

async function sealAnswer(version, key, id, plaintext) {
  const nonce = crypto.getRandomValues(new Uint8Array(12));
  const aesKey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: responseAad(version, id) }, aesKey, plaintext));
  if (version === 2) return concat(bytes(2), nonce, ct);
  return text(JSON.stringify({ v: 1, nonce: b64uEncode(nonce), ct: b64uEncode(ct) }));
}

describe("answers", () => {
  const prepared = () => ({ body: bytes(), contentType: "", responseKey: crypto.getRandomValues(new Uint8Array(16)), id: crypto.getRandomValues(new Uint8Array(16)) });
  const model = { name: "m", version: "1", sha256: "ab" };

  it("opens a sealed version-1 answer and its sealed errors", async () => {
    const p = prepared();
    const ok = await sealAnswer(1, p.responseKey, p.id, text(JSON.stringify({ outputs: [[0.5]], model })));
    assert.deepEqual(await readResponseV1(200, "application/litefaas+json", ok, p), { outputs: [[0.5]], model });
    const error = await sealAnswer(1, p.responseKey, p.id, text('{"error":{"code":"invalid_payload","message":"row 0: bad"}}'));
    await assert.rejects(readResponseV1(422, "application/litefaas+json", error, p), (e) => {
      assert.ok(e instanceof RemoteError);
      assert.deepEqual([e.status, e.code, e.message, e.sealed], [422, "invalid_payload", "row 0: bad", true]);
      return true;
    });
  });

  it("surfaces plaintext errors, refuses answers it cannot trust", async () => {
    const p = prepared();
    await assert.rejects(
      readResponseV1(400, "application/json", text('{"error":{"code":"decryption_failed","message":"no"}}'), p),
      (e) => e instanceof RemoteError && e.code === "decryption_failed" && e.sealed === false && e.status === 400,
    );
    await assert.rejects(readResponseV1(200, "application/json", text('{"outputs":[[1]],"model":{}}'), p), /answered in plaintext/);
    await assert.rejects(readResponseV1(200, "text/html", text("<html>"), p), /not a litefaas answer/);
    await assert.rejects(readResponseV1(502, "application/json", text("{}"), p), /not a litefaas error/);
    const other = await sealAnswer(1, crypto.getRandomValues(new Uint8Array(16)), p.id, text("{}"));
    await assert.rejects(readResponseV1(200, "application/litefaas+json", other, p), /does not decrypt/);
    const wrongId = await sealAnswer(1, p.responseKey, new Uint8Array(16), text("{}"));
    await assert.rejects(readResponseV1(200, "application/litefaas+json", wrongId, p), /does not decrypt/);
  });

  it("opens a sealed version-2 answer into typed outputs", async () => {
    const p = prepared();
    const message = encodeFrame(
      { outputs: [{ name: "probability", datatype: "FP32", shape: [2, 1] }], model },
      encodeTensor({ datatype: "FP32", shape: [2, 1], data: new Float32Array([0.25, 0.75]) }),
    );
    const answer = await readResponseV2(200, "application/litefaas", await sealAnswer(2, p.responseKey, p.id, message), p);
    assert.deepEqual(answer, { outputs: { probability: { datatype: "FP32", shape: [2, 1], data: new Float32Array([0.25, 0.75]) } }, model });
    const error = encodeFrame({ error: { code: "invalid_payload", message: "input x: wrong shape" } });
    await assert.rejects(
      readResponseV2(422, "application/litefaas", await sealAnswer(2, p.responseKey, p.id, error), p),
      (e) => e instanceof RemoteError && e.code === "invalid_payload" && e.sealed && e.status === 422,
    );
    await assert.rejects(
      readResponseV2(415, "application/json", text('{"error":{"code":"unsupported_media_type","message":"x"}}'), p),
      (e) => e instanceof RemoteError && e.code === "unsupported_media_type" && !e.sealed,
    );
    const v1 = await sealAnswer(1, p.responseKey, p.id, message);
    await assert.rejects(readResponseV2(200, "application/litefaas", v1, p), ProtocolError);
  });
});

describe("Client", () => {
  it("maps fetch failures and timeouts to NetworkError", async () => {
    const failing = new Client("http://127.0.0.1:9/", { fetch: async () => { throw new TypeError("fetch failed"); } });
    await assert.rejects(failing.keys(), (e) => e instanceof NetworkError && /GET http:\/\/127.0.0.1:9\/keys: fetch failed/.test(e.message));
    const hanging = new Client("http://x", {
      timeoutMs: 20,
      fetch: (_url, init) => new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))),
    });
    await assert.rejects(hanging.health(), (e) => e instanceof NetworkError && /within 20 ms/.test(e.message));
  });

  it("names its errors (the names survive the bundle's minification)", async () => {
    const { RemoteError: Bundled, NetworkError: BundledNetwork } = await import("../dist/litefaas.js").catch(() => ({}));
    for (const [Kind, name] of [[RemoteError, "RemoteError"], [Bundled, "RemoteError"], [NetworkError, "NetworkError"], [BundledNetwork, "NetworkError"]]) {
      if (!Kind) continue; // dist/ not built yet
      const error = Kind === RemoteError || Kind === Bundled ? new Kind(422, "invalid_payload", "row 0", true) : new Kind("down");
      assert.equal(error.name, name);
      assert.ok(error instanceof Error);
    }
    assert.equal(new RemoteError(422, "invalid_payload", "row 0", true).message, "row 0");
  });

  it("checks its options", () => {
    assert.throws(() => new Client("http://x", { suite: "nope", fetch }), /unknown suite/);
    assert.throws(() => new Client("http://x", { responseKeyBytes: 24, fetch }), /16 or 32/);
    assert.throws(() => new Client("", { fetch }), ClientError);
  });

  it("sends plaintext version 2 as application/vnd.litefaas.tensors and reads the framed answer", async () => {
    let seen;
    const fetchStub = async (url, init) => {
      seen = { url, init };
      const body = encodeFrame(
        { outputs: [{ name: "y", datatype: "INT32", shape: [1] }], model: { name: "m" } },
        encodeTensor({ datatype: "INT32", shape: [1], data: [42] }),
      );
      return new Response(body, { status: 200, headers: { "content-type": "application/vnd.litefaas.tensors" } });
    };
    const client = new Client("http://fn/api/", { fetch: fetchStub, plaintext: true });
    const result = await client.predictTensors({ x: { datatype: "UINT8", shape: [2], data: bytes(1, 2) } });
    assert.equal(seen.url, "http://fn/api/predict");
    assert.equal(seen.init.headers["content-type"], "application/vnd.litefaas.tensors");
    assert.deepEqual(decodeFrame(seen.init.body).header, { inputs: [{ name: "x", datatype: "UINT8", shape: [2] }] });
    assert.deepEqual(result.outputs.y.data, new Int32Array([42]));
  });

  it("sends a W3C traceparent with every request: a new trace each, the option's, or its function's", async () => {
    const sent = [];
    const fetchStub = async (_url, init) => {
      sent.push(init.headers.traceparent);
      return new Response('{"status":"ok"}', { status: 200, headers: { "content-type": "application/json" } });
    };
    const shape = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;
    const fresh = new Client("http://fn", { fetch: fetchStub });
    await fresh.health();
    await fresh.health();
    assert.match(sent[0], shape);
    assert.notEqual(sent[0].slice(3, 35), sent[1].slice(3, 35));
    const given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await new Client("http://fn", { fetch: fetchStub, traceparent: given }).health();
    assert.equal(sent[2], given);
    let calls = 0;
    const fromSpan = new Client("http://fn", { fetch: fetchStub, traceparent: () => (calls++ ? "not a traceparent" : given) });
    await fromSpan.health();
    await fromSpan.health();
    assert.equal(sent[3], given);
    assert.match(sent[4], shape); // an invalid answer is replaced, never sent
    assert.throws(() => new Client("http://fn", { fetch: fetchStub, traceparent: "00-zz" }), /traceparent/);
    assert.match(newTraceparent(), shape);
  });

  it("refuses NaN in version-1 rows before sending anything", async () => {
    const client = new Client("http://fn", { fetch: async () => assert.fail("nothing should be sent"), plaintext: true });
    await assert.rejects(client.predict([[1, NaN]]), /finite numbers/);
  });
});
