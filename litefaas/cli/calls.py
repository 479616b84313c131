"""``litefaas encrypt``, ``decrypt`` and ``predict``: the caller's side of a function, from a shell."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.protocol import DEFAULT_MAX_BATCH
from litefaas.cli.base import Commands, print_json, read_text, write_private
from litefaas.cli.outputs import (
    describe_outputs,
    kinds_of,
    labels_of,
    output_lines,
    partial_lines,
    save_outputs,
    summary_lines,
)
from litefaas.errors import CommandError

if TYPE_CHECKING:
    import httpx

    from litefaas.client import KeyInfo

http_transport: httpx.BaseTransport | None = None
"""Where ``predict`` and ``encrypt --keys URL`` send HTTP; None = the network (tests put an app here)."""

EXIT_REMOTE_ERROR = 1
INPUTS_HELP = "rows: a .json list (or {'inputs': ...}), a .csv of numbers, or - for JSON on stdin"
TENSOR_SUFFIXES = (".npy", ".npz")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
PREDICT_INPUTS_HELP = (
    "version 1: rows as .json, .csv or - (JSON on stdin); version 2: x.npy (the model's single input)"
    " or x.npz (one array per input name), or image files (.jpg .jpeg .png .webp) for the model's image input"
)


def register(commands: Commands) -> None:
    encrypt = commands.add_parser(
        "encrypt", help="seal inputs to a function's public key; print the request body"
    )
    encrypt.add_argument(
        "--keys", required=True, metavar="URL|FILE|JSON", help="the function's /keys URL or key set"
    )
    encrypt.add_argument("--kid", help="key to use (default: the first)")
    encrypt.add_argument("--suite", help="use the first key of this suite")
    encrypt.add_argument(
        "--input", required=True, metavar="FILE|-", help=f"{INPUTS_HELP}; with --v2 .npy or .npz"
    )
    encrypt.add_argument("--secrets-out", type=Path, help="file (mode 0600) keeping what decrypts the answer")
    encrypt.add_argument(
        "--v2", action="store_true", help="protocol version 2: binary tensors (application/litefaas)"
    )
    encrypt.add_argument(
        "--input-name",
        metavar="NAME",
        help="with --v2 and a .npy: the model input it is (default: the only input, from /health)",
    )
    encrypt.add_argument(
        "--output",
        action="append",
        metavar="NAME",
        help="with --v2: an output wanted (repeatable; default all)",
    )
    encrypt.add_argument(
        "--out", metavar="FILE|-", help="with --v2: where the binary request body goes (- for stdout)"
    )
    encrypt.set_defaults(handler=run_encrypt)

    decrypt = commands.add_parser("decrypt", help="open a function's sealed answer; print its JSON")
    decrypt.add_argument("--secrets", type=Path, required=True, help="the file litefaas encrypt wrote")
    decrypt.add_argument(
        "--in", dest="source", default="-", metavar="FILE|-", help="response body (default stdin)"
    )
    decrypt.add_argument(
        "--v2", action="store_true", help="a version-2 (binary) answer; prints its outputs' names and shapes"
    )
    decrypt.add_argument("--out", type=Path, metavar="OUT.npz", help="with --v2: write the outputs here")
    decrypt.set_defaults(handler=run_decrypt)

    predict = commands.add_parser("predict", help="call a function; print one JSON line of outputs per row")
    predict.add_argument("--url", required=True, help="the function's base URL (…/predict, /keys, /health)")
    predict.add_argument("--input", required=True, nargs="+", metavar="FILE", help=PREDICT_INPUTS_HELP)
    predict.add_argument(
        "--output",
        action="append",
        metavar="NAME",
        help="version 2: an output wanted (repeatable; default all)",
    )
    predict.add_argument(
        "--out", type=Path, metavar="OUT.npz", help="version 2: write the outputs here instead of a summary"
    )
    predict.add_argument(
        "--plaintext", action="store_true", help="send in clear (where the function allows it)"
    )
    predict.add_argument(
        "--oblivious",
        action="store_true",
        help="send through Oblivious HTTP (RFC 9458) to the function's gateway: sealed by the standard",
    )
    predict.add_argument(
        "--relay", metavar="URL", help="with --oblivious: an OHTTP relay that forwards to the gateway"
    )
    predict.add_argument(
        "--gateway-keys",
        type=Path,
        metavar="FILE",
        help="with --oblivious: pin the gateway's key configuration (application/ohttp-keys, as "
        "`litefaas keys generate` writes it) instead of fetching it",
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


def load_tensors(
    source: str, model: Callable[[], Mapping[str, Any]] | None, name: str | None = None
) -> dict[str, Any]:
    """Arrays by input name from ``.npy`` (the model's single input, or ``name``) or ``.npz`` (by name;
    a lone array of any name goes to a single-input model). ``model`` gives ``/health``'s model."""
    import numpy as np

    suffix = Path(source).suffix.lower()
    if suffix not in TENSOR_SUFFIXES:
        raise CommandError(f"{source}: version-2 inputs are a .npy or .npz file")
    try:
        if suffix == ".npy":
            return {name or _single_input(source, model): np.load(source, allow_pickle=False)}
        with np.load(source, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CommandError(f"cannot read {source}: {exc.__class__.__name__}: {str(exc)[:200]}") from None
    if not arrays:
        raise CommandError(f"{source}: no arrays")
    if len(arrays) == 1 and model is not None:
        inputs = _input_names(model())
        (only,) = arrays.values()
        if len(inputs) == 1 and inputs[0] not in arrays:
            return {inputs[0]: only}
    return arrays


def _input_names(model: Mapping[str, Any]) -> list[str]:
    return [str(entry.get("name")) for entry in model.get("inputs", []) if isinstance(entry, Mapping)]


def _single_input(source: str, model: Callable[[], Mapping[str, Any]] | None) -> str:
    if model is None:
        raise CommandError(f"{source}: a .npy holds one array; say which input it is with --input-name")
    names = _input_names(model())
    if len(names) != 1:
        raise CommandError(
            f"{source}: the model has {len(names)} inputs ({', '.join(names)});"
            " give a .npz with one array per input"
        )
    return names[0]


def _model_of(base_url: str, plaintext: bool = False) -> Callable[[], dict[str, Any]]:
    """``/health``'s model, fetched at most once, when first needed."""
    from litefaas import client

    cache: dict[str, dict[str, Any]] = {}

    def fetch() -> dict[str, Any]:
        if "model" not in cache:
            try:
                with client.Client(base_url, transport=http_transport, plaintext=plaintext) as function:
                    cache["model"] = function.model_info()
            except client.ClientError as exc:
                raise CommandError(f"{base_url}/health: {exc}") from None
        return cache["model"]

    return fetch


def write_binary(target: str, data: bytes) -> None:
    """Raw bytes to a new file (never replacing one), or to stdout for ``-``."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(target, "xb") as handle:
            handle.write(data)
    except FileExistsError:
        raise CommandError(f"{target} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {exc.strerror}") from None


def read_binary(source: str | Path) -> bytes:
    """A file's bytes, or stdin's for ``-``."""
    if str(source) == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror}") from None


def run_encrypt(args: argparse.Namespace) -> int:
    from litefaas import client

    if getattr(args, "v2", False):
        return run_encrypt_v2(args)
    keys = load_keyset(args.keys)
    inputs = load_inputs(args.input)
    try:
        body, secrets = client.build_request(inputs, client.select_key(keys, args.kid, args.suite))
    except client.ClientError as exc:
        raise CommandError(str(exc)) from None
    keep_secrets(args.secrets_out, secrets)
    print(body.decode())
    return 0


def keep_secrets(path: Path | None, secrets: Any) -> None:
    """Write what opens the answer (0600), or say that without it the answer stays sealed."""
    if path is None:
        print("litefaas encrypt: no --secrets-out, so the answer cannot be decrypted", file=sys.stderr)
    else:
        write_private(path, json.dumps(secrets.to_json()) + "\n")


def run_encrypt_v2(args: argparse.Namespace) -> int:
    from litefaas import client

    if not args.out:
        raise CommandError("--v2 writes a binary body: give --out FILE (or --out - for stdout)")
    keys = load_keyset(args.keys)
    source = args.keys.strip()
    model = None
    if source.startswith(("http://", "https://")):
        model = _model_of(source.rstrip("/").removesuffix("/keys"))
    tensors = load_tensors(args.input, model, args.input_name)
    try:
        key = client.select_key(keys, args.kid, args.suite)
        body, secrets = client.build_tensor_request(tensors, key, outputs=args.output)
    except client.ClientError as exc:
        raise CommandError(str(exc)) from None
    keep_secrets(args.secrets_out, secrets)
    write_binary(args.out, body)
    return 0


def _read_secrets(path: Path) -> Any:
    from litefaas import client

    try:
        return client.RequestSecrets.from_json(json.loads(read_text(path)))
    except (ValueError, client.ClientError):
        raise CommandError(f"{path}: not a secrets file written by litefaas encrypt") from None


def run_decrypt_v2(args: argparse.Namespace) -> int:
    from litefaas import client

    secrets = _read_secrets(args.secrets)
    body = read_binary(args.source)
    if body.lstrip()[:1] == b"{":  # an error before decryption: version 1's plaintext JSON
        try:
            answer = json.loads(body)
        except ValueError:
            raise CommandError("the response is neither a sealed version-2 answer nor JSON") from None
        print_json(answer)
        return EXIT_REMOTE_ERROR if isinstance(answer, dict) and "error" in answer else 0
    try:
        message = client.decrypt_tensor_response(body, secrets)
        result = client.read_framed_answer(message, None, encrypted=True)
    except client.RemoteError as exc:
        print_json({"error": {"code": exc.code, "message": exc.message}})
        return EXIT_REMOTE_ERROR
    except client.ProtocolError as exc:
        raise CommandError(str(exc)) from None
    if args.out is not None:
        save_outputs(args.out, result)
    print_json({"outputs": describe_outputs(result), "model": result.model})
    return 0


def run_decrypt(args: argparse.Namespace) -> int:
    from litefaas import client

    if getattr(args, "v2", False):
        return run_decrypt_v2(args)
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


def _predict_version(sources: Sequence[str]) -> str:
    suffixes = {Path(source).suffix.lower() for source in sources}
    if suffixes <= set(IMAGE_SUFFIXES):
        return "images"
    if len(sources) > 1:
        raise CommandError(
            "--input takes several files only when they are all images (.jpg .jpeg .png .webp)"
        )
    if suffixes <= set(TENSOR_SUFFIXES):
        return "tensors"
    return "rows"


def _report_remote(exc: Exception) -> int:
    from litefaas import client

    if isinstance(exc, client.PartialFailure):
        print(f"litefaas predict: {exc}", file=sys.stderr)
    elif isinstance(exc, client.RemoteError):
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
    else:
        print(f"litefaas predict: {exc}", file=sys.stderr)
    return EXIT_REMOTE_ERROR


def run_predict_v2(
    args: argparse.Namespace, kind: str, function: Any, fan_out: int | None, retries: int
) -> int:
    """``litefaas predict`` with version 2: tensors from .npy/.npz, or image files as BYTES."""
    from litefaas import client

    sources = list(args.input)
    row_names: list[str] | None = None
    try:
        with function:
            model = function.model_info()
            if kind == "images":
                files = [read_binary(source) for source in sources]
                row_names = [Path(source).name for source in sources]
                result = function.predict_images(
                    files, getattr(args, "output", None), fan_out=fan_out, retries=retries
                )
            else:
                tensors = load_tensors(sources[0], lambda: model)
                result = function.predict_tensors(
                    tensors, getattr(args, "output", None), fan_out=fan_out, retries=retries
                )
    except client.ClientError as exc:
        return _report_remote(exc)
    out = getattr(args, "out", None)
    if out is not None:
        save_outputs(out, result)
        print(
            f"wrote {out}: "
            + ", ".join(f"{n} {i['datatype']} {i['shape']}" for n, i in describe_outputs(result).items())
        )
        return 0
    print("\n".join(summary_lines(result, labels_of(model), row_names, kinds_of(model))))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """``litefaas predict``; with ``--fan-out K`` the rows go in K concurrent shards (``fan_out``,
    ``retries`` and ``max_batch`` are read if the parser defines them). ``.npy``/``.npz`` and image
    files go as version 2; rows (``.json``, ``.csv``, ``-``) as version 1."""
    from litefaas import client

    sources = [args.input] if isinstance(args.input, str) else list(args.input)
    kind = _predict_version(sources)
    inputs = load_inputs(sources[0]) if kind == "rows" else None
    fan_out = getattr(args, "fan_out", None)
    retries = getattr(args, "retries", client.DEFAULT_RETRIES)
    max_batch = getattr(args, "max_batch", client.DEFAULT_MAX_BATCH)
    if fan_out is not None and fan_out < 1:
        raise CommandError("--fan-out must be at least 1")
    if retries < 0 or max_batch < 1:
        raise CommandError("--retries must be 0 or more and --max-batch at least 1")
    oblivious = getattr(args, "oblivious", False)
    relay, gateway_keys = getattr(args, "relay", None), getattr(args, "gateway_keys", None)
    if (relay or gateway_keys) and not oblivious:
        raise CommandError("--relay and --gateway-keys go with --oblivious")
    if gateway_keys is not None and not gateway_keys.is_file():
        raise CommandError(f"--gateway-keys {gateway_keys}: no such file")
    try:
        function = client.Client(
            args.url,
            kid=args.kid,
            suite=args.suite,
            timeout=args.timeout,
            plaintext=args.plaintext,
            transport=http_transport,
            max_batch=max_batch,
            oblivious=oblivious,
            relay_url=relay,
            gateway_keys=gateway_keys,
        )
    except client.ClientError as exc:
        raise CommandError(str(exc)) from None
    if inputs is None:
        return run_predict_v2(args, kind, function, fan_out, retries)
    if getattr(args, "out", None) is not None or getattr(args, "output", None):
        raise CommandError("--out and --output are for version 2 inputs (.npy, .npz or image files)")
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
