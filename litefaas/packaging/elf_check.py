"""Every ELF file of a bundle checked against its target before the bundle is written: the machine
it was built for (x86_64 or aarch64) and the newest ``GLIBC_2.N`` symbol version it needs (its
``.gnu.version_r``), which must be at most the platform's (Lambda's python3.12 runs on Amazon Linux
2023, glibc 2.34: the bound every target here is built for). A wheel that needs more would fail in the
cloud at import ("version `GLIBC_2.38' not found"); here it is refused, naming the file."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from litefaas.packaging.targets import MAX_GLIBC_MINOR, PackageError, Target

ELF_MAGIC = b"\x7fELF"
MACHINES = {"x86_64": 62, "aarch64": 183}
"""``e_machine`` of each target machine (EM_X86_64, EM_AARCH64)."""
_SHT_GNU_VERNEED = 0x6FFFFFFE
_GLIBC = re.compile(rb"GLIBC_2\.(\d+)(?:\.\d+)?")


@dataclass(frozen=True)
class ElfNeeds:
    """What one ELF file needs of the machine that loads it."""

    machine: int
    bits: int
    glibc_minor: int | None
    """The newest ``GLIBC_2.N`` it names (None: it needs no versioned glibc symbol)."""


def read_needs(stream: BinaryIO) -> ElfNeeds | None:
    """The ELF file's machine and glibc need, or None when the file is not ELF (or is truncated)."""
    header = stream.read(64)
    if len(header) < 64 or header[:4] != ELF_MAGIC or header[5] != 1:  # little-endian only
        return None
    bits = 64 if header[4] == 2 else 32
    (machine,) = struct.unpack_from("<H", header, 18)
    if bits != 64:
        return ElfNeeds(machine, bits, None)
    (shoff,) = struct.unpack_from("<Q", header, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", header, 0x3A)
    if shoff == 0 or shentsize < 64 or shnum == 0 or shnum > 4096:
        return ElfNeeds(machine, bits, None)
    stream.seek(shoff)
    table = stream.read(shentsize * shnum)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(len(table) // shentsize)
    ]
    newest = None
    for _, kind, _, _, offset, size, link, _, _, _ in sections:
        if kind != _SHT_GNU_VERNEED or link >= len(sections):
            continue
        strings_offset, strings_size = sections[link][4], sections[link][5]
        stream.seek(strings_offset)
        strings = stream.read(min(strings_size, 1 << 24))
        stream.seek(offset)
        for version in _GLIBC.finditer(_version_names(stream.read(min(size, 1 << 20)), strings)):
            minor = int(version.group(1))
            newest = minor if newest is None else max(newest, minor)
    return ElfNeeds(machine, bits, newest)


def _version_names(verneed: bytes, strings: bytes) -> bytes:
    """The names of every version a ``.gnu.version_r`` section needs, one per line."""
    names, at = [], 0
    for _ in range(1024):
        if at + 16 > len(verneed):
            break
        _, count, _, aux, following = struct.unpack_from("<HHIII", verneed, at)
        entry = at + aux
        for _ in range(min(count, 1024)):
            if entry + 16 > len(verneed):
                break
            _, _, _, name, aux_next = struct.unpack_from("<IHHII", verneed, entry)
            end = strings.find(b"\0", name)
            names.append(strings[name : end if end >= 0 else len(strings)])
            if aux_next == 0:
                break
            entry += aux_next
        if following == 0:
            break
        at += following
    return b"\n".join(names)


def elf_files(tree: Path) -> Iterator[tuple[Path, ElfNeeds]]:
    """Every ELF file under ``tree`` with what it needs."""
    for path in sorted(tree.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as stream:
            needs = read_needs(stream)
        if needs is not None:
            yield path, needs


def check_tree(tree: Path, target: Target) -> int:
    """Refuse (:class:`PackageError`, naming the file) any ELF file under ``tree`` built for another
    machine, for 32 bits, or needing a newer glibc than the target has; the number of ELF files."""
    machine, count = MACHINES[target.machine], 0
    for path, needs in elf_files(tree):
        count += 1
        name = path.relative_to(tree).as_posix()
        if needs.bits != 64 or needs.machine != machine:
            raise PackageError(
                f"{name} is built for another machine (ELF e_machine {needs.machine}, {needs.bits}-bit),"
                f" not {target.machine}: the {target.cloud} {target.arch} bundle cannot load it"
            )
        if needs.glibc_minor is not None and needs.glibc_minor > MAX_GLIBC_MINOR:
            raise PackageError(
                f"{name} needs GLIBC_2.{needs.glibc_minor}, and the {target.cloud} python{target.python}"
                f" platform has glibc 2.{MAX_GLIBC_MINOR}: pin a wheel built for an older manylinux"
            )
    return count
