"""A function started with a wrong configuration refuses to start with one clear line, and serves nothing.

Each local host is started for real with one wrong setting. functions-framework and the Azure
host import the function when they start, so they exit. serverless-offline starts a Python process
per Lambda instance on the first request: the AWS entry point raises its configuration error from
the import there (as Lambda's runtime client then reports it as the function's init error), and
the request gets serverless-offline's own error, never a litefaas answer. Either way the log has
exactly one JSON ``config_error`` line naming the variable (the process's exit message, or on AWS
the runtime's report of the error, repeats it in plain text), and no key material.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time

import httpx
import pytest
from reliability import tally
from reliability.local_servers import LAUNCHERS, PROVIDERS, function_env, skip_unless_runnable

from core.encoding import b64u_encode
from core.engine import DEFAULT_MODEL_DIR
from litefaas.local.aws import LOCAL_TIMEOUT_S
from litefaas.local.process import free_port
from litefaas.local.server import LocalServer

pytestmark = pytest.mark.reliability

EXIT_WITHIN_S = 60
AWS_CASES = ("bad key", "unknown suite", "missing model")
"""serverless-offline waits out the function timeout in each case: the issue's three are enough there."""


def valid_keys() -> tuple[str, str]:
    private = b64u_encode(secrets.token_bytes(32))
    return json.dumps([{"kid": "k", "suite": "x25519-sha256-aes128gcm", "private_key": private}]), private


def bad_setting(case: str, tmp_path) -> tuple[dict[str, str], str, str | None]:
    """The environment of one wrong configuration, the variable to be named, and a secret it holds."""
    keys, private = valid_keys()
    if case == "bad key":
        short = b64u_encode(secrets.token_bytes(31))
        entry = {"kid": "k", "suite": "x25519-sha256-aes128gcm", "private_key": short}
        return {"LITEFAAS_PRIVATE_KEYS": json.dumps([entry])}, "LITEFAAS_PRIVATE_KEYS", short
    if case == "unknown suite":
        entry = {"kid": "k", "suite": "x448-sha512-aes256gcm", "private_key": private}
        return {"LITEFAAS_PRIVATE_KEYS": json.dumps([entry])}, "LITEFAAS_PRIVATE_KEYS", private
    if case == "missing model":
        env = {"LITEFAAS_PRIVATE_KEYS": keys, "LITEFAAS_MODEL_DIR": str(tmp_path / "no-model")}
        return env, "LITEFAAS_MODEL_DIR", private
    if case == "corrupt model":
        model = tmp_path / "model"
        shutil.copytree(DEFAULT_MODEL_DIR, model)
        for tflite in model.glob("*.tflite"):
            tflite.write_bytes(b"not a model" * 100)
        return (
            {"LITEFAAS_PRIVATE_KEYS": keys, "LITEFAAS_MODEL_DIR": str(model)},
            "LITEFAAS_MODEL_DIR",
            private,
        )
    if case == "missing key file":
        return (
            {"LITEFAAS_PRIVATE_KEYS_FILE": str(tmp_path / "gone.keys.json")},
            "LITEFAAS_PRIVATE_KEYS_FILE",
            None,
        )
    if case == "no key, plaintext off":
        return {}, "LITEFAAS_PRIVATE_KEYS", None
    raise AssertionError(case)


CASES = (
    "bad key",
    "unknown suite",
    "missing model",
    "corrupt model",
    "missing key file",
    "no key, plaintext off",
)


def refusal_lines(log: str, variable: str) -> list[str]:
    return [line for line in log.splitlines() if variable in line]


@pytest.mark.parametrize(
    ("case", "provider"),
    [(case, provider) for case in CASES for provider in PROVIDERS if provider != "aws" or case in AWS_CASES],
)
def test_a_wrong_configuration_refuses_to_start(provider, case, tmp_path):
    skip_unless_runnable(provider)
    variables, variable, secret = bad_setting(case, tmp_path)
    env = function_env(**variables)
    env.pop("LITEFAAS_LOG_LEVEL")
    spec = LAUNCHERS[provider](free_port(), env)
    server = LocalServer(provider, spec).start()
    answer = None
    try:
        # WHEN the host is started (and, for serverless-offline, asked for its health)
        if provider == "aws":
            answer = wait_for_answer(server, f"{spec.base_url}/health")
        else:
            server.process.wait(EXIT_WITHIN_S)
        log = server.log_tail(400)
    finally:
        server.stop()
    tally.record(f"bad configuration {provider}: {case}", **{"faults injected": 1})
    # THEN nothing was served: the host exited, or its gateway answered instead of the function
    if provider == "aws":
        assert answer is not None and answer.get("status") != "ok", answer
    else:
        assert server.process.returncode not in (0, None), log
    # AND one JSON line names the variable (the exit message may repeat it), without key material
    events = [
        json.loads(line) for line in log.splitlines() if line.startswith("{") and "config_error" in line
    ]
    assert [(event["event"], event["variable"]) for event in events] == [("config_error", variable)], log
    lines = refusal_lines(log, variable)
    repeated = "core.errors.ConfigError: " if provider == "aws" else "litefaas: "
    assert len(lines) <= 2 and all("config_error" in line or line.startswith(repeated) for line in lines), log
    assert secret is None or secret not in log


def wait_for_answer(server: LocalServer, url: str) -> dict:
    """The first answer to ``url`` (JSON), waiting out the function timeout."""
    deadline = time.monotonic() + LOCAL_TIMEOUT_S + EXIT_WITHIN_S
    while time.monotonic() < deadline:
        assert server.process is not None and server.process.poll() is None, server.log_tail()
        try:
            return httpx.get(url, timeout=LOCAL_TIMEOUT_S + 15).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url}")
