"""The proof that a bundle works on its own: unpack it, answer one encrypted request with it in the
target's ``pythonX.Y -I -S`` (:mod:`litefaas.packaging.probe`, run by path: the bundle, and the
platform's own layer, is all that interpreter sees), and compare the outputs with the local model's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.protocol import private_keyset_json
from litefaas.packaging import lambda_runtime, platform_env, probe
from litefaas.packaging.bundle import MODEL_PATH_IN_BUNDLE, unpack
from litefaas.packaging.targets import (
    DEFAULT_PYTHON,
    PLATFORM_INSTALLED,
    PackageError,
    Target,
    pinned,
    read_pins,
)
from litefaas.packaging.wheels import fetch_wheels
from litefaas.paths import BUILD

LAYER_CACHE = BUILD / "layers"


def find_python(version: str = DEFAULT_PYTHON) -> str | None:
    """A working ``python3.X`` for ``version``: on PATH, else one of pyenv's; None if there is none.

    A pyenv shim can exist and still fail (the version is installed but not selected), so every
    candidate is run once.
    """
    candidates = []
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    pyenv = shutil.which("pyenv")
    if pyenv:
        listing = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)  # noqa: S603
        root = Path(listing.stdout.strip())
        if listing.returncode == 0 and root.is_dir():
            versions = sorted(root.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
            candidates += [str(path) for path in versions]
    for candidate in candidates:
        try:
            probe = subprocess.run(  # noqa: S603
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def platform_layer(target: Target, cache: Path = LAYER_CACHE) -> Path | None:
    """What the cloud installs itself from the bundle's requirements.txt (gcp: functions-framework),
    unpacked once for ``target`` under ``build/layers``; None where the platform adds nothing."""
    names = PLATFORM_INSTALLED[target.cloud]
    if not names:
        return None
    wheels = fetch_wheels(pinned(names, read_pins()), target, with_dependencies=True)
    digest = hashlib.sha256("\n".join(sorted(wheel.name for wheel in wheels)).encode()).hexdigest()[:16]
    layer = cache / f"{target.cloud}-{target.cache_key}-{digest}"
    if not (layer / ".complete").is_file():
        shutil.rmtree(layer, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=cache, prefix=".layer-"))
        try:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(scratch)
            (scratch / ".complete").write_text("\n".join(wheel.name for wheel in wheels), encoding="utf-8")
            os.replace(scratch, layer)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return layer


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What the isolated interpreter answered."""

    status: int
    body: bytes
    origins: dict[str, str]
    python: str


def probe_bundle(
    root: Path, cloud: str, python: str, body: bytes, env: Mapping[str, str], layer: Path | None = None
) -> ProbeResult:
    """Answer one request with ``root`` (an unpacked bundle) in ``python -I -S``: nothing else on its path."""
    child_env = {"PATH": os.environ.get("PATH", os.defpath), "LANG": "C.UTF-8", **env}
    with tempfile.TemporaryDirectory(prefix="litefaas-probe-") as cwd:
        result = subprocess.run(  # noqa: S603
            [python, "-I", "-S", probe.__file__, cloud, str(root), str(layer or "")],
            input=body,
            capture_output=True,
            env=child_env,
            cwd=cwd,
            timeout=120,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.decode(errors="replace").strip().splitlines()[-12:])
        raise PackageError(f"the bundle did not answer in an isolated {Path(python).name}:\n{tail}")
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    document: dict[str, Any] = json.loads(lines[-1])
    return ProbeResult(
        status=int(document["status"]),
        body=str(document["body"]).encode(),
        origins=dict(document["origins"]),
        python=str(document["python"]),
    )


@dataclasses.dataclass(frozen=True)
class Verification:
    """A bundle answered an encrypted request correctly on its own."""

    rows: int
    python: str
    interpreter: str
    lambda_runtime_s: float | None = None
    """AWS: seconds from awslambdaric's start to its first answer in Lambda's sandbox (None: not run here)."""


def platform_check(
    bundle: Path,
    root: Path,
    target: Target,
    python: str,
    body: bytes,
    env: Mapping[str, str],
    secrets: Any,
    engine: Any,
    arrays: Mapping[str, Any],
) -> None:
    """GCP: the source folder answers ``body`` under functions-framework from a fresh virtualenv of its
    requirements.txt, as the buildpack runs it; Azure: the zip's layout and its FunctionApp indexed in
    a fresh virtualenv of the zip's requirements (:mod:`~litefaas.packaging.platform_env`)."""
    import signal

    import httpx
    import numpy as np

    from litefaas.client import decrypt_response
    from litefaas.local.process import free_port

    with tempfile.TemporaryDirectory(prefix="litefaas-platform-") as scratch:
        venv = platform_env.fresh_venv(python, Path(scratch) / "venv", root / "requirements.txt")
        if target.cloud == "azure":
            platform_env.check_flex_layout(bundle)
            indexed = platform_env.index_function_app(root, venv, env)
            if indexed.get("health", [0])[0] != 200:  # type: ignore[index]
                raise PackageError(f"the indexed FunctionApp answered {indexed.get('health')}")
            return
        port = free_port(1)
        process = platform_env.start_buildpack_function(root, venv, port, env)
        try:
            platform_env.wait_healthy(f"http://127.0.0.1:{port}", process)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/predict",
                content=body,
                headers={"Content-Type": "application/litefaas+json"},
                timeout=30,
            )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.communicate(timeout=30)
    document = decrypt_response(answer.content, secrets, answer.status_code)
    got = np.asarray(_single(document), dtype=np.float32)
    if not np.allclose(got, _single_expected(engine, arrays), atol=1e-6):
        raise PackageError("as the buildpack runs it the bundle's outputs differ from the local model's")


def _single(document: Mapping[str, Any]) -> Any:
    outputs = document.get("outputs")
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs


def _single_expected(engine: Any, arrays: Mapping[str, Any]) -> Any:
    return next(iter(engine.predict(arrays).values()))


def _probe_inputs(specs: Sequence[Any], rows: int) -> dict[str, Any]:
    import numpy as np

    arrays = {}
    for spec in specs:
        shape = (rows, *(size if size > 0 else 1 for size in spec.row_shape))
        count = int(np.prod(shape))
        arrays[spec.name] = np.linspace(0.0, 1.0, count, dtype=np.float32).reshape(shape)
    return arrays


def verify_bundle(bundle: Path, target: Target, python: str | None = None, rows: int = 3) -> Verification:
    """Unpack ``bundle``, answer one encrypted request with it in an isolated ``pythonX.Y -I -S`` and
    check the decrypted outputs against the same model run here; raise :class:`PackageError` if not."""
    import numpy as np

    from core import crypto
    from core.encoding import b64u_encode
    from core.engine import Engine
    from litefaas.client import KeyInfo, build_request, decrypt_response

    interpreter = python or find_python(target.python)
    if interpreter is None:
        raise PackageError(f"no working python{target.python} on PATH or in pyenv: cannot verify the bundle")
    private = b64u_encode(crypto.generate_private_key(crypto.DEFAULT_SUITE))
    keyring_json = private_keyset_json([("verify", crypto.DEFAULT_SUITE, private)])
    public = crypto.KeyRing.from_json(keyring_json).public_keyset()["keys"][0]
    with tempfile.TemporaryDirectory(prefix="litefaas-verify-") as scratch:
        root = unpack(bundle, Path(scratch))
        engine = Engine.from_dir(root / MODEL_PATH_IN_BUNDLE)
        arrays = _probe_inputs(engine.manifest.inputs, rows)
        single = len(arrays) == 1
        inputs = (
            next(iter(arrays.values())).tolist() if single else {k: v.tolist() for k, v in arrays.items()}
        )
        body, secrets = build_request(inputs, KeyInfo.from_json(public))
        env = {"LITEFAAS_PRIVATE_KEYS": keyring_json}
        if target.cloud == "gcp":
            env["FUNCTION_USE_ASGI"] = "true"  # as litefaas deploy serves it
        result = probe_bundle(root, target.cloud, interpreter, body, env, platform_layer(target))
        under_runtime = None
        if target.cloud in ("gcp", "azure"):
            platform_check(bundle, root, target, interpreter, body, env, secrets, engine, arrays)
        if target.cloud == "aws" and lambda_runtime.can_sandbox() is None:
            answer, under_runtime = lambda_runtime.answer_direct(
                root, target, interpreter, body, env, BUILD / "lambda-sandbox-verify"
            )
            document = decrypt_response(answer, secrets, 200)
            if not np.allclose(
                np.asarray(_single(document), dtype=np.float32), _single_expected(engine, arrays)
            ):
                raise PackageError("under awslambdaric the bundle's outputs differ from the local model's")
    document = decrypt_response(result.body, secrets, result.status)
    if result.status != 200 or "outputs" not in document:
        raise PackageError(f"the bundle answered {result.status}: {document.get('error')}")
    expected = engine.predict(arrays)
    answered = document["outputs"]
    for name, values in expected.items():
        got = answered if len(expected) == 1 else answered.get(name)
        if got is None or not np.allclose(np.asarray(got, dtype=np.float32), values, atol=1e-6):
            raise PackageError(f"the bundle's output {name} differs from the local model's")
    return Verification(
        rows=rows, python=result.python, interpreter=interpreter, lambda_runtime_s=under_runtime
    )
