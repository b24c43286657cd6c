"""Domain errors. Each has a symbolic code; one table maps codes to HTTP statuses.

The API turns these into the one error body of docs/api.md, and the client turns that body back into
the same classes, so code on both sides of the wire catches the same exceptions.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DistbenchError(Exception):
    """Base of every error the API reports. ``code`` is stable; ``message`` is for people."""

    code: ClassVar[str] = "internal_error"
    # Seconds a client should wait before trying again (the Retry-After header); None: retrying
    # will not help.
    retry_after_s: ClassVar[int | None] = None

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @property
    def status_code(self) -> int:
        return STATUS_BY_CODE.get(self.code, 500)

    def response_headers(self) -> dict[str, str]:
        """The headers of the error's HTTP answer."""
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


class InvalidInput(DistbenchError):
    code = "invalid_input"


class MalformedBody(DistbenchError):
    code = "malformed_body"


class Unauthenticated(DistbenchError):
    code = "unauthenticated"

    def response_headers(self) -> dict[str, str]:
        # A 401 names the scheme it wants (RFC 9110). Basic is accepted (MLBench's client sends
        # it unasked) but not advertised: browsers answer a Basic challenge to the dashboard's
        # own requests with their login dialog, over the dashboard's token prompt.
        return {"WWW-Authenticate": 'Bearer realm="distbench"'}


class Forbidden(DistbenchError):
    code = "forbidden"


class NotFound(DistbenchError):
    code = "not_found"


class RunActive(DistbenchError):
    code = "run_active"


class BodyTooLarge(DistbenchError):
    code = "body_too_large"


class LimitUnsupported(DistbenchError):
    """A limit (CPU, bandwidth) the backend cannot enforce: refused, never silently ignored."""

    code = "limit_unsupported"


class BackendUnavailable(DistbenchError):
    code = "backend_unavailable"


class SchemaOutOfDate(DistbenchError):
    code = "schema_out_of_date"


class DatabaseUnavailable(DistbenchError):
    """The database is read-only, unreachable or failing: the operator's to fix, the client's
    to retry."""

    code = "database_unavailable"
    retry_after_s = 5


class MethodNotAllowed(DistbenchError):
    code = "method_not_allowed"


class UnsupportedMediaType(DistbenchError):
    code = "unsupported_media_type"


class InternalError(DistbenchError):
    """A bug in the server (never bad input); the server log has the traceback."""

    code = "internal_error"


STATUS_BY_CODE: dict[str, int] = {
    InvalidInput.code: 400,
    MalformedBody.code: 400,
    LimitUnsupported.code: 400,
    Unauthenticated.code: 401,
    Forbidden.code: 403,
    NotFound.code: 404,
    MethodNotAllowed.code: 405,
    RunActive.code: 409,
    BodyTooLarge.code: 413,
    UnsupportedMediaType.code: 415,
    InternalError.code: 500,
    BackendUnavailable.code: 503,
    SchemaOutOfDate.code: 503,
    DatabaseUnavailable.code: 503,
}

ERROR_BY_CODE: dict[str, type[DistbenchError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        MalformedBody,
        Unauthenticated,
        Forbidden,
        NotFound,
        RunActive,
        BodyTooLarge,
        LimitUnsupported,
        BackendUnavailable,
        SchemaOutOfDate,
        DatabaseUnavailable,
        MethodNotAllowed,
        UnsupportedMediaType,
        InternalError,
    )
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    # The top-level "message" repeats error.message for MLBench's CLI, which prints
    # response.json()["message"] (MLBench's own shape) and fails with a KeyError without it.
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "message": message,
    }
