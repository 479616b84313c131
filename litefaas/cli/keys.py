"""``litefaas keys generate`` and ``litefaas keys public``: a function's key pair, and its public key set."""

from __future__ import annotations

import argparse
from pathlib import Path

from litefaas.cli.base import Commands, print_json, read_text, write_private
from litefaas.errors import CommandError


def register(commands: Commands) -> None:
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
    generate.set_defaults(handler=run_generate)
    public = actions.add_parser("public", help="print the public key set of a private key file")
    public.add_argument("--in", dest="source", type=Path, required=True, help="private key file")
    public.set_defaults(handler=run_public)


def run_generate(args: argparse.Namespace) -> int:
    from core import crypto
    from core.encoding import b64u_encode
    from core.protocol import private_keyset_json

    suite = args.suite or crypto.DEFAULT_SUITE
    if not crypto.KID_PATTERN.fullmatch(args.kid):
        raise CommandError("--kid must be 1-64 characters of [A-Za-z0-9._-]")
    if suite not in crypto.SUITES:
        raise CommandError(f"--suite must be one of {', '.join(crypto.SUITES)}")
    private = b64u_encode(crypto.generate_private_key(suite))
    ring_json = private_keyset_json([(args.kid, suite, private)])
    keyset = crypto.KeyRing.from_json(ring_json).public_keyset()
    write_private(args.out, ring_json + "\n")
    print_json(keyset)
    return 0


def run_public(args: argparse.Namespace) -> int:
    from core import crypto

    try:
        ring = crypto.KeyRing.from_json(read_text(args.source))
    except ValueError as exc:
        raise CommandError(f"{args.source}: {exc}") from None
    print_json(ring.public_keyset())
    return 0
