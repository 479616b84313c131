"""The ``litefaas`` command. Subcommands import what they need lazily so ``--help`` is instant."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_USAGE = 2


class CommandError(Exception):
    """A command cannot go on; the message says why. Exit code 2."""


def _build(args: argparse.Namespace) -> int:
    from litefaas.build_cmd import run_build

    return run_build(args)


def _demo(args: argparse.Namespace) -> int:
    from litefaas.build_cmd import run_demo

    return run_demo(args)


def _add_build(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "build",
        help="train or import a model, convert and compress it, write the artifact",
        description="Train the seed MLP (or import --from a Keras file or SavedModel), convert it to "
        "float32, float16, dynamic-range and full-int8 TFLite, measure each, select the default "
        "variant and write the artifact folder.",
    )
    parser.add_argument("--from", dest="source", type=Path, help="a .keras/.h5 file or a SavedModel folder")
    parser.add_argument(
        "--calibration", type=Path, help=".npz with one array per input (and optional y labels)"
    )
    parser.add_argument(
        "--out", type=Path, help="artifact folder (default: model/artifacts/breast_cancer_mlp)"
    )
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01, help="default 0.01")
    parser.add_argument(
        "--max-abs-diff", type=float, default=0.1, help="budget when there are no labels (default 0.1)"
    )
    parser.add_argument(
        "--epochs", type=int, default=60, help="training epochs for the seed MLP (default 60)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", help="model name (default: the seed's name or the file's)")
    parser.add_argument("--model-version", default="1.0.0", help="version written in the manifest")
    parser.set_defaults(handler=_build)


def _serve(args: argparse.Namespace) -> int:
    from litefaas.serve import PROVIDERS, run_serve

    providers = list(PROVIDERS) if args.provider == "all" else [args.provider]
    return run_serve(providers, args.port, args.plaintext)


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the function locally on a provider's own tooling",
        description="Serve the function on 127.0.0.1 with serverless-offline (aws), functions-framework "
        "(gcp) or the Azure Functions host (azure); 'all' starts the three on consecutive ports. Keys come "
        "from LITEFAAS_PRIVATE_KEYS(_FILE), or a fresh key is made for the session.",
    )
    parser.add_argument("--provider", choices=["aws", "gcp", "azure", "all"], default="all")
    parser.add_argument("--port", type=int, default=8080, help="first port (default 8080)")
    parser.add_argument(
        "--plaintext", action="store_true", help="also accept plaintext requests (development)"
    )
    parser.set_defaults(handler=_serve)


def _add_partition(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from litefaas.partition_cmd import register

    register(commands)


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from litefaas.simulate_cmd import register

    register(commands)


def _add_package(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from litefaas.package_cmd import register

    register(commands)


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from litefaas.bench_cmd import register

    register(commands)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="the main job: the model, then the function served on all three providers and compared",
        description="Show the model's compression table (building the model if its artifact is missing), "
        "then run `litefaas bench --quick` on the three local hosts and print the comparison.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("build/bench"), help="report folder (default build/bench)"
    )
    parser.add_argument("--port", type=int, default=8300, help="first local port (default 8300)")
    parser.set_defaults(handler=_demo)


def _client_command(args: argparse.Namespace) -> int:
    from litefaas import keys_cmd

    return int(getattr(keys_cmd, args.client_run)(args))


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="make a function's key pair; print public key sets")
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate", help="write a new private key file (mode 0600); print its public key set"
    )
    generate.add_argument("--kid", required=True, help="key id: 1-64 characters of [A-Za-z0-9._-]")
    generate.add_argument("--suite", help="HPKE suite (default x25519-sha256-aes128gcm)")
    generate.add_argument(
        "--out", type=Path, required=True, help="private key file to create (never replaced)"
    )
    generate.set_defaults(handler=_client_command, client_run="run_keys_generate")
    public = actions.add_parser("public", help="print the public key set of a private key file")
    public.add_argument("--in", dest="source", type=Path, required=True, help="private key file")
    public.set_defaults(handler=_client_command, client_run="run_keys_public")

    inputs_help = "rows: a .json list (or {'inputs': ...}), a .csv of numbers, or - for JSON on stdin"
    encrypt = commands.add_parser(
        "encrypt", help="seal inputs to a function's public key; print the request body"
    )
    encrypt.add_argument(
        "--keys", required=True, metavar="URL|FILE|JSON", help="the function's /keys URL or key set"
    )
    encrypt.add_argument("--kid", help="key to use (default: the first)")
    encrypt.add_argument("--suite", help="use the first key of this suite")
    encrypt.add_argument("--input", required=True, metavar="FILE|-", help=inputs_help)
    encrypt.add_argument("--secrets-out", type=Path, help="file (mode 0600) keeping what decrypts the answer")
    encrypt.set_defaults(handler=_client_command, client_run="run_encrypt")

    decrypt = commands.add_parser("decrypt", help="open a function's sealed answer; print its JSON")
    decrypt.add_argument("--secrets", type=Path, required=True, help="the file litefaas encrypt wrote")
    decrypt.add_argument(
        "--in", dest="source", default="-", metavar="FILE|-", help="response body (default stdin)"
    )
    decrypt.set_defaults(handler=_client_command, client_run="run_decrypt")

    predict = commands.add_parser("predict", help="call a function; print one JSON line of outputs per row")
    predict.add_argument("--url", required=True, help="the function's base URL (…/predict, /keys, /health)")
    predict.add_argument("--input", required=True, metavar="FILE|-", help=inputs_help)
    predict.add_argument(
        "--plaintext", action="store_true", help="send in clear (where the function allows it)"
    )
    predict.add_argument("--kid", help="key to use (default: the first)")
    predict.add_argument("--suite", help="use the first key of this suite")
    predict.add_argument("--timeout", type=float, default=30, help="seconds (default 30)")
    predict.add_argument(
        "--fan-out", type=int, metavar="K", help="split the rows into shards, K requests in flight"
    )
    predict.add_argument(
        "--retries",
        type=int,
        default=2,
        help="with --fan-out: resend a shard after a network error or 5xx, with a new id (default 2)",
    )
    predict.add_argument(
        "--max-batch", type=int, default=1024, help="the function's LITEFAAS_MAX_BATCH (default 1024)"
    )
    predict.set_defaults(handler=_client_command, client_run="run_predict")


REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_build,
    _add_partition,
    _add_client_commands,
    _add_serve,
    _add_package,
    _add_bench,
    _add_simulate,
    _add_demo,
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="litefaas",
        description="Serve compact LiteRT models from serverless functions on AWS, GCP and Azure, "
        "with end-to-end encrypted inputs and outputs.",
    )
    from litefaas import __version__

    root.add_argument("--version", action="version", version=f"litefaas {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTRARS:
        register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``litefaas`` console script."""
    return run(parser(), argv)


def run(root: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``root`` and run the chosen command; user errors exit 2, Ctrl-C 130."""
    args = root.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        root.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except CommandError as exc:
        print(f"litefaas {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
