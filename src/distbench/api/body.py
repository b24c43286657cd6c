"""Request bodies: JSON or form-encoded (MLBench's own client sent forms), read with a size cap
and validated into a schema, every failure a 4xx in the one error shape."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.formparsers import MultiPartException, MultiPartParser

from distbench.api.schemas import NO_NUL
from distbench.errors import BodyTooLarge, InvalidInput, MalformedBody

T = TypeVar("T")

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


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


def _media_type(request: Request) -> str:
    """The Content-Type without its parameters (``charset``, ``boundary``), lower case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_form(request: Request) -> bool:
    """Whether the body is a form (what MLBench's client sends) rather than JSON."""
    return _media_type(request) in (URLENCODED, MULTIPART)


async def read_payload(request: Request, limit_bytes: int) -> Any:
    """The decoded body: a JSON value, or a dict of form fields (empty fields left out)."""
    media_type = _media_type(request)
    body = await read_limited(request, limit_bytes)
    if media_type == URLENCODED:
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
    if media_type == MULTIPART:
        return await _multipart_fields(request, body)
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
            f"Content-Type: {URLENCODED}",
        ) from exc


class _StrictMultiPartParser(MultiPartParser):
    """Starlette's parser decodes a field that is not valid in the form's charset (UTF-8 unless
    the request names another) as Latin-1, so b"\\xff" was stored as "ÿ": this one refuses it."""

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            try:
                bytes(part.data).decode(self._charset)
            except (UnicodeDecodeError, LookupError):
                raise MultiPartException(
                    f"form field {part.field_name!r} is not {self._charset or 'UTF-8'}: encode "
                    "the fields as UTF-8"
                ) from None
        super().on_part_end()


async def _multipart_fields(request: Request, body: bytes) -> dict[str, str]:
    """The text fields of a multipart form (files are ignored), from the body already read."""

    async def chunks() -> AsyncGenerator[bytes, None]:
        yield body

    parser = _StrictMultiPartParser(request.headers, chunks())
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedBody(f"multipart form cannot be read: {exc.message}") from exc
    try:
        return {key: value for key, value in form.items() if isinstance(value, str) and value}
    finally:
        await form.close()


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
                URLENCODED: {"schema": schema_ref},
                MULTIPART: {"schema": schema_ref},
            },
        }
    }
