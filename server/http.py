"""Small helpers for reading and validating request input in handlers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from server import appkeys
from server.errors import BadRequest, NotFound, PayloadTooLarge

MAX_JSON_BYTES = 64 * 1024


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400/413 that says what is wrong."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    if not raw.strip():
        raise BadRequest("A JSON object body is required", code="invalid_json")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object", code="invalid_json")
    return data


def require_str(data: dict[str, Any], field: str, *, max_len: int = 1024) -> str:
    value = data.get(field)
    if value is None:
        raise BadRequest(f"'{field}' is required", code="invalid_field", field=field)
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' must be a string", code="invalid_field", field=field)
    if len(value) > max_len:
        raise BadRequest(f"'{field}' is too long", code="invalid_field", field=field)
    return value


def path_uuid(request: web.Request, name: str = "id") -> uuid.UUID:
    """A UUID from the URL; anything else is simply not found."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise NotFound() from None


def query_int(request: web.Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer", code="invalid_query", field=name) from None
    if not lo <= value <= hi:
        raise BadRequest(
            f"'{name}' must be between {lo} and {hi}", code="invalid_query", field=name
        )
    return value


def external_url(request: web.Request, path: str) -> str:
    """`path` as an absolute URL: FRAMEFLOW_PUBLIC_URL when set, else the request's origin."""
    base = request.app[appkeys.SETTINGS].public_url.rstrip("/") or str(request.url.origin())
    return base + path
