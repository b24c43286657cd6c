"""The errors only the client raises, and the rebuilding of the server's errors from its answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from distbench.errors import ERROR_BY_CODE, DistbenchError

if TYPE_CHECKING:
    from distbench.client.records import Run


class ServerUnreachable(DistbenchError):
    """No HTTP answer: connection refused, DNS failure, timeout. The message names the URL.

    ``status_code`` is 503, what a proxy would answer; no status came from the server."""

    code = "server_unreachable"

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, details={"url": url})
        self.url = url

    @property
    def status_code(self) -> int:
        return 503


class ApiError(DistbenchError):
    """An answer this client cannot map to a ``distbench.errors`` class: an error code it does not
    know, or a body that is not the API's (a proxy's HTML page, a truncated answer).

    ``error_code`` is the server's code (``"unexpected_response"`` when there was none) and
    ``status_code`` the HTTP status actually received."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_code: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self._status_code = status_code
        self.error_code = error_code

    @property
    def status_code(self) -> int:
        return self._status_code


class RunWaitTimeout(DistbenchError):
    """``wait_for_run`` gave up; ``run`` is the run as last seen. ``status_code`` is 504."""

    code = "wait_timeout"

    def __init__(self, message: str, *, run: Run) -> None:
        super().__init__(message, details={"run_id": run.id, "state": run.state})
        self.run = run

    @property
    def status_code(self) -> int:
        return 504


def error_from_response(response: httpx.Response) -> DistbenchError:
    """The exception the server raised, rebuilt from the one error body of docs/api.md."""
    status = response.status_code
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") or {}
        if not isinstance(details, dict):
            details = {"details": details}
    except (ValueError, KeyError, TypeError):
        snippet = " ".join(response.text.split())[:200]
        return ApiError(
            f"HTTP {status} from {response.request.url} without a distbench error body: "
            f"{snippet or '(empty)'}",
            status_code=status,
            error_code="unexpected_response",
        )
    cls = ERROR_BY_CODE.get(code)
    if cls is not None:
        return cls(message, details=details)
    return ApiError(message, status_code=status, error_code=code, details=details)
