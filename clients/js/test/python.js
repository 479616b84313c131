// What the interoperability and end-to-end tests share: the repository's Python, its helper,
// and a local function host started and stopped by process group.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "..", "..", "..");
export const PYTHON = process.env.LITEFAAS_PYTHON ?? join(ROOT, ".venv", "bin", "python");
export const HAVE_PYTHON = existsSync(PYTHON);
export const SKIP_PYTHON = HAVE_PYTHON ? false : "the project's virtualenv is not there (make setup)";

/** Run the Python helper with one JSON command; resolves to its JSON answer. */
export function helper(command) {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(PYTHON, [join(here, "interop_helper.py")], { cwd: ROOT, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`interop helper failed: ${stderr || error.message}`));
      else resolvePromise(JSON.parse(stdout));
    });
    child.stdin.end(JSON.stringify(command));
  });
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePromise(port));
    });
  });
}

/**
 * Start Google Cloud Functions' local host (functions-framework serving handlers/gcp/main.py)
 * with `env`, and wait until `GET /health` says ok. Returns { baseUrl, stop, log }.
 */
export async function startGcp(env, timeoutMs = 60_000) {
  const port = await freePort();
  const executable = join(dirname(PYTHON), "functions-framework");
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("LITEFAAS_")));
  const child = spawn(
    executable,
    ["--target", "predict", "--source", join("handlers", "gcp", "main.py"), "--host", "127.0.0.1", "--port", String(port)],
    { cwd: ROOT, env: { ...clean, PYTHONUNBUFFERED: "1", ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout.on("data", (chunk) => (log += chunk));
  child.stderr.on("data", (chunk) => (log += chunk));
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`functions-framework exited (${child.exitCode}):\n${log.slice(-2000)}`);
    try {
      const response = await fetch(`${baseUrl}/health`);
      if (response.ok && (await response.json()).status === "ok") return { baseUrl, stop, log: () => log };
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`functions-framework was not healthy after ${timeoutMs} ms:\n${log.slice(-2000)}`);
}
