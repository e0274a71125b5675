"""`RouteSpec`: what one endpoint takes and answers, declared next to its handler.

A handler carries its spec (`@described(RouteSpec(...))`); the OpenAPI
document (`server.openapi.document`) walks the app's router and reads them,
so a route without a spec fails a test instead of going unpublished. JSON
bodies are the pydantic models the handler validates with; what is still
checked by hand is declared here as JSON Schema, in one place per endpoint.
Security, 401/403 and the error body are added from the permission table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
_ATTR = "__frameflow_route_spec__"


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header"]
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Answer:
    """A success answer: its description and, for JSON, its schema."""

    description: str
    schema: Schema | None = None
    content_type: str = "application/json"


@dataclass(frozen=True)
class Deprecation:
    """A `/api/v1` operation on its way out (README, "Versioning"): marked
    `deprecated` in the document, and its answers carry `Deprecation` (RFC 9745)
    and `Sunset` (RFC 8594) headers, plus a `successor-version` link when set."""

    announced: datetime
    sunset: datetime
    successor: str | None = None


@dataclass(frozen=True)
class RouteSpec:
    summary: str
    tag: str
    ok: Mapping[int, Answer]
    # Error statuses this route can answer besides the ones the auth layer adds.
    errors: Mapping[int, str] = field(default_factory=dict)
    body: type[BaseModel] | Schema | None = None  # a JSON body
    # Other request bodies by content type (uploads), as JSON Schema.
    body_forms: Mapping[str, Schema] = field(default_factory=dict)
    params: Sequence[Param] = ()
    path_schemas: Mapping[str, Schema] = field(default_factory=dict)  # default: uuid
    # "job": the document builds the job body from the operation registry's params models.
    dynamic_body: str | None = None
    description: str = ""
    deprecation: Deprecation | None = None


def described(spec: RouteSpec) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, _ATTR, spec)
        return handler

    return mark


def deprecation_headers(deprecation: Deprecation) -> dict[str, str]:
    headers = {
        "Deprecation": f"@{int(deprecation.announced.timestamp())}",
        "Sunset": format_datetime(deprecation.sunset.astimezone(UTC), usegmt=True),
    }
    if deprecation.successor:
        headers["Link"] = f'<{deprecation.successor}>; rel="successor-version"'
    return headers


def spec_of(handler: object) -> RouteSpec | None:
    found = getattr(handler, _ATTR, None)
    return found if isinstance(found, RouteSpec) else None


def obj(required: Sequence[str] = (), **props: Schema) -> Schema:
    """A JSON object with these properties (others allowed: answers may grow)."""
    return {"type": "object", "properties": props, "required": list(required)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: Schema, *, cursor: bool = True) -> Schema:
    props: dict[str, Schema] = {"items": {"type": "array", "items": item}}
    if cursor:
        props["next_cursor"] = nullable({"type": "string"})
    return obj(list(props), **props)


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
UUID: Schema = {"type": "string", "format": "uuid"}
TIME: Schema = {"type": "string", "format": "date-time"}
ANY_OBJECT: Schema = {"type": "object"}
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100})
CURSOR = Param("cursor", "query", {"type": "string"}, "`next_cursor` of the previous page")
