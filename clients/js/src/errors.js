/**
 * The errors this library raises, as the Python client (`litefaas.client`) names them.
 * No message carries key material or the caller's inputs.
 * @module
 */

/** Base of every error this library raises. */
export class ClientError extends Error {
  /** @param {string} message @param {ErrorOptions} [options] */
  constructor(message, options) {
    super(message, options);
  }
}

/** The function could not be reached, or did not answer in time. */
export class NetworkError extends ClientError {}

/** The answer is not what the protocol says: wrong content type, not JSON, does not decrypt. */
export class ProtocolError extends ClientError {
  /** @param {string} message @param {number | null} [status] the HTTP status, when there was one */
  constructor(message, status = null) {
    super(message);
    /** @type {number | null} */
    this.status = status;
  }
}

/**
 * The function answered with one of the protocol's errors (`invalid_payload`, `decryption_failed`, …).
 * `sealed` is true when the error came encrypted to this request's response key, which only
 * happens once the function has decrypted the request.
 */
export class RemoteError extends ClientError {
  /**
   * @param {number} status HTTP status (4xx or 5xx)
   * @param {string} code the protocol's error code
   * @param {string} message the function's message
   * @param {boolean} sealed whether the error came sealed
   */
  constructor(status, code, message, sealed) {
    super(`${code}: ${message}`);
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code;
    /** @type {string} the function's own message, without the code (the stack trace shows both) */
    this.message = message;
    /** @type {boolean} */
    this.sealed = sealed;
  }
}

// Names that survive minification: `error.name` is what a caller (or a log) reads.
for (const [kind, name] of [
  [ClientError, "ClientError"],
  [NetworkError, "NetworkError"],
  [ProtocolError, "ProtocolError"],
  [RemoteError, "RemoteError"],
]) {
  Object.defineProperty(kind.prototype, "name", { value: name, writable: true, configurable: true });
}
