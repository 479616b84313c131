// serverless-offline ignores API Gateway's binaryMediaTypes: it hands a request body to the
// handler base64-encoded (isBase64Encoded: true) only when its Content-Type contains
// application/octet-stream or multipart/form-data, and decodes every other body as UTF-8 text,
// which corrupts litefaas's binary (version 2) bodies. This module makes the local host honour
// the media types it is given: registered with `node --import <this file>` (litefaas serve
// --provider aws puts that in NODE_OPTIONS), its `load` hook adds the types listed in the
// OFFLINE_BINARY_MEDIA_TYPES environment variable (a JSON list: serverless.yml's
// provider.apiGateway.binaryMediaTypes) to the list serverless-offline checks, as it is loaded.
// A body sent with no Content-Type at all (tritonclient's binary tensor data) is taken as binary too,
// as a Function URL and an HTTP API base64-encode every body that is not text.
// Nothing on disk is changed; if serverless-offline's source no longer has that list, a warning
// is printed and it runs unchanged.
import { register } from "node:module"
import { isMainThread } from "node:worker_threads"

const TARGET = "/serverless-offline/src/utils/index.js"
const LIST = "const possibleBinaryContentTypes = ["
const TEXT_WHEN_UNTYPED = 'return typeof contentType === "string" &&'
const BINARY_WHEN_UNTYPED = 'return typeof contentType !== "string" ||'

if (isMainThread) {
  register(import.meta.url)
}

function mediaTypes() {
  try {
    const types = JSON.parse(process.env.OFFLINE_BINARY_MEDIA_TYPES || "[]")
    return Array.isArray(types) ? types.filter((type) => typeof type === "string" && type) : []
  } catch {
    return []
  }
}

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context)
  if (!url.endsWith(TARGET) || result.source == null) {
    return result
  }
  const source = typeof result.source === "string" ? result.source : Buffer.from(result.source).toString("utf8")
  if (!source.includes(LIST)) {
    process.emitWarning(`litefaas: ${TARGET} has no binary content type list; binary bodies stay text`)
    return result
  }
  const extra = mediaTypes().map((type) => `${JSON.stringify(type)}, `).join("")
  if (!source.includes(TEXT_WHEN_UNTYPED)) {
    process.emitWarning(`litefaas: ${TARGET} reads the content type differently; untyped bodies stay text`)
  }
  const patched = source.replace(LIST, `${LIST}${extra}`).replace(TEXT_WHEN_UNTYPED, BINARY_WHEN_UNTYPED)
  return { ...result, source: patched, shortCircuit: true }
}
