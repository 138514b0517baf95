"""Errors as OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`, on every
answer that is not 2xx, so that any OpenAI client reports them as it would OpenAI's own."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import HTTPException

from feldspar.errors import (
    ContextOverflow,
    FeldsparError,
    LicenseRefused,
    ModelNotDownloaded,
    RemoteError,
    StoreError,
    UnknownModelError,
    UnsupportedOption,
    UserError,
)


class APIError(HTTPException):
    """An error to answer with: HTTP status, OpenAI error type and code. (An HTTPException,
    so that FastAPI passes it through when it is raised while reading a body.)"""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",  # noqa: A002
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.status, self.message, self.type = status, message, type
        self.code, self.param = code, param

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def from_feldspar(exc: FeldsparError) -> APIError:
    """The answer to a Feldspar error: what the user can fix is a 4xx, with its message."""
    message = str(exc)
    if isinstance(exc, UnknownModelError):
        return APIError(404, message, code="model_not_found", param="model")
    if isinstance(exc, LicenseRefused):
        return APIError(403, message, type="permission_error", code="license_refused",
                        param="model")
    if isinstance(exc, ModelNotDownloaded):
        return APIError(404, message, code="model_not_found", param="model")
    if isinstance(exc, ContextOverflow):
        return APIError(400, message, code="context_length_exceeded", param="messages")
    if isinstance(exc, UnsupportedOption):
        return APIError(400, message, code="unsupported_parameter")
    if isinstance(exc, UserError):
        return APIError(400, message)
    if isinstance(exc, RemoteError):
        return APIError(502, message, type="api_error", code="upstream_error")
    if isinstance(exc, StoreError):
        return APIError(503, message, type="api_error", code="store_unavailable",
                        headers={"Retry-After": "5"})
    return APIError(500, message, type="api_error", code="model_error")
