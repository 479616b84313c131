"""Key rotation under load on each local host: no request fails while a new key comes in and the old goes.

The hosts read ``LITEFAAS_PRIVATE_KEYS_FILE`` (re-read when it changes, checked at most every
``LITEFAAS_KEYS_RELOAD_S`` = 1 s here, and at once for a kid they do not hold). Two kinds of
clients: most refetch ``GET /keys`` every 0.5 s; some keep their key set until the function
refuses it. Every client, on ``decryption_failed``, refetches the key set and retries once.
Lost = a row with no verified answer after that (and after up to 8 attempts on network errors).
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fixtures.requests import make_keys
from reliability import tally
from reliability.local_servers import PROVIDERS, Background, function_env, running, warm_up, write_key_file

pytestmark = pytest.mark.reliability

JOBS = 3000
CONCURRENCY = 16
STICKY_CONCURRENCY = 4
STICKY_AFTER_REMOVAL = 300
"""Rows the clients that keep their keys send after the old key is removed, before they stop."""
RELOAD_S = 1
SETTLE_S = 3 * RELOAD_S
"""After a change: every instance has checked its file, and every client has refetched the key set."""


def key_entry(kid: str) -> dict:
    entry = json.loads(make_keys().private_json)[0]
    return {**entry, "kid": kid}


def served_kids(base_url: str) -> list[str]:
    return [key["kid"] for key in httpx.get(f"{base_url}/keys", timeout=30).json()["keys"]]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rotation_under_load_fails_no_request(provider, tmp_path):
    # GIVEN a host whose key file holds [old], under load by clients that refetch the key set every
    # 0.5 s, and by clients that keep their key set until the function refuses it
    old, new = key_entry("old"), key_entry("new")
    key_file = tmp_path / "function.keys.json"
    write_key_file(key_file, [old])
    env = function_env(LITEFAAS_PRIVATE_KEYS_FILE=str(key_file), LITEFAAS_KEYS_RELOAD_S=str(RELOAD_S))
    done = threading.Event()
    with running(provider, env) as server:
        warm = warm_up(server, steps=(4, 16))
        with (
            Background(server, JOBS, CONCURRENCY, refresh_keys_s=0.5, timeout_s=120) as load,
            Background(server, 10**6, STICKY_CONCURRENCY, timeout_s=120, stop=done.is_set) as sticky,
        ):
            # WHEN a new key becomes current while the old one is still accepted
            load.wait_answered(JOBS // 4)
            write_key_file(key_file, [new, old])
            introduced = time.monotonic()
            load.wait_answered(JOBS // 2)
            time.sleep(max(0.0, SETTLE_S - (time.monotonic() - introduced)))
            # AND, later, the old key is removed
            write_key_file(key_file, [new])
            removed_at, sticky_at_removal = load.result.answered, sticky.result.answered
            sticky.wait_answered(sticky_at_removal + STICKY_AFTER_REMOVAL)
            done.set()
        result, kept = load.finish(), sticky.finish()
        time.sleep(RELOAD_S + 0.5)
        kids_after = served_kids(server.spec.base_url)
    summary, kept_summary = result.summary(), kept.summary()
    tally.record(
        f"key rotation {provider}",
        **{"requests sent": result.attempts + kept.attempts + sum(step["http_requests"] for step in warm)},
        **{"faults injected": 2, "requests lost": len(result.lost) + len(kept.lost)},
        kids=summary["kids"],
        sticky_kids=kept_summary["kids"],
        decryption_failed_retries=result.failures.get("decryption_failed", 0)
        + kept.failures.get("decryption_failed", 0),
        key_fetches=result.key_refetches + kept.key_refetches,
        wall_s=summary["wall_s"],
    )
    # THEN no request was lost or answered wrong, and the refreshing clients moved from old to new
    assert (result.answered, len(result.lost), len(result.wrong)) == (JOBS, 0, 0), summary
    assert result.kids["old"] >= JOBS // 4 and result.kids["new"] >= JOBS - removed_at, summary
    assert set(result.failures) <= {"decryption_failed"}, summary
    # AND the clients that kept the old key moved once it was refused: one retry each, nothing lost
    assert (kept.answered, len(kept.lost), len(kept.wrong)) == (kept.jobs, 0, 0), kept_summary
    assert kept.kids["new"] > 0 and kept.kids["old"] >= sticky_at_removal, kept_summary
    assert set(kept.failures) == {"decryption_failed"}, kept_summary
    assert kept.failures["decryption_failed"] <= STICKY_CONCURRENCY * 2, kept_summary
    # AND the host now publishes the new key alone
    assert kids_after == ["new"]
