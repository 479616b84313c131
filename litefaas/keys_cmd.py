"""``litefaas keys``, ``encrypt``, ``decrypt`` and ``predict``: the caller's side from a shell."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from core import crypto
from core.encoding import b64u_encode
from litefaas import client
from litefaas.cli import CommandError

http_transport: httpx.BaseTransport | None = None
"""Where ``predict`` and ``encrypt --keys URL`` send HTTP; None = the network (tests put an app here)."""

EXIT_REMOTE_ERROR = 1


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


def load_inputs(source: str) -> Any:
    """Rows from ``.json`` (a list or ``{"inputs": …}``), ``.csv`` (numbers, header skipped), ``-`` (JSON)."""
    suffix = Path(source).suffix.lower()
    if source != "-" and suffix not in (".json", ".csv"):
        raise CommandError(f"{source}: inputs must be a .json or .csv file, or - for JSON on stdin")
    text = read_text(source)
    where = "stdin" if source == "-" else source
    return _rows_from_csv(text, where) if suffix == ".csv" else _inputs_from_json(text, where)


def _inputs_from_json(text: str, where: str) -> Any:
    try:
        document = json.loads(text)
    except ValueError:
        raise CommandError(f"{where}: not valid JSON") from None
    if isinstance(document, dict):
        for name in ("inputs", "rows"):
            if name in document:
                return document[name]
        raise CommandError(f'{where}: expected a list of rows or an object with "inputs"')
    if not isinstance(document, list):
        raise CommandError(f"{where}: expected a list of rows")
    return document


def _rows_from_csv(text: str, where: str) -> list[list[float]]:
    rows: list[list[float]] = []
    first = True
    for line, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not any(cell.strip() for cell in record):
            continue
        try:
            rows.append([float(cell) for cell in record])
        except ValueError:
            if not first:
                raise CommandError(f"{where}: line {line}: every cell must be a number") from None
        first = False
    if not rows:
        raise CommandError(f"{where}: no rows")
    return rows


def load_keyset(source: str) -> list[client.KeyInfo]:
    """Public keys from a function's URL (``…/keys`` or its base), a key set file, or key set JSON."""
    try:
        if source.startswith(("http://", "https://")):
            base = source.rstrip("/").removesuffix("/keys")
            with client.Client(base, transport=http_transport) as function:
                return function.keys()
        text = source if source.lstrip().startswith("{") else read_text(source)
        try:
            document = json.loads(text)
        except ValueError:
            raise CommandError("--keys: the key set is not valid JSON") from None
        return client.parse_keyset(document)
    except client.ClientError as exc:
        raise CommandError(f"--keys: {exc}") from None


def run_keys_generate(args: argparse.Namespace) -> int:
    suite = args.suite or crypto.DEFAULT_SUITE
    if not crypto.KID_PATTERN.fullmatch(args.kid):
        raise CommandError("--kid must be 1-64 characters of [A-Za-z0-9._-]")
    if suite not in crypto.SUITES:
        raise CommandError(f"--suite must be one of {', '.join(crypto.SUITES)}")
    private = b64u_encode(crypto.generate_private_key(suite))
    ring_json = json.dumps([{"kid": args.kid, "suite": suite, "private_key": private}])
    keyset = crypto.KeyRing.from_json(ring_json).public_keyset()
    write_private(args.out, ring_json + "\n")
    print_json(keyset)
    return 0


def run_keys_public(args: argparse.Namespace) -> int:
    try:
        ring = crypto.KeyRing.from_json(read_text(args.source))
    except ValueError as exc:
        raise CommandError(f"{args.source}: {exc}") from None
    print_json(ring.public_keyset())
    return 0


def run_encrypt(args: argparse.Namespace) -> int:
    keys = load_keyset(args.keys)
    inputs = load_inputs(args.input)
    try:
        body, secrets = client.build_request(inputs, client.select_key(keys, args.kid, args.suite))
    except client.ClientError as exc:
        raise CommandError(str(exc)) from None
    if args.secrets_out is None:
        print("litefaas encrypt: no --secrets-out, so the answer cannot be decrypted", file=sys.stderr)
    else:
        write_private(args.secrets_out, json.dumps(secrets.to_json()) + "\n")
    print(body.decode())
    return 0


def run_decrypt(args: argparse.Namespace) -> int:
    try:
        secrets = client.RequestSecrets.from_json(json.loads(read_text(args.secrets)))
    except (ValueError, client.ClientError):
        raise CommandError(f"{args.secrets}: not a secrets file written by litefaas encrypt") from None
    body = read_text(args.source)
    try:
        answer = json.loads(body)
    except ValueError:
        raise CommandError("the response is not JSON") from None
    if not (isinstance(answer, dict) and answer.keys() == {"error"}):
        try:
            answer = client.decrypt_response(body, secrets)
        except client.ProtocolError as exc:
            raise CommandError(str(exc)) from None
    print_json(answer)
    return EXIT_REMOTE_ERROR if "error" in answer else 0


def output_lines(outputs: client.Outputs) -> list[str]:
    """One JSON line per row: the row's outputs, or ``{name: outputs}`` for several output tensors."""
    if isinstance(outputs, dict):
        rows = len(next(iter(outputs.values()), []))
        return [json.dumps({name: batch[i].tolist() for name, batch in outputs.items()}) for i in range(rows)]
    return [json.dumps(row.tolist()) for row in outputs]


def partial_lines(failure: client.PartialFailure) -> list[str]:
    """One JSON line per row of a partly failed fan-out: its outputs, or ``null`` if it has no answer."""
    lines = ["null"] * failure.rows
    for shard in failure.succeeded:
        lines[shard.start : shard.stop] = output_lines(shard.outputs)
    return lines


def run_predict(args: argparse.Namespace) -> int:
    """``litefaas predict``; with ``--fan-out K`` the rows go in K concurrent shards (``fan_out``,
    ``retries`` and ``max_batch`` are read if the parser defines them)."""
    inputs = load_inputs(args.input)
    fan_out = getattr(args, "fan_out", None)
    retries = getattr(args, "retries", client.DEFAULT_RETRIES)
    max_batch = getattr(args, "max_batch", client.DEFAULT_MAX_BATCH)
    if fan_out is not None and fan_out < 1:
        raise CommandError("--fan-out must be at least 1")
    if retries < 0 or max_batch < 1:
        raise CommandError("--retries must be 0 or more and --max-batch at least 1")
    try:
        function = client.Client(
            args.url,
            kid=args.kid,
            suite=args.suite,
            timeout=args.timeout,
            plaintext=args.plaintext,
            transport=http_transport,
            max_batch=max_batch,
        )
    except client.ClientError as exc:
        raise CommandError(str(exc)) from None
    try:
        with function:
            result = function.predict(inputs, fan_out=fan_out, retries=retries)
    except client.PartialFailure as exc:
        print("\n".join(partial_lines(exc)))
        print(f"litefaas predict: {exc}", file=sys.stderr)
        return EXIT_REMOTE_ERROR
    except client.RemoteError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_REMOTE_ERROR
    except client.ClientError as exc:
        print(f"litefaas predict: {exc}", file=sys.stderr)
        return EXIT_REMOTE_ERROR
    print("\n".join(output_lines(result.outputs)))
    return 0
