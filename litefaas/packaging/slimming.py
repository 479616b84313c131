"""Slimming: which of a wheel's files a function needs. No tests, caches, headers or type stubs from
any wheel, and of LiteRT only what ``ai_edge_litert.interpreter`` loads (the interpreter wrapper and
``libpywrap_litert_common.so``)."""

from __future__ import annotations

import dataclasses
import fnmatch
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from litefaas.packaging.wheels import wheel_key

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
    entry_points: bool = False
    """Keep ``entry_points.txt``: a distribution whose parts are found by them (OpenTelemetry's)."""

    def keeps(self, path: str) -> bool:
        if path.split("/", 1)[0].endswith(".dist-info"):
            if self.entry_points and path.endswith(".dist-info/entry_points.txt"):
                return True
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
    # Pillow, for models with an image input: core.images decodes JPEG, PNG and WebP only (readelf:
    # _imaging NEEDS libjpeg, libtiff, libopenjp2, libxcb; _webp the libwebp family). AVIF, fonts
    # (freetype, harfbuzz, brotli, libpng), colour management (lcms2), Tk and ImageMath are left out;
    # their plugins import them inside try/except ImportError. 20.4 MB -> 11.2 MB unzipped.
    "pillow": Slimming(
        drop=(
            "PIL/_avif*.so",
            "pillow.libs/libavif*",
            "PIL/_imagingft*.so",
            "pillow.libs/libfreetype*",
            "pillow.libs/libharfbuzz*",
            "pillow.libs/libbrotli*",
            "pillow.libs/libpng16*",
            "PIL/_imagingcms*.so",
            "pillow.libs/liblcms2*",
            "PIL/_imagingtk*.so",
            "PIL/_imagingmath*.so",
        )
    ),
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


def safe_member(name: str) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.endswith("/"):
        return None
    return path.as_posix()


def unpack_wheel(wheel: Path, destination: Path, *, entry_points: bool = False) -> int:
    """Extract the files of ``wheel`` a function needs into ``destination`` (its entry points too
    with ``entry_points``); the bytes written."""
    slimming = SLIMMING.get(wheel_key(wheel.name)[0], Slimming())
    if entry_points:
        slimming = dataclasses.replace(slimming, entry_points=True)
    written = 0
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            name = safe_member(info.filename)
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
