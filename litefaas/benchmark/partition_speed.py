"""Model partitioning, measured side by side in one run on local functions-framework hosts.

    python -m litefaas.benchmark.partition_speed [--out build/bench/partition] [--workers 4] [--quick]

1. Batch fan-out: ``Client.predict(rows, fan_out=K)`` against one function host with several
   gunicorn workers, K = 1, 2, 4, 8, on batches of 256 to 65,536 rows. Speed-up
   T = t_sequential / t_parallel, where t_sequential is the same batch at K = 1 (its shards one
   after the other) and t_parallel the batch at K. Each request carries at most 1,024 rows (the
   function's default limit), so 65,536 rows are 64 requests at every K.
2. Layer segments: the seed MLP cut into 2 and 3 int8 segments (``litefaas partition``), each
   segment on its own host with its own keys, driven by ``ChainClient``; latency against the
   whole model on its own host, at batch 1, 64 and 1,024.

Everything listens on 127.0.0.1 and the load is bounded (one client process, at most 8 requests
in flight); the whole run takes about two minutes on 2 cores. Every answer is checked against the
local model. Writes ``partition_speed.json``, ``partition_speed.png`` and ``report.md`` to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

FAN_OUTS = (1, 2, 4, 8)
BATCHES = (256, 1_024, 4_096, 65_536)
CHAIN_BATCHES = (1, 64, 1_024)


def build_chains(work: Path, epochs: int) -> dict[str, Path]:
    """The seed MLP trained as ``litefaas build`` trains it, cut into 2 and 3 int8 segments."""
    from model.data import BREAST_CANCER_LABEL, breast_cancer
    from model.partition import PartitionOptions, partition_model
    from model.train import train_seed_mlp

    split = breast_cancer()
    model = train_seed_mlp(split.train, epochs=epochs)
    chains = {}
    for count in (2, 3):
        out = work / f"chain{count}"
        partition_model(
            model,
            split.train,
            split.test,
            PartitionOptions(out=out, segments=count, with_whole=count == 2),
            name="breast_cancer_mlp",
            feature_names=split.test.feature_names,
            label_meaning=BREAST_CANCER_LABEL,
        )
        chains[f"{count}"] = out
    return chains


def host_env(model_dir: Path, workers: int, threads: int) -> dict[str, str]:
    """A function's environment: its own fresh key, its model, gunicorn's workers and threads."""
    from litefaas.local.serving import function_env

    base = {k: v for k, v in os.environ.items() if not k.startswith("LITEFAAS_")}
    base.update(
        {
            "LITEFAAS_MODEL_DIR": str(model_dir),
            "LITEFAAS_LOG_LEVEL": "WARNING",
            "WORKERS": str(workers),
            "THREADS": str(threads),
            "FUNCTION_USE_ASGI": "false",  # gunicorn's threads: what THREADS sizes
        }
    )
    env, _ = function_env(base)
    return env


def start_hosts(specs: dict[str, tuple[Path, int, int]]) -> dict[str, object]:
    from litefaas.local.gcp import launch_spec
    from litefaas.local.process import free_port
    from litefaas.local.serving import start_all

    launches = {
        name: launch_spec(free_port(), host_env(model_dir, workers, threads))
        for name, (model_dir, workers, threads) in specs.items()
    }
    return {server.name: server for server in start_all(launches, timeout=120)}


def timed(function, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return samples


def measure_fan_out(url: str, rows: list[list[float]], reference, quick: bool) -> list[dict[str, object]]:
    """Median wall time of each (batch, K); the K values take turns within each repeat, so a slow
    moment of the shared machine falls on all of them alike."""
    import numpy as np

    from litefaas.client import Client, plan_shards, rows_per_request

    results = []
    with Client(url, timeout=120) as function:
        for _ in range(3):  # every worker thread builds its interpreter; connections open
            function.predict(rows[:8192], fan_out=8)
        for size in BATCHES:
            batch = rows[:size]
            repeats = 3 if size > 10_000 else (3 if quick else 9)
            samples: dict[int, list[float]] = {k: [] for k in FAN_OUTS}
            client_cpu: dict[int, list[float]] = {k: [] for k in FAN_OUTS}
            for fan_out in FAN_OUTS:
                answer = function.predict(batch, fan_out=fan_out)
                np.testing.assert_allclose(answer.outputs, reference[:size], atol=1e-6)
            for _ in range(repeats):
                for fan_out in FAN_OUTS:
                    cpu = time.process_time()
                    samples[fan_out] += timed(lambda b=batch, k=fan_out: function.predict(b, fan_out=k), 1)
                    client_cpu[fan_out].append(time.process_time() - cpu)
            for fan_out in FAN_OUTS:
                median = statistics.median(samples[fan_out])
                results.append(
                    {
                        "rows": size,
                        "fan_out": fan_out,
                        "requests": len(plan_shards(size, fan_out, rows_per_request(batch))),
                        "seconds": median,
                        "client_cpu_seconds": statistics.median(client_cpu[fan_out]),
                        "samples": samples[fan_out],
                    }
                )
                print(f"  fan-out {size:>6} rows K={fan_out}: {median * 1000:8.1f} ms")
    for row in results:
        sequential = next(r for r in results if r["rows"] == row["rows"] and r["fan_out"] == 1)
        row["speedup"] = sequential["seconds"] / row["seconds"]
        row["rows_per_s"] = row["rows"] / row["seconds"]
    return results


def measure_chains(urls: dict[str, list[str]], chains: dict[str, Path], rows, quick: bool) -> list[dict]:
    import numpy as np

    from litefaas.client import ChainClient, Client

    results = []
    clients = {
        "whole": Client(urls["whole"][0], timeout=60),
        "2 segments": ChainClient(urls["2"], chain=chains["2"] / "chain.json", timeout=60),
        "3 segments": ChainClient(urls["3"], chain=chains["3"] / "chain.json", timeout=60),
    }
    try:
        for size in CHAIN_BATCHES:
            batch = rows[:size]
            repeats = {1: 300, 64: 100, 1_024: 20}[size] // (3 if quick else 1)
            answers = {}
            for name, function in clients.items():
                for _ in range(5):
                    answers[name] = function.predict(batch).outputs
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(repeats):
                for name, function in clients.items():
                    samples[name] += timed(lambda f=function, b=batch: f.predict(b), 1)
            for name in clients:
                median = statistics.median(samples[name])
                results.append({"what": name, "rows": size, "seconds": median, "repeats": repeats})
                print(f"  chain {name:>10} batch {size:>5}: {median * 1000:8.2f} ms")
            for name in ("2 segments", "3 segments"):
                difference = float(np.max(np.abs(answers[name] - answers["whole"])))
                assert difference <= 0.05, f"{name} differs from the whole model by {difference}"
    finally:
        for function in clients.values():
            function.close()
    for row in results:
        whole = next(r for r in results if r["what"] == "whole" and r["rows"] == row["rows"])
        row["overhead_ratio"] = row["seconds"] / whole["seconds"]
        row["added_ms"] = (row["seconds"] - whole["seconds"]) * 1000
    return results


def crossover(fan_out: list[dict]) -> dict[str, object]:
    """The smallest batch at which some K > 1 beats K = 1 by at least 10 %, and the best K per batch."""
    best = {}
    for size in BATCHES:
        rows = [r for r in fan_out if r["rows"] == size]
        top = max(rows, key=lambda r: r["speedup"])
        best[str(size)] = {"fan_out": top["fan_out"], "speedup": round(top["speedup"], 2)}
    paying = [
        size for size in BATCHES if best[str(size)]["fan_out"] > 1 and best[str(size)]["speedup"] >= 1.1
    ]
    return {"best_fan_out_by_rows": best, "fan_out_pays_from_rows": paying[0] if paying else None}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for size in BATCHES:
        rows = [r for r in results["fan_out"] if r["rows"] == size]
        left.plot(
            [r["fan_out"] for r in rows], [r["speedup"] for r in rows], marker="o", label=f"{size:,} rows"
        )
    left.plot(FAN_OUTS, FAN_OUTS, linestyle=":", color="grey", label="ideal")
    cores = results["machine"]["cpu_count"]
    left.axhline(cores, linestyle="--", color="black", linewidth=0.8, label=f"{cores} cores")
    left.axhline(1, color="grey", linewidth=0.6)
    left.set_xscale("log", base=2)
    left.set(xticks=FAN_OUTS, xlabel="fan-out K (requests in flight)", ylabel="T = t_seq / t_par")
    left.set_xticklabels([str(k) for k in FAN_OUTS])
    left.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    highest = max(r["speedup"] for r in results["fan_out"])
    left.set_ylim(0, max(cores, highest) + 1)
    left.set_title(f"batch fan-out, {results['hosts']['fan_out_workers']} workers")
    left.legend(fontsize=8)

    names = ["whole", "2 segments", "3 segments"]
    width = 0.25
    for offset, name in enumerate(names):
        rows = [r for r in results["chain"] if r["what"] == name]
        positions = [i + (offset - 1) * width for i in range(len(CHAIN_BATCHES))]
        bars = right.bar(positions, [r["seconds"] * 1000 for r in rows], width, label=name)
        right.bar_label(bars, labels=[f"{r['seconds'] * 1000:.1f}" for r in rows], fontsize=7)
    right.set(
        xticks=range(len(CHAIN_BATCHES)),
        xticklabels=[f"batch {b:,}" for b in CHAIN_BATCHES],
        ylabel="median latency, ms (log)",
        yscale="log",
        title="layer segments: chain vs whole model",
    )
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(results: dict) -> str:
    lines = ["# Model partitioning: fan-out speed-up and chain overhead", ""]
    machine = results["machine"]
    hosts = results["hosts"]
    lines += [
        f"{machine['cpu_count']} cores, Python {machine['python']}; functions-framework (gunicorn gthread), "
        f"{hosts['fan_out_workers']} workers × {hosts['fan_out_threads']} threads for the fan-out host, "
        f"1 worker per segment host; client and hosts on the same machine, 127.0.0.1. "
        f"Run took {results['seconds']:.0f} s.",
        "",
        "## Batch fan-out: T = t_sequential / t_parallel",
        "",
        "| rows | " + " | ".join(f"K={k}" for k in FAN_OUTS) + " | t at K=1 | client CPU at K=1 | bound |",
        "| ---: | " + " | ".join("---:" for _ in FAN_OUTS) + " | ---: | ---: | ---: |",
    ]
    for size in BATCHES:
        rows = {r["fan_out"]: r for r in results["fan_out"] if r["rows"] == size}
        cells = " | ".join(f"{rows[k]['speedup']:.2f}" for k in FAN_OUTS)
        sequential, cpu = rows[1]["seconds"], rows[1]["client_cpu_seconds"]
        lines.append(
            f"| {size:,} | {cells} | {sequential * 1000:,.1f} ms | {cpu * 1000:,.1f} ms | "
            f"{sequential / max(cpu, 1e-9):.2f} |"
        )
    lines += [
        "",
        "bound: t at K=1 over the client's own CPU time at K=1. The client is one Python process: its "
        "JSON encoding and sealing of every shard cannot overlap, so T cannot pass this bound "
        "whatever K is (Amdahl); on 2 shared cores the hosts' workers also compete with it.",
    ]
    cross = results["crossover"]
    lines += [
        "",
        f"Fan-out pays (T ≥ 1.1) from {cross['fan_out_pays_from_rows'] or 'none of the measured'} rows; "
        "best K per batch: "
        + ", ".join(
            f"{int(k):,} rows → K={v['fan_out']} (T={v['speedup']})"
            for k, v in cross["best_fan_out_by_rows"].items()
        )
        + ".",
        "",
        "## Layer segments: chain latency against the whole model",
        "",
        "| batch | whole | 2 segments | 3 segments |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for size in CHAIN_BATCHES:
        rows = {r["what"]: r for r in results["chain"] if r["rows"] == size}
        cells = [f"{rows['whole']['seconds'] * 1000:.2f} ms"] + [
            f"{r['seconds'] * 1000:.2f} ms (×{r['overhead_ratio']:.2f}, +{r['added_ms']:.2f} ms)"
            for r in (rows["2 segments"], rows["3 segments"])
        ]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    for count, verification in results["verification"].items():
        lines.append("")
        lines.append(
            f"{count}-segment chain verified on {verification['rows']} held-out rows: float32 max |Δ| "
            f"{verification['float32']['max_abs_diff_vs_whole']:.2e} (≤ 1e-5), int8 max |Δ| "
            f"{verification['int8']['max_abs_diff_vs_whole']:.2e} "
            f"(≤ {verification['int8']['tolerance']:.4f}, the whole int8 model's own error)."
        )
    lines += ["", "![fan-out speed-up and chain overhead](partition_speed.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("build/bench/partition"))
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers of the fan-out host")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker")
    parser.add_argument("--epochs", type=int, default=60, help="seed MLP epochs (60: the committed model)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    started = time.perf_counter()

    import numpy as np

    from core.engine import Engine
    from litefaas.benchmark.samples import ROWS

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="litefaas-partition-bench-") as scratch:
        work = Path(scratch)
        print("partitioning the seed MLP into 2 and 3 segments …")
        chains = build_chains(work, args.epochs)
        whole_dir = chains["2"] / "whole"
        hosts = {"whole": (whole_dir, args.workers, args.threads)}
        for count in ("2", "3"):
            for entry in json.loads((chains[count] / "chain.json").read_text())["segments"]:
                hosts[f"{count}-{entry['index']}"] = (chains[count] / entry["folder"], 1, 2)
        print(f"starting {len(hosts)} functions-framework hosts …")
        servers = start_hosts(hosts)
        try:
            urls = {
                "whole": [servers["whole"].spec.base_url],
                "2": [servers[f"2-{i}"].spec.base_url for i in (1, 2)],
                "3": [servers[f"3-{i}"].spec.base_url for i in (1, 2, 3)],
            }
            base = [[float(v) for v in row] for row in ROWS]
            # distinct rows with at most 6 decimals, as a CSV of these features would hold them
            rows = [
                [round(v * (1 + 1e-4 * (i % 97)), 6) for v in base[i % len(base)]]
                for i in range(max(BATCHES))
            ]
            reference = Engine.from_dir(whole_dir).predict({"features": np.asarray(rows, dtype=np.float32)})
            print("measuring fan-out …")
            fan_out = measure_fan_out(urls["whole"][0], rows, reference["probability"], args.quick)
            print("measuring chains …")
            chain = measure_chains(urls, chains, rows, args.quick)
        finally:
            for server in servers.values():
                with contextlib.suppress(Exception):
                    server.stop()
        verification = {
            count: json.loads((chains[count] / "chain.json").read_text())["verification"]
            for count in ("2", "3")
        }
        segment_bytes = {
            count: [s["bytes"] for s in json.loads((chains[count] / "chain.json").read_text())["segments"]]
            for count in ("2", "3")
        }

    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.system(),
        },
        "hosts": {
            "kind": "functions-framework (gunicorn gthread)",
            "fan_out_workers": args.workers,
            "fan_out_threads": args.threads,
            "segment_workers": 1,
            "segment_threads": 2,
            "max_batch": 1024,
        },
        "fan_out": fan_out,
        "crossover": crossover(fan_out),
        "chain": chain,
        "segment_bytes": segment_bytes,
        "verification": verification,
        "seconds": time.perf_counter() - started,
    }
    (args.out / "partition_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "partition_speed.png")
    (args.out / "report.md").write_text(report(results))
    print(report(results))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
