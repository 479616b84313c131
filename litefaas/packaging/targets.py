"""What a bundle is built for (:class:`Target`), what it vendors (:class:`Runtime`), and the pins.

A target is a cloud, a CPU architecture and a Python version; its wheels are cp3X manylinux ones
for the oldest glibc among the clouds. Every vendored distribution is pinned in ``constraints.txt``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from core.protocol import PROVIDERS
from litefaas.errors import ToolError
from litefaas.paths import ROOT

CONSTRAINTS = ROOT / "constraints.txt"
CLOUDS = PROVIDERS
ARCHITECTURES = ("x86_64", "arm64")
PYTHON_VERSIONS = ("3.12", "3.13")
# AWS's advertised size targets for a bundle (Lambda's own hard limit is LAMBDA_UNZIPPED_LIMIT).
AWS_TARGET_ZIPPED = 25 * 1000 * 1000
AWS_TARGET_UNZIPPED = 80 * 1000 * 1000


DEFAULT_PYTHON = "3.12"
# The oldest glibc among the targets: Lambda's python3.12/3.13 runtime is Amazon Linux 2023 (2.34);
# Cloud Run functions (Ubuntu 22.04) and Azure Functions (Debian 12) are newer.
MAX_GLIBC_MINOR = 34
MIN_GLIBC_MINOR = 17
RUNTIME_DISTRIBUTIONS = ("numpy", "ai-edge-litert", "cryptography", "cffi")
# Added for a model whose manifest declares an image input (core.images decodes with Pillow).
IMAGE_DISTRIBUTIONS = ("pillow",)
# Added to an Azure bundle asked to export to Application Insights (``--app-insights``): the
# distro the entry point imports where APPLICATIONINSIGHTS_CONNECTION_STRING is set, with what it
# needs, resolved under constraints.txt.
MONITOR_DISTRIBUTIONS = ("azure-monitor-opentelemetry",)
# What each platform installs itself from the bundle's requirements.txt: the provider SDK, and for
# GCP the C HTTP parser and event loop its ASGI server (uvicorn) takes up when they are there.
PLATFORM_INSTALLED = {
    "aws": (),
    "gcp": ("functions-framework", "httptools", "uvloop"),
    "azure": ("azure-functions",),
}
AZURE_SITE_PACKAGES = PurePosixPath(".python_packages/lib/site-packages")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


class PackageError(ToolError):
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
    extras: tuple[str, ...] = ()
    """Pins vendored beside ``requirements`` with their dependencies (and their entry points, which
    OpenTelemetry loads its parts by)."""

    @property
    def suffix(self) -> str:
        return "" if self.name == "litert" else f"-{self.name}"


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


def litert_runtime(pins: Mapping[str, str] | None = None, *, images: bool = False) -> Runtime:
    """What core imports on LiteRT: numpy, ai-edge-litert, cryptography (and cffi's backend), and
    Pillow when the model has an image input."""
    names = RUNTIME_DISTRIBUTIONS + (IMAGE_DISTRIBUTIONS if images else ())
    return Runtime("litert", tuple(pinned(names, pins or read_pins())))


def pinned(names: Iterable[str], pins: Mapping[str, str]) -> list[str]:
    """``name==version`` for each name; every one must be pinned."""
    missing = [name for name in names if normalize(name) not in pins]
    if missing:
        raise PackageError(f"{', '.join(missing)} not pinned in {CONSTRAINTS.name}")
    return [f"{name}=={pins[normalize(name)]}" for name in names]
