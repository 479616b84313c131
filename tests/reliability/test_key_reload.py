"""Key rotation without a restart: the function re-reads its key file when the file changes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from fixtures import requests as fx
from fixtures.requests import ENCRYPTED, ROWS, make_keys, seal

from core import logs
from core.app import App
from core.config import Settings
from core.crypto import KeyRing
from core.keyring_reload import KeyFileWatcher


class Lines(logging.Handler):
    """The ``litefaas`` logger's lines, formatted as the function writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self, name: str) -> list[dict]:
        return [line for line in map(json.loads, self.lines) if line["event"] == name]


@pytest.fixture
def log_lines():
    handler = Lines()
    logger = logging.getLogger(logs.LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def ring_entries(keys: fx.TestKeys, kid: str) -> list[dict]:
    """The private key set of ``keys`` with its kids renamed ``kid``, ``kid-1``…"""
    entries = json.loads(keys.private_json)
    for index, entry in enumerate(entries):
        entry["kid"] = kid if index == 0 else f"{kid}-{index}"
    return entries


def write_ring(path: Path, entries: list[dict] | str) -> None:
    """Replace the key file atomically (a new inode), readable by its owner only."""
    text = entries if isinstance(entries, str) else json.dumps(entries)
    temporary = path.with_name("next." + path.name)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def keyset_of(entries: list[dict]) -> dict:
    return KeyRing.from_json(json.dumps(entries)).public_keyset()


def sealed_to(entries: list[dict], kid: str):
    """A fresh request sealed to ``kid`` of ``entries``."""
    keyset = keyset_of(entries)
    return seal(fx.TestKeys(json.dumps(entries), keyset, ()), kid, inputs=ROWS[:1])


@pytest.fixture
def rotation(tmp_path, engine):
    old, new = ring_entries(make_keys(), "old"), ring_entries(make_keys(), "new")
    path = tmp_path / "ring.keys.json"
    write_ring(path, old)
    env = {"LITEFAAS_PRIVATE_KEYS_FILE": str(path), "LITEFAAS_KEYS_RELOAD_S": "0"}
    return App(Settings.from_env(env), engine), path, old, new


def status_of(app: App, entries: list[dict], kid: str) -> int:
    return app.handle("POST", "/predict", ENCRYPTED, sealed_to(entries, kid).body).status


def test_rotation_publishes_the_new_key_and_keeps_the_old_until_removed(rotation):
    # GIVEN a function whose key file holds [old]
    app, path, old, new = rotation
    assert json.loads(app.handle("GET", "/keys", {}, b"").body) == keyset_of(old)
    # WHEN the file is replaced by [new, old]
    write_ring(path, new + old)
    # THEN /keys lists new first, and requests to either key are answered
    assert json.loads(app.handle("GET", "/keys", {}, b"").body) == keyset_of(new + old)
    assert status_of(app, new, "new") == 200
    assert status_of(app, old, "old") == 200
    # AND once the file holds [new] only, the old key is refused with the protocol's one code
    write_ring(path, new)
    assert status_of(app, new, "new") == 200
    refused = app.handle("POST", "/predict", ENCRYPTED, sealed_to(old, "old").body)
    assert (refused.status, json.loads(refused.body)["error"]["code"]) == (400, "decryption_failed")


def test_a_request_for_an_unknown_kid_checks_the_file_at_once(tmp_path, engine):
    # GIVEN a function that would check its key file only every hour
    old, new = ring_entries(make_keys(), "old"), ring_entries(make_keys(), "new")
    path = tmp_path / "ring.keys.json"
    write_ring(path, old)
    env = {"LITEFAAS_PRIVATE_KEYS_FILE": str(path), "LITEFAAS_KEYS_RELOAD_S": "3600"}
    app = App(Settings.from_env(env), engine)
    # WHEN another instance already published [new, old] and a client seals to new
    write_ring(path, new + old)
    # THEN this instance reads the file on that request instead of refusing it
    assert status_of(app, new, "new") == 200


@pytest.mark.parametrize(
    "bad_text",
    ["not json", "[]", '[{"kid":"x","suite":"nope","private_key":"AAAA"}]', "\udcff"],
    ids=["not-json", "empty", "unknown-suite", "not-utf8"],
)
def test_a_bad_file_keeps_the_ring_and_logs_one_line(rotation, log_lines, bad_text):
    # GIVEN a function serving [old] from its key file
    app, path, old, _ = rotation
    # WHEN the file is replaced by something that is not a key ring (or not even text)
    if bad_text == "\udcff":
        path.unlink()
        path.write_bytes(b"\xff\xfe")
    else:
        write_ring(path, bad_text)
    statuses = [status_of(app, old, "old") for _ in range(3)]
    # THEN the old ring keeps answering, and one line names the variable, with no key material
    assert statuses == [200, 200, 200]
    failures = log_lines.events("keys_reload_failed")
    assert len(failures) == 1
    assert failures[0]["variable"] == "LITEFAAS_PRIVATE_KEYS_FILE"
    assert failures[0]["kept"] == ["old"]
    assert not any(entry["private_key"] in line for line in log_lines.lines for entry in old)


def test_a_missing_file_keeps_the_ring(rotation, log_lines):
    app, path, old, new = rotation
    path.unlink()
    assert [status_of(app, old, "old") for _ in range(2)] == [200, 200]
    assert len(log_lines.events("keys_reload_failed")) == 1
    # AND a file that comes back is read again
    write_ring(path, new)
    assert status_of(app, new, "new") == 200
    assert log_lines.events("keys_reloaded")[-1]["keys"] == ["new"]


def test_the_file_is_checked_at_most_once_per_interval(tmp_path, log_lines):
    # GIVEN a watcher with a 10 s interval on a controlled clock
    old, new = ring_entries(make_keys(), "old"), ring_entries(make_keys(), "new")
    path = tmp_path / "ring.keys.json"
    write_ring(path, old)
    now = [100.0]
    ring = KeyRing.from_json(json.dumps(old))
    watcher = KeyFileWatcher(path, 10, ring, logging.getLogger(logs.LOGGER_NAME), clock=lambda: now[0])
    write_ring(path, new)
    # WHEN it is polled before and after the interval
    early = watcher.poll()
    now[0] += 10
    due = watcher.poll()
    # THEN the change is seen only once the interval has passed, and only once
    assert early is None
    assert due is not None and due.current.kid == "new"
    now[0] += 10
    assert watcher.poll() is None
    # AND a request for an unknown kid checks at once, whatever the interval
    write_ring(path, old)
    assert watcher.poll(unknown_kid=True) is not None
    assert watcher.poll(unknown_kid=True) is None  # unchanged: stat only, no parse


def test_the_first_check_catches_a_change_made_during_cold_start(tmp_path, engine):
    # GIVEN a ring read at cold start, and the file replaced before the first check
    old, new = ring_entries(make_keys(), "old"), ring_entries(make_keys(), "new")
    path = tmp_path / "ring.keys.json"
    write_ring(path, old)
    settings = Settings.from_env({"LITEFAAS_PRIVATE_KEYS_FILE": str(path), "LITEFAAS_KEYS_RELOAD_S": "0"})
    write_ring(path, new)
    app = App(settings, engine)
    # THEN the first request already sees the file as it is
    assert json.loads(app.handle("GET", "/keys", {}, b"").body) == keyset_of(new)


def test_the_reload_interval_is_checked_at_cold_start():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="LITEFAAS_KEYS_RELOAD_S"):
        Settings.from_env({"LITEFAAS_ALLOW_PLAINTEXT": "1", "LITEFAAS_KEYS_RELOAD_S": "-1"})
    assert Settings.from_env({"LITEFAAS_ALLOW_PLAINTEXT": "1"}).keys_reload_s == 10
