/**
 * Version 2's framed messages and tensors: a 4-byte big-endian header length, a UTF-8 JSON
 * header, then each tensor's bytes (little-endian, row-major, no padding), in the header's order.
 * @module
 */

import { ClientError, ProtocolError } from "./errors.js";

/**
 * @typedef {"BOOL"|"UINT8"|"INT8"|"UINT16"|"INT16"|"UINT32"|"INT32"|"UINT64"|"INT64"|"FP16"|"FP32"|"FP64"|"BYTES"} Datatype
 * @typedef {Uint8Array|Int8Array|Uint16Array|Int16Array|Uint32Array|Int32Array|BigUint64Array|BigInt64Array|Float32Array|Float64Array} NumericArray
 * @typedef {{ datatype: Datatype, shape: number[], data: NumericArray | Uint8Array[] }} Tensor
 *   `data` is a typed array of the datatype's own kind (FP16: `Uint16Array` of raw half-float
 *   bits, or a `Float16Array` where the runtime has one; BOOL: `Uint8Array` of 0/1), or for BYTES an
 *   array of `Uint8Array` elements. On input, a plain array of numbers (or booleans) is accepted too.
 * @typedef {{ name: string, datatype: Datatype, shape: number[] }} TensorSpec
 */

/** @type {Record<Exclude<Datatype, "BYTES">, { size: number, array: any }>} */
export const DATATYPES = {
  BOOL: { size: 1, array: Uint8Array },
  UINT8: { size: 1, array: Uint8Array },
  INT8: { size: 1, array: Int8Array },
  UINT16: { size: 2, array: Uint16Array },
  INT16: { size: 2, array: Int16Array },
  UINT32: { size: 4, array: Uint32Array },
  INT32: { size: 4, array: Int32Array },
  UINT64: { size: 8, array: BigUint64Array },
  INT64: { size: 8, array: BigInt64Array },
  FP16: { size: 2, array: Uint16Array },
  FP32: { size: 4, array: Float32Array },
  FP64: { size: 8, array: Float64Array },
};

/** True on every platform a browser or Node runs on today; big-endian ones still get swapped bytes. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The number of elements of a shape; throws on a shape that is not a list of non-negative integers.
 * @param {unknown} shape
 * @param {string} where
 * @returns {number}
 */
export function elementCount(shape, where = "tensor") {
  if (!Array.isArray(shape)) throw new ClientError(`${where}: shape must be an array of integers`);
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new ClientError(`${where}: shape must be an array of non-negative integers`);
    }
    count *= dim;
  }
  return count;
}

/** Reverse the bytes of each `size`-byte element of `bytes`, in place. @param {Uint8Array} bytes @param {number} size */
function swapInPlace(bytes, size) {
  if (size === 1) return bytes;
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
  return bytes;
}

/**
 * A typed array of `datatype`'s kind holding `data`'s values (the same object when it already is one).
 * @param {Exclude<Datatype, "BYTES">} datatype
 * @param {unknown} data
 * @param {string} where
 * @returns {ArrayBufferView}
 */
function asTypedArray(datatype, data, where) {
  const { array: Kind, size } = DATATYPES[datatype];
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) {
    const ok =
      data instanceof Kind ||
      (datatype === "FP16" && data.constructor?.name === "Float16Array") ||
      (datatype === "BOOL" && data instanceof Uint8Array);
    if (!ok) {
      throw new ClientError(`${where}: ${datatype} data must be a ${Kind.name}, not a ${data.constructor.name}`);
    }
    if (data.BYTES_PER_ELEMENT !== size) throw new ClientError(`${where}: wrong element size`);
    return data;
  }
  if (data instanceof ArrayBuffer) {
    if (data.byteLength % size) throw new ClientError(`${where}: byte length is not a multiple of ${size}`);
    return new Uint8Array(data); // raw little-endian bytes, as the wire carries them
  }
  if (Array.isArray(data)) {
    if (datatype === "BOOL") return Uint8Array.from(data, (v) => (v ? 1 : 0));
    if (datatype === "FP16") throw new ClientError(`${where}: FP16 data must be a Uint16Array of half-float bits`);
    try {
      return datatype === "INT64" || datatype === "UINT64" ? Kind.from(data, BigInt) : Kind.from(data);
    } catch {
      throw new ClientError(`${where}: ${datatype} data must be numbers`);
    }
  }
  throw new ClientError(`${where}: data must be a typed array, an ArrayBuffer or an array of numbers`);
}

/**
 * One tensor's wire bytes, little-endian. A view of the caller's memory when no conversion is
 * needed (nothing is copied here); BYTES elements are length-prefixed.
 * @param {Tensor} tensor
 * @param {string} [where] a name for error messages
 * @returns {Uint8Array[]} the chunks, in order
 */
export function encodeTensor(tensor, where = "tensor") {
  if (!tensor || typeof tensor !== "object") throw new ClientError(`${where}: expected { datatype, shape, data }`);
  const { datatype, shape, data } = tensor;
  const count = elementCount(shape, where);
  if (datatype === "BYTES") {
    if (!Array.isArray(data)) throw new ClientError(`${where}: BYTES data must be an array of byte arrays`);
    if (data.length !== count) {
      throw new ClientError(`${where}: shape [${shape}] holds ${count} elements, data has ${data.length}`);
    }
    const chunks = [];
    for (const element of data) {
      const bytes = toBytes(element, where);
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, bytes.length, true);
      chunks.push(prefix, bytes);
    }
    return chunks;
  }
  if (!Object.hasOwn(DATATYPES, datatype)) {
    throw new ClientError(`${where}: unknown datatype ${JSON.stringify(datatype)}`);
  }
  const size = DATATYPES[/** @type {Exclude<Datatype, "BYTES">} */ (datatype)].size;
  const view = asTypedArray(/** @type {Exclude<Datatype, "BYTES">} */ (datatype), data, where);
  const elements = view.byteLength / size;
  if (elements !== count) {
    throw new ClientError(`${where}: shape [${shape}] holds ${count} elements, data has ${elements}`);
  }
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (LITTLE_ENDIAN || view instanceof Uint8Array) return [bytes];
  return [swapInPlace(bytes.slice(), size)];
}

/**
 * Bytes of an ArrayBuffer or a view, without copying.
 * @param {unknown} value
 * @param {string} where
 * @returns {Uint8Array}
 */
export function toBytes(value, where = "value") {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new ClientError(`${where}: expected an ArrayBuffer or a Uint8Array`);
}

/**
 * A framed message: `H` (4 bytes, big-endian), the JSON header, then the chunks.
 * @param {object} header
 * @param {Uint8Array[]} chunks
 * @returns {Uint8Array}
 */
export function encodeFrame(header, chunks = []) {
  const head = encoder.encode(JSON.stringify(header));
  let total = 4 + head.length;
  for (const chunk of chunks) total += chunk.length;
  const out = new Uint8Array(total);
  new DataView(out.buffer).setUint32(0, head.length, false);
  out.set(head, 4);
  let offset = 4 + head.length;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Split a framed message into its JSON header and the bytes after it.
 * @param {Uint8Array} message
 * @returns {{ header: Record<string, any>, body: Uint8Array }}
 */
export function decodeFrame(message) {
  if (message.length < 4) throw new ProtocolError("the framed message is shorter than its length field");
  const length = new DataView(message.buffer, message.byteOffset, 4).getUint32(0, false);
  if (4 + length > message.length) throw new ProtocolError("the framed message's header runs past its end");
  let header;
  try {
    header = JSON.parse(decoder.decode(message.subarray(4, 4 + length)));
  } catch {
    throw new ProtocolError("the framed message's header is not UTF-8 JSON");
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    throw new ProtocolError("the framed message's header is not a JSON object");
  }
  return { header, body: message.subarray(4 + length) };
}

/**
 * A tensor's values from its wire bytes (copied into their own, aligned buffer).
 * @param {Datatype} datatype
 * @param {number[]} shape
 * @param {Uint8Array} body
 * @param {number} offset
 * @returns {{ data: NumericArray | Uint8Array[], end: number }}
 */
function decodeTensorAt(datatype, shape, body, offset) {
  const count = elementCount(shape, "output");
  if (datatype === "BYTES") {
    const elements = [];
    let at = offset;
    for (let i = 0; i < count; i++) {
      if (at + 4 > body.length) throw new ProtocolError("a BYTES output is cut short");
      const length = new DataView(body.buffer, body.byteOffset + at, 4).getUint32(0, true);
      if (at + 4 + length > body.length) throw new ProtocolError("a BYTES output is cut short");
      elements.push(body.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
    return { data: elements, end: at };
  }
  if (!Object.hasOwn(DATATYPES, datatype)) throw new ProtocolError(`unknown output datatype ${JSON.stringify(datatype)}`);
  const { size, array: Kind } = DATATYPES[/** @type {Exclude<Datatype, "BYTES">} */ (datatype)];
  const end = offset + count * size;
  if (end > body.length) throw new ProtocolError("the answer has fewer tensor bytes than its header says");
  const copy = body.slice(offset, end);
  if (!LITTLE_ENDIAN) swapInPlace(copy, size);
  return { data: new Kind(copy.buffer, 0, count), end };
}

/**
 * Read tensors described by `specs` from `body`; every byte must belong to one of them.
 * @param {unknown} specs
 * @param {Uint8Array} body
 * @returns {Record<string, Tensor>}
 */
export function decodeTensors(specs, body) {
  if (!Array.isArray(specs)) throw new ProtocolError("the answer's outputs must be a list");
  /** @type {Record<string, Tensor>} */
  const tensors = {};
  let offset = 0;
  for (const spec of specs) {
    if (!spec || typeof spec.name !== "string" || typeof spec.datatype !== "string" || !Array.isArray(spec.shape)) {
      throw new ProtocolError("each output must have a name, a datatype and a shape");
    }
    let decoded;
    try {
      decoded = decodeTensorAt(spec.datatype, spec.shape, body, offset);
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError(`output ${spec.name}: ${error instanceof Error ? error.message : error}`);
    }
    tensors[spec.name] = { datatype: spec.datatype, shape: spec.shape.slice(), data: decoded.data };
    offset = decoded.end;
  }
  if (offset !== body.length) throw new ProtocolError("the answer has bytes after its last tensor");
  return tensors;
}
