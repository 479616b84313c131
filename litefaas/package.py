"""Function bundles for AWS Lambda, Cloud Run functions (gen2) and Azure Functions, and the secret scan.

A bundle holds ``core/``, one provider's entrypoint, the model artifact and the runtime wheels for
the *target* platform (cp312 manylinux, x86_64 or arm64), fetched with pip's cross-platform options
into a cache under ``build/wheels`` and never copied from this machine's site-packages. The wheels
are slimmed: no tests, caches, headers or type stubs, and of LiteRT only what
``ai_edge_litert.interpreter`` loads (the interpreter wrapper and ``libpywrap_litert_common.so``).

Layouts:

- ``aws``: ``handlers/aws/handler.py`` (the handler serverless.yml names) with the packages at the root.
- ``gcp``: ``main.py`` at the root with the packages beside it, and a ``requirements.txt`` naming
  only functions-framework, which the platform installs itself.
- ``azure``: ``function_app.py`` and ``host.json`` at the root, the packages under
  ``.python_packages/lib/site-packages``, and a ``requirements.txt`` naming azure-functions, which
  the Functions Python worker provides.

A bundle is written atomically: it appears whole in the output folder or not at all.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
DEFAULT_DIST = ROOT / "dist"
WHEEL_CACHE = ROOT / "build" / "wheels"
LAYER_CACHE = ROOT / "build" / "layers"
DEFAULT_MODEL = ROOT / "model" / "artifacts" / "breast_cancer_mlp"
MODEL_PATH_IN_BUNDLE = PurePosixPath("model/artifacts/breast_cancer_mlp")

CLOUDS = ("aws", "gcp", "azure")
ARCHITECTURES = ("x86_64", "arm64")
PYTHON_VERSIONS = ("3.12", "3.13")
DEFAULT_PYTHON = "3.12"
# The oldest glibc among the targets: Lambda's python3.12/3.13 runtime is Amazon Linux 2023 (2.34);
# Cloud Run functions (Ubuntu 22.04) and Azure Functions (Debian 12) are newer.
MAX_GLIBC_MINOR = 34
MIN_GLIBC_MINOR = 17

RUNTIME_DISTRIBUTIONS = ("numpy", "ai-edge-litert", "cryptography", "cffi")
# The provider SDK each platform installs itself (the bundle's requirements.txt names it).
PLATFORM_INSTALLED = {"aws": (), "gcp": ("functions-framework",), "azure": ("azure-functions",)}
AZURE_SITE_PACKAGES = PurePosixPath(".python_packages/lib/site-packages")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

Step = Callable[[str], None]


class PackageError(Exception):
    """A bundle cannot be built (or is refused); the message says why."""


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a bundle runs: the cloud, the CPU architecture and the Python version."""

    cloud: str
    arch: str = "x86_64"
    python: str = DEFAULT_PYTHON

    def __post_init__(self) -> None:
        if self.cloud not in CLOUDS:
            raise PackageError(f"unknown cloud {self.cloud!r}; choose from {', '.join(CLOUDS)}")
        if self.arch not in ARCHITECTURES:
            raise PackageError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if self.python not in PYTHON_VERSIONS:
            raise PackageError(
                f"unsupported Python {self.python!r}; choose from {', '.join(PYTHON_VERSIONS)}"
            )
        if self.arch == "arm64" and self.cloud != "aws":
            raise PackageError(
                f"{self.cloud} runs Python functions on x86_64 only; arm64 (Graviton) is for aws"
            )

    @property
    def machine(self) -> str:
        return "aarch64" if self.arch == "arm64" else "x86_64"

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platform_tags(self) -> list[str]:
        """Every manylinux tag the target's glibc accepts: pip matches tags exactly, not by range."""
        tags = [
            f"manylinux_2_{minor}_{self.machine}" for minor in range(MAX_GLIBC_MINOR, MIN_GLIBC_MINOR - 1, -1)
        ]
        return [*tags, f"manylinux2014_{self.machine}"]

    @property
    def cache_key(self) -> str:
        return f"{self.abi}-manylinux_2_{MAX_GLIBC_MINOR}_{self.machine}"

    @property
    def bundle_name(self) -> str:
        return f"litefaas-{self.cloud}-py{self.python}-{self.arch}.zip"

    @property
    def site_packages(self) -> PurePosixPath:
        """Where the packages go inside the bundle."""
        return AZURE_SITE_PACKAGES if self.cloud == "azure" else PurePosixPath(".")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The wheels a bundle vendors: exact pins, with their dependencies resolved by pip or not."""

    name: str
    requirements: tuple[str, ...]
    with_dependencies: bool = False

    @property
    def suffix(self) -> str:
        return "" if self.name == "litert" else f"-{self.name}"


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A bundle that was written, and what it weighs."""

    path: Path
    target: Target
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    wheels: tuple[str, ...]
    seconds: float


@dataclasses.dataclass(frozen=True)
class Finding:
    """Private key material found in a file (the secret itself is never kept)."""

    path: str
    kind: str


# --------------------------------------------------------------------------------------------- pins


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """``name == version`` pins of the constraints file, by normalized name."""
    try:
        text = constraints.read_text(encoding="utf-8")
    except OSError as exc:
        raise PackageError(f"cannot read {constraints.name}: {exc.strerror}") from None
    pins = {}
    for line in text.splitlines():
        requirement = line.split("#", 1)[0].strip()
        name, separator, version = requirement.partition("==")
        if separator:
            pins[normalize(name)] = version.strip()
    return pins


def litert_runtime(pins: Mapping[str, str] | None = None) -> Runtime:
    """What core imports on LiteRT: numpy, ai-edge-litert, cryptography (and cffi's backend)."""
    return Runtime("litert", tuple(pinned(RUNTIME_DISTRIBUTIONS, pins or read_pins())))


def pinned(names: Iterable[str], pins: Mapping[str, str]) -> list[str]:
    """``name==version`` for each name; every one must be pinned."""
    missing = [name for name in names if normalize(name) not in pins]
    if missing:
        raise PackageError(f"{', '.join(missing)} not pinned in {CONSTRAINTS.name}")
    return [f"{name}=={pins[normalize(name)]}" for name in names]


# ------------------------------------------------------------------------------------------- wheels


def _wheel_key(filename: str) -> tuple[str, str]:
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
        cached = {_wheel_key(wheel.name): wheel for wheel in folder.glob("*.whl")}
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
        _wheel_key(name) for name in names
    }
    if missing:
        raise PackageError(
            f"pip returned no wheel for {', '.join('=='.join(key) for key in sorted(missing))}"
        )
    partial = record.with_suffix(".partial")
    partial.write_text(json.dumps(names), encoding="utf-8")
    os.replace(partial, record)
    return [folder / name for name in names]


# ---------------------------------------------------------------------------------------- slimming

# Never shipped from any wheel: caches, tests, headers, stubs, build inputs, pip's install records.
DROP_EVERYWHERE = (
    "*/__pycache__/*",
    "*.pyc",
    "*.pyi",
    "*.pxd",
    "*.h",
    "*.c",
    "*.cpp",
    "*.a",
    "*.pc",
    "*/py.typed",
    "*/tests/*",
    "*/conftest.py",
    "*.dist-info/RECORD",
    "*.dist-info/INSTALLER",
    "*.dist-info/REQUESTED",
    "*.dist-info/direct_url.json",
    "*.dist-info/entry_points.txt",
)


@dataclasses.dataclass(frozen=True)
class Slimming:
    """Which of a wheel's files a function needs: ``only`` (if given) then not ``drop``."""

    only: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()

    def keeps(self, path: str) -> bool:
        if path.split("/", 1)[0].endswith(".dist-info"):
            return not _matches(path, DROP_EVERYWHERE)
        if self.only and not _matches(path, self.only):
            return False
        return not _matches(path, DROP_EVERYWHERE + self.drop)


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase("/" + path, pattern) for pattern in patterns
    )


SLIMMING: dict[str, Slimming] = {
    # ai_edge_litert.interpreter loads only these (readelf: the wrapper NEEDS libpywrap_litert_common.so
    # alone; libLiteRt.so is preloaded by __init__ only if present). Converter, compiled-model, GPU
    # (WebGPU accelerator), AOT and vendor NPU parts are left out: 59 MB -> 18 MB.
    "ai-edge-litert": Slimming(
        only=(
            "ai_edge_litert/__init__.py",
            "ai_edge_litert/interpreter.py",
            "ai_edge_litert/metrics_interface.py",
            "ai_edge_litert/metrics_portable.py",
            "ai_edge_litert/_pywrap_litert_interpreter_wrapper*.so",
            "ai_edge_litert/libpywrap_litert_common.so",
        )
    ),
    # cryptography's Rust bindings import only the compiled _cffi_backend; cffi's Python side and
    # pycparser are build tools.
    "cffi": Slimming(only=("_cffi_backend*.so",)),
    "numpy": Slimming(
        drop=(
            "numpy/f2py/*",
            "numpy/_core/include/*",
            "numpy/_core/lib/*",
            "numpy/_pyinstaller/*",
            "numpy/typing/mypy_plugin.py",
            "numpy/doc/*",
            # loaded lazily by numpy 2 (module __getattr__) and used by neither core nor LiteRT
            "numpy/random/*",
            "numpy/fft/*",
            "numpy/polynomial/*",
            "numpy/ma/*",
            "numpy/_core/_simd*.so",
            "numpy/_core/_*_tests*.so",
            "numpy/_core/_rational_tests*.so",
            "numpy/_core/_struct_ufunc_tests*.so",
            "numpy/_core/_operand_flag_tests*.so",
            "numpy/_core/_umath_tests*.so",
            "numpy/_core/_multiarray_tests*.so",
        )
    ),
}


def _safe_member(name: str) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.endswith("/"):
        return None
    return path.as_posix()


def unpack_wheel(wheel: Path, destination: Path) -> int:
    """Extract the files of ``wheel`` a function needs into ``destination``; the bytes written."""
    slimming = SLIMMING.get(_wheel_key(wheel.name)[0], Slimming())
    written = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = _safe_member(info.filename)
            if name is None:
                continue
            head, _, rest = name.partition("/")
            if head.endswith(".data"):
                scheme, _, inner = rest.partition("/")
                if scheme not in ("purelib", "platlib") or not inner:
                    continue
                name = inner
            if not slimming.keeps(name):
                continue
            out = destination / name
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
            written += info.file_size
    return written


# ----------------------------------------------------------------------------------- secret scan

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


# ---------------------------------------------------------------------------------------- sources


def _handler_files(cloud: str) -> dict[str, Path]:
    handlers = ROOT / "handlers"
    if cloud == "aws":
        return {
            "handlers/__init__.py": handlers / "__init__.py",
            "handlers/aws/__init__.py": handlers / "aws" / "__init__.py",
            "handlers/aws/handler.py": handlers / "aws" / "handler.py",
        }
    if cloud == "gcp":
        return {"main.py": handlers / "gcp" / "main.py"}
    return {
        "function_app.py": handlers / "azure" / "function_app.py",
        "host.json": handlers / "azure" / "host.json",
    }


def model_files(model_dir: Path) -> dict[str, Path]:
    """The artifact's ``manifest.json`` and the model files it loads; refuses an incomplete artifact."""
    manifest_path = model_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        selected = str(manifest["file"])
        # the selected file and any other the runtime may load (a partitioned model's segments, say);
        # the alternative variants the manifest lists for the record stay out
        referenced = json.dumps({key: value for key, value in manifest.items() if key != "variants"})
    except OSError:
        raise PackageError(f"no model artifact: {manifest_path} is missing (run `litefaas build`)") from None
    except (ValueError, KeyError, TypeError):
        raise PackageError(f"{manifest_path} is not a model manifest") from None
    names = {selected} | {path.name for path in model_dir.glob("*.tflite") if f'"{path.name}"' in referenced}
    files = {f"{MODEL_PATH_IN_BUNDLE}/manifest.json": manifest_path}
    for name in sorted(names):
        if not (model_dir / name).is_file():
            raise PackageError(f"the model file {name} named by {manifest_path} is missing")
        files[f"{MODEL_PATH_IN_BUNDLE}/{name}"] = model_dir / name
    return files


def source_files(cloud: str, model_dir: Path = DEFAULT_MODEL) -> dict[str, Path]:
    """Bundle path -> source file: ``core/``, the cloud's entrypoint, the model artifact."""
    files = {f"core/{path.name}": path for path in sorted((ROOT / "core").glob("*.py"))}
    files |= _handler_files(cloud)
    files |= model_files(model_dir)
    return files


def _requirements_txt(target: Target, platform: Sequence[str]) -> str:
    where = ".python_packages/lib/site-packages" if target.cloud == "azure" else "the bundle's root"
    header = (
        f"# The provider SDK, which the platform provides. numpy, ai-edge-litert and cryptography\n"
        f"# are vendored in {where} for cp{target.python.replace('.', '')} manylinux {target.machine}.\n"
    )
    return header + "".join(f"{line}\n" for line in platform)


# ------------------------------------------------------------------------------------------ bundle


def _write_zip(tree: Path, destination: Path, comment: bytes = b"") -> tuple[int, int]:
    """Zip ``tree`` reproducibly (sorted names, fixed times, mode 0644); (files, unzipped bytes).

    Deflate level 6: level 9 saves under 1 % here for nearly three times the time.
    """
    files = sorted(
        (path for path in tree.rglob("*") if path.is_file()),
        key=lambda path: path.relative_to(tree).as_posix(),
    )
    total = 0
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.comment = comment
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            data = path.read_bytes()
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
            total += len(data)
    return len(files), total


def _install(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def _inputs_digest(target: Target, sources: Mapping[str, Path], wheels: Sequence[Path], extra: str) -> str:
    """What a bundle is made of: the target, this builder, every source file, the wheels' names."""
    digest = hashlib.sha256(repr(dataclasses.astuple(target)).encode())
    digest.update(Path(__file__).read_bytes())
    for name, path in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for wheel in wheels:
        digest.update(wheel.name.encode() + b"\0")
    digest.update(extra.encode())
    return digest.hexdigest()


def _bundle_of(path: Path, target: Target, wheels: Sequence[Path], started: float) -> Bundle:
    with zipfile.ZipFile(path) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
    return Bundle(
        path=path,
        target=target,
        zipped_bytes=path.stat().st_size,
        unzipped_bytes=sum(info.file_size for info in infos),
        files=len(infos),
        wheels=tuple(wheel.name for wheel in wheels),
        seconds=time.monotonic() - started,
    )


def _stamp(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.comment
    except (OSError, zipfile.BadZipFile):
        return b""


def build_bundle(
    target: Target,
    out_dir: Path = DEFAULT_DIST,
    *,
    model_dir: Path = DEFAULT_MODEL,
    step: Step | None = None,
    cache: Path = WHEEL_CACHE,
    runtime: Runtime | None = None,
    enforce_limits: bool = True,
) -> Bundle:
    """Build ``target``'s bundle into ``out_dir``: sources, slimmed target wheels, secret scan, zip.

    A bundle already there that was made of the same inputs (its zip comment records their digest)
    is kept after a new secret scan, so packaging again is fast and offline.
    """
    started = time.monotonic()
    say = step or (lambda _text: None)
    pins = read_pins()
    sources = source_files(target.cloud, model_dir)
    runtime = runtime or litert_runtime(pins)
    platform = pinned(PLATFORM_INSTALLED[target.cloud], pins)
    say(f"wheels for {target.abi} {target.machine}")
    wheels = fetch_wheels(
        runtime.requirements, target, with_dependencies=runtime.with_dependencies, cache=cache
    )
    requirements = _requirements_txt(target, platform) if platform else ""
    stamp = b"litefaas-inputs:" + _inputs_digest(target, sources, wheels, requirements).encode()
    final = out_dir / target.bundle_name.replace(".zip", f"{runtime.suffix}.zip")
    if final.is_file() and _stamp(final) == stamp:
        say("scanning the existing bundle for private keys")
        findings = scan_zip(final)
        if findings:
            final.unlink()
        refuse_findings(findings, f"the existing {final.name} (removed)")
        return _bundle_of(final, target, wheels, started)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="litefaas-bundle-") as scratch:
        tree = Path(scratch) / "bundle"
        say("sources and model")
        for name, path in sources.items():
            _install(path, tree / name)
        site = tree / target.site_packages
        for wheel in wheels:
            say(f"unpacking {wheel.name.split('-')[0]}")
            unpack_wheel(wheel, site)
        if requirements:
            (tree / "requirements.txt").write_text(requirements, encoding="utf-8")
        say("scanning for private keys")
        refuse_findings(scan_paths([tree], base=tree), f"to write {final.name}")
        say(f"zipping {final.name}")
        partial = Path(scratch) / final.name
        _, unzipped = _write_zip(tree, partial, stamp)
        if enforce_limits and target.cloud == "aws" and unzipped > LAMBDA_UNZIPPED_LIMIT:
            raise PackageError(f"{final.name} unzips to {unzipped:,} bytes, over Lambda's 250 MB limit")
        staged = out_dir / f".{final.name}.partial"
        try:
            shutil.copyfile(partial, staged)
            os.replace(staged, final)
        finally:
            staged.unlink(missing_ok=True)
    return _bundle_of(final, target, wheels, started)


def zip_sizes(bundle: Path) -> tuple[int, int]:
    """(zipped, unzipped) bytes of a zip archive."""
    with zipfile.ZipFile(bundle) as archive:
        return bundle.stat().st_size, sum(info.file_size for info in archive.infolist())


def unpack(bundle: Path, destination: Path) -> Path:
    """Extract a bundle (refusing paths that leave ``destination``); returns ``destination``."""
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            name = _safe_member(info.filename)
            if name is None:
                continue
            out = destination / name
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
    return destination


# ------------------------------------------------------------------------------------------- proof


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


# Runs in the target's Python with -I -S: the bundle (and the platform's own layer) is all it sees.
# argv: cloud, bundle root, platform layer or "". stdin: a request body. stdout: one JSON line.
PROBE_SCRIPT = r"""
import json, os, sys
cloud, root, layer = sys.argv[1], sys.argv[2], sys.argv[3]
site = os.path.join(root, ".python_packages", "lib", "site-packages") if cloud == "azure" else root
sys.path[:0] = [p for p in (root, site, layer) if p]
body = sys.stdin.buffer.read()
headers = {"content-type": "application/litefaas+json"}
if cloud == "aws":
    from handlers.aws import handler as entry
    event = {"version": "2.0", "rawPath": "/predict", "headers": headers, "body": body.decode(),
             "isBase64Encoded": False, "requestContext": {"http": {"method": "POST", "path": "/predict"}}}
    result = entry.handler(event, None)
    status, answer = result["statusCode"], result["body"].encode()
elif cloud == "gcp":
    import functions_framework
    app = functions_framework.create_app(target="predict", source=os.path.join(root, "main.py"))
    reply = app.test_client().post("/predict", data=body, headers=headers)
    status, answer = reply.status_code, reply.get_data()
else:
    import azure.functions as func
    import function_app
    user = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}["predict"]
    class Context:
        invocation_id = "probe"
    url = "https://probe.azurewebsites.net/api/predict"
    request = func.HttpRequest("POST", url, headers=headers, body=body)
    reply = user(request, Context())
    status, answer = reply.status_code, reply.get_body()
origins = {name: getattr(sys.modules.get(name), "__file__", None) or "" for name in
           ("numpy", "ai_edge_litert", "cryptography", "_cffi_backend", "core")}
python = sys.version.split()[0]
print(json.dumps({"status": status, "body": answer.decode(), "origins": origins, "python": python}))
"""


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
            [python, "-I", "-S", "-c", PROBE_SCRIPT, cloud, str(root), str(layer or "")],
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
    private = crypto.generate_private_key(crypto.DEFAULT_SUITE)
    keyring_json = json.dumps(
        [{"kid": "verify", "suite": crypto.DEFAULT_SUITE, "private_key": b64u_encode(private)}]
    )
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
        result = probe_bundle(root, target.cloud, interpreter, body, env, platform_layer(target))
    document = decrypt_response(result.body, secrets, result.status)
    if result.status != 200 or "outputs" not in document:
        raise PackageError(f"the bundle answered {result.status}: {document.get('error')}")
    expected = engine.predict(arrays)
    answered = document["outputs"]
    for name, values in expected.items():
        got = answered if len(expected) == 1 else answered.get(name)
        if got is None or not np.allclose(np.asarray(got, dtype=np.float32), values, atol=1e-6):
            raise PackageError(f"the bundle's output {name} differs from the local model's")
    return Verification(rows=rows, python=result.python, interpreter=interpreter)
