"""``litefaas keys generate``, ``keys public`` and ``keys push``: a function's key pair, its public key
set, and the private set put into a cloud's secret store."""

from __future__ import annotations

import argparse
from pathlib import Path

from litefaas.cli.base import Commands, print_json, read_text, write_private
from litefaas.errors import CommandError

OHTTP_KEYS_HELP = (
    "also write the public set as Oblivious HTTP key configurations (application/ohttp-keys), for "
    "clients that pin them (litefaas predict --oblivious --gateway-keys FILE); default: beside --out, "
    "with the suffix .ohttp-keys"
)


def _write_ohttp_keys(ring: object, target: Path) -> None:
    """The gateway's ``application/ohttp-keys`` (public), and a line on stderr saying where."""
    import sys

    from core import crypto
    from core.protocol import OHTTP_KEYS_TYPE

    assert isinstance(ring, crypto.KeyRing)
    target.write_bytes(ring.gateway.key_configs)
    print(
        f"wrote {target}: the Oblivious HTTP key configurations ({OHTTP_KEYS_TYPE}) to pin", file=sys.stderr
    )


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
    generate.add_argument("--ohttp-keys-out", type=Path, metavar="FILE", help=OHTTP_KEYS_HELP)
    generate.set_defaults(handler=run_generate)
    public = actions.add_parser("public", help="print the public key set of a private key file")
    public.add_argument("--in", dest="source", type=Path, required=True, help="private key file")
    public.add_argument("--ohttp-keys-out", type=Path, metavar="FILE", help=OHTTP_KEYS_HELP)
    public.set_defaults(handler=run_public)
    push = actions.add_parser(
        "push",
        help="put a private key set into the cloud's secret store (rotation: a set with a new first key)",
        description="AWS Secrets Manager (boto3), GCP Secret Manager (gcloud, the set on stdin), Azure Key "
        "Vault (az, from a 0600 copy). The file must be readable by its owner only; a public key set is "
        "refused; the key material is never printed nor put in a command's arguments.",
    )
    push.add_argument("--cloud", required=True, choices=("aws", "gcp", "azure"))
    push.add_argument("--stage", default="dev", help="stage (default dev): names the secret")
    push.add_argument("--keys", type=Path, required=True, help="private key file (keys generate --out)")
    push.add_argument("--region", help="AWS region (default AWS_REGION or us-east-1)")
    push.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="serverless.yml parameters: privateKeysSecret, gcpProject, azureKeyVault (repeatable)",
    )
    push.add_argument("--dry-run", action="store_true", help="print the commands instead")
    push.set_defaults(handler=run_push)


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
    ring = crypto.KeyRing.from_json(ring_json)
    write_private(args.out, ring_json + "\n")
    print_json(ring.public_keyset())
    _write_ohttp_keys(ring, args.ohttp_keys_out or args.out.with_suffix(".ohttp-keys"))
    return 0


def run_public(args: argparse.Namespace) -> int:
    from core import crypto

    try:
        ring = crypto.KeyRing.from_json(read_text(args.source))
    except ValueError as exc:
        raise CommandError(f"{args.source}: {exc}") from None
    print_json(ring.public_keyset())
    if args.ohttp_keys_out is not None:
        _write_ohttp_keys(ring, args.ohttp_keys_out)
    return 0


def run_push(args: argparse.Namespace) -> int:
    from litefaas.cli.package import _needles, parse_params
    from litefaas.packaging import deploy
    from litefaas.packaging.provision import Runner, read_private_keyset, secret_name

    keyset = read_private_keyset(args.keys)
    params = parse_params(args.param)
    runner = Runner(dry_run=args.dry_run, needles=_needles(keyset))
    deploy.push_keys(args.cloud, args.stage, keyset, runner, params, args.region)
    if not args.dry_run:
        print(
            f"pushed {args.keys.name} (kids {', '.join(keyset.kids)}; current {keyset.kids[0]}) to "
            f"{args.cloud} secret {secret_name(args.stage, params)}"
        )
    return 0
