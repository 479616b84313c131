"""What the command modules share: the registrar's type, reading and writing files, printing JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

from litefaas.errors import CommandError, ToolError

EXIT_USAGE = 2

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``register(commands)`` adds its subcommands to."""


def print_json(document: object) -> None:
    print(json.dumps(document))


def read_text(source: str | Path) -> str:
    """A file's text, or stdin's for ``-``."""
    if str(source) == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CommandError(f"cannot read {source}: {reason}") from None


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only and write ``text``; never replace a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CommandError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None


def run(root: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``root`` and run the chosen command; tool errors exit 2, Ctrl-C 130."""
    from model.errors import BuildError

    args = root.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        root.print_help()
        return EXIT_USAGE
    try:
        return int(handler(args))
    except (ToolError, BuildError) as exc:
        print(f"litefaas {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
