"""``litefaas keys``, ``encrypt``, ``decrypt`` and ``predict``, run through ``main`` against the real app."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path

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
    """keys generate without --suite makes a key of the default suite."""
    code, out, _ = run(capsys, "keys", "generate", "--kid", "a", "--out", tmp_path / "ring.json")
    assert code == 0 and json.loads(out)["keys"][0]["suite"] == crypto.DEFAULT_SUITE


def test_keys_generate_refuses_to_overwrite(tmp_path, capsys):
    """keys generate exits 2 and leaves an existing file untouched."""
    ring = tmp_path / "ring.json"
    ring.write_text("keep me")
    code, out, err = run(capsys, "keys", "generate", "--kid", "a", "--out", ring)
    assert (code, out) == (2, "")
    assert "already exists" in err
    assert ring.read_text() == "keep me"


@pytest.mark.parametrize(("option", "value"), [("--kid", "no spaces"), ("--suite", "rot13")])
def test_keys_generate_checks_kid_and_suite(tmp_path, capsys, option, value):
    """A bad --kid or --suite exits 2 naming the option, and no file is written."""
    ring = tmp_path / "ring.json"
    argv = {"--kid": "a", "--out": ring, option: value}
    code, out, err = run(capsys, "keys", "generate", *[part for pair in argv.items() for part in pair])
    assert (code, out) == (2, "")
    assert option in err
    assert not ring.exists()


def test_keys_public(deployed, capsys):
    """keys public prints the same public set that keys generate printed."""
    ring, public, _ = deployed
    code, out, _ = run(capsys, "keys", "public", "--in", ring)
    assert code == 0
    assert (
        json.loads(out)
        == json.loads(public.read_text())
        == crypto.KeyRing.from_json(ring.read_text()).public_keyset()
    )


def test_keys_public_names_a_bad_file_without_its_content(tmp_path, capsys):
    """A bad key file is reported by key index and kid, never by its secret content."""
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
    """encrypt reads a CSV with a header row and trailing blank lines."""
    _, public, app = deployed
    rows = tmp_path / "rows.csv"
    lines = [",".join(f"f{i}" for i in range(30))] + [",".join(map(repr, row)) for row in ROWS[:4]]
    rows.write_text("\n".join(lines) + "\n\n")
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, rows)
    assert code == 0 and answer["outputs"] == expected_outputs(engine, ROWS[:4])


def test_encrypt_reads_stdin(deployed, tmp_path, capsys, engine, monkeypatch):
    """encrypt --input - reads the inputs document from stdin."""
    _, public, app = deployed
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"inputs": ROWS[:2]})))
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, "-")
    assert code == 0 and answer["outputs"] == expected_outputs(engine, ROWS[:2])


def test_decrypt_prints_a_sealed_error_and_exits_1(deployed, tmp_path, capsys):
    """decrypt prints a sealed error answer and exits 1."""
    _, public, app = deployed
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([ROWS[0][:29]]))
    code, answer = encrypt_answer_decrypt(capsys, tmp_path, app, public, rows)
    assert code == 1
    assert answer["error"]["code"] == "invalid_payload"
    assert "expected 30 features, got 29" in answer["error"]["message"]


def test_decrypt_passes_a_plaintext_error_through(tmp_path, capsys):
    """decrypt prints a plaintext JSON error as is and exits 1."""
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"response_key": "A" * 22, "id": "A" * 22}))
    response = tmp_path / "response.json"
    response.write_text('{"error": {"code": "decryption_failed", "message": "decryption failed"}}')
    code, out, _ = run(capsys, "decrypt", "--secrets", secrets, "--in", response)
    assert code == 1 and json.loads(out)["error"]["code"] == "decryption_failed"


def test_decrypt_with_other_secrets_fails(deployed, tmp_path, capsys):
    """An answer read with another request's secrets exits 2 with nothing on stdout."""
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
    """encrypt exits 2 and keeps an existing secrets file."""
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
    """An unreadable or malformed input file exits 2 with a message saying why."""
    _, public, _ = deployed
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "encrypt", "--keys", public, "--input", path)
    assert (code, out) == (2, "") and message in err


def test_predict(deployed, tmp_path, capsys, engine, monkeypatch):
    """predict prints one output per line, sealed or in plaintext."""
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"inputs": ROWS[:3]}))
    for extra in ([], ["--plaintext"]):
        code, out, _ = run(capsys, "predict", "--url", URL, "--input", rows, *extra)
        assert code == 0
        lines = [json.loads(line) for line in out.splitlines()]
        np.testing.assert_allclose(lines, expected_outputs(engine, ROWS[:3]), rtol=1e-6)


def test_keys_generate_writes_the_ohttp_key_configurations_to_pin(tmp_path, capsys):
    # GIVEN a key made by keys generate
    ring = tmp_path / "ring.json"
    code, _, err = run(capsys, "keys", "generate", "--kid", "k-7", "--out", ring)
    # THEN beside it is the gateway's application/ohttp-keys, naming that key, and stderr says so
    from core.crypto.ohttp import decode_key_configs, default_key_id

    configs = decode_key_configs((tmp_path / "ring.ohttp-keys").read_bytes())
    held = crypto.KeyRing.from_json(ring.read_text())
    assert code == 0 and "ring.ohttp-keys" in err
    assert [(c.key_id, c.public_key) for c in configs] == [
        (default_key_id("k-7"), held.current.public_key_raw)
    ]
    code, _, _ = run(capsys, "keys", "public", "--in", ring, "--ohttp-keys-out", tmp_path / "pinned")
    assert code == 0 and (tmp_path / "pinned").read_bytes() == (tmp_path / "ring.ohttp-keys").read_bytes()


def test_predict_oblivious_pinned_and_fetched(deployed, tmp_path, capsys, engine, monkeypatch):
    # GIVEN a function with plaintext off, and its key configurations in a file
    ring, _, _ = deployed
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS_FILE": str(ring)}), engine)
    carrier = InProcessTransport(app)
    monkeypatch.setattr(keys_cmd, "http_transport", carrier)
    pinned = tmp_path / "gateway.ohttp-keys"
    pinned.write_bytes(app.keyring.gateway.key_configs)
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"inputs": ROWS[:3]}))
    # WHEN predict sends through Oblivious HTTP, with the keys fetched and then pinned
    for extra in ([], ["--gateway-keys", pinned]):
        carrier.seen.clear()
        code, out, err = run(capsys, "predict", "--url", URL, "--input", rows, "--oblivious", *extra)
        # THEN the answers are the model's, and only the gateway was called
        assert code == 0, err
        np.testing.assert_allclose(
            [json.loads(line) for line in out.splitlines()], expected_outputs(engine, ROWS[:3]), rtol=1e-6
        )
        assert {seen.path for seen in carrier.seen} == {"/.well-known/ohttp-gateway"}
    assert run(capsys, "predict", "--url", URL, "--input", rows, "--relay", "http://r")[0] == 2


def test_predict_remote_error(deployed, tmp_path, capsys, monkeypatch):
    """A function's error exits 1 with its code and message on stderr."""
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([ROWS[0][:29]]))
    code, out, err = run(capsys, "predict", "--url", URL, "--input", rows)
    assert (code, out) == (1, "")
    assert "invalid_payload: inputs: row 0: expected 30 features, got 29" in err


def test_help_imports_nothing_heavy():
    """Building the CLI parser imports neither httpx, numpy, cryptography nor the client."""
    probe = (
        "import sys; from litefaas.cli import main; main.parser()\n"
        "print(sorted(m for m in ('httpx', 'numpy', 'cryptography', 'litefaas.client') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- version 2: .npy / .npz / image files, encrypt and decrypt --v2


@pytest.fixture
def digits_app(tmp_path):
    from fixtures.requests import make_keys

    from model.digits import DEFAULT_OUT

    env = {"LITEFAAS_PRIVATE_KEYS": make_keys().private_json, "LITEFAAS_MODEL_DIR": str(DEFAULT_OUT)}
    return App(Settings.from_env(env), Engine.from_dir(DEFAULT_OUT))


def test_predict_npy_sends_version_2_and_prints_a_summary(deployed, tmp_path, capsys, engine, monkeypatch):
    """A .npy input is sent as one version-2 request and its outputs printed under a summary."""
    _, _, app = deployed
    transport = InProcessTransport(app)
    monkeypatch.setattr(keys_cmd, "http_transport", transport)
    x = tmp_path / "x.npy"
    np.save(x, np.asarray(ROWS[:3], dtype=np.float32))
    code, out, err = run(capsys, "predict", "--url", URL, "--input", x)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "probability: FP32 [3, 1] (probabilities)"
    values = [float(line.split(": ")[1]) for line in lines[1:]]
    np.testing.assert_allclose(values, np.ravel(expected_outputs(engine, ROWS[:3])), rtol=1e-5)
    predicts = [seen for seen in transport.seen if seen.path.endswith("/predict")]
    assert [seen.content_type for seen in predicts] == ["application/litefaas"]


def test_predict_npz_writes_the_outputs_asked_for(deployed, tmp_path, capsys, engine, monkeypatch):
    """A .npz input with --output and --out writes only the named outputs to a new .npz file."""
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    x = tmp_path / "x.npz"
    np.savez(x, features=np.asarray(ROWS[:4], dtype=np.float32))
    out_file = tmp_path / "out.npz"
    argv = ["predict", "--url", URL, "--input", x, "--output", "probability", "--out", out_file]
    for extra in ([], ["--plaintext"]):
        out_file.unlink(missing_ok=True)
        code, out, err = run(capsys, *argv, *extra)
        assert code == 0, err
        assert out.strip() == f"wrote {out_file}: probability FP32 [4, 1]"
        with np.load(out_file) as written:
            assert written.files == ["probability"]
            np.testing.assert_array_equal(written["probability"], expected_outputs(engine, ROWS[:4]))
    # AND an existing file is never replaced, a wrong output name is the function's sealed 422
    code, _, err = run(capsys, *argv)
    assert code == 2 and "already exists" in err
    code, _, err = run(capsys, "predict", "--url", URL, "--input", x, "--output", "nope")
    assert code == 1 and "invalid_payload: the model has no output(s) 'nope'" in err


def test_predict_image_files_prints_top_classes_with_labels(digits_app, tmp_path, capsys, monkeypatch):
    """Image files print, per file, the top three classes by label."""
    from model.digits import digits_split, render

    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(digits_app))
    test = digits_split().test
    paths = []
    for index, (suffix, fmt) in enumerate([(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")]):
        path = tmp_path / f"digit{index}{suffix}"
        path.write_bytes(render(test.inputs["pixels"][index], 64, fmt))
        paths.append(path)
    code, out, err = run(capsys, "predict", "--url", URL, "--input", *paths)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "probabilities: FP32 [3, 10] (probabilities)"
    labels = (
        (Path(__file__).resolve().parents[2] / "model/artifacts/digits_cnn/labels.txt").read_text().split()
    )
    for index, line in enumerate(lines[1:]):
        name, top = line.strip().split(": ", 1)
        assert name == paths[index].name
        assert len(top.split("), ")) == 3
        assert top.split(" (")[0] in labels


def test_an_image_to_a_model_without_an_image_input_is_a_remote_422(deployed, tmp_path, capsys, monkeypatch):
    """An image sent to a model with no image input exits 1 with the function's 422."""
    from model.digits import render

    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    photo = tmp_path / "photo.png"
    photo.write_bytes(render(np.zeros((8, 8, 1), np.float32), 32, "PNG"))
    code, out, err = run(capsys, "predict", "--url", URL, "--input", photo)
    assert (code, out) == (1, "")
    assert "invalid_payload: input features: datatype BYTES, the model takes FP32" in err


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (["a.npy", "b.npy"], "only when they are all images"),
        (["a.txt"], ".json or .csv"),
    ],
)
def test_predict_input_kinds_are_checked(tmp_path, capsys, inputs, message):
    """Several non-image files, or a file of unknown type, exit 2 saying why."""
    code, _, err = run(capsys, "predict", "--url", URL, "--input", *[tmp_path / name for name in inputs])
    assert code == 2 and message in err


def test_out_and_output_are_for_version_2(deployed, tmp_path, capsys):
    """--out with a version-1 input exits 2 saying it is for version 2."""
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS[:1]))
    code, _, err = run(capsys, "predict", "--url", URL, "--input", rows, "--out", tmp_path / "o.npz")
    assert code == 2 and "version 2" in err


@pytest.mark.parametrize("source", ["npy", "npz"])
def test_encrypt_then_decrypt_v2(deployed, tmp_path, capsys, engine, monkeypatch, source):
    # GIVEN the function's key set at its URL (so a .npy finds its input name in /health)
    _, _, app = deployed
    monkeypatch.setattr(keys_cmd, "http_transport", InProcessTransport(app))
    x = np.asarray(ROWS[:2], dtype=np.float32)
    path = tmp_path / f"x.{source}"
    if source == "npy":
        np.save(path, x)
    else:
        np.savez(path, features=x)
    body, secrets = tmp_path / "request.bin", tmp_path / "s.json"
    # WHEN the tensor is encrypted to a binary body, answered by the function, and decrypted
    code, _, err = run(
        capsys, "encrypt", "--v2", "--keys", f"{URL}/keys", "--input", path, "--secrets-out", secrets,
        "--out", body,
    )  # fmt: skip
    assert code == 0, err
    assert body.read_bytes()[0] == 2 and mode_of(secrets) == 0o600
    reply = app.handle("POST", "/predict", {"Content-Type": "application/litefaas"}, body.read_bytes())
    assert reply.status == 200
    response, outputs = tmp_path / "response.bin", tmp_path / "out.npz"
    response.write_bytes(reply.body)
    code, out, err = run(capsys, "decrypt", "--v2", "--secrets", secrets, "--in", response, "--out", outputs)
    # THEN the outputs are the model's
    assert code == 0, err
    answer = json.loads(out)
    assert answer["outputs"] == {"probability": {"datatype": "FP32", "shape": [2, 1]}}
    assert answer["model"] == engine.manifest.public_info()
    with np.load(outputs) as written:
        np.testing.assert_array_equal(written["probability"], expected_outputs(engine, ROWS[:2]))


def test_encrypt_v2_errors_and_a_sealed_error_answer(deployed, tmp_path, capsys):
    """encrypt --v2 needs --input-name and --out; decrypt --v2 handles error answers and wrong secrets."""
    _, public, app = deployed
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 29), np.float32))
    # a .npy with a key set file: the input's name must be given
    code, _, err = run(capsys, "encrypt", "--v2", "--keys", public, "--input", x, "--out", tmp_path / "b")
    assert code == 2 and "--input-name" in err
    code, _, err = run(capsys, "encrypt", "--v2", "--keys", public, "--input", x)
    assert code == 2 and "--out" in err
    body, secrets = tmp_path / "b.bin", tmp_path / "s.json"
    code, _, _ = run(
        capsys, "encrypt", "--v2", "--keys", public, "--input", x, "--input-name", "features",
        "--secrets-out", secrets, "--out", body,
    )  # fmt: skip
    assert code == 0
    reply = app.handle("POST", "/predict", {"Content-Type": "application/litefaas"}, body.read_bytes())
    response = tmp_path / "r.bin"
    response.write_bytes(reply.body)
    code, out, _ = run(capsys, "decrypt", "--v2", "--secrets", secrets, "--in", response)
    assert code == 1
    assert json.loads(out)["error"]["code"] == "invalid_payload"
    # and a plaintext JSON error (before decryption) passes through
    response.write_bytes(b'{"error": {"code": "decryption_failed", "message": "decryption failed"}}')
    code, out, _ = run(capsys, "decrypt", "--v2", "--secrets", secrets, "--in", response)
    assert code == 1 and json.loads(out)["error"]["code"] == "decryption_failed"
    # and someone else's secrets do not open it
    response.write_bytes(reply.body)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"response_key": "A" * 22, "id": "A" * 22}))
    code, out, err = run(capsys, "decrypt", "--v2", "--secrets", other, "--in", response)
    assert (code, out) == (2, "") and "does not decrypt" in err
