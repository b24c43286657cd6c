"""Request bodies: JSON or form-encoded (MLBench's own client sent forms), read with a size cap
and validated into a schema, every failure a 4xx in the one error shape."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from distbench.api.schemas import NO_NUL
from distbench.errors import BodyTooLarge, InvalidInput, MalformedBody

T = TypeVar("T")

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_limited(request: Request, limit_bytes: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it passes ``limit_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise _too_large(limit_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise _too_large(limit_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit_bytes: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"request body is larger than {limit_bytes} bytes: split it into smaller requests",
        details={"limit_bytes": limit_bytes},
    )


async def read_payload(request: Request, limit_bytes: int) -> Any:
    """The decoded body: a JSON value, or a dict of form fields (empty fields left out)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_limited(request, limit_bytes)
    if content_type == "application/x-www-form-urlencoded":
        try:
            # errors="strict": "%ff" is not UTF-8, and the default "replace" stored it as U+FFFD.
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=False, strict_parsing=False, errors="strict"
            )
        except UnicodeDecodeError as exc:
            raise MalformedBody(
                "form body is not UTF-8 (after percent-decoding): encode the fields as UTF-8"
            ) from exc
        return dict(pairs)
    if content_type == "multipart/form-data":
        # Starlette's parser reads the body we already hold instead of the spent stream.
        request._body = body
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str) and value}
    if not body.strip():
        raise MalformedBody(
            "request body is empty: send a JSON object with Content-Type: application/json"
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(
            f"request body is not valid JSON ({exc}): send JSON with "
            "Content-Type: application/json, or a form with "
            "Content-Type: application/x-www-form-urlencoded",
        ) from exc


def validate(adapter: TypeAdapter[T], payload: Any) -> T:
    try:
        return adapter.validate_python(payload)
    except ValidationError as exc:
        raise invalid_input(exc.errors(include_url=False, include_input=False)) from exc


def validate_model(model: type[BaseModel], payload: Any) -> Any:
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"request body must be a JSON object with the fields of {model.__name__}, "
            f"not {type(payload).__name__}"
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_input(exc.errors(include_url=False, include_input=False)) from exc


def invalid_input(errors: Any, *, prefix: tuple[str, ...] = ()) -> InvalidInput:
    """One ``InvalidInput`` naming every field that is wrong and what is wrong with it."""
    problems = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in prefix]
        field = ".".join(location) or "body"
        message = str(error.get("msg", "is invalid"))
        message = message.removeprefix("Value error, ")
        if error.get("ctx", {}).get("pattern") == NO_NUL:
            message = "must not contain NUL characters (\\u0000)"
        problems.append({"field": field, "message": message, "type": error.get("type", "")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    if len(problems) > 5:
        summary += f"; and {len(problems) - 5} more"
    return InvalidInput(f"invalid request: {summary}", details={"errors": problems})


def body_doc(schema_ref: dict[str, Any], *, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that parses its body itself, so the document stays true."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/json": {"schema": schema_ref},
                "application/x-www-form-urlencoded": {"schema": schema_ref},
            },
        }
    }
