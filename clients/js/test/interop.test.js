// Interoperability with the Python side, for all three suites and both protocol versions: requests
// sealed here are opened by core.crypto / cryptography's HPKE, answers sealed there are opened here.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { RemoteError, b64uDecode, b64uEncode, parseKeyset, readResponseV1, readResponseV2, sealRequestV1, sealRequestV2 } from "../src/index.js";
import { SKIP_PYTHON, helper } from "./python.js";

const SUITE_NAMES = ["x25519-sha256-aes128gcm", "x25519-sha256-chacha20poly1305", "mlkem768x25519-sha256-aes256gcm"];
const MODEL = { name: "interop", version: "1", sha256: "00" };

describe("interop with the Python side", { skip: SKIP_PYTHON }, () => {
  let keys;
  let privateJson;

  before(async () => {
    const made = await helper({ op: "keys" });
    privateJson = made.private_json;
    keys = parseKeyset(made.keyset);
  });

  const roundTrip = async (prepared, answer) => {
    const opened = await helper({
      op: "open",
      private_json: privateJson,
      content_type: prepared.contentType,
      body: b64uEncode(prepared.body),
      answer,
    });
    return { opened, body: b64uDecode(opened.body), contentType: opened.content_type };
  };

  for (const [index, suite] of SUITE_NAMES.entries()) {
    describe(suite, () => {
      const key = () => {
        const found = keys[index];
        assert.equal(found.suite, suite);
        return found;
      };

      it("version 1: Python opens the request, the client opens its answer", async () => {
        const rows = [
          [0.5, -1.25, 3e-8],
          [1e6, 0, 2],
        ];
        const prepared = await sealRequestV1(rows, key(), { responseKeyBytes: index === 2 ? 32 : 16 });
        const { opened, body, contentType } = await roundTrip(prepared, { outputs: [[0.25], [0.75]], model: MODEL });
        assert.deepEqual(opened.request.inputs, rows);
        assert.deepEqual(b64uDecode(opened.request.response_key), prepared.responseKey);
        assert.deepEqual(b64uDecode(opened.request.id), prepared.id);
        assert.ok(Math.abs(opened.request.ts - Date.now() / 1000) < 5);
        assert.deepEqual(Object.keys(opened.request).sort(), ["id", "inputs", "response_key", "ts"]);
        assert.deepEqual(await readResponseV1(200, contentType, body, prepared), { outputs: [[0.25], [0.75]], model: MODEL });
      });

      it("version 1: a sealed error surfaces as RemoteError", async () => {
        const prepared = await sealRequestV1({ features: [[1, 2]] }, key());
        const { opened, body, contentType } = await roundTrip(prepared, { error: { code: "invalid_payload", message: "row 0: expected 30 features, got 2" } });
        assert.deepEqual(opened.request.inputs, { features: [[1, 2]] });
        await assert.rejects(readResponseV1(422, contentType, body, prepared), (error) => {
          assert.ok(error instanceof RemoteError);
          assert.deepEqual([error.status, error.code, error.sealed], [422, "invalid_payload", true]);
          assert.equal(error.message, "row 0: expected 30 features, got 2");
          return true;
        });
      });

      it("version 2: Python opens the framed tensors, the client reads typed outputs", async () => {
        const image = new Float32Array(2 * 4 * 4 * 3).map((_, i) => i / 7 - 3);
        const tensors = {
          image: { datatype: "FP32", shape: [2, 4, 4, 3], data: image },
          ids: { datatype: "INT64", shape: [2], data: new BigInt64Array([-1n, 2n ** 40n]) },
          mask: { datatype: "UINT8", shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) },
          files: { datatype: "BYTES", shape: [2], data: [new Uint8Array([0xff, 0xd8, 0xff]), new Uint8Array(0)] },
        };
        const prepared = await sealRequestV2(tensors, key(), { outputs: ["scores", "label"], responseKeyBytes: index === 1 ? 32 : 16 });
        assert.deepEqual(prepared.body.subarray(0, 4), new Uint8Array([2, 2, 0x6b, 0x30 + index]));
        const answer = {
          outputs: [
            { name: "scores", datatype: "FP32", shape: [2, 3], values: [[0.5, 0.25, 0.125], [1, -2, 3.5]] },
            { name: "label", datatype: "INT32", shape: [2], values: [7, -9] },
          ],
          model: MODEL,
        };
        const { opened, body, contentType } = await roundTrip(prepared, answer);
        assert.deepEqual(opened.request.inputs, [
          { name: "image", datatype: "FP32", shape: [2, 4, 4, 3] },
          { name: "ids", datatype: "INT64", shape: [2] },
          { name: "mask", datatype: "UINT8", shape: [2, 2] },
          { name: "files", datatype: "BYTES", shape: [2] },
        ]);
        assert.deepEqual(opened.request.outputs, ["scores", "label"]);
        assert.deepEqual(Object.keys(opened.request).sort(), ["id", "inputs", "outputs", "response_key", "ts"]);
        assert.deepEqual(opened.tensors.image.values.flat(3), Array.from(image));
        assert.deepEqual(opened.tensors.ids.values, [-1, 2 ** 40]);
        assert.deepEqual(opened.tensors.mask.values, [[0, 1], [254, 255]]);
        assert.deepEqual(opened.tensors.files.values, ["_9j_", ""]);
        const result = await readResponseV2(200, contentType, body, prepared);
        assert.deepEqual(result.model, MODEL);
        assert.deepEqual(result.outputs.scores, { datatype: "FP32", shape: [2, 3], data: new Float32Array([0.5, 0.25, 0.125, 1, -2, 3.5]) });
        assert.deepEqual(result.outputs.label, { datatype: "INT32", shape: [2], data: new Int32Array([7, -9]) });
        assert.deepEqual(Object.keys(result.outputs), ["scores", "label"]);
      });

      it("version 2: a sealed error surfaces as RemoteError", async () => {
        const prepared = await sealRequestV2({ x: { datatype: "FP32", shape: [1, 1], data: new Float32Array([1]) } }, key());
        const { body, contentType } = await roundTrip(prepared, { error: { code: "invalid_payload", message: "input x: expected FP32 [N, 30]" } });
        await assert.rejects(
          readResponseV2(422, contentType, body, prepared),
          (error) => error instanceof RemoteError && error.code === "invalid_payload" && error.sealed && error.status === 422,
        );
      });
    });
  }

  it("a request sealed to one key does not open under another kid's suite", async () => {
    const prepared = await sealRequestV2({ x: { datatype: "UINT8", shape: [1], data: new Uint8Array([1]) } }, { ...keys[0], kid: "k1" });
    await assert.rejects(helper({ op: "open", private_json: privateJson, content_type: prepared.contentType, body: b64uEncode(prepared.body), answer: {} }));
  });
});
