"""Lambda SnapStart: the AWS entry point's before-snapshot and after-restore hooks, registered with
the runtime's own snapshot_restore_py and run as awslambdaric runs them, in two forked copies of one
snapshotted process."""

from __future__ import annotations

import importlib
import json
import os
import random
import sys

import pytest
import snapshot_restore_py
from fixtures.aws_events import aws_event, aws_response
from fixtures.requests import ENCRYPTED, ROWS, make_keys, seal

from core import trace

HANDLER_MODULE = "handlers.aws.handler"


@pytest.fixture
def snapstart_module(monkeypatch):
    """``handlers.aws.handler`` imported as SnapStart's init imports it, with empty hook registries."""
    old_keys = make_keys()
    monkeypatch.setenv("LITEFAAS_PRIVATE_KEYS", old_keys.private_json)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    monkeypatch.delitem(sys.modules, HANDLER_MODULE, raising=False)
    module = importlib.import_module(HANDLER_MODULE)
    yield module, old_keys
    sys.modules.pop(HANDLER_MODULE, None)


def run_hooks(registry):
    for function, args, kwargs in list(registry):
        function(*args, **kwargs)


def test_restored_copies_take_a_rotated_key_and_draw_different_randomness(snapstart_module, monkeypatch):
    # GIVEN the function initialized under SnapStart and its before-snapshot hooks run
    module, old_keys = snapstart_module
    assert len(snapshot_restore_py.get_before_snapshot()) == len(snapshot_restore_py.get_after_restore()) == 1
    run_hooks(reversed(snapshot_restore_py.get_before_snapshot()))
    answered_before = module.handler(
        aws_event("direct", "POST", "/predict", ENCRYPTED, seal(old_keys).body), None
    )
    assert answered_before["statusCode"] == 200
    # AND the key rotated after the snapshot
    new_keys = make_keys()
    monkeypatch.setenv("LITEFAAS_PRIVATE_KEYS", new_keys.private_json)
    # WHEN two copies are restored from it, each running the after-restore hooks
    trace.new_trace()  # ids drawn before the snapshot: a pool the copies would share
    snapshot = random.getstate(), list(trace._pool[0])
    trace._pool[0] = iter(snapshot[1])
    outcomes = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the restored copy
            os.close(read)
            try:
                random.setstate(snapshot[0])  # a restore is not a fork: its memory is the snapshot's
                trace._pool[0] = iter(snapshot[1])
                run_hooks(snapshot_restore_py.get_after_restore())
                fresh = seal(new_keys, inputs=ROWS[:2])
                status, _, body = aws_response(
                    "direct",
                    module.handler(aws_event("direct", "POST", "/predict", ENCRYPTED, fresh.body), None),
                )
                old_status, _, old_body = aws_response(
                    "direct",
                    module.handler(
                        aws_event("direct", "POST", "/predict", ENCRYPTED, seal(old_keys).body), None
                    ),
                )
                keys_now = json.loads(
                    aws_response(
                        "direct", module.handler(aws_event("direct", "GET", "/keys", {}, b""), None)
                    )[2]
                )
                report = {
                    "status": status,
                    "outputs": fresh.open(body)["outputs"],
                    "old_key": [old_status, json.loads(old_body)["error"]["code"]],
                    "kids": [key["public_key"] for key in keys_now["keys"]],
                    "random": random.getrandbits(64),
                    "trace_id": trace.new_trace().trace_id,
                    "first": module.APP._first_request,
                }
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            outcomes.append(json.loads(pipe.read() or b"{}"))
        os.waitpid(pid, 0)
    # THEN each copy answers with the rotated key only, publishes it, and counts its cold start
    new_public = [key["public_key"] for key in new_keys.public["keys"]]
    for outcome in outcomes:
        assert outcome["status"] == 200 and len(outcome["outputs"]) == 2
        assert outcome["old_key"] == [400, "decryption_failed"]
        assert outcome["kids"] == new_public
        assert outcome["first"] is False  # the restore's first request was the cold start
    # AND their random state differs (ids drawn after the restore are not the same in both)
    assert outcomes[0]["random"] != outcomes[1]["random"]
    assert outcomes[0]["trace_id"] != outcomes[1]["trace_id"]


def test_without_snapstart_no_hook_is_registered(monkeypatch, keys):
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    monkeypatch.setenv("LITEFAAS_PRIVATE_KEYS", keys.private_json)
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    monkeypatch.delitem(sys.modules, HANDLER_MODULE, raising=False)
    module = importlib.import_module(HANDLER_MODULE)
    try:
        assert module.register_snapstart_hooks(module.APP, {}) is False
        assert snapshot_restore_py.get_after_restore() == []
    finally:
        sys.modules.pop(HANDLER_MODULE, None)
