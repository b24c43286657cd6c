"""Routes that answer with and without the trailing slash (the seed uses both), never by
redirecting: MLBench clients POST to both forms and a redirect would drop the body."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter

from distbench.api.schemas import ErrorBody

F = TypeVar("F", bound=Callable[..., Any])


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    return {status: {"model": ErrorBody, "description": "Error"} for status in statuses}


def route(router: APIRouter, method: str, path: str, **kwargs: Any) -> Callable[[F], F]:
    """Register ``path`` (documented) and its other slash form (hidden) for one handler."""
    other = path[:-1] if path.endswith("/") else path + "/"

    def register(handler: F) -> F:
        router.add_api_route(path, handler, methods=[method], **kwargs)
        router.add_api_route(other, handler, methods=[method], include_in_schema=False, **kwargs)
        return handler

    return register
