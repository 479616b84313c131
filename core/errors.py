"""One error family for everything a caller can be told.

Each error carries the HTTP status and protocol code of ``PROTOCOL.md``'s error
table and a message that is safe to show the caller. Anything else that goes
wrong becomes :class:`InternalError`, whose message never says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class LitefaasError(Exception):
    """An error a caller may see: HTTP ``status``, protocol ``code``, safe ``message``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidEnvelope(LitefaasError):
    status = 400
    code = "invalid_envelope"
    default_message = "request body is not a litefaas envelope"


class DecryptionFailed(LitefaasError):
    """Unknown kid, wrong suite, tampered or truncated ciphertext: one error for all."""

    status = 400
    code = "decryption_failed"
    default_message = "decryption failed"


class PlaintextDisabled(LitefaasError):
    status = 403
    code = "plaintext_disabled"
    default_message = "plaintext requests are disabled on this function"


class NotFound(LitefaasError):
    status = 404
    code = "not_found"
    default_message = "no such route"


class MethodNotAllowed(LitefaasError):
    status = 405
    code = "method_not_allowed"
    default_message = "method not allowed on this route"

    def __init__(self, allowed: str) -> None:
        super().__init__(headers={"Allow": allowed})


class StaleRequest(LitefaasError):
    status = 408
    code = "stale_request"
    default_message = "request timestamp is outside the accepted window"


class ReplayedRequest(LitefaasError):
    status = 409
    code = "replayed_request"
    default_message = "request id was already used"


class PayloadTooLarge(LitefaasError):
    status = 413
    code = "payload_too_large"
    default_message = "payload too large"


class UnsupportedMediaType(LitefaasError):
    status = 415
    code = "unsupported_media_type"
    default_message = "unsupported content type"


class InvalidPayload(LitefaasError):
    status = 422
    code = "invalid_payload"
    default_message = "payload does not match the model signature"


class InternalError(LitefaasError):
    status = 500
    code = "internal_error"
    default_message = "internal error"


ERRORS_BY_CODE: dict[str, type[LitefaasError]] = {
    cls.code: cls
    for cls in (
        InvalidEnvelope,
        DecryptionFailed,
        PlaintextDisabled,
        NotFound,
        MethodNotAllowed,
        StaleRequest,
        ReplayedRequest,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidPayload,
        InternalError,
    )
}


class ConfigError(Exception):
    """A function's configuration is wrong; raised at cold start, names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")
