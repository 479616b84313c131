"""A function's public key set (``GET /keys``): parse it, pick the key a request is sealed to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core import crypto
from core.encoding import b64u_decode, b64u_encode
from litefaas.client.errors import ClientError, ProtocolError


@dataclass(frozen=True)
class KeyInfo:
    """One public key of a function's key set (``GET /keys``)."""

    kid: str
    suite: str
    public_key: bytes = field(repr=False)

    @classmethod
    def from_json(cls, entry: object) -> KeyInfo:
        """Parse ``{"kid", "suite", "public_key"}``; :class:`ProtocolError` if it is malformed."""
        if not isinstance(entry, Mapping):
            raise ProtocolError("a key set entry must be an object")
        kid, suite, public = entry.get("kid"), entry.get("suite"), entry.get("public_key")
        if not isinstance(kid, str) or not crypto.KID_PATTERN.fullmatch(kid):
            raise ProtocolError("a key set entry has no valid kid")
        if not isinstance(suite, str) or not isinstance(public, str):
            raise ProtocolError(f"key {kid!r}: suite and public_key must be strings")
        try:
            return cls(kid, suite, b64u_decode(public))
        except ValueError:
            raise ProtocolError(f"key {kid!r}: public_key is not base64url") from None

    def to_json(self) -> dict[str, str]:
        return {"kid": self.kid, "suite": self.suite, "public_key": b64u_encode(self.public_key)}


def parse_keyset(document: object) -> list[KeyInfo]:
    """The usable keys of a ``{"keys": […]}`` key set, in order; suites this client lacks are skipped."""
    items = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(items, list):
        raise ProtocolError('a key set must be an object {"keys": [...]}')
    keys = [KeyInfo.from_json(item) for item in items]
    usable = [key for key in keys if key.suite in crypto.SUITES]
    if not usable:
        raise ProtocolError("the key set has no key of a suite this client supports")
    return usable


def select_key(keys: Sequence[KeyInfo], kid: str | None = None, suite: str | None = None) -> KeyInfo:
    """The first key (the function's current one), or the first with ``kid`` and/or ``suite``."""
    for key in keys:
        if kid in (None, key.kid) and suite in (None, key.suite):
            return key
    wanted = " and ".join(f"{name} {value!r}" for name, value in (("kid", kid), ("suite", suite)) if value)
    raise ClientError(f"no key with {wanted} in the function's key set")
