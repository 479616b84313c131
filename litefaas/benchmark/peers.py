"""litefaas's GCP host against the model servers a team would otherwise pick, side by side.

    python bench/peers.py [--duration S] [--rounds N] [--only NAME …] [--json FILE]

Each server serves the seed model (``model/artifacts/breast_cancer_mlp``'s selected ``.tflite``)
with LiteRT and the smallest glue it allows, at its documented defaults and one worker, on
127.0.0.1: KServe 0.21 (its v1 ``:predict`` and OIP v2), MLServer 1.7 (default, and parallel
workers off), BentoML 1.4, and litefaas's functions-framework host, sealed (version 1) and
plaintext, on ASGI (as deployed) and WSGI. The peers are installed on first use into their own
virtualenvs under ``build/peers/`` (PyPI only); the load generator is ``wrk`` (Debian's, installed
with apt where missing), one for all, each request body taken in turn from a file, so that every
sealed request is a new one (the function refuses a replayed id). Each peer's glue resizes the
interpreter only when a batch's shape changes, as litefaas's engine does.

Measured, in rounds that alternate the servers: cold start (process start to the first answer),
p50 latency at 1 client, requests/s at 16 clients, and the server's CPU time per request (its
process tree's user + system time from ``/proc``, over the requests answered). Printed as a table
with each row's ratio to KServe's v1 and written to ``build/bench/peers.json``; not part of
``make test`` or ``make demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litefaas.local.process import tree_cpu_s
from litefaas.paths import BUILD, ROOT

PEERS_DIR = BUILD / "peers"
RESULTS = BUILD / "bench" / "peers.json"
PINS = {
    "kserve": ("kserve==0.21.0",),
    # uvloop 0.22 made get_event_loop() raise where no loop runs, which MLServer 1.7.1's parallel
    # worker calls before its own loop starts: the default server's worker dies at start-up
    # (SeldonIO/MLServer#2286, its fix #2285 not released)
    "mlserver": ("mlserver==1.7.1", "uvloop==0.21.0"),
    "bentoml": ("bentoml==1.4.40",),
}
SEALED_RPS_CEILING = 6000
"""Sealed bodies made per second of load: more than one instance answers here (each is used once)."""
RUNTIME_PINS = ("ai-edge-litert==2.3.0", "numpy==2.4.6")

LUA = """
local bodies, i = {}, 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, nil, bodies[i])
end
"""

KSERVE_GLUE = """
import os, numpy as np, kserve
from ai_edge_litert.interpreter import Interpreter
from kserve.protocol.infer_type import InferRequest, InferResponse, InferOutput

class Seed(kserve.Model):
    def __init__(self):
        super().__init__("seed")
        self.interpreter = Interpreter(model_path=os.environ["SEED_MODEL"])
        self.interpreter.allocate_tensors()
        self.i = self.interpreter.get_input_details()[0]["index"]
        self.o = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_input_details()[0]["shape"])
        self.ready = True

    def run(self, rows):
        if rows.shape != self.shape:
            self.interpreter.resize_tensor_input(self.i, rows.shape)
            self.interpreter.allocate_tensors()
            self.shape = rows.shape
        self.interpreter.set_tensor(self.i, rows)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.o)

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            out = self.run(payload.inputs[0].as_numpy().astype(np.float32))
            output = InferOutput(name="probability", shape=list(out.shape), datatype="FP32")
            output.set_data_from_numpy(out, binary_data=False)
            return InferResponse(model_name="seed", infer_outputs=[output], response_id=payload.id or "0")
        return {"predictions": self.run(np.asarray(payload["instances"], dtype=np.float32)).tolist()}

if __name__ == "__main__":
    kserve.ModelServer(http_port=int(os.environ["PORT"]), enable_grpc=False, workers=1).start([Seed()])
"""

MLSERVER_GLUE = """
import os, numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from ai_edge_litert.interpreter import Interpreter

class Seed(MLModel):
    async def load(self):
        self.interpreter = Interpreter(model_path=os.environ["SEED_MODEL"])
        self.interpreter.allocate_tensors()
        self.i = self.interpreter.get_input_details()[0]["index"]
        self.o = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_input_details()[0]["shape"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        if rows.shape != self.shape:
            self.interpreter.resize_tensor_input(self.i, rows.shape)
            self.interpreter.allocate_tensors()
            self.shape = rows.shape
        self.interpreter.set_tensor(self.i, rows)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.o)
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("probability", out)])
"""

BENTOML_GLUE = """
import os, numpy as np, bentoml
from ai_edge_litert.interpreter import Interpreter

@bentoml.service(workers=1)
class Seed:
    def __init__(self):
        self.interpreter = Interpreter(model_path=os.environ["SEED_MODEL"])
        self.interpreter.allocate_tensors()
        self.i = self.interpreter.get_input_details()[0]["index"]
        self.o = self.interpreter.get_output_details()[0]["index"]
        self.shape = tuple(self.interpreter.get_input_details()[0]["shape"])

    @bentoml.api
    def predict(self, instances: list[list[float]]) -> list[list[float]]:
        rows = np.asarray(instances, dtype=np.float32)
        if rows.shape != self.shape:
            self.interpreter.resize_tensor_input(self.i, rows.shape)
            self.interpreter.allocate_tensors()
            self.shape = rows.shape
        self.interpreter.set_tensor(self.i, rows)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.o).tolist()
"""


@dataclass
class Server:
    """One server under test: how to start it, where to send what, and how to make bodies."""

    name: str
    path: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str]]
    bodies: Callable[[int], list[bytes]]
    content_type: str = "application/json"
    cwd: Path = ROOT
    results: dict[str, list[float]] = field(default_factory=dict)
    failure: str | None = None
    peer: str | None = None
    """The ``build/peers/`` virtualenv it runs from (None: litefaas, from this one)."""


def _python(peer: str) -> str:
    return str(PEERS_DIR / peer / "bin" / "python")


def install_peer(peer: str, log: Callable[[str], None]) -> None:
    """``build/peers/PEER``: a virtualenv with the peer and LiteRT, made once (PyPI only)."""
    folder = PEERS_DIR / peer
    stamp = folder / ".installed"
    pins = (*PINS[peer], *RUNTIME_PINS)
    if stamp.is_file() and stamp.read_text() == " ".join(pins):
        return
    log(f"installing {' '.join(PINS[peer])} into {folder.relative_to(ROOT)} (once)")
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)  # noqa: S603
    subprocess.run(  # noqa: S603
        [_python(peer), "-m", "pip", "install", "-q", *pins], check=True
    )
    stamp.write_text(" ".join(pins))


def ensure_wrk(log: Callable[[str], None]) -> str:
    """``wrk`` on PATH, installed from Debian with apt where it is missing (CI runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk with apt (Debian)")
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)  # noqa: S607
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed and apt could not install it")
    return found


def _post(url: str, body: bytes, content_type: str, timeout: float = 2.0) -> int:
    request = urllib.request.Request(  # noqa: S310 - an http URL to 127.0.0.1
        url, data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1
            return int(response.status)
    except Exception:  # noqa: BLE001 - not up yet
        return 0


def start(server: Server, port: int, deadline_s: float = 120) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``server`` and wait for its first 200 answer; (the process, seconds from spawn to it)."""
    started = time.perf_counter()
    output = tempfile.TemporaryFile()  # noqa: SIM115 - read on failure, closed with the process
    process = subprocess.Popen(  # noqa: S603
        server.argv(port),
        env=server.env(port),
        cwd=server.cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}{server.path}"
    probe = server.bodies(1)[0]
    while time.perf_counter() - started < deadline_s:
        if process.poll() is not None:
            output.seek(0)
            lines = output.read().decode("utf-8", "replace").splitlines()
            reason = next((line.strip() for line in reversed(lines) if "Error" in line), "")
            raise SystemExit(f"exited with {process.returncode} before answering ({reason[:160]})")
        if _post(url, probe, server.content_type, timeout=1.0) == 200:
            return process, time.perf_counter() - started
        time.sleep(0.005)
    stop(process)
    raise SystemExit(f"did not answer within {deadline_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _wrk_p50_ms(output: str) -> float:
    """The median latency of wrk's ``--latency`` distribution, in milliseconds."""
    found = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no median latency in wrk's output:\n{output}")
    return float(found.group(1)) * _UNIT_MS[found.group(2)]


def run_wrk(
    wrk: str, server: Server, port: int, pid: int, clients: int, duration: float, work: Path
) -> dict[str, float]:
    """One load: ``clients`` keep-alive connections for ``duration`` s; req/s, p50 ms, CPU µs/request."""
    estimate = int(duration * SEALED_RPS_CEILING) + 100
    bodies = server.bodies(estimate)
    lines = work / f"{server.name}-bodies.txt"
    lines.write_bytes(b"\n".join(bodies) + b"\n")
    script = work / "rotate.lua"
    script.write_text(LUA)
    argv = [
        wrk, "-t1", f"-c{clients}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(script),
        "-H", f"Content-Type: {server.content_type}", f"http://127.0.0.1:{port}{server.path}",
        "--", str(lines),
    ]  # fmt: skip
    cpu_before = tree_cpu_s(pid)  # the server and every worker it starts, in whatever group
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603
    cpu = tree_cpu_s(pid) - cpu_before
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if len(bodies) > 1 and requests > len(bodies):
        raise SystemExit(
            f"{server.name}: {requests} requests, over the {len(bodies)} bodies made:"
            " raise SEALED_RPS_CEILING"
        )
    if bad or errors:
        raise SystemExit(f"{server.name}: {output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": _wrk_p50_ms(output), "cpu_us": cpu / max(requests, 1) * 1e6}


def servers(model_file: Path, rows: list[list[float]], only: Sequence[str]) -> list[Server]:
    """Every server of the table (or those named in ``only``), with its request bodies."""
    from litefaas.benchmark.samples import make_keys, seal
    from litefaas.local.gcp import launch_spec
    from litefaas.local.serving import function_env

    keys = make_keys()
    row = rows[:1]
    base = {k: v for k, v in os.environ.items() if not k.startswith("LITEFAAS_")}
    model_env = {"SEED_MODEL": str(model_file), "PYTHONUNBUFFERED": "1"}
    glue = PEERS_DIR / "glue"
    v1_plain = json.dumps({"inputs": row}).encode()
    oip = json.dumps({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": row[0]}]})

    def litefaas(name: str, sealed: bool, asgi: bool) -> Server:
        def env(port: int) -> dict[str, str]:
            extra = {"LITEFAAS_PRIVATE_KEYS": keys.private_json, "LITEFAAS_ALLOW_PLAINTEXT": "1"}
            made, _ = function_env({**base, **extra, "FUNCTION_USE_ASGI": "true" if asgi else "false"})
            return launch_spec(port, made).env

        def bodies(count: int) -> list[bytes]:
            return [seal(keys, inputs=row).body for _ in range(count)] if sealed else [v1_plain]

        return Server(
            name,
            "/predict",
            lambda port: launch_spec(port, {}).argv,
            env,
            bodies,
            "application/litefaas+json" if sealed else "application/json",
        )

    def peer(name: str, peer_name: str, path: str, argv: Callable[[int], list[str]], body: bytes) -> Server:
        return Server(
            name,
            path,
            argv,
            lambda port: {**base, **model_env, "PORT": str(port)},
            lambda _: [body],
            cwd=glue,
            peer=peer_name,
        )

    def mlserver_argv(parallel: bool) -> Callable[[int], list[str]]:
        def argv(port: int) -> list[str]:
            folder = glue / f"mlserver-{'default' if parallel else 'serial'}-{port}"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(glue / "mlserver_glue.py", folder / "mlserver_glue.py")
            settings = {"http_port": port, "grpc_port": port + 1, "metrics_port": port + 2, "debug": False}
            if not parallel:
                settings["parallel_workers"] = 0
            (folder / "settings.json").write_text(json.dumps(settings))
            model = {"name": "seed", "implementation": "mlserver_glue.Seed"}
            (folder / "model-settings.json").write_text(json.dumps(model))
            return [str(PEERS_DIR / "mlserver" / "bin" / "mlserver"), "start", str(folder)]

        return argv

    v1_kserve = json.dumps({"instances": row}).encode()
    table = [
        litefaas("litefaas GCP host, ASGI, sealed (v1)", True, True),
        litefaas("litefaas GCP host, ASGI, plaintext (v1)", False, True),
        litefaas("litefaas GCP host, WSGI, sealed (v1)", True, False),
        litefaas("litefaas GCP host, WSGI, plaintext (v1)", False, False),
        peer("KServe 0.21, plaintext (v1 :predict)", "kserve", "/v1/models/seed:predict",
             lambda port: [_python("kserve"), str(glue / "kserve_glue.py")], v1_kserve),
        peer("KServe 0.21, plaintext (OIP v2)", "kserve", "/v2/models/seed/infer",
             lambda port: [_python("kserve"), str(glue / "kserve_glue.py")], oip.encode()),
        peer("MLServer 1.7, parallel workers off", "mlserver", "/v2/models/seed/infer", mlserver_argv(False),
             oip.encode()),
        peer("MLServer 1.7, default", "mlserver", "/v2/models/seed/infer", mlserver_argv(True), oip.encode()),
        peer("BentoML 1.4", "bentoml", "/predict",
             lambda port: [str(PEERS_DIR / "bentoml" / "bin" / "bentoml"), "serve", "bentoml_glue:Seed",
                           "--host", "127.0.0.1", "--port", str(port)],
             v1_kserve),
    ]  # fmt: skip
    return [s for s in table if not only or any(o.lower() in s.name.lower() for o in only)]


def _write_glue() -> None:
    glue = PEERS_DIR / "glue"
    glue.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("kserve_glue.py", KSERVE_GLUE),
        ("mlserver_glue.py", MLSERVER_GLUE),
        ("bentoml_glue.py", BENTOML_GLUE),
    ):
        (glue / name).write_text(textwrap.dedent(text))


def print_table(rows: list[dict[str, Any]], load: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"the seed model, batch 1, one worker each (medians; load {load})")
    for column in ("server", "cold start", "p50 at 1 client", "req/s at 16 clients", "CPU per request"):
        table.add_column(column, justify="left" if column == "server" else "right")
    reference = next((r for r in rows if r["name"].startswith("KServe") and "v1" in r["name"]), None)

    def ratio(row: dict[str, Any], key: str) -> str:
        if reference is None or row is reference:
            return ""
        return f" ({row[key] / reference[key]:.2f}×)"

    for row in rows:
        table.add_row(
            row["name"],
            f"{row['cold_s']:.2f} s{ratio(row, 'cold_s')}",
            f"{row['p50_ms']:.2f} ms{ratio(row, 'p50_ms')}",
            f"{row['rps']:,.0f}{ratio(row, 'rps')}",
            f"{row['cpu_us']:,.0f} µs{ratio(row, 'cpu_us')}",
        )
    Console(width=120).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per load (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every server (default 3)")
    parser.add_argument("--only", action="append", default=[], help="servers whose name contains this")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from core.engine import load_artifact
    from litefaas.benchmark.samples import ROWS
    from litefaas.local.process import free_port

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    wrk = ensure_wrk(log)
    manifest, _ = load_artifact(ROOT / "model" / "artifacts" / "breast_cancer_mlp")
    model_file = ROOT / "model" / "artifacts" / "breast_cancer_mlp" / manifest.file
    chosen = servers(model_file, ROWS, args.only)
    for peer in sorted({s.peer for s in chosen if s.peer is not None}):
        install_peer(peer, log)
    _write_glue()
    loads_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="litefaas-peers-") as scratch:
        work = Path(scratch)
        for round_number in range(args.rounds):
            for server in chosen:
                if server.failure is not None:
                    continue
                port = free_port()
                log(f"round {round_number + 1}/{args.rounds}: {server.name}")
                try:
                    process, cold = start(server, port)
                except SystemExit as exc:
                    server.failure = str(exc)
                    log(f"{server.name}: {exc}; left out of the table")
                    continue
                try:
                    server.results.setdefault("cold_s", []).append(cold)
                    one = run_wrk(wrk, server, port, process.pid, 1, args.duration, work)
                    many = run_wrk(wrk, server, port, process.pid, 16, args.duration, work)
                finally:
                    stop(process)
                server.results.setdefault("p50_ms", []).append(one["p50_ms"])
                server.results.setdefault("rps", []).append(many["rps"])
                server.results.setdefault("cpu_us", []).append(many["cpu_us"])
    rows = [
        {"name": s.name, **{k: statistics.median(v) for k, v in s.results.items()}}
        for s in chosen
        if s.failure is None and s.results
    ]
    failed = {s.name: s.failure for s in chosen if s.failure is not None}
    load = f"{loads_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after (1-minute averages)"
    print_table(rows, load)
    for name, reason in failed.items():
        print(f"{name}: not measured: {reason}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"rows": rows, "failed": failed, "load": load, "rounds": args.rounds}, indent=2) + "\n"
    )
    log(f"wrote {args.json}")
    return 0
