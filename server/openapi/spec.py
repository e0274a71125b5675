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


def described(spec: RouteSpec) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        setattr(handler, _ATTR, spec)
        return handler

    return mark


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
