/**
 * The protocol's three HPKE suites, from maintained libraries: `@hpke/core` (DHKEM(X25519) and
 * AES-GCM through WebCrypto), `@hpke/chacha20poly1305`, `@hpke/hybridkem-x-wing` (KEM 0x647A).
 * @module
 */

import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { XWing } from "@hpke/hybridkem-x-wing";

export const X25519_AES128 = "x25519-sha256-aes128gcm";
export const X25519_CHACHA20 = "x25519-sha256-chacha20poly1305";
export const MLKEM768_X25519_AES256 = "mlkem768x25519-sha256-aes256gcm";
export const DEFAULT_SUITE = X25519_AES128;

/**
 * Each suite's RFC 9180 identifiers (the version-2 header carries them), key and `enc` sizes.
 * @type {Record<string, { kem: number, kdf: number, aead: number, publicKeyBytes: number, encBytes: number }>}
 */
export const SUITES = {
  [X25519_AES128]: { kem: 0x0020, kdf: 0x0001, aead: 0x0001, publicKeyBytes: 32, encBytes: 32 },
  [X25519_CHACHA20]: { kem: 0x0020, kdf: 0x0001, aead: 0x0003, publicKeyBytes: 32, encBytes: 32 },
  [MLKEM768_X25519_AES256]: { kem: 0x647a, kdf: 0x0001, aead: 0x0002, publicKeyBytes: 1184 + 32, encBytes: 1120 },
};

/** @type {Map<string, CipherSuite>} */
const cipherSuites = new Map();

/**
 * The `@hpke/core` cipher suite for a suite name (built once).
 * @param {string} name
 * @returns {CipherSuite}
 */
export function cipherSuite(name) {
  let suite = cipherSuites.get(name);
  if (suite) return suite;
  const kdf = new HkdfSha256();
  if (name === X25519_AES128) suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf, aead: new Aes128Gcm() });
  else if (name === X25519_CHACHA20) {
    suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf, aead: new Chacha20Poly1305() });
  } else if (name === MLKEM768_X25519_AES256) suite = new CipherSuite({ kem: new XWing(), kdf, aead: new Aes256Gcm() });
  else throw new TypeError(`unknown suite ${JSON.stringify(name)}`);
  cipherSuites.set(name, suite);
  return suite;
}

/**
 * HPKE single-shot seal: `enc || ciphertext` of `plaintext` to a raw public key.
 * @param {string} name suite name
 * @param {CryptoKey} recipientPublicKey from {@link importPublicKey}
 * @param {Uint8Array} info
 * @param {Uint8Array} plaintext
 * @returns {Promise<{ enc: Uint8Array, ciphertext: Uint8Array }>}
 */
export async function hpkeSeal(name, recipientPublicKey, info, plaintext) {
  const sealed = await cipherSuite(name).seal({ recipientPublicKey, info }, plaintext);
  return { enc: new Uint8Array(sealed.enc), ciphertext: new Uint8Array(sealed.ct) };
}

/**
 * Import a raw public key (`PROTOCOL.md`'s table) for a suite.
 * @param {string} name
 * @param {Uint8Array} raw
 * @returns {Promise<CryptoKey>}
 */
export async function importPublicKey(name, raw) {
  const expected = SUITES[name]?.publicKeyBytes;
  if (raw.length !== expected) throw new TypeError(`${name} public key must be ${expected} bytes`);
  const copy = raw.slice(); // its own ArrayBuffer, exactly the key
  return cipherSuite(name).kem.importKey("raw", copy.buffer, true);
}
