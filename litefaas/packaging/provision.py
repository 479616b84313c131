"""What the three clouds' provisioning shares: the private key set to push, and the command runner.

A :class:`Runner` runs provider commands (``gcloud``, ``az``) one at a time, or, in a dry run, only
prints them, with both branches of every existence check. Every command it sees is kept in
:attr:`Runner.seen` (the tests hand them to the real CLIs' parsers). Key material only ever reaches
a command on stdin or as a 0600 file: never in its argv, never in what is printed.

Every refusal or failure is a :class:`~litefaas.packaging.targets.PackageError`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from litefaas.packaging.secret_scan import scan_bytes
from litefaas.packaging.targets import PackageError

DEFAULT_SERVICE = "litefaas"


def secret_name(stage: str, params: dict[str, str] | None = None) -> str:
    """serverless.yml's ``privateKeysSecret``: ``litefaas-STAGE-private-keys`` unless given."""
    return (params or {}).get("privateKeysSecret") or f"{DEFAULT_SERVICE}-{stage}-private-keys"


@dataclass(frozen=True)
class KeySet:
    """A private key set read from a file only its owner can read. ``text`` is never printed."""

    path: Path
    text: str = field(repr=False)
    kids: tuple[str, ...]

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")


def read_private_keyset(path: Path) -> KeySet:
    """The private key set in ``path``: refused when the file is readable by group or others, or
    when it is a public key set (entries without ``private_key``) or not a key set at all."""
    from core import crypto

    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise PackageError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise PackageError(f"{path} is not a regular file")
    if mode & 0o077:
        raise PackageError(
            f"{path} is readable or writable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"a private key set must be 0600: chmod 600 {shlex.quote(str(path))}"
        )
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError):
        raise PackageError(f"{path} is not a JSON key set") from None
    entries = document.get("keys") if isinstance(document, dict) else document
    dicts = entries if isinstance(entries, list) and all(isinstance(e, dict) for e in entries) else []
    if dicts and not any("private_key" in entry for entry in dicts):
        raise PackageError(
            f"{path} is a public key set (no private_key): push the private set that "
            "`litefaas keys generate --out` wrote"
        )
    try:
        ring = crypto.KeyRing.from_json(text)
    except ValueError as exc:
        raise PackageError(f"{path} is not a litefaas private key set: {exc}") from None
    return KeySet(path, text.strip(), tuple(entry.kid for entry in ring))


@contextmanager
def private_copy(keyset: KeySet) -> Iterator[Path]:
    """A 0600 copy of the key set in a 0700 temporary folder, removed on exit (for ``az --file``)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="litefaas-keys-"))
    path = folder / "keys.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(keyset.data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def refuse_key_material(argv: Sequence[str], needles: Sequence[bytes] = ()) -> None:
    """Raise if an argument looks like private key material (the scan of the bundles and templates)."""
    for arg in argv:
        if scan_bytes(arg.encode("utf-8", "replace"), needles):
            raise PackageError(f"refusing to run {argv[0]}: private key material in its arguments")


def shell_line(argv: Sequence[str], stdin: str | None = None, capture: str | None = None) -> str:
    """``argv`` as one would type it; ``$NAME`` arguments stay expandable."""
    words = [
        f'"{arg}"' if "$" in arg and not set(arg) & set('"`\\ ') else shlex.quote(arg)
        for arg in map(_shown, argv)
    ]
    line = " ".join(words)
    if stdin:
        line += f" < {shlex.quote(stdin)}"
    return f"{capture}=$({line})" if capture else line


def _shown(arg: str) -> str:
    """``arg`` with a path under the current folder (alone, after ``@`` or ``--flag=``) made relative."""
    for prefix in ("@", ""):
        if arg.startswith(prefix + os.sep):
            try:
                return (
                    prefix + Path(arg[len(prefix) :]).resolve().relative_to(Path.cwd().resolve()).as_posix()
                )
            except ValueError:
                return arg
    return arg


@dataclass
class Planned:
    """One command the runner saw: its argv, what it is for, and what it reads on stdin."""

    argv: tuple[str, ...]
    why: str
    stdin: str | None = None


class Runner:
    """Runs provider commands, or only prints them (``dry_run``). ``needles`` are encodings of the
    key material in play: an argv holding one is refused before it runs or is printed."""

    def __init__(
        self,
        *,
        dry_run: bool,
        out: TextIO | None = None,
        needles: Sequence[bytes] = (),
        env: dict[str, str] | None = None,
        spawn: Callable[..., subprocess.CompletedProcess[bytes]] | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.out = out or sys.stdout
        self.needles = list(needles)
        self.env = env
        self.seen: list[Planned] = []
        self._spawn = spawn or subprocess.run

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _record(self, argv: Sequence[str], why: str, stdin: str | None, capture: str | None) -> None:
        refuse_key_material(argv, self.needles)
        self.seen.append(Planned(tuple(argv), why, stdin))
        self.say(f"# {why}" if self.dry_run else f"$ {shell_line(argv, stdin)}")
        if self.dry_run:
            self.say(shell_line(argv, stdin, capture))

    def _exec(
        self, argv: Sequence[str], data: bytes | None, capture: bool
    ) -> subprocess.CompletedProcess[bytes]:
        program = shutil.which(argv[0])
        if program is None:
            raise PackageError(f"{argv[0]} is not on PATH")
        return self._spawn(
            [program, *argv[1:]],
            input=data if data is not None else b"",
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            env=self.env,
            check=False,
        )

    def run(
        self,
        argv: Sequence[str],
        why: str,
        *,
        data: bytes | None = None,
        stdin: str | None = None,
        capture: str | None = None,
    ) -> str:
        """Run ``argv`` (``data`` on its stdin, shown as ``< stdin``); fail on a non-zero exit.
        With ``capture``, return its stripped stdout (in a dry run: ``$CAPTURE``)."""
        self._record(argv, why, stdin, capture)
        if self.dry_run:
            return f"${capture}" if capture else ""
        result = self._exec(argv, data, capture is not None)
        if result.returncode != 0:
            detail = ": " + _tail(result.stderr) if capture and result.stderr else ""
            raise PackageError(f"{' '.join(argv[:3])} failed (exit code {result.returncode}){detail}")
        return (result.stdout or b"").decode("utf-8", "replace").strip()

    def exists(self, argv: Sequence[str], why: str) -> bool | None:
        """Whether ``argv`` (a describe/show command) succeeds; None in a dry run (both branches follow)."""
        self._record(argv, why, None, None)
        if self.dry_run:
            return None
        return self._exec(argv, None, True).returncode == 0

    def branch(
        self, check: Sequence[str], why: str, present: Callable[[], object], absent: Callable[[], object]
    ) -> None:
        """``present()`` if ``check`` succeeds, else ``absent()``; a dry run prints both, labelled."""
        found = self.exists(check, why)
        if found is None:
            self.say("# ... if it exists:")
            present()
            self.say("# ... otherwise:")
            absent()
        elif found:
            present()
        else:
            absent()


def _tail(data: bytes, lines: int = 8) -> str:
    return "\n".join(data.decode("utf-8", "replace").strip().splitlines()[-lines:])
