"""Function bundles for AWS Lambda, Cloud Run functions (gen2) and Azure Functions.

A bundle holds ``core/``, one provider's entrypoint, the model artifact and the runtime wheels for
the *target* platform (:mod:`~litefaas.packaging.wheels`), slimmed
(:mod:`~litefaas.packaging.slimming`) and scanned for private keys
(:mod:`~litefaas.packaging.secret_scan`).

Layouts:

- ``aws``: ``handlers/aws/handler.py`` (the handler serverless.yml names) with the packages at the root.
- ``gcp``: ``main.py`` at the root with the packages beside it, and a ``requirements.txt`` naming
  only functions-framework, which the platform installs itself.
- ``azure``: ``function_app.py`` and ``host.json`` at the root, the packages under
  ``.python_packages/lib/site-packages``, and a ``requirements.txt`` naming azure-functions, which
  the Functions Python worker provides.

Every ELF file is checked against the target (:mod:`~litefaas.packaging.elf_check`: its machine,
and a glibc need within the platform's) before the bundle is written.

A bundle is written atomically: it appears whole in the output folder or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from core.engine import DEFAULT_MODEL_DIR
from litefaas.packaging.elf_check import check_tree
from litefaas.packaging.secret_scan import refuse_findings, scan_paths, scan_zip
from litefaas.packaging.slimming import safe_member, unpack_wheel
from litefaas.packaging.targets import (
    LAMBDA_UNZIPPED_LIMIT,
    MONITOR_DISTRIBUTIONS,
    PLATFORM_INSTALLED,
    PackageError,
    Runtime,
    Target,
    litert_runtime,
    normalize,
    pinned,
    read_pins,
)
from litefaas.packaging.wheels import WHEEL_CACHE, fetch_wheels, wheel_key
from litefaas.paths import ROOT

DEFAULT_DIST = ROOT / "dist"
DEFAULT_MODEL = DEFAULT_MODEL_DIR
MODEL_PATH_IN_BUNDLE = PurePosixPath(DEFAULT_MODEL_DIR.relative_to(ROOT).as_posix())


Step = Callable[[str], None]


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

    @property
    def exports_to_app_insights(self) -> bool:
        """It vendors Application Insights' exporter (built with ``app_insights``)."""
        names = {wheel_key(name)[0] for name in self.wheels}
        return all(normalize(name) in names for name in MONITOR_DISTRIBUTIONS)


def _handler_files(cloud: str) -> dict[str, Path]:
    handlers = ROOT / "handlers"
    if cloud == "aws":
        modules = sorted((handlers / "aws").glob("*.py"))
        return {"handlers/__init__.py": handlers / "__init__.py"} | {
            f"handlers/aws/{path.name}": path for path in modules
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
    metadata = manifest.get("metadata")
    labels_file = metadata.get("labels_file") if isinstance(metadata, dict) else None
    if isinstance(labels_file, str) and "/" not in labels_file:
        names.add(labels_file)  # GET /health reads it
    files = {f"{MODEL_PATH_IN_BUNDLE}/manifest.json": manifest_path}
    for name in sorted(names):
        if not (model_dir / name).is_file():
            raise PackageError(f"the model file {name} named by {manifest_path} is missing")
        files[f"{MODEL_PATH_IN_BUNDLE}/{name}"] = model_dir / name
    return files


def has_image_input(model_dir: Path) -> bool:
    """Whether the artifact's manifest declares an image input (its bundle then needs Pillow)."""
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        return any(isinstance(entry, dict) and entry.get("image") for entry in manifest["inputs"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def source_files(cloud: str, model_dir: Path = DEFAULT_MODEL) -> dict[str, Path]:
    """Bundle path -> source file: ``core/``, the cloud's entrypoint, the model artifact."""
    core = ROOT / "core"
    files = {f"core/{path.relative_to(core).as_posix()}": path for path in sorted(core.rglob("*.py"))}
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
    """What a bundle is made of: the target, the builder's modules, every source file, the wheels' names."""
    digest = hashlib.sha256(repr(dataclasses.astuple(target)).encode())
    for builder in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(builder.read_bytes())
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
    app_insights: bool = False,
) -> Bundle:
    """Build ``target``'s bundle into ``out_dir``: sources, slimmed target wheels, secret scan, zip.
    ``app_insights`` (Azure): azure-monitor-opentelemetry vendored too, for the entry point to export
    to Application Insights where its connection string is set.

    A bundle already there that was made of the same inputs (its zip comment records their digest)
    is kept after a new secret scan, so packaging again is fast and offline.
    """
    started = time.monotonic()
    say = step or (lambda _text: None)
    if app_insights and target.cloud != "azure":
        raise PackageError("Application Insights is Azure's: build it into an Azure bundle")
    pins = read_pins()
    sources = source_files(target.cloud, model_dir)
    runtime = runtime or litert_runtime(pins, images=has_image_input(model_dir))
    if app_insights:
        runtime = dataclasses.replace(runtime, extras=tuple(pinned(MONITOR_DISTRIBUTIONS, pins)))
    platform = pinned(PLATFORM_INSTALLED[target.cloud], pins)
    say(f"wheels for {target.abi} {target.machine}")
    wheels = fetch_wheels(
        runtime.requirements, target, with_dependencies=runtime.with_dependencies, cache=cache
    )
    with_entry_points: set[str] = set()
    if runtime.extras:
        say("wheels of " + ", ".join(runtime.extras) + " and what they need")
        vendored = {wheel_key(wheel.name)[0] for wheel in wheels}
        extra = [
            wheel
            for wheel in fetch_wheels(runtime.extras, target, with_dependencies=True, cache=cache)
            if wheel_key(wheel.name)[0] not in vendored
        ]
        wheels = [*wheels, *extra]
        with_entry_points = {wheel.name for wheel in extra}
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
            unpack_wheel(wheel, site, entry_points=wheel.name in with_entry_points)
        if requirements:
            (tree / "requirements.txt").write_text(requirements, encoding="utf-8")
        say("checking every ELF file's machine and glibc against the target")
        check_tree(tree, target)
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
            name = safe_member(info.filename)
            if name is None:
                continue
            out = destination / name
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, out.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
    return destination
