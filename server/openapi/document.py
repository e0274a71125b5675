"""The OpenAPI 3.1 document, built from the app's router and the specs its handlers carry.

Nothing here lists endpoints: every route of the router is described from
its handler's `RouteSpec`, its permission (`server.auth.permissions`: the
security requirement, 401/403 and the scope each operation needs) and the
pydantic models the handlers validate with (`model_json_schema`), including
each operation's params models for the job body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server import appkeys
from server.auth import permissions
from server.auth.middleware import reads_credentials
from server.jobs.operations.protocol import Operation, param_models
from server.jobs.schemas import CreateJob
from server.openapi.components import SCHEMAS
from server.openapi.spec import (
    UUID,
    RouteSpec,
    Schema,
    deprecation_headers,
    ref,
    spec_of,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_SECURITY = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT access token, or an ff_ API key",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_AUTH_ERRORS = {
    401: "No credentials, or a token or key that is invalid, expired, revoked or of a "
    "deleted account",
}


class MissingSpec(Exception):
    """A route without a `RouteSpec`: it would go unpublished."""


def undocumented_routes(app: web.Application) -> list[str]:
    return [f"{method} {path}" for method, path, handler in _routes(app) if not spec_of(handler)]


def _routes(app: web.Application) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.router.routes():
        resource = route.resource
        if route.method in {"HEAD", "OPTIONS"} or resource is None:
            continue
        if isinstance(resource, web.StaticResource):
            continue  # files of the page, not API
        found.append((route.method, resource.canonical, route.handler))
    return found


def build_document(app: web.Application, server_url: str = "/") -> dict[str, Any]:
    components: dict[str, Schema] = dict(SCHEMAS)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in _routes(app):
        spec = spec_of(handler)
        if spec is None:
            raise MissingSpec(f"{method} {path} has no RouteSpec")
        operation = _operation(app, method, path, handler, spec, components)
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Frameflow API",
            "version": API_VERSION,
            "description": (
                "Upload videos, process them with FFmpeg, follow progress, fetch results. "
                "`/api/v1` is stable: changes are additive; a deprecated operation is "
                "announced with `Deprecation` and `Sunset` response headers before it goes."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY},
    }


def _operation(
    app: web.Application,
    method: str,
    path: str,
    handler: Any,
    spec: RouteSpec,
    components: dict[str, Schema],
) -> dict[str, Any]:
    needed = permissions.required_scope(method, path) or permissions.PUBLIC
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{_slug(path)}",
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": _parameters(path, spec),
        "responses": {},
    }
    description = spec.description
    if needed not in (permissions.PUBLIC, permissions.ANY):
        what = "a password session (JWT)" if needed == permissions.SESSION else f"`{needed}`"
        roles = (
            permissions.ROLES
            if needed == permissions.SESSION
            else (permissions.roles_allowed(needed))
        )
        description = (description + "\n\n" if description else "") + (
            f"Needs {what}; roles: {', '.join(roles)}."
        )
        op["x-required-scope"] = needed
        op["x-allowed-roles"] = list(roles)
    if description:
        op["description"] = description
    if spec.deprecation is not None:
        op["deprecated"] = True

    errors: dict[int, str] = dict(spec.errors)
    if needed == permissions.PUBLIC:
        op["security"] = []
    elif needed == permissions.SESSION:
        op["security"] = [{"bearerAuth": []}]
        errors.setdefault(403, "`session_required`: API keys cannot make this call")
    else:
        op["security"] = [{"bearerAuth": []}, {"apiKey": []}]
        if needed != permissions.ANY:
            errors.setdefault(403, f"`insufficient_scope`: the key lacks `{needed}`")
    if reads_credentials(handler):
        # Any presented credential is checked, even on a public route.
        errors.update({k: v for k, v in _AUTH_ERRORS.items() if k not in errors})

    body = _request_body(app, spec, components)
    if body is not None:
        op["requestBody"] = body
        if spec.body is not None or spec.dynamic_body:
            errors.setdefault(400, "`invalid_json` or `invalid_field` naming the field")
            errors.setdefault(413, "The JSON body is over 64 KiB")

    # The request envelope refuses NUL in any query string, on every route.
    nul = "`invalid_query`: the query string contains NUL"
    errors[400] = f"{errors[400]}; or {nul}" if 400 in errors else nul

    responses = op["responses"]
    for status, answer in sorted(spec.ok.items()):
        entry: dict[str, Any] = {"description": answer.description}
        if answer.schema is not None:
            entry["content"] = {answer.content_type: {"schema": answer.schema}}
        if spec.deprecation is not None:
            entry["headers"] = {
                name: {"schema": {"type": "string"}}
                for name in deprecation_headers(spec.deprecation)
            }
        responses[str(status)] = entry
    for status, text in sorted(errors.items()):
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return op


def _slug(path: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", path.lower().removeprefix("/api/v1")).strip("_") or "root"
    # `/uploads` and `/uploads/` are two routes: operation ids must differ.
    return slug + "_slash" if path.endswith("/") and path != "/" else slug


def _parameters(path: str, spec: RouteSpec) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": spec.path_schemas.get(name, UUID if name == "id" else {"type": "string"}),
        }
        for name in _PATH_PARAM.findall(path)
    ]
    for p in spec.params:
        entry: dict[str, Any] = {"name": p.name, "in": p.where, "schema": p.schema}
        if p.required:
            entry["required"] = True
        if p.description:
            entry["description"] = p.description
        params.append(entry)
    return params


def _request_body(
    app: web.Application, spec: RouteSpec, components: dict[str, Schema]
) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if spec.dynamic_body == "job":
        content["application/json"] = {"schema": _job_body(app[appkeys.OPERATIONS], components)}
    elif isinstance(spec.body, type) and issubclass(spec.body, BaseModel):
        content["application/json"] = {"schema": _model_schema(spec.body, components)}
    elif isinstance(spec.body, dict):
        content["application/json"] = {"schema": spec.body}
    for content_type, schema in spec.body_forms.items():
        content[content_type] = {"schema": schema}
    if not content:
        return None
    return {"required": True, "content": content}


def _model_schema(model: type[BaseModel], components: dict[str, Schema]) -> Schema:
    """`model` as a component (its nested models too); a reference to it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    name = model.__name__
    components[name] = schema
    return ref(name)


def _job_body(operations: Mapping[str, Operation], components: dict[str, Schema]) -> Schema:
    """`CreateJob`, with `params` as the operations' own declarations."""
    variants: list[Schema] = []
    for name, op in sorted(operations.items()):
        for kind, model in sorted(param_models(op).items()):
            component = f"{name.capitalize()}{kind.capitalize()}Params"
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            schema["title"] = f"{name} params ({kind} sources)"
            components[component] = schema
            variants.append(ref(component))
    body = CreateJob.model_json_schema(ref_template="#/components/schemas/{model}")
    fields = body["properties"]
    fields["operation"] |= {"type": "string", "enum": sorted(operations)}
    fields["params"] |= {"anyOf": variants} if variants else {"type": "object"}
    body["required"] = ["operation"]
    return body
