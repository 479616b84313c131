"""``litefaas encrypt``, ``decrypt`` and ``predict``: the caller's side of a function, from a shell."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.protocol import DEFAULT_MAX_BATCH
from litefaas.cli.base import Commands, print_json, read_text, write_private
from litefaas.errors import CommandError

if TYPE_CHECKING:
    import httpx

    from litefaas.client import KeyInfo, Outputs, PartialFailure

http_transport: httpx.BaseTransport | None = None
"""Where ``predict`` and ``encrypt --keys URL`` send HTTP; None = the network (tests put an app here)."""

EXIT_REMOTE_ERROR = 1
INPUTS_HELP = "rows: a .json list (or {'inputs': ...}), a .csv of numbers, or - for JSON on stdin"


def register(commands: Commands) -> None:
    encrypt = commands.add_parser(
        "encrypt", help="seal inputs to a function's public key; print the request body"
    )
    encrypt.add_argument(
        "--keys", required=True, metavar="URL|FILE|JSON", help="the function's /keys URL or key set"
    )
    encrypt.add_argument("--kid", help="key to use (default: the first)")
    encrypt.add_argument("--suite", help="use the first key of this suite")
    encrypt.add_argument("--input", required=True, metavar="FILE|-", help=INPUTS_HELP)
    encrypt.add_argument("--secrets-out", type=Path, help="file (mode 0600) keeping what decrypts the answer")
    encrypt.set_defaults(handler=run_encrypt)

    decrypt = commands.add_parser("decrypt", help="open a function's sealed answer; print its JSON")
    decrypt.add_argument("--secrets", type=Path, required=True, help="the file litefaas encrypt wrote")
    decrypt.add_argument(
        "--in", dest="source", default="-", metavar="FILE|-", help="response body (default stdin)"
    )
    decrypt.set_defaults(handler=run_decrypt)

    predict = commands.add_parser("predict", help="call a function; print one JSON line of outputs per row")
    predict.add_argument("--url", required=True, help="the function's base URL (…/predict, /keys, /health)")
    predict.add_argument("--input", required=True, metavar="FILE|-", help=INPUTS_HELP)
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
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help=f"the function's LITEFAAS_MAX_BATCH (default {DEFAULT_MAX_BATCH})",
    )
    predict.set_defaults(handler=run_predict)


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


def load_keyset(source: str) -> list[KeyInfo]:
    """Public keys from a function's URL (``…/keys`` or its base), a key set file, or key set JSON."""
    from litefaas import client

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


def run_encrypt(args: argparse.Namespace) -> int:
    from litefaas import client

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
    from litefaas import client

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


def output_lines(outputs: Outputs) -> list[str]:
    """One JSON line per row: the row's outputs, or ``{name: outputs}`` for several output tensors."""
    if isinstance(outputs, dict):
        rows = len(next(iter(outputs.values()), []))
        return [json.dumps({name: batch[i].tolist() for name, batch in outputs.items()}) for i in range(rows)]
    return [json.dumps(row.tolist()) for row in outputs]


def partial_lines(failure: PartialFailure) -> list[str]:
    """One JSON line per row of a partly failed fan-out: its outputs, or ``null`` if it has no answer."""
    lines = ["null"] * failure.rows
    for shard in failure.succeeded:
        lines[shard.start : shard.stop] = output_lines(shard.outputs)
    return lines


def run_predict(args: argparse.Namespace) -> int:
    """``litefaas predict``; with ``--fan-out K`` the rows go in K concurrent shards (``fan_out``,
    ``retries`` and ``max_batch`` are read if the parser defines them)."""
    from litefaas import client

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
