"""glibc's allocator kept from mapping a large request's buffers afresh at every request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from fixtures.requests import ENCRYPTED

from core import memory
from core.app import App
from core.config import Settings
from litefaas.paths import ROOT

# Two 600 KB buffers (a 224x224x3 image's body and its plaintext), written and freed together, as
# one request makes them; the script prints the page faults per request.
REQUESTS = textwrap.dedent(
    """
    import resource, sys
    from core import memory
    if sys.argv[1] == "kept":
        assert memory.keep_large_buffers()
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    size = 600 * 1024
    for _ in range(3):
        body = b"x" * size; plaintext = b"y" * size; del body, plaintext
    before = faults()
    for _ in range(50):
        body = b"x" * size; plaintext = b"y" * size; del body, plaintext
    print((faults() - before) / 50)
    """
)
PAGES = 600 * 1024 // os.sysconf("SC_PAGE_SIZE")


def faults_per_request(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", REQUESTS, mode], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout.split()[-1])


def glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not glibc(), reason="the limits are glibc's")
def test_kept_buffers_are_not_faulted_in_again():
    # GIVEN a process that writes and frees two 600 KB buffers per request, as glibc leaves it,
    # every request maps them again and faults in each page
    assert faults_per_request("plain") > PAGES
    # WHEN the limits are set first
    # THEN the heap keeps them and a request touches no new page
    assert faults_per_request("kept") < PAGES / 20


def test_the_limits_are_set_once(monkeypatch):
    monkeypatch.setattr(memory._State, "done", False)
    assert memory.keep_large_buffers() is glibc()
    assert memory.keep_large_buffers() is False


@pytest.fixture
def calls(monkeypatch):
    made: list[int] = []
    monkeypatch.setattr(memory, "keep_large_buffers", lambda: made.append(1) or True)
    return made


def test_the_first_large_body_sets_the_limits(keys, engine, calls):
    # GIVEN an app
    app = App(Settings.from_env({"LITEFAAS_PRIVATE_KEYS": keys.private_json}), engine)
    # WHEN it answers a small request, then a body over glibc's default threshold
    app.handle("POST", "/predict", ENCRYPTED, b"{}")
    assert calls == []
    response = app.handle("POST", "/predict", ENCRYPTED, b"{" + b" " * memory.LARGE_BODY + b"}")
    # THEN the large body set them, and got the protocol's own answer
    assert calls == [1]
    assert response.status == 400
