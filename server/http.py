"""Small helpers for reading and validating request input in handlers."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from aiohttp import web

from server import appkeys
from server.errors import BadRequest, NotFound, PayloadTooLarge
from server.request_body import read_at_most

MAX_JSON_BYTES = 64 * 1024
# No request body Frameflow takes nests beyond a few levels; the cap keeps the
# parser (and anything that walks the result) far from the recursion limit.
MAX_JSON_DEPTH = 32
# Longer integer literals are refused before int() sees them: its cost grows
# with the square of the length, and past 4,300 digits it raises ValueError.
# 40 digits hold 2**128; ranges are each field's business (with its name).
MAX_INT_DIGITS = 40
# A string (to its closing quote, or to the end if unterminated) or a bracket.
# Strings are consumed whole, left to right, so the scan stays linear.
_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')
# PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


class _InvalidJSON(ValueError):
    """Raised by the parse hooks; becomes a 400 `invalid_json`."""


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400/413 that says what is wrong."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await read_at_most(request, MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object (RFC 8259, UTF-8) that is safe to hand to handlers and PostgreSQL.

    Refused with a 400: invalid UTF-8, nesting deeper than MAX_JSON_DEPTH,
    integers of more than MAX_INT_DIGITS digits, non-finite numbers (`1e400`, `NaN`), strings
    with NUL or lone surrogates, duplicate keys (parsers disagree on which
    one wins), and any top level other than an object.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _bad("the body is not UTF-8") from None
    if not text.strip():
        raise BadRequest("A JSON object body is required", code="invalid_json")
    if _depth(text) > MAX_JSON_DEPTH:
        raise _bad(f"it nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise _bad(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (_InvalidJSON, RecursionError) as exc:
        raise _bad(str(exc) or "it nests too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object", code="invalid_json")
    _check_values(data, "")
    return data


def _bad(reason: str) -> BadRequest:
    return BadRequest(f"The body is not valid JSON: {reason}", code="invalid_json")


def _depth(text: str) -> int:
    """How deeply `text` nests arrays and objects (brackets inside strings do not count).

    Stops counting past MAX_JSON_DEPTH; unbalanced text is left to json.loads.
    """
    depth = deepest = 0
    for match in _TOKEN_RE.finditer(text):
        lexeme = match.group()
        if lexeme in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif lexeme in ("]", "}"):
            depth -= 1
    return deepest


class _OutOfRange:
    """A number no handler can use, kept as a marker so that the error can name
    the field it was given for (parse hooks do not know where they are)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(literal: str) -> int | _OutOfRange:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        return _OutOfRange(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(literal)


def _parse_float(literal: str) -> float | _OutOfRange:
    value = float(literal)
    if not math.isfinite(value):
        return _OutOfRange("a number is too large")
    return value


def _parse_constant(literal: str) -> float:
    raise _InvalidJSON(f"{literal} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _InvalidJSON(f"the key {key[:64]!r} appears twice")
        result[key] = value
    return result


def _check_values(value: Any, path: str) -> None:
    """Every key and string can be stored, and every number is in range; the error
    names the field (`params.fps`) where it is not (depth is already bounded)."""
    if isinstance(value, _OutOfRange):
        raise BadRequest(
            f"The body is not valid JSON: {value.reason} (in '{path}')",
            code="invalid_json",
            field=path,
        )
    if isinstance(value, str):
        if _UNSTORABLE_RE.search(value):
            message = "The body is not valid JSON: a string contains NUL or an unpaired surrogate"
            if path:
                raise BadRequest(message, code="invalid_json", field=path)
            raise BadRequest(message, code="invalid_json")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, path)
            _check_values(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]")


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
