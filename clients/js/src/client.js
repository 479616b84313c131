/**
 * Call a litefaas function from a browser or Node ≥ 20: each request sealed with HPKE to the
 * function's public key, each answer opened with the request's own AES-GCM response key.
 * Version 1 (JSON numbers) for small tabular inputs, version 2 (binary tensors) for the rest.
 * @module
 */

import { b64uDecode, b64uEncode } from "./b64u.js";
import { ClientError, NetworkError, ProtocolError, RemoteError } from "./errors.js";
import { decodeFrame, decodeTensors, encodeFrame, encodeTensor, toBytes } from "./framing.js";
import { DEFAULT_SUITE, SUITES, hpkeSeal, importPublicKey } from "./suites.js";

/** @typedef {import("./framing.js").Tensor} Tensor */
/** @typedef {{ kid: string, suite: string, publicKey: Uint8Array }} KeyInfo */
/** @typedef {{ name?: string, version?: string, sha256?: string, [field: string]: unknown }} ModelInfo */
/**
 * @typedef {object} ClientOptions
 * @property {typeof fetch} [fetch] the fetch to use (default: the global one)
 * @property {number} [timeoutMs] per request, the answer's body included (default 30,000)
 * @property {string} [suite] seal to the first key of this suite (default: the function's current key)
 * @property {string} [kid] seal to the key with this kid
 * @property {16 | 32} [responseKeyBytes] AES-128-GCM (16, default) or AES-256-GCM (32) answers
 * @property {{ keys: Array<{ kid: string, suite: string, public_key: string }> }} [keyset]
 *   a key set known in advance (`GET /keys`'s body): no request for it
 * @property {boolean} [plaintext] send in clear (only where the function allows it; development)
 * @property {string | (() => string | undefined)} [traceparent] the W3C trace context each request
 *   carries (a function is asked once per request, e.g. for the current OpenTelemetry span's);
 *   default: a new trace per request. Through Oblivious HTTP it travels inside the encapsulation.
 */

export const ENCRYPTED_TYPE = "application/litefaas+json";
export const PLAINTEXT_TYPE = "application/json";
export const ENCRYPTED_TYPE_V2 = "application/litefaas";
export const PLAINTEXT_TYPE_V2 = "application/vnd.litefaas.tensors";
export const REQUEST_ID_BYTES = 16;
export const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_MESSAGE_CHARS = 500;
const NONCE_BYTES = 12;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** @param {...Uint8Array} parts @returns {Uint8Array} */
export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** @param {number} n @returns {Uint8Array} */
const hex = (/** @type {Uint8Array} */ bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * A new W3C `traceparent` (version 00, sampled): a random trace id and span id.
 * @returns {string}
 */
export function newTraceparent() {
  let trace = "";
  let span = "";
  while (/^0*$/.test(trace)) trace = hex(randomBytes(16));
  while (/^0*$/.test(span)) span = hex(randomBytes(8));
  return `00-${trace}-${span}-01`;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** HPKE `info` of a version-1 request. @param {string} kid @param {string} suite */
export function requestInfoV1(kid, suite) {
  return encoder.encode(`litefaas/1 request\u0000${kid}\u0000${suite}`);
}

/**
 * The version-2 binary header `0x02 L kid kem_id kdf_id aead_id`.
 * @param {string} kid
 * @param {string} suite
 * @returns {Uint8Array}
 */
export function headerV2(kid, suite) {
  if (!KID_PATTERN.test(kid)) throw new ClientError("kid must be 1-64 characters of [A-Za-z0-9._-]");
  const ids = SUITES[suite];
  if (!ids) throw new ClientError(`unknown suite ${JSON.stringify(suite)}`);
  const out = new Uint8Array(2 + kid.length + 6);
  out[0] = 2;
  out[1] = kid.length;
  out.set(encoder.encode(kid), 2);
  const view = new DataView(out.buffer);
  view.setUint16(2 + kid.length, ids.kem, false);
  view.setUint16(4 + kid.length, ids.kdf, false);
  view.setUint16(6 + kid.length, ids.aead, false);
  return out;
}

/** HPKE `info` of a version-2 request. @param {Uint8Array} header */
export function requestInfoV2(header) {
  return concatBytes(encoder.encode("litefaas/2 request\u0000"), header);
}

/** AES-GCM associated data of an answer. @param {1 | 2} version @param {Uint8Array} id */
export function responseAad(version, id) {
  return concatBytes(encoder.encode(`litefaas/${version} response\u0000`), id);
}

/**
 * Parse `GET /keys`'s body into the keys of the suites this client has, in order.
 * @param {unknown} document
 * @returns {KeyInfo[]}
 */
export function parseKeyset(document) {
  const items = document && typeof document === "object" ? /** @type {any} */ (document).keys : undefined;
  if (!Array.isArray(items)) throw new ProtocolError('a key set must be an object {"keys": [...]}');
  const keys = items.map((entry) => {
    if (!entry || typeof entry !== "object") throw new ProtocolError("a key set entry must be an object");
    const { kid, suite, public_key: publicKey } = entry;
    if (typeof kid !== "string" || !KID_PATTERN.test(kid)) throw new ProtocolError("a key set entry has no valid kid");
    if (typeof suite !== "string" || typeof publicKey !== "string") {
      throw new ProtocolError(`key ${JSON.stringify(kid)}: suite and public_key must be strings`);
    }
    try {
      return { kid, suite, publicKey: b64uDecode(publicKey) };
    } catch {
      throw new ProtocolError(`key ${JSON.stringify(kid)}: public_key is not base64url`);
    }
  });
  const usable = keys.filter((key) => Object.hasOwn(SUITES, key.suite));
  if (!usable.length) throw new ProtocolError("the key set has no key of a suite this client supports");
  return usable;
}

/**
 * Version 1's inputs as JSON text: typed arrays become lists; NaN and Infinity are refused.
 * @param {Record<string, unknown>} request
 * @returns {string}
 */
function dumpRequest(request) {
  const inputs = request.inputs;
  if (!inputs || typeof inputs !== "object") {
    throw new ClientError("inputs must be a list of rows, or an object of input name to batch");
  }
  return JSON.stringify(request, (_key, value) => {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new ClientError("inputs must be finite numbers (NaN and Infinity have no JSON form)");
    }
    if (typeof value === "bigint") return Number(value);
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
      return Array.from(/** @type {ArrayLike<number>} */ (/** @type {unknown} */ (value)));
    }
    return value;
  });
}

/** @param {string | null} contentType */
function mediaType(contentType) {
  return (contentType ?? "").split(";", 1)[0].trim().toLowerCase();
}

/**
 * The error a protocol error document carries, or a ProtocolError when it is not one.
 * @param {number} status
 * @param {unknown} document
 * @param {boolean} sealed
 */
function errorFrom(status, document, sealed) {
  const error = document && typeof document === "object" ? /** @type {any} */ (document).error : undefined;
  if (!error || typeof error !== "object" || status < 400) {
    return new ProtocolError(`HTTP ${status} answer is not a litefaas error`, status);
  }
  const { code, message } = error;
  if (typeof code !== "string" || typeof message !== "string") {
    return new ProtocolError(`HTTP ${status} error has no code and message`, status);
  }
  return new RemoteError(status, code, message.slice(0, MAX_MESSAGE_CHARS), sealed);
}

/** @param {Uint8Array} bytes @param {string} what @param {number} status @returns {Record<string, any>} */
function jsonObject(bytes, what, status) {
  let document;
  try {
    document = JSON.parse(decoder.decode(bytes));
  } catch {
    document = null;
  }
  if (!document || typeof document !== "object" || Array.isArray(document)) {
    throw new ProtocolError(`${what} is not a JSON object`, status);
  }
  return document;
}

/**
 * AES-GCM decryption of an answer with the request's response key.
 * @param {Uint8Array} responseKey
 * @param {Uint8Array} nonce
 * @param {Uint8Array} ciphertext ciphertext || tag
 * @param {Uint8Array} aad
 * @param {number} status
 * @returns {Promise<Uint8Array>}
 */
async function openAnswer(responseKey, nonce, ciphertext, aad, status) {
  try {
    if (nonce.length !== NONCE_BYTES) throw new Error("nonce");
    const key = await globalThis.crypto.subtle.importKey("raw", responseKey, "AES-GCM", false, ["decrypt"]);
    const plain = await globalThis.crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, key, ciphertext);
    return new Uint8Array(plain);
  } catch {
    throw new ProtocolError("the response does not decrypt with this request's response key", status);
  }
}

/**
 * One sealed request, ready to send, and what opens its answer. Never log it.
 * @typedef {{ body: Uint8Array, contentType: string, responseKey?: Uint8Array, id?: Uint8Array, key?: KeyInfo }} Prepared
 */

/**
 * Seal a version-1 request (`{"inputs", "response_key", "ts", "id"}` as JSON, in the JSON envelope).
 * @param {unknown} inputs rows, or an object of input name to rows
 * @param {KeyInfo} key
 * @param {{ responseKeyBytes?: number, now?: number, publicKey?: CryptoKey }} [options]
 * @returns {Promise<Prepared>}
 */
export async function sealRequestV1(inputs, key, { responseKeyBytes = 16, now, publicKey } = {}) {
  const responseKey = randomBytes(responseKeyBytes);
  const id = randomBytes(REQUEST_ID_BYTES);
  const plaintext = dumpRequest({
    inputs,
    response_key: b64uEncode(responseKey),
    ts: Math.floor((now ?? Date.now()) / 1000),
    id: b64uEncode(id),
  });
  const recipient = publicKey ?? (await importPublicKey(key.suite, key.publicKey));
  const { enc, ciphertext } = await hpkeSeal(key.suite, recipient, requestInfoV1(key.kid, key.suite), encoder.encode(plaintext));
  const envelope = { v: 1, kid: key.kid, suite: key.suite, ct: b64uEncode(concatBytes(enc, ciphertext)) };
  return { body: encoder.encode(JSON.stringify(envelope)), contentType: ENCRYPTED_TYPE, responseKey, id, key };
}

/**
 * The framed plaintext of a version-2 request (secrets included when given).
 * @param {Record<string, Tensor>} tensors
 * @param {{ outputs?: string[], responseKey?: Uint8Array, id?: Uint8Array, ts?: number }} [extra]
 * @returns {Uint8Array}
 */
export function frameRequest(tensors, { outputs, responseKey, id, ts } = {}) {
  if (!tensors || typeof tensors !== "object" || Array.isArray(tensors) || !Object.keys(tensors).length) {
    throw new ClientError("tensors must be an object of input name to { datatype, shape, data }");
  }
  /** @type {Record<string, unknown>} */
  const header = { inputs: [] };
  const chunks = [];
  for (const [name, tensor] of Object.entries(tensors)) {
    chunks.push(...encodeTensor(tensor, `input ${name}`));
    /** @type {unknown[]} */ (header.inputs).push({ name, datatype: tensor.datatype, shape: Array.from(tensor.shape) });
  }
  if (outputs !== undefined) {
    if (!Array.isArray(outputs) || outputs.some((name) => typeof name !== "string")) {
      throw new ClientError("outputs must be a list of output names");
    }
    header.outputs = outputs;
  }
  if (responseKey && id) {
    header.response_key = b64uEncode(responseKey);
    header.ts = ts;
    header.id = b64uEncode(id);
  }
  return encodeFrame(header, chunks);
}

/**
 * Seal a version-2 request: `0x02 L kid kem kdf aead || enc || ct` around a framed message.
 * @param {Record<string, Tensor>} tensors
 * @param {KeyInfo} key
 * @param {{ outputs?: string[], responseKeyBytes?: number, now?: number, publicKey?: CryptoKey }} [options]
 * @returns {Promise<Prepared>}
 */
export async function sealRequestV2(tensors, key, { outputs, responseKeyBytes = 16, now, publicKey } = {}) {
  const responseKey = randomBytes(responseKeyBytes);
  const id = randomBytes(REQUEST_ID_BYTES);
  const ts = Math.floor((now ?? Date.now()) / 1000);
  const plaintext = frameRequest(tensors, { outputs, responseKey, id, ts });
  const header = headerV2(key.kid, key.suite);
  const recipient = publicKey ?? (await importPublicKey(key.suite, key.publicKey));
  const { enc, ciphertext } = await hpkeSeal(key.suite, recipient, requestInfoV2(header), plaintext);
  return { body: concatBytes(header, enc, ciphertext), contentType: ENCRYPTED_TYPE_V2, responseKey, id, key };
}

/**
 * Judge a version-1 answer: its `{outputs, model}` document, or the error it carries.
 * @param {number} status
 * @param {string | null} contentType
 * @param {Uint8Array} body
 * @param {Prepared} prepared
 * @returns {Promise<{ outputs: unknown, model: ModelInfo }>}
 */
export async function readResponseV1(status, contentType, body, prepared) {
  const kind = mediaType(contentType);
  let document;
  let sealed = false;
  if (kind === ENCRYPTED_TYPE && prepared.responseKey && prepared.id) {
    const envelope = jsonObject(body, "the sealed answer", status);
    const fields = Object.keys(envelope).sort().join(",");
    if (fields !== "ct,nonce,v" || envelope.v !== 1 || typeof envelope.nonce !== "string" || typeof envelope.ct !== "string") {
      throw new ProtocolError("the sealed answer is not a version-1 response envelope", status);
    }
    let nonce, ciphertext;
    try {
      nonce = b64uDecode(envelope.nonce);
      ciphertext = b64uDecode(envelope.ct);
    } catch {
      throw new ProtocolError("the sealed answer is not base64url", status);
    }
    const plain = await openAnswer(prepared.responseKey, nonce, ciphertext, responseAad(1, prepared.id), status);
    document = jsonObject(plain, "the decrypted response", status);
    sealed = true;
  } else if (kind === ENCRYPTED_TYPE) {
    throw new ProtocolError("a plaintext request was answered sealed", status);
  } else if (kind === PLAINTEXT_TYPE) {
    document = jsonObject(body, `the HTTP ${status} answer`, status);
  } else {
    throw new ProtocolError(`HTTP ${status} answer of type ${JSON.stringify(kind || "none")} is not a litefaas answer`, status);
  }
  if (document.error !== undefined || status !== 200) throw errorFrom(status, document, sealed);
  if (prepared.responseKey && !sealed) throw new ProtocolError("an encrypted request was answered in plaintext", status);
  if (!("outputs" in document) || !document.model || typeof document.model !== "object") {
    throw new ProtocolError("the answer has no outputs and model", status);
  }
  return { outputs: document.outputs, model: document.model };
}

/**
 * Judge a version-2 answer: its outputs as tensors and the model, or the error it carries.
 * @param {number} status
 * @param {string | null} contentType
 * @param {Uint8Array} body
 * @param {Prepared} prepared
 * @returns {Promise<{ outputs: Record<string, Tensor>, model: ModelInfo }>}
 */
export async function readResponseV2(status, contentType, body, prepared) {
  const kind = mediaType(contentType);
  let message;
  let sealed = false;
  if (kind === ENCRYPTED_TYPE_V2 && prepared.responseKey && prepared.id) {
    if (body.length < 1 + NONCE_BYTES + 16 || body[0] !== 2) {
      throw new ProtocolError("the sealed answer is not a version-2 response", status);
    }
    const nonce = body.subarray(1, 1 + NONCE_BYTES);
    const ciphertext = body.subarray(1 + NONCE_BYTES);
    message = await openAnswer(prepared.responseKey, nonce, ciphertext, responseAad(2, prepared.id), status);
    sealed = true;
  } else if (kind === ENCRYPTED_TYPE_V2) {
    throw new ProtocolError("a plaintext request was answered sealed", status);
  } else if (kind === PLAINTEXT_TYPE_V2) {
    message = body;
  } else if (kind === PLAINTEXT_TYPE) {
    // errors before decryption are version 1's plaintext JSON errors
    throw errorFrom(status, jsonObject(body, `the HTTP ${status} answer`, status), false);
  } else {
    throw new ProtocolError(`HTTP ${status} answer of type ${JSON.stringify(kind || "none")} is not a litefaas answer`, status);
  }
  let header, rest;
  try {
    ({ header, body: rest } = decodeFrame(message));
  } catch (error) {
    if (error instanceof ProtocolError) throw new ProtocolError(error.message, status);
    throw error;
  }
  if (header.error !== undefined || status !== 200) throw errorFrom(status, header, sealed);
  if (prepared.responseKey && !sealed) throw new ProtocolError("an encrypted request was answered in plaintext", status);
  if (!header.model || typeof header.model !== "object") throw new ProtocolError("the answer has no model", status);
  try {
    return { outputs: decodeTensors(header.outputs, rest), model: header.model };
  } catch (error) {
    if (error instanceof ProtocolError) throw new ProtocolError(error.message, status);
    throw error;
  }
}

/** A litefaas function at `baseUrl` (with any route prefix, e.g. `…/api` on Azure). */
export class Client {
  /**
   * @param {string} baseUrl
   * @param {ClientOptions} [options]
   */
  constructor(baseUrl, options = {}) {
    if (typeof baseUrl !== "string" || !baseUrl) throw new ClientError("baseUrl must be the function's URL");
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") throw new ClientError("no fetch: pass options.fetch");
    /** @private */
    this._fetch = fetchImpl;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.suite = options.suite ?? null;
    if (this.suite !== null && !Object.hasOwn(SUITES, this.suite)) {
      throw new ClientError(`unknown suite ${JSON.stringify(this.suite)}; expected one of ${Object.keys(SUITES).join(", ")}`);
    }
    this.kid = options.kid ?? null;
    this.responseKeyBytes = options.responseKeyBytes ?? 16;
    if (this.responseKeyBytes !== 16 && this.responseKeyBytes !== 32) throw new ClientError("responseKeyBytes must be 16 or 32");
    this.plaintext = Boolean(options.plaintext);
    /** @private @type {KeyInfo[] | null} */
    this._keys = options.keyset ? parseKeyset(options.keyset) : null;
    /** @private @type {Map<string, Promise<CryptoKey>>} */
    this._imported = new Map();
    const trace = options.traceparent;
    if (trace !== undefined && typeof trace !== "function" && !TRACEPARENT.test(String(trace))) {
      throw new ClientError("traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>) or a function");
    }
    /** @private */
    this._traceparent = typeof trace === "function" ? trace : () => trace;
  }

  /**
   * The `traceparent` of one request: the option's (or its function's, where valid), else a new one.
   * @private
   * @returns {string}
   */
  _traceFor() {
    const given = this._traceparent();
    return typeof given === "string" && TRACEPARENT.test(given) ? given : newTraceparent();
  }

  /**
   * One HTTP exchange; the whole answer is read inside the timeout.
   * @private
   * @param {"GET" | "POST"} method
   * @param {string} route
   * @param {Uint8Array} [body]
   * @param {string} [contentType]
   * @returns {Promise<{ status: number, contentType: string | null, body: Uint8Array }>}
   */
  async _send(method, route, body, contentType) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    const url = `${this.baseUrl}/${route}`;
    try {
      /** @type {RequestInit} */
      const accept = "application/json, application/litefaas+json, application/litefaas";
      const init = { method, signal: controller.signal, headers: { accept, traceparent: this._traceFor() } };
      if (body !== undefined) {
        init.body = body;
        init.headers = { ...init.headers, "content-type": contentType ?? "application/octet-stream" };
      }
      const fetchImpl = this._fetch; // called unbound: a browser's fetch refuses another `this`
      const response = await fetchImpl(url, init);
      const bytes = new Uint8Array(await response.arrayBuffer());
      return { status: response.status, contentType: response.headers.get("content-type"), body: bytes };
    } catch (error) {
      if (error instanceof ClientError) throw error; // an oblivious fetch's own error, already precise
      if (controller.signal.aborted) throw new NetworkError(`${method} ${url}: no answer within ${this.timeoutMs} ms`);
      throw new NetworkError(`${method} ${url}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  /** @private @param {{ status: number, contentType: string | null, body: Uint8Array }} answer */
  _document(answer) {
    const kind = mediaType(answer.contentType);
    if (kind !== PLAINTEXT_TYPE) {
      throw new ProtocolError(`HTTP ${answer.status} answer of type ${JSON.stringify(kind || "none")} is not JSON`, answer.status);
    }
    const document = jsonObject(answer.body, `the HTTP ${answer.status} answer`, answer.status);
    if (answer.status !== 200) throw errorFrom(answer.status, document, false);
    return document;
  }

  /**
   * The function's public keys (`GET /keys`), fetched once and kept.
   * @returns {Promise<KeyInfo[]>}
   */
  async keys() {
    if (!this._keys) this._keys = parseKeyset(this._document(await this._send("GET", "keys")));
    return this._keys;
  }

  /** Fetch the key set again (after a rotation). @returns {Promise<KeyInfo[]>} */
  async refreshKeys() {
    this._keys = parseKeyset(this._document(await this._send("GET", "keys")));
    return this._keys;
  }

  /** The key requests are sealed to: the first, or the first with the chosen kid and/or suite. @returns {Promise<KeyInfo>} */
  async key() {
    return this._select(await this.keys());
  }

  /** `GET /health`. @returns {Promise<Record<string, any>>} */
  async health() {
    return this._document(await this._send("GET", "health"));
  }

  /** @private @param {KeyInfo[]} keys */
  _select(keys) {
    const found = keys.find((key) => (this.kid ?? key.kid) === key.kid && (this.suite ?? key.suite) === key.suite);
    if (found) return found;
    const wanted = [this.kid && `kid ${this.kid}`, this.suite && `suite ${this.suite}`].filter(Boolean).join(" and ");
    throw new ClientError(`no key with ${wanted} in the function's key set`);
  }

  /** @private @param {KeyInfo} key @returns {Promise<CryptoKey>} */
  _publicKey(key) {
    const cacheKey = `${key.kid}\u0000${key.suite}\u0000${b64uEncode(key.publicKey)}`;
    let imported = this._imported.get(cacheKey);
    if (!imported) {
      imported = importPublicKey(key.suite, key.publicKey).catch((error) => {
        this._imported.delete(cacheKey);
        throw new ClientError(`key ${key.kid}: ${error instanceof Error ? error.message : error}`);
      });
      this._imported.set(cacheKey, imported);
    }
    return imported;
  }

  /**
   * Seal with the current key and send; after a `decryption_failed`, fetch the key set once more
   * and, if the function's key changed (a rotation), seal again to the new one.
   * @private
   * @template T
   * @param {(key: KeyInfo, publicKey: CryptoKey) => Promise<Prepared>} seal
   * @param {(status: number, contentType: string | null, body: Uint8Array, prepared: Prepared) => Promise<T>} read
   * @returns {Promise<T>}
   */
  async _sealed(seal, read) {
    const once = async (/** @type {KeyInfo} */ key) => {
      const prepared = await seal(key, await this._publicKey(key));
      const answer = await this._send("POST", "predict", prepared.body, prepared.contentType);
      return read(answer.status, answer.contentType, answer.body, prepared);
    };
    const key = await this.key();
    try {
      return await once(key);
    } catch (error) {
      if (!(error instanceof RemoteError) || error.code !== "decryption_failed" || this.kid !== null) throw error;
      const fresh = this._select(await this.refreshKeys());
      if (fresh.kid === key.kid && b64uEncode(fresh.publicKey) === b64uEncode(key.publicKey)) throw error;
      return once(fresh);
    }
  }

  /**
   * Version 1: a batch of rows (or an object of input name to rows) as JSON numbers.
   * @param {unknown} rows
   * @returns {Promise<{ outputs: any, model: ModelInfo }>}
   */
  async predict(rows) {
    if (this.plaintext) {
      const body = encoder.encode(dumpRequest({ inputs: rows }));
      const answer = await this._send("POST", "predict", body, PLAINTEXT_TYPE);
      return readResponseV1(answer.status, answer.contentType, answer.body, { body, contentType: PLAINTEXT_TYPE });
    }
    return this._sealed(
      (key, publicKey) => sealRequestV1(rows, key, { responseKeyBytes: this.responseKeyBytes, publicKey }),
      readResponseV1,
    );
  }

  /**
   * Version 2: named tensors in their own datatype, as raw bytes.
   * @param {Record<string, Tensor>} tensors
   * @param {{ outputs?: string[] }} [options] the outputs wanted, in the order wanted (default: all)
   * @returns {Promise<{ outputs: Record<string, Tensor>, model: ModelInfo }>}
   */
  async predictTensors(tensors, { outputs } = {}) {
    if (this.plaintext) {
      const body = frameRequest(tensors, { outputs });
      const answer = await this._send("POST", "predict", body, PLAINTEXT_TYPE_V2);
      return readResponseV2(answer.status, answer.contentType, answer.body, { body, contentType: PLAINTEXT_TYPE_V2 });
    }
    return this._sealed(
      (key, publicKey) => sealRequestV2(tensors, key, { outputs, responseKeyBytes: this.responseKeyBytes, publicKey }),
      readResponseV2,
    );
  }

  /**
   * Version 2 with encoded images (JPEG, PNG, WebP): each input a list of files, sent as `BYTES`
   * of shape `[N]`, for an input the model's manifest declares as an image.
   * @param {Record<string, Array<Blob | ArrayBuffer | Uint8Array>>} images
   * @param {{ outputs?: string[] }} [options]
   * @returns {Promise<{ outputs: Record<string, Tensor>, model: ModelInfo }>}
   */
  async predictImages(images, options = {}) {
    return this.predictTensors(await imageTensors(images), options);
  }
}

/**
 * BYTES tensors of shape `[N]` from lists of encoded images.
 * @param {Record<string, Array<Blob | ArrayBuffer | Uint8Array>>} images
 * @returns {Promise<Record<string, Tensor>>}
 */
export async function imageTensors(images) {
  if (!images || typeof images !== "object" || Array.isArray(images)) {
    throw new ClientError("images must be an object of input name to a list of encoded images");
  }
  /** @type {Record<string, Tensor>} */
  const tensors = {};
  for (const [name, files] of Object.entries(images)) {
    if (!Array.isArray(files) || !files.length) throw new ClientError(`input ${name}: expected a non-empty list of images`);
    const data = await Promise.all(
      files.map(async (file) =>
        typeof Blob !== "undefined" && file instanceof Blob ? new Uint8Array(await file.arrayBuffer()) : toBytes(file, `input ${name}`),
      ),
    );
    tensors[name] = { datatype: "BYTES", shape: [data.length], data };
  }
  return tensors;
}
