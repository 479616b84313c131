// serverless-offline writes each event to the stdin of its Python process for that Lambda instance
// and handles no error there: once that process has died (killed, out of memory) the next write
// fails with EPIPE, nothing listens for it, and the whole local gateway exits with every other
// request in flight. Lambda itself fails only that invocation. Registered with
// `node --import <this file>` (litefaas serve --provider aws puts it in NODE_OPTIONS), this
// module's `load` hook gives each Python process's stdin an error listener as serverless-offline
// is loaded: the event sent to a dead process is then answered by the function's timeout, after
// which serverless-offline starts a new process for that instance (its own cleanup on a timeout).
// Nothing on disk is changed; if serverless-offline's source no longer spawns its Python process
// where this expects, a warning is printed and it runs unchanged.
import { register } from "node:module"
import { isMainThread } from "node:worker_threads"

const TARGET = "/serverless-offline/src/lambda/handler-runner/python-runner/PythonRunner.js"
const AFTER_SPAWN = "this.#handlerProcess.stdout.readline = createInterface({"
const GUARD = 'this.#handlerProcess.stdin.on("error", () => {})\n\n    '

if (isMainThread) {
  register(import.meta.url)
}

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context)
  if (!url.endsWith(TARGET) || result.source == null) {
    return result
  }
  const source = typeof result.source === "string" ? result.source : Buffer.from(result.source).toString("utf8")
  if (!source.includes(AFTER_SPAWN)) {
    process.emitWarning(`litefaas: ${TARGET} starts its Python process differently; a dead one still stops the host`)
    return result
  }
  return { ...result, source: source.replace(AFTER_SPAWN, `${GUARD}${AFTER_SPAWN}`), shortCircuit: true }
}
