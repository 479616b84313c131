"""The function's configuration, read from the environment and checked once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.crypto import KeyRing
from core.engine import DEFAULT_MODEL_DIR
from core.errors import ConfigError
from core.protocol import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_REPLAY_CACHE_SIZE,
    DEFAULT_REPLAY_WINDOW_S,
)
from core.telemetry import TelemetrySettings

PRIVATE_KEYS = "LITEFAAS_PRIVATE_KEYS"
PRIVATE_KEYS_FILE = "LITEFAAS_PRIVATE_KEYS_FILE"
MODEL_DIR = "LITEFAAS_MODEL_DIR"
ALLOW_PLAINTEXT = "LITEFAAS_ALLOW_PLAINTEXT"
MAX_BODY_BYTES = "LITEFAAS_MAX_BODY_BYTES"
MAX_BATCH = "LITEFAAS_MAX_BATCH"
REPLAY_WINDOW_S = "LITEFAAS_REPLAY_WINDOW_S"
REPLAY_CACHE_SIZE = "LITEFAAS_REPLAY_CACHE_SIZE"
NUM_THREADS = "LITEFAAS_NUM_THREADS"
LOG_LEVEL = "LITEFAAS_LOG_LEVEL"
KEYS_RELOAD_S = "LITEFAAS_KEYS_RELOAD_S"
CORS_ORIGINS = "LITEFAAS_CORS_ORIGINS"
OHTTP_PADDING = "LITEFAAS_OHTTP_PADDING"
XNNPACK = "LITEFAAS_XNNPACK"

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Everything a function reads from its environment."""

    keyring: KeyRing | None
    model_dir: Path = DEFAULT_MODEL_DIR
    allow_plaintext: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_batch: int = DEFAULT_MAX_BATCH
    replay_window_s: int = DEFAULT_REPLAY_WINDOW_S
    replay_cache_size: int = DEFAULT_REPLAY_CACHE_SIZE
    num_threads: int | None = None
    log_level: str = "INFO"
    keys_file: Path | None = None
    keys_reload_s: int = 10
    cors_origins: frozenset[str] = frozenset()
    ohttp_padding: bool = True
    xnnpack: bool = True
    """LiteRT's XNNPACK delegate (its default); ``LITEFAAS_XNNPACK=0`` runs the built-in kernels only."""
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    """The request records' format and exporters (``LITEFAAS_LOG_FORMAT`` and friends)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, provider: str | None = None) -> Settings:
        """Read and check the configuration; raise :class:`ConfigError` naming the variable.
        ``provider``: the cloud whose log format is the default."""
        env = os.environ if environ is None else environ
        keyring = _keyring(env)
        allow_plaintext = _flag(env, ALLOW_PLAINTEXT)
        if keyring is None and not allow_plaintext:
            raise ConfigError(
                PRIVATE_KEYS,
                f"not set (nor {PRIVATE_KEYS_FILE}) and {ALLOW_PLAINTEXT} is not 1: "
                "the function could answer no request",
            )
        model_dir = Path(env[MODEL_DIR]) if env.get(MODEL_DIR) else DEFAULT_MODEL_DIR
        if not (model_dir / "manifest.json").is_file():
            raise ConfigError(MODEL_DIR, f"no manifest.json in {model_dir}")
        log_level = env.get(LOG_LEVEL, "INFO").upper()
        if log_level not in _LOG_LEVELS:
            raise ConfigError(LOG_LEVEL, f"must be one of {', '.join(_LOG_LEVELS)}")
        threads = env.get(NUM_THREADS)
        keys_file = env.get(PRIVATE_KEYS_FILE, "").strip()
        return cls(
            keyring=keyring,
            model_dir=model_dir,
            allow_plaintext=allow_plaintext,
            max_body_bytes=_positive_int(env, MAX_BODY_BYTES, cls.max_body_bytes),
            max_batch=_positive_int(env, MAX_BATCH, cls.max_batch),
            replay_window_s=_positive_int(env, REPLAY_WINDOW_S, cls.replay_window_s),
            replay_cache_size=_positive_int(env, REPLAY_CACHE_SIZE, cls.replay_cache_size),
            num_threads=_positive_int(env, NUM_THREADS, 1) if threads else None,
            log_level=log_level,
            keys_file=Path(keys_file) if keys_file else None,
            keys_reload_s=_positive_int(env, KEYS_RELOAD_S, cls.keys_reload_s, minimum=0),
            cors_origins=_origins(env),
            ohttp_padding=_flag(env, OHTTP_PADDING) if env.get(OHTTP_PADDING, "").strip() else True,
            xnnpack=_flag(env, XNNPACK) if env.get(XNNPACK, "").strip() else True,
            telemetry=TelemetrySettings.from_env(env, provider),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(name, "must be 1 or 0")


def _positive_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(name, f"must be {expected}") from None
    if value < minimum:
        raise ConfigError(name, f"must be {expected}")
    return value


def _origins(env: Mapping[str, str]) -> frozenset[str]:
    origins = frozenset(
        item.strip().rstrip("/") for item in env.get(CORS_ORIGINS, "").split(",") if item.strip()
    )
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(CORS_ORIGINS, f"{origin[:80]!r} is not an origin such as https://app.example")
    return origins


def read_keyring(environ: Mapping[str, str] | None = None) -> KeyRing | None:
    """The key ring the environment names now (``LITEFAAS_PRIVATE_KEYS`` or ``_FILE``), read again:
    after a snapshot's restore, a rotation since the snapshot takes effect."""
    return _keyring(os.environ if environ is None else environ)


def _keyring(env: Mapping[str, str]) -> KeyRing | None:
    inline = env.get(PRIVATE_KEYS, "").strip()
    path = env.get(PRIVATE_KEYS_FILE, "").strip()
    if inline and path:
        raise ConfigError(PRIVATE_KEYS_FILE, f"set together with {PRIVATE_KEYS}; set only one")
    if path:
        return read_keys_file(Path(path))
    if inline:
        return _parse_keyring(PRIVATE_KEYS, inline)
    return None


def read_keys_file(path: Path) -> KeyRing:
    """The key ring in ``path``; :class:`ConfigError` naming ``LITEFAAS_PRIVATE_KEYS_FILE`` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(PRIVATE_KEYS_FILE, f"cannot read {path} ({exc.__class__.__name__})") from None
    return _parse_keyring(PRIVATE_KEYS_FILE, text)


def _parse_keyring(variable: str, text: str) -> KeyRing:
    try:
        return KeyRing.from_json(text)
    except ValueError as exc:
        raise ConfigError(variable, str(exc)) from None
