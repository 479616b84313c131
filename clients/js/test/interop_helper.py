"""The Python side of the JavaScript client's interoperability tests.

Reads one JSON command on standard input, writes one JSON answer on standard output:

- ``{"op": "keys"}``: a fresh key ring with one key per suite (kids ``k0``, ``k1``, ``k2``);
  answers ``{"private_json": …, "keyset": {"keys": […]}}``.
- ``{"op": "open", "private_json", "content_type", "body", "answer"}``: opens a request sealed
  by the JavaScript client (version 1 with ``core.crypto``'s key ring, version 2 by
  ``PROTOCOL.md``'s rules with ``cryptography``'s HPKE), and seals ``answer`` to its response key;
  answers ``{"request": <plaintext JSON or framed header>, "tensors": {name: {datatype, shape,
  values}}, "body": <b64u sealed answer>, "content_type": …}``.
- ``{"op": "predict", "base_url", "rows", "suite"}``: the Python client's answer from a running
  function, ``{"outputs": […], "model": {…}}``, to compare the JavaScript client's with.

Throw-away test keys only; nothing here is used by a function.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core import crypto
from core.encoding import b64u_decode, b64u_encode

SUITE_IDS = {  # PROTOCOL.md, version 2: (kem_id, kdf_id, aead_id)
    "x25519-sha256-aes128gcm": (0x0020, 0x0001, 0x0001),
    "x25519-sha256-chacha20poly1305": (0x0020, 0x0001, 0x0003),
    "mlkem768x25519-sha256-aes256gcm": (0x647A, 0x0001, 0x0002),
}
DTYPES = {
    "BOOL": "|u1",
    "UINT8": "|u1",
    "INT8": "|i1",
    "UINT16": "<u2",
    "INT16": "<i2",
    "UINT32": "<u4",
    "INT32": "<i4",
    "UINT64": "<u8",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def make_keys() -> dict[str, Any]:
    entries = [
        {"kid": f"k{index}", "suite": suite, "private_key": b64u_encode(crypto.generate_private_key(suite))}
        for index, suite in enumerate(SUITE_IDS)
    ]
    text = json.dumps(entries)
    return {"private_json": text, "keyset": crypto.KeyRing.from_json(text).public_keyset()}


def read_tensors(specs: list[dict[str, Any]], data: bytes) -> dict[str, Any]:
    """The tensors of a framed message's body, as lists; the body must hold exactly them."""
    tensors: dict[str, Any] = {}
    offset = 0
    for spec in specs:
        count = int(np.prod(spec["shape"], dtype=np.int64))
        if spec["datatype"] == "BYTES":
            values = []
            for _ in range(count):
                (length,) = struct.unpack_from("<I", data, offset)
                values.append(b64u_encode(data[offset + 4 : offset + 4 + length]))
                offset += 4 + length
        else:
            dtype = np.dtype(DTYPES[spec["datatype"]])
            array = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(spec["shape"])
            offset += count * dtype.itemsize
            values = array.tolist()
        tensors[spec["name"]] = {"datatype": spec["datatype"], "shape": spec["shape"], "values": values}
    if offset != len(data):
        raise ValueError("bytes left over after the last tensor")
    return tensors


def frame(header: dict[str, Any], outputs: list[dict[str, Any]]) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [struct.pack(">I", len(head)), head]
    for output in outputs:
        values = np.asarray(output["values"], dtype=np.dtype(DTYPES[output["datatype"]]))
        parts.append(values.reshape(output["shape"]).tobytes(order="C"))
    return b"".join(parts)


def open_v1(ring: crypto.KeyRing, body: bytes, answer: dict[str, Any]) -> dict[str, Any]:
    request = json.loads(ring.open(crypto.parse_envelope(body)))
    response_key, request_id = b64u_decode(request["response_key"]), b64u_decode(request["id"])
    sealed = crypto.seal_response(response_key, request_id, json.dumps(answer).encode())
    return {
        "request": request,
        "tensors": {},
        "body": b64u_encode(sealed),
        "content_type": "application/litefaas+json",
    }


def open_v2(ring: crypto.KeyRing, body: bytes, answer: dict[str, Any]) -> dict[str, Any]:
    if body[0] != 2:
        raise ValueError("version byte is not 2")
    kid_length = body[1]
    kid = body[2 : 2 + kid_length].decode("ascii")
    header = body[: 2 + kid_length + 6]
    ids = struct.unpack(">HHH", header[2 + kid_length :])
    entry = ring.get(kid)
    if entry is None or SUITE_IDS[entry.suite] != ids:
        raise ValueError("unknown kid, or ids that are not its suite's")
    plaintext = crypto.SUITES[entry.suite].decrypt(
        body[len(header) :], entry.private_key, info=b"litefaas/2 request\x00" + header
    )
    (length,) = struct.unpack(">I", plaintext[:4])
    request = json.loads(plaintext[4 : 4 + length])
    tensors = read_tensors(request["inputs"], plaintext[4 + length :])
    response_key, request_id = b64u_decode(request["response_key"]), b64u_decode(request["id"])
    outputs = answer.get("outputs", [])
    response_header = (
        {"error": answer["error"]}
        if "error" in answer
        else {
            "outputs": [{k: o[k] for k in ("name", "datatype", "shape")} for o in outputs],
            "model": answer["model"],
        }
    )
    nonce = os.urandom(12)
    sealed = AESGCM(response_key).encrypt(
        nonce,
        frame(response_header, outputs if "error" not in answer else []),
        b"litefaas/2 response\x00" + request_id,
    )
    return {
        "request": request,
        "tensors": tensors,
        "body": b64u_encode(b"\x02" + nonce + sealed),
        "content_type": "application/litefaas",
    }


def main() -> None:
    command = json.load(sys.stdin)
    if command["op"] == "keys":
        result = make_keys()
    elif command["op"] == "predict":
        from litefaas.client import Client

        with Client(command["base_url"], suite=command.get("suite")) as client:
            answer = client.predict(command["rows"])
        result = {"outputs": np.asarray(answer.outputs).tolist(), "model": answer.model}
    else:
        ring = crypto.KeyRing.from_json(command["private_json"])
        body = b64u_decode(command["body"])
        opener = open_v2 if command["content_type"] == "application/litefaas" else open_v1
        result = opener(ring, body, command["answer"])
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
