// serverless-offline, patched as it is loaded: registered with `node --import <this file>`
// (litefaas serve --provider aws puts that in NODE_OPTIONS), this module's `load` hook edits the
// source of two of its files. Nothing on disk is changed; where a file no longer has what a patch
// expects, a warning is printed and that patch is left out.
//
// 1. binaryMediaTypes. serverless-offline ignores API Gateway's: it hands a request body to the
//    handler base64-encoded (isBase64Encoded: true) only when its Content-Type contains
//    application/octet-stream or multipart/form-data, and decodes every other body as UTF-8 text,
//    which corrupts litefaas's binary (version 2) bodies. The types listed in the
//    OFFLINE_BINARY_MEDIA_TYPES environment variable (a JSON list: serverless.yml's
//    provider.apiGateway.binaryMediaTypes) join the list it checks. A body sent with no
//    Content-Type at all (tritonclient's binary tensor data) is taken as binary too, as a Function
//    URL and an HTTP API base64-encode every body that is not text.
// 2. A Python process that died. serverless-offline writes each event to the stdin of the Python
//    process of that Lambda instance and handles no error there: once that process has died
//    (killed, out of memory) a write can fail with EPIPE, nothing listens for it, and the whole
//    local gateway exits with every other request in flight, where Lambda fails that one
//    invocation. The stdin gets an error listener: the event is answered by the function's
//    timeout, after which serverless-offline starts a new process for that instance.
import { register } from "node:module"
import { isMainThread } from "node:worker_threads"

const LIST = "const possibleBinaryContentTypes = ["
const AFTER_SPAWN = "this.#handlerProcess.stdout.readline = createInterface({"

const PATCHES = {
  "/serverless-offline/src/utils/index.js": () => [
    [LIST, `${LIST}${mediaTypes().map((type) => `${JSON.stringify(type)}, `).join("")}`, "has no binary content type list; binary bodies stay text"],
    ['return typeof contentType === "string" &&', 'return typeof contentType !== "string" ||', "reads the content type differently; untyped bodies stay text"],
  ],
  "/serverless-offline/src/lambda/handler-runner/python-runner/PythonRunner.js": () => [
    [AFTER_SPAWN, `this.#handlerProcess.stdin.on("error", () => {})\n\n    ${AFTER_SPAWN}`, "starts its Python process differently; a dead one still stops the host"],
  ],
}

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
  const target = Object.keys(PATCHES).find((name) => url.endsWith(name))
  if (target === undefined || result.source == null) {
    return result
  }
  let source = typeof result.source === "string" ? result.source : Buffer.from(result.source).toString("utf8")
  for (const [expected, replacement, problem] of PATCHES[target]()) {
    if (source.includes(expected)) {
      source = source.replace(expected, replacement)
    } else {
      process.emitWarning(`litefaas: ${target} ${problem}`)
    }
  }
  return { ...result, source, shortCircuit: true }
}
