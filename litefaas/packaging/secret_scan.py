"""The secret scan: private key material in files, folders and zip archives is refused, never shipped.

It finds PEM private keys, litefaas private key set entries (also escaped inside another string, as
in a CloudFormation template) and, in any encoding, the private keys this environment holds.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from litefaas.packaging.targets import PackageError


@dataclasses.dataclass(frozen=True)
class Finding:
    """Private key material found in a file (the secret itself is never kept)."""

    path: str
    kind: str


_PEM_PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\r\n]+[A-Za-z0-9+/=\r\n:, -]{40,}?-----END"
)
# "private_key": "<b64u>" as JSON has it, also escaped inside another string (a template's value).
_KEY_SET_ENTRY = re.compile(rb"""private_key\\?["']?\s*[:=]\s*\\?["']?[A-Za-z0-9_-]{40,}""")


def known_private_keys(environ: Mapping[str, str] | None = None) -> list[bytes]:
    """Encodings of the private keys this environment holds (``LITEFAAS_PRIVATE_KEYS(_FILE)``)."""
    env = os.environ if environ is None else environ
    texts = [env.get("LITEFAAS_PRIVATE_KEYS", "")]
    key_file = env.get("LITEFAAS_PRIVATE_KEYS_FILE", "").strip()
    if key_file:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            texts.append(Path(key_file).read_text(encoding="utf-8"))
    needles: list[bytes] = []
    for text in texts:
        try:
            entries = json.loads(text) if text.strip() else []
        except ValueError:
            continue
        for entry in entries if isinstance(entries, list) else []:
            value = entry.get("private_key") if isinstance(entry, dict) else None
            if not isinstance(value, str) or len(value) < 16:
                continue
            needles.append(value.rstrip("=").encode())
            try:
                raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            except ValueError:
                continue
            needles += [base64.b64encode(raw).rstrip(b"="), raw.hex().encode()]
    return needles


def scan_bytes(data: bytes, needles: Sequence[bytes] = ()) -> list[str]:
    """Kinds of private key material in ``data``."""
    kinds = []
    if b"PRIVATE KEY-----" in data and _PEM_PRIVATE_KEY.search(data):
        kinds.append("PEM private key")
    if b"private_key" in data and _KEY_SET_ENTRY.search(data):
        kinds.append("litefaas private key set")
    if any(needle in data for needle in needles):
        kinds.append("a private key of LITEFAAS_PRIVATE_KEYS")
    return kinds


def scan_paths(
    paths: Iterable[Path], base: Path | None = None, needles: Sequence[bytes] | None = None
) -> list[Finding]:
    """Private key material in these files (folders are walked); names are shown relative to ``base``."""
    needles = known_private_keys() if needles is None else needles
    findings = []
    for path in _walk(paths):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        shown = path.relative_to(base).as_posix() if base and path.is_relative_to(base) else str(path)
        findings += [Finding(shown, kind) for kind in scan_bytes(data, needles)]
    return findings


def scan_zip(bundle: Path, needles: Sequence[bytes] | None = None) -> list[Finding]:
    """Private key material inside a zip archive's members."""
    needles = known_private_keys() if needles is None else needles
    findings = []
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            if not info.is_dir():
                findings += [Finding(info.filename, kind) for kind in scan_bytes(archive.read(info), needles)]
    return findings


def refuse_findings(findings: Sequence[Finding], where: str) -> None:
    """Raise :class:`PackageError` naming the files (never the secrets) if anything was found."""
    if findings:
        listed = "; ".join(f"{finding.path} ({finding.kind})" for finding in findings[:10])
        raise PackageError(
            f"refusing {where}: private key material found in {listed}. Keep private keys in the cloud's "
            "secret store (Secrets Manager, Secret Manager, Key Vault), never in a bundle or template"
        )


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(item for item in path.rglob("*") if item.is_file())
        elif path.is_file():
            yield path
