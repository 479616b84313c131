"""Secret hygiene: key files 0600 and never overwritten, git ignores them, bundles refuse them, logs omit them."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import stat
import subprocess

import pytest

from core import logs
from core.app import App
from core.config import Settings
from core.crypto import KeyRing, PrivateKeyEntry
from core.encoding import b64u_decode
from litefaas.cli.main import main
from litefaas.paths import ROOT

KEY_FILE_NAMES = (
    "keys.json",
    "keys-2026-11.json",
    "prod.keys.json",
    "next.function.keys.json",
    "function.private.json",
    "private_keys.json",
    "deploy/secrets/private_keys",
    "sub/dir/keys.json",
    ".env",
    ".env.production",
)


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_generate_writes_0600_and_never_overwrites(tmp_path, capsys):
    # GIVEN a new private key file made by the command line
    path = tmp_path / "prod.keys.json"
    assert main(["keys", "generate", "--kid", "a", "--out", str(path)]) == 0
    written = path.read_bytes()
    # THEN only its owner can read it
    assert mode_of(path) == 0o600
    # AND a second run with the same path refuses, leaving the first key in place
    assert main(["keys", "generate", "--kid", "b", "--out", str(path)]) != 0
    assert path.read_bytes() == written
    assert "refusing to overwrite" in capsys.readouterr().err
    # AND the public key set printed holds no private key
    private = json.loads(written)[0]["private_key"]
    assert private not in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("name", KEY_FILE_NAMES)
def test_git_ignores_key_files(name):
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True)
    if inside.returncode != 0:
        pytest.skip("not a git work tree")
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", name], cwd=ROOT)
    assert ignored.returncode == 0, f"{name} is not ignored by .gitignore"


def _package_module():
    try:
        return importlib.import_module("litefaas.packaging.secret_scan")
    except ImportError:
        pytest.skip("litefaas/package.py (the bundle builder and its secret scan) is not there yet")


def _ring() -> tuple[str, str]:
    text = json.dumps([{"kid": "k", "suite": "x25519-sha256-aes128gcm", "private_key": _private_b64()}])
    return text, json.loads(text)[0]["private_key"]


def _private_b64() -> str:
    from core.crypto import generate_private_key
    from core.encoding import b64u_encode

    return b64u_encode(generate_private_key())


@pytest.mark.parametrize(
    "planted",
    ["key set", "key set in a template value", "PEM", "known key as hex"],
)
def test_the_bundle_scan_refuses_planted_private_keys(tmp_path, planted):
    package = _package_module()
    for name in ("scan_paths", "refuse_findings", "PackageError"):
        if not hasattr(package, name):
            pytest.skip(f"litefaas.package has no {name} yet")
    # GIVEN a bundle tree with private key material planted in one file
    ring, private = _ring()
    tree = tmp_path / "bundle"
    (tree / "handlers").mkdir(parents=True)
    (tree / "handlers" / "handler.py").write_text("print('hello')\n")
    needles: list[bytes] = []
    if planted == "key set":
        (tree / "keys.json").write_text(ring)
    elif planted == "key set in a template value":
        template = {"Resources": {"Fn": {"Environment": {"LITEFAAS_PRIVATE_KEYS": ring}}}}
        (tree / "template.json").write_text(json.dumps(template))
    elif planted == "PEM":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        pem = X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (tree / "handlers" / "key.pem").write_bytes(pem)
    else:
        raw = b64u_decode(private)
        (tree / "handlers" / "config.py").write_text(f"SEED = '{raw.hex()}'\n")
        needles = package.known_private_keys({"LITEFAAS_PRIVATE_KEYS": ring})
    # WHEN it is scanned before being written
    findings = package.scan_paths([tree], base=tree, needles=needles)
    # THEN the scan finds it and packaging refuses, naming the file but not the secret
    assert findings, planted
    with pytest.raises(package.PackageError) as refused:
        package.refuse_findings(findings, "to write the bundle")
    assert private not in str(refused.value)


def test_the_bundle_scan_passes_a_clean_tree_and_a_public_key_set(tmp_path):
    package = _package_module()
    if not hasattr(package, "scan_paths"):
        pytest.skip("litefaas.package has no scan_paths yet")
    ring, _ = _ring()
    tree = tmp_path / "bundle"
    tree.mkdir()
    (tree / "keys.public.json").write_text(json.dumps(KeyRing.from_json(ring).public_keyset()))
    (tree / "main.py").write_text("import json\n")
    assert package.scan_paths([tree], base=tree, needles=package.known_private_keys({})) == []


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_cold_start_and_request_logs_name_kids_never_keys(artifact_dir):
    # GIVEN a function holding a private key, whose logger is captured
    ring, private = _ring()
    handler = Lines()
    logger = logging.getLogger(logs.LOGGER_NAME)
    logger.addHandler(handler)
    try:
        app = App.from_env({"LITEFAAS_PRIVATE_KEYS": ring, "LITEFAAS_MODEL_DIR": str(artifact_dir)})
        app.handle("GET", "/keys", {}, b"")
        app.handle("POST", "/predict", {"content-type": "application/litefaas+json"}, ring.encode())
    finally:
        logger.removeHandler(handler)
    # THEN the cold start line lists the kids, and no line carries the key (base64url or hex)
    cold = [json.loads(line) for line in handler.lines if '"cold_start"' in line]
    assert cold and cold[0]["keys"] == ["k"]
    raw = b64u_decode(private)
    for line in handler.lines:
        assert private not in line and raw.hex() not in line
    # AND the objects that hold keys do not show them
    entry = next(iter(app.keyring or []))
    assert private not in repr(entry) and raw.hex() not in repr(entry)
    assert isinstance(entry, PrivateKeyEntry)
    assert "private" not in repr(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": ring}).keyring).lower()
