"""``litefaas keys``, ``encrypt``, ``decrypt`` and ``predict``, run through ``main`` against the real app."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys

import numpy as np
import pytest
from fixtures.inprocess import InProcessTransport
from fixtures.requests import ALL_SUITES, ROWS

from core import crypto
from core.app import App
from core.config import Settings
from core.engine import Engine
from litefaas.cli import calls as keys_cmd
from litefaas.cli.main import main

URL = "https://fn.test"
ENCRYPTED = {"Content-Type": "application/litefaas+json"}


@pytest.fixture(scope="module")
def engine(artifact_dir):
    return Engine.from_dir(artifact_dir)


def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


def run(capsys, *argv):
    """``main(argv)``: exit code, stdout, stderr."""
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_outputs(engine, rows):
    return engine.predict({"features": np.asarray(rows, dtype=np.float32)})["probability"].tolist()


@pytest.fixture
def deployed(tmp_path, capsys, engine):
    """A key made by ``keys generate``, its public set in a file, and a function that holds the key."""
    ring = tmp_path / "ring.json"
    code, out, _ = run(capsys, "keys", "generate", "--kid", "2026-11-a", "--out", ring)
    assert code == 0
    public = tmp_path / "keys.json"
    public.write_text(out)
    app = App(
        Settings.from_env({"LITEFAAS_PRIVATE_KEYS_FILE": str(ring), "LITEFAAS_ALLOW_PLAINTEXT": "1"}), engine
    )
    return ring, public, app


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_keys_generate(tmp_path, capsys, suite):
    # WHEN a key is generated
    ring = tmp_path / "ring.json"
    code, out, _ = run(capsys, "keys", "generate", "--kid", "k-1", "--suite", suite, "--out", ring)
    # THEN the private file is the owner's only, loads as a key ring, and stdout is its public set
    assert code == 0
    assert mode_of(ring) == 0o600
    entries = json.loads(ring.read_text())
    assert [(e["kid"], e["suite"]) for e in entries] == [("k-1", suite)]
    assert set(entries[0]) == {"kid", "suite", "private_key"}
    public = crypto.KeyRing.from_json(ring.read_text()).public_keyset()
    assert json.loads(out) == public
    assert entries[0]["private_key"] not in out


def test_keys_generate_defaults_to_the_default_suite(tmp_path, capsys):
    code, out, _ = run(capsys, "keys", "generate", "--kid", "a", "--out", tmp_path / "ring.json")
    assert code == 0 and json.loads(out)["keys"][0]["suite"] == crypto.DEFAULT_SUITE


def test_keys_generate_refuses_to_overwrite(tmp_path, capsys):
    ring = tmp_path / "ring.json"
    ring.write_text("keep me")
    code, out, err = run(capsys, "keys", "generate", "--kid", "a", "--out", ring)
    assert (code, out) == (2, "")
    assert "already exists" in err
    assert ring.read_text() == "keep me"


@pytest.mark.parametrize(("option", "value"), [("--kid", "no spaces"), ("--suite", "rot13")])
def test_keys_generate_checks_kid_and_suite(tmp_path, capsys, option, value):
    ring = tmp_path / "ring.json"
    argv = {"--kid": "a", "--out": ring, option: value}
    code, out, err = run(capsys, "keys", "generate", *[part for pair in argv.items() for part in pair])
    assert (code, out) == (2, "")
    assert option in err
    assert not ring.exists()


def test_keys_public(deployed, capsys):
    ring, public, _ = deployed
    code, out, _ = run(capsys, "keys", "public", "--in", ring)
    assert code == 0
    assert (
        json.loads(out)
        == json.loads(public.read_text())
        == crypto.KeyRing.from_json(ring.read_text()).public_keyset()
    )


def test_keys_public_names_a_bad_file_without_its_content(tmp_path, capsys):
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps([{"kid": "a", "suite": crypto.DEFAULT_SUITE, "private_key": "c2VjcmV0"}]))
    code, _, err = run(capsys, "keys", "public", "--in", ring)
    assert code == 2 and "key 0 (a)" in err and "c2VjcmV0" not in err


def encrypt_answer_decrypt(capsys, tmp_path, app, keys_source, inputs_arg):
    """``encrypt`` → the function → ``decrypt``: the decrypt exit code and printed document."""
    secrets = tmp_path / "secrets.json"
    code, envelope, _ = run(
        capsys, "encrypt", "--keys", keys_source, "--input", inputs_arg, "--secrets-out", secrets
    )
    assert code == 0
    assert mode_of(secrets) == 0o600
    assert json.loads(envelope).keys() == {"v", "kid", "suite", "ct"}
    reply = app.handle("POST", "/predict", ENCRYPTED, envelope.strip().encode())
    response = tmp_path / "response.json"
    response.write_bytes(reply.body)
    code, out, _ = run(capsys, "decrypt", "--secrets", secrets, "--in", response)
    return code, json.loads(out)


@pytest.mark.parametrize("keys_form", ["file", "json", "url"])
def test_encrypt_then_decrypt(deployed, tmp_path, capsys, engine, monkeypatch, keys_form):
    # GIVEN the function's public key set as a file, as JSON text, or at its URL
    _, public, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    source = {"file": public, "json": public.read_text(), "url": f"{URL}/keys"}[keys_form]
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS[:3]))
    # WHEN rows are encrypted, answered by the function, and the answer decrypted
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, source, rows)
    # THEN the decrypted answer is the model's
    assert code == 0
    assert answer["outputs"] == expected_outputs(engine, ROWS[:3])
    assert answer["model"] == engine.manifest.public_info()


def test_encrypt_reads_csv_with_a_header(deployed, tmp_path, capsys, engine):
    _, public, app = deployed
    rows = tmp_path / "rows.csv"
    lines = [",".join(f"f{i}" for i in range(30))] + [",".join(map(repr, row)) for row in ROWS[:4]]
    rows.write_text("\n".join(lines) + "\n\n")
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, rows)
    assert code == 0 and answer["outputs"] == expected_outputs(engine, ROWS[:4])


def test_encrypt_reads_stdin(deployed, tmp_path, capsys, engine, monkeypatch):
    _, public, app = deployed
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"inputs": ROWS[:2]})))
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, "-")
    assert code == 0 and answer["outputs"] == expected_outputs(engine, ROWS[:2])


def test_decrypt_prints_a_sealed_error_and_exits_1(deployed, tmp_path, capsys):
    _, public, app = deployed
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([ROWS[0][:29]]))
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, rows)
    assert code == 1
    assert answer["error"]["code"] == "invalid_payload"
    assert "expected 30 features, got 29" in answer["error"]["message"]


def test_decrypt_passes_a_plaintext_error_through(tmp_path, capsys):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"response_key": "A" * 22, "id": "A" * 22}))
    response = tmp_path / "response.json"
    response.write_text('{"error": {"code": "decryption_failed", "message": "decryption failed"}}')
    code, out, _ = run(capsys, "decrypt", "--secrets", secrets, "--in", response)
    assert code == 1 and json.loads(out)["error"]["code"] == "decryption_failed"


def test_decrypt_with_other_secrets_fails(deployed, tmp_path, capsys):
    _, public, app = deployed
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS[:1]))
    code, envelope, _ = run(
        capsys, "encrypt", "--keys", public, "--input", rows, "--secrets-out", tmp_path / "s1"
    )
    run(capsys, "encrypt", "--keys", public, "--input", rows, "--secrets-out", tmp_path / "s2")
    response = tmp_path / "response.json"
    response.write_bytes(app.handle("POST", "/predict", ENCRYPTED, envelope.encode()).body)
    code, out, err = run(capsys, "decrypt", "--secrets", tmp_path / "s2", "--in", response)
    assert (code, out) == (2, "") and "does not decrypt" in err


def test_encrypt_refuses_to_overwrite_secrets(deployed, tmp_path, capsys):
    _, public, _ = deployed
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS[:1]))
    secrets = tmp_path / "secrets.json"
    secrets.write_text("old")
    code, out, err = run(capsys, "encrypt", "--keys", public, "--input", rows, "--secrets-out", secrets)
    assert (code, out) == (2, "") and "already exists" in err and secrets.read_text() == "old"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.txt", "[]", ".json or .csv"),
        ("rows.csv", "a,b\n1,2\n3,x\n", "line 3"),
        ("rows.json", "{", "not valid JSON"),
        ("rows.json", '{"other": []}', '"inputs"'),
        ("missing.json", None, "cannot read"),
    ],
)
def test_bad_input_files(deployed, tmp_path, capsys, name, content, message):
    _, public, _ = deployed
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "encrypt", "--keys", public, "--input", path)
    assert (code, out) == (2, "") and message in err


def test_predict(deployed, tmp_path, capsys, engine, monkeypatch):
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"inputs": ROWS[:3]}))
    for extra in ([], ["--plaintext"]):
        code, out, _ = run(capsys, "predict", "--url", URL, "--input", rows, *extra)
        assert code == 0
        lines = [json.loads(line) for line in out.splitlines()]
        np.testing.assert_allclose(lines, expected_outputs(engine, ROWS[:3]), rtol=1e-6)


def test_predict_remote_error(deployed, tmp_path, capsys, monkeypatch):
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([ROWS[0][:29]]))
    code, out, err = run(capsys, "predict", "--url", URL, "--input", rows)
    assert (code, out) == (1, "")
    assert "invalid_payload: inputs: row 0: expected 30 features, got 29" in err


def test_help_imports_nothing_heavy():
    probe = (
        "import sys; from litefaas.cli import main; main.parser()\n"
        "print(sorted(m for m in ('httpx', 'numpy', 'cryptography', 'litefaas.client') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
