"""The target's wheels, fetched with pip's cross-platform options into a cache under ``build/wheels``,
never copied from this machine's site-packages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from litefaas.packaging.targets import CONSTRAINTS, PackageError, Target, normalize
from litefaas.paths import BUILD

WHEEL_CACHE = BUILD / "wheels"


def wheel_key(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return normalize(name), version


def _requirement_key(requirement: str) -> tuple[str, str]:
    name, _, version = requirement.partition("==")
    return normalize(name), version


def _pip_download(args: Sequence[str], dest: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
    ]
    result = subprocess.run([*argv, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise PackageError(f"pip could not fetch the wheels for the target:\n{tail}")


def fetch_wheels(
    requirements: Sequence[str], target: Target, *, with_dependencies: bool = False, cache: Path = WHEEL_CACHE
) -> list[Path]:
    """The target's wheels for ``requirements`` (``name==version``), from the cache or pip.

    Without ``with_dependencies`` exactly the named wheels are fetched (``--no-deps``); with it, pip
    resolves their dependencies for the target under ``constraints.txt``. Each resolution is
    remembered in the cache folder, so a repeated build needs neither pip nor the network.
    """
    folder = cache / target.cache_key
    folder.mkdir(parents=True, exist_ok=True)
    if not with_dependencies:
        cached = {wheel_key(wheel.name): wheel for wheel in folder.glob("*.whl")}
        wanted = [_requirement_key(requirement) for requirement in requirements]
        if all(key in cached for key in wanted):
            return [cached[key] for key in wanted]
    request: dict[str, object] = {"requirements": sorted(requirements), "dependencies": with_dependencies}
    if with_dependencies:
        request["constraints"] = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    record = folder / f"resolved-{digest}.json"
    try:
        wheels = [folder / name for name in json.loads(record.read_text(encoding="utf-8"))]
        if all(wheel.is_file() for wheel in wheels):
            return wheels
    except (OSError, ValueError):
        pass
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
        args = ["--only-binary=:all:", "--python-version", target.python, "--implementation", "cp"]
        for abi in (target.abi, "abi3", "none"):
            args += ["--abi", abi]
        for tag in target.platform_tags:
            args += ["--platform", tag]
        args += ["-c", str(CONSTRAINTS)] if with_dependencies else ["--no-deps"]
        _pip_download([*args, *requirements], Path(scratch))
        names = sorted(wheel.name for wheel in Path(scratch).glob("*.whl"))
        for name in names:
            os.replace(Path(scratch) / name, folder / name)
    missing = {_requirement_key(requirement) for requirement in requirements} - {
        wheel_key(name) for name in names
    }
    if missing:
        raise PackageError(
            f"pip returned no wheel for {', '.join('=='.join(key) for key in sorted(missing))}"
        )
    partial = record.with_suffix(".partial")
    partial.write_text(json.dumps(names), encoding="utf-8")
    os.replace(partial, record)
    return [folder / name for name in names]
