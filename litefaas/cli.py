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
    parser.add_argument("--calibration", type=Path, help=".npz with one array per input (and optional y labels)")
    parser.add_argument("--out", type=Path, help="artifact folder (default: model/artifacts/breast_cancer_mlp)")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01, help="default 0.01")
    parser.add_argument(
        "--max-abs-diff", type=float, default=0.1, help="budget when there are no labels (default 0.1)"
    )
    parser.add_argument("--epochs", type=int, default=60, help="training epochs for the seed MLP (default 60)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--name", help="model name (default: the seed's name or the file's)")
    parser.add_argument("--model-version", default="1.0.0", help="version written in the manifest")
    parser.set_defaults(handler=_build)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("demo", help="the main job: build the model and show what it gives")
    parser.add_argument("--out", type=Path, default=Path("build/demo-model"), help="where the demo writes")
    parser.set_defaults(handler=_demo)


REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [_add_build, _add_demo]


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
    root = parser()
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
