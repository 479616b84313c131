/**
 * Oblivious HTTP (RFC 9458) for the browser and Node: `obliviousFetch` encapsulates each request to a
 * gateway's key and opens each answer; `ObliviousClient` is `Client` with every call through it.
 *
 * The inner request is a known-length Binary HTTP message (RFC 9292) built from fields (a browser's
 * `Request` may not carry `Date`, which the gateway checks), zero-padded to the gateway's buckets.
 * HPKE and its exporter come from `@hpke/core` (+ ChaCha20-Poly1305, X-Wing); the response keys are
 * HKDF-SHA256 on WebCrypto's HMAC.
 * @module
 */

import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { XWing } from "@hpke/hybridkem-x-wing";

import { Client, concatBytes } from "./client.js";
import { ClientError, ProtocolError } from "./errors.js";

export const GATEWAY_PATH = "/.well-known/ohttp-gateway";
export const OHTTP_KEYS_TYPE = "application/ohttp-keys";
export const OHTTP_REQUEST_TYPE = "message/ohttp-req";
export const OHTTP_RESPONSE_TYPE = "message/ohttp-res";
const REQUEST_LABEL = new TextEncoder().encode("message/bhttp request");
const RESPONSE_LABEL = new TextEncoder().encode("message/bhttp response");
const PROBLEM_OHTTP_KEY = "https://iana.org/assignments/http-problem-types#ohttp-key";
const KEMS = { 0x0020: { publicKeyBytes: 32, make: () => new DhkemX25519HkdfSha256() }, 0x647a: { publicKeyBytes: 1216, make: () => new XWing() } };
const AEADS = { 1: { keyBytes: 16, make: () => new Aes128Gcm() }, 2: { keyBytes: 32, make: () => new Aes256Gcm() }, 3: { keyBytes: 32, make: () => new Chacha20Poly1305() } };
const NONCE_BYTES = 12;
const encoder = new TextEncoder();

/** @typedef {{ keyId: number, kemId: number, publicKey: Uint8Array, algorithms: Array<[number, number]> }} KeyConfig */

/**
 * The configurations of an `application/ohttp-keys` body (RFC 9458 §3), in order.
 * @param {Uint8Array} bytes
 * @returns {KeyConfig[]}
 */
export function parseKeyConfigs(bytes) {
  const configs = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 2) throw new ProtocolError("the key configurations end inside a length");
    const length = (bytes[offset] << 8) | bytes[offset + 1];
    const config = bytes.subarray(offset + 2, offset + 2 + length);
    if (config.length !== length || length < 3) throw new ProtocolError("a key configuration runs past the end");
    const kemId = (config[1] << 8) | config[2];
    const kem = KEMS[kemId];
    offset += 2 + length;
    if (!kem) continue; // a KEM this client does not speak: another configuration may do
    const end = 3 + kem.publicKeyBytes;
    const pairsLength = (config[end] << 8) | config[end + 1];
    if (config.length !== end + 2 + pairsLength || pairsLength % 4 || !pairsLength) {
      throw new ProtocolError("a key configuration's algorithm list does not match its length");
    }
    /** @type {Array<[number, number]>} */
    const algorithms = [];
    for (let i = end + 2; i < config.length; i += 4) algorithms.push([(config[i] << 8) | config[i + 1], (config[i + 2] << 8) | config[i + 3]]);
    configs.push({ keyId: config[0], kemId, publicKey: config.slice(3, end), algorithms });
  }
  if (!configs.length) throw new ProtocolError("no key configuration this client can use");
  return configs;
}

/** A QUIC variable-length integer. @param {number} value */
export function varint(value) {
  if (value < 0x40) return Uint8Array.of(value);
  if (value < 0x4000) return Uint8Array.of(0x40 | (value >> 8), value & 0xff);
  if (value < 0x40000000) return Uint8Array.of(0x80 | (value >>> 24), (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff);
  throw new ClientError("a Binary HTTP length over 1 GiB");
}

const prefixed = (/** @type {Uint8Array} */ bytes) => concatBytes(varint(bytes.length), bytes);

/** The bucket a message of `length` bytes is padded to: powers of two from 1 KiB to 64 KiB, then 64 KiB steps. */
export function paddedSize(length) {
  if (length <= 1024) return 1024;
  if (length <= 65536) return 2 ** Math.ceil(Math.log2(length));
  return Math.ceil(length / 65536) * 65536;
}

/**
 * A known-length Binary HTTP request (RFC 9292 §3), zero-padded to `padTo` bytes where shorter.
 * @param {{ method: string, scheme: string, authority: string, path: string, headers: Array<[string, string]>, content: Uint8Array }} request
 * @param {number} [padTo]
 */
export function encodeRequest(request, padTo = 0) {
  // a value's spaces and tabs around it are no part of it (RFC 9110 §5.5), and a binary message may not carry them (RFC 9292 §3.6)
  const fields = concatBytes(...request.headers.flatMap(([name, value]) => [prefixed(encoder.encode(name.toLowerCase())), prefixed(encoder.encode(value.replace(/^[ \t]+|[ \t]+$/g, "")))]));
  const control = [request.method, request.scheme, request.authority, request.path].map((part) => prefixed(encoder.encode(part)));
  const message = concatBytes(varint(0), ...control, prefixed(fields), prefixed(request.content), varint(0));
  return message.length >= padTo ? message : concatBytes(message, new Uint8Array(padTo - message.length));
}

/**
 * A Binary HTTP response (known- or indeterminate-length; informational responses skipped).
 * @param {Uint8Array} bytes
 * @returns {{ status: number, headers: Array<[string, string]>, content: Uint8Array }}
 */
export function decodeResponse(bytes) {
  let offset = 0;
  const fail = (/** @type {string} */ what) => {
    throw new ProtocolError(`the decapsulated answer is not Binary HTTP: ${what}`);
  };
  const readVarint = () => {
    if (offset >= bytes.length) fail("it ends early");
    const size = 1 << (bytes[offset] >> 6);
    if (offset + size > bytes.length) fail("it ends inside a length");
    let value = bytes[offset] & 0x3f;
    for (let i = 1; i < size; i++) value = value * 256 + bytes[offset + i];
    offset += size;
    return value;
  };
  const take = (/** @type {number} */ length) => {
    if (length > bytes.length - offset) fail("a length runs past the end");
    const part = bytes.subarray(offset, offset + length);
    offset += length;
    return part;
  };
  const decoder = new TextDecoder("latin1");
  const framing = readVarint();
  if (framing !== 1 && framing !== 3) fail(`framing ${framing} is not a response's`);
  const known = framing === 1;
  const fieldLines = (/** @type {Uint8Array} */ section, /** @type {boolean} */ terminated) => {
    const saved = [bytes, offset];
    /** @type {Array<[string, string]>} */
    const fields = [];
    if (!terminated) [bytes, offset] = [section, 0];
    while (terminated ? true : offset < bytes.length) {
      const nameLength = readVarint();
      if (terminated && nameLength === 0) break;
      const name = decoder.decode(take(nameLength));
      fields.push([name, decoder.decode(take(readVarint()))]);
    }
    if (!terminated) [bytes, offset] = /** @type {[Uint8Array, number]} */ (saved);
    return fields;
  };
  const section = () => (offset >= bytes.length ? [] : known ? fieldLines(take(readVarint()), false) : fieldLines(bytes, true));
  let status;
  let headers;
  do {
    status = readVarint();
    if (status < 100 || status > 599) fail(`status ${status}`);
    headers = section();
  } while (status < 200);
  let content = new Uint8Array(0);
  if (offset < bytes.length) {
    if (known) content = take(readVarint()).slice();
    else {
      const chunks = [];
      for (let length = readVarint(); length; length = readVarint()) chunks.push(take(length));
      content = concatBytes(...chunks);
    }
  }
  return { status, headers, content };
}

const hmac = async (/** @type {Uint8Array} */ key, /** @type {Uint8Array} */ data) => {
  const imported = await crypto.subtle.importKey("raw", key.slice(), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, data.slice()));
};
const expand = async (/** @type {Uint8Array} */ prk, /** @type {string} */ label, /** @type {number} */ length) => (await hmac(prk, concatBytes(encoder.encode(label), Uint8Array.of(1)))).slice(0, length);

/** A request body as bytes: none, text, an ArrayBuffer or a view of one. @param {unknown} body */
function bodyBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength).slice();
  throw new ClientError("an oblivious request's body must be text or bytes");
}

/**
 * A `fetch` that sends every request through Oblivious HTTP to `gatewayUrl` (or `relayUrl`).
 * `keyConfig` pins the gateway's `application/ohttp-keys` (else fetched on first use); `keyId` picks
 * one of its keys (else the first, the gateway's current key).
 * @param {{ gatewayUrl: string, relayUrl?: string, keyConfig?: Uint8Array, keyId?: number, padding?: boolean, fetch?: typeof fetch }} options
 * @returns {typeof fetch}
 */
export function obliviousFetch(options) {
  const outerFetch = options.fetch ?? globalThis.fetch;
  const target = options.relayUrl ?? options.gatewayUrl;
  const padding = options.padding ?? true;
  const pinned = options.keyConfig !== undefined;
  /** @type {KeyConfig | null} */
  const choose = (/** @type {KeyConfig[]} */ configs) => {
    const found = options.keyId === undefined ? configs[0] : configs.find((c) => c.keyId === options.keyId);
    if (!found) throw new ClientError(`the gateway offers no key with key_id ${options.keyId}`);
    return found;
  };
  let config = pinned ? choose(parseKeyConfigs(/** @type {Uint8Array} */ (options.keyConfig))) : null;
  const keyConfig = async () => {
    if (config) return config;
    const answer = await outerFetch(target, { method: "GET", headers: { accept: OHTTP_KEYS_TYPE } });
    if (answer.status !== 200) throw new ProtocolError(`GET ${target} answered ${answer.status}, not the key configurations`, answer.status);
    config = choose(parseKeyConfigs(new Uint8Array(await answer.arrayBuffer())));
    return config;
  };

  const once = async (/** @type {KeyConfig} */ key, /** @type {Uint8Array} */ message) => {
    const [kdfId, aeadId] = key.algorithms.find(([kdf, aead]) => kdf === 1 && AEADS[aead]) ?? fail();
    const suite = new CipherSuite({ kem: KEMS[key.kemId].make(), kdf: new HkdfSha256(), aead: AEADS[aeadId].make() });
    const header = Uint8Array.of(key.keyId, key.kemId >> 8, key.kemId & 0xff, kdfId >> 8, kdfId & 0xff, aeadId >> 8, aeadId & 0xff);
    let sender;
    let body;
    try {
      const recipientPublicKey = await suite.kem.importKey("raw", key.publicKey.slice().buffer, true);
      sender = await suite.createSenderContext({ recipientPublicKey, info: concatBytes(REQUEST_LABEL, Uint8Array.of(0), header) });
      body = concatBytes(header, new Uint8Array(sender.enc), new Uint8Array(await sender.seal(message)));
    } catch (error) {
      throw new ClientError(`cannot encapsulate to key ${key.keyId}: ${error instanceof Error ? error.message : error}`);
    }
    const enc = new Uint8Array(sender.enc);
    const answer = await outerFetch(target, { method: "POST", headers: { "content-type": OHTTP_REQUEST_TYPE }, body });
    return { answer, sender, enc, aeadId };
  };
  const fail = () => {
    throw new ClientError("the gateway's key configuration offers no algorithm pair this client speaks");
  };

  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    /** @type {Array<[string, string]>} */
    const headers = Object.entries(init.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]);
    if (!headers.some(([name]) => name === "date")) headers.push(["date", new Date().toUTCString()]);
    const content = bodyBytes(init.body);
    const plain = encodeRequest({ method, scheme: url.protocol.replace(":", ""), authority: url.host, path: url.pathname + url.search, headers, content });
    const message = padding ? concatBytes(plain, new Uint8Array(paddedSize(plain.length) - plain.length)) : plain;
    let sent = await once(await keyConfig(), message);
    if (sent.answer.status === 400 && !pinned) {
      const text = new TextDecoder().decode(new Uint8Array(await sent.answer.clone().arrayBuffer()));
      if (!text || text.includes(PROBLEM_OHTTP_KEY)) {
        config = null; // the gateway rotated its keys: fetch them again, once
        sent = await once(await keyConfig(), message);
      }
    }
    const { answer, sender, enc, aeadId } = sent;
    const kind = (answer.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
    const bytes = new Uint8Array(await answer.arrayBuffer());
    if (answer.status !== 200 || kind !== OHTTP_RESPONSE_TYPE) {
      throw new ProtocolError(`${target} answered ${answer.status} ${kind || "(no type)"}, not an encapsulated response`, answer.status);
    }
    const { keyBytes } = AEADS[aeadId];
    const nonceBytes = Math.max(keyBytes, NONCE_BYTES);
    if (bytes.length < nonceBytes + 16) throw new ProtocolError("the encapsulated response is too short");
    const secret = new Uint8Array(await sender.export(RESPONSE_LABEL, nonceBytes));
    const prk = await hmac(concatBytes(enc, bytes.subarray(0, nonceBytes)), secret);
    const aead = AEADS[aeadId].make().createEncryptionContext((await expand(prk, "key", keyBytes)).buffer);
    let opened;
    try {
      opened = new Uint8Array(await aead.open((await expand(prk, "nonce", NONCE_BYTES)).buffer, bytes.slice(nonceBytes).buffer, new Uint8Array(0).buffer));
    } catch {
      throw new ProtocolError("the encapsulated response does not open with this request's keys");
    }
    const inner = decodeResponse(opened);
    const noBody = inner.status === 204 || inner.status === 304;
    return new Response(noBody ? null : inner.content, { status: inner.status, headers: inner.headers });
  };
}

/**
 * `Client`, with every call sent through Oblivious HTTP to the function's gateway (or a relay):
 * requests travel in plaintext form inside the encapsulation, which seals them.
 */
export class ObliviousClient extends Client {
  /**
   * @param {string} baseUrl the function's URL
   * @param {import("./client.js").ClientOptions & { relayUrl?: string, gatewayUrl?: string, keyConfig?: Uint8Array, keyId?: number, padding?: boolean }} [options]
   */
  constructor(baseUrl, options = {}) {
    const gatewayUrl = options.gatewayUrl ?? `${String(baseUrl).replace(/\/+$/, "")}${GATEWAY_PATH}`;
    const { relayUrl, keyConfig, keyId, padding } = options;
    const fetchImpl = obliviousFetch({ gatewayUrl, relayUrl, keyConfig, keyId, padding, fetch: options.fetch });
    super(baseUrl, { ...options, fetch: fetchImpl, plaintext: true });
    this.gatewayUrl = gatewayUrl;
  }
}
