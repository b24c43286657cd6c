"""Every error leaves the server in the one shape of docs/api.md; this module is the only place that
builds it."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from distbench.api.body import invalid_input
from distbench.api.encode import JSONBody
from distbench.errors import DatabaseUnavailable, DistbenchError, error_body
from distbench.store.faults import unavailable_reason

log = logging.getLogger(__name__)

_CODE_BY_STATUS = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DistbenchError)
    return JSONBody(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=exc.response_headers() or None,
    )


def _database_error(request: Request, exc: Exception) -> Response:
    reason = unavailable_reason(exc)
    if reason is None:
        return _unexpected(request, exc)  # a bad statement: our bug, a 500
    # The driver's own words name files and hosts: they go to the log, not to the client.
    log.warning("database %s on %s %s: %s", reason, request.method, request.url.path, exc)
    unavailable = DatabaseUnavailable(
        f"the database is {reason}: retry later (the server log has the details)",
        details={"database": reason},
    )
    return _domain_error(request, unavailable)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # FastAPI says 422; docs/api.md says bad input is a 400, named field by field.
    error = invalid_input(exc.errors(), prefix=("query", "path", "body", "header"))
    return _domain_error(request, error)


def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = "no such endpoint: the API lives under /api/ (see /openapi.json)"
    elif exc.status_code == 405:
        message = "method not allowed on this endpoint (see /openapi.json)"
    else:
        message = str(exc.detail)
    return JSONBody(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def _client_gone(request: Request, exc: Exception) -> Response:
    # The client hung up mid-body: nobody will read an answer, and it is not a server fault.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return JSONBody(error_body("client_disconnected", "the client closed the connection"), 400)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONBody(
        error_body("internal_error", "internal server error; the server log has the details"),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DistbenchError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(sa.exc.SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
