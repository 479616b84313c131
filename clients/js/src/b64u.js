/**
 * base64url (RFC 4648 §5) without padding, as the protocol's encoding rules define it.
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

/**
 * Encode bytes as base64url without padding.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function b64uEncode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/**
 * Decode base64url with or without padding. Throws `TypeError` on any other character, on a
 * length no encoding has, and on unused trailing bits that are not zero (one text, one meaning).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function b64uDecode(text) {
  if (typeof text !== "string") throw new TypeError("base64url input must be a string");
  let end = text.length;
  let pad = 0;
  while (end > 0 && text[end - 1] === "=" && pad < 2) {
    end--;
    pad++;
  }
  if (pad && (end + pad) % 4 !== 0) throw new TypeError("not base64url");
  const rest = end % 4;
  if (rest === 1) throw new TypeError("not base64url");
  const out = new Uint8Array(((end - rest) / 4) * 3 + (rest ? rest - 1 : 0));
  let bits = 0;
  let count = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? LOOKUP[code] : -1;
    if (value < 0) throw new TypeError("not base64url");
    bits = ((bits << 6) | value) & 0xffffff;
    count += 6;
    if (count >= 8) {
      count -= 8;
      out[o++] = (bits >> count) & 0xff;
    }
  }
  if (count && bits & ((1 << count) - 1)) throw new TypeError("not canonical base64url");
  return out;
}
