/**
 * litefaas client for browsers and Node ≥ 20: sealed inference requests (protocol versions 1 and 2),
 * and the same calls through Oblivious HTTP (`ObliviousClient`).
 * @module
 */

export {
  Client,
  ENCRYPTED_TYPE,
  ENCRYPTED_TYPE_V2,
  PLAINTEXT_TYPE,
  PLAINTEXT_TYPE_V2,
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
  sealRequestV1,
  sealRequestV2,
} from "./client.js";
export { ClientError, NetworkError, ProtocolError, RemoteError } from "./errors.js";
export {
  GATEWAY_PATH,
  ObliviousClient,
  decodeResponse as decodeBinaryHttpResponse,
  encodeRequest as encodeBinaryHttpRequest,
  obliviousFetch,
  paddedSize,
  parseKeyConfigs,
} from "./oblivious.js";
export { b64uDecode, b64uEncode } from "./b64u.js";
export { DATATYPES, decodeFrame, decodeTensors, encodeFrame, encodeTensor } from "./framing.js";
export { DEFAULT_SUITE, MLKEM768_X25519_AES256, SUITES, X25519_AES128, X25519_CHACHA20 } from "./suites.js";
