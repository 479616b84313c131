"""The client's error family.

:class:`ClientError` is the base of everything the client raises (itself a
:class:`~litefaas.errors.ToolError`). The typed :class:`RemoteError` classes, one per protocol
error code, are made from ``core.errors.ERRORS_BY_CODE``, the same table the function answers
from, so a new code on the function side has its client class without a second list.
"""

from __future__ import annotations

from core.errors import ERRORS_BY_CODE, LitefaasError
from litefaas.errors import ToolError


class ClientError(ToolError):
    """Base of every error the client raises."""


class NetworkError(ClientError):
    """The function could not be reached or did not answer in time."""


class ProtocolError(ClientError):
    """The answer is not what the protocol says: not JSON, wrong content type, does not decrypt."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RemoteError(ClientError):
    """The function answered with a protocol error; ``encrypted`` if the error came sealed."""

    def __init__(self, status: int, code: str, message: str, *, encrypted: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.encrypted = encrypted


def _remote_class(error: type[LitefaasError]) -> type[RemoteError]:
    """The client's class for one of the function's errors: ``InvalidPayload`` -> ``InvalidPayloadError``."""
    name = "RemoteInternalError" if error.__name__ == "InternalError" else f"{error.__name__}Error"
    doc = f"{error.status} ``{error.code}``: {error.__doc__ or error.default_message}"
    return type(name, (RemoteError,), {"__doc__": doc, "__module__": __name__})


REMOTE_ERRORS: dict[str, type[RemoteError]] = {
    code: _remote_class(cls) for code, cls in ERRORS_BY_CODE.items()
}
"""Protocol code -> the :class:`RemoteError` subclass raised for it."""

InvalidEnvelopeError = REMOTE_ERRORS["invalid_envelope"]
DecryptionFailedError = REMOTE_ERRORS["decryption_failed"]
PlaintextDisabledError = REMOTE_ERRORS["plaintext_disabled"]
NotFoundError = REMOTE_ERRORS["not_found"]
MethodNotAllowedError = REMOTE_ERRORS["method_not_allowed"]
StaleRequestError = REMOTE_ERRORS["stale_request"]
ReplayedRequestError = REMOTE_ERRORS["replayed_request"]
PayloadTooLargeError = REMOTE_ERRORS["payload_too_large"]
UnsupportedMediaTypeError = REMOTE_ERRORS["unsupported_media_type"]
InvalidPayloadError = REMOTE_ERRORS["invalid_payload"]
RemoteInternalError = REMOTE_ERRORS["internal_error"]


def remote_error(status: int, code: str, message: str, *, encrypted: bool) -> RemoteError:
    """The typed error for a protocol ``code`` (plain :class:`RemoteError` for an unknown one)."""
    return REMOTE_ERRORS.get(code, RemoteError)(status, code, message, encrypted=encrypted)
