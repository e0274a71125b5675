"""`/api/v1/admin/users/{id}`: read an account, change its quota or role. Admins only.

The rules (who may change what) live in `AdminService`; this module parses
and renders.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import appkeys
from server.auth.middleware import require_admin
from server.auth.serializers import user_json
from server.errors import BadRequest
from server.http import path_uuid, read_json_object
from server.openapi.spec import Answer, RouteSpec, described, obj, ref

ROLES = ("user", "admin")
MAX_QUOTA_BYTES = 2**63 - 1  # PostgreSQL bigint
_FIELDS = frozenset({"quota_bytes", "role"})
NO_STORE = {"Cache-Control": "no-store"}


def parse_changes(body: dict[str, Any]) -> tuple[int | None, str | None]:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(
            f"Unknown field {unknown[0][:40]!r}; expected quota_bytes and/or role",
            code="invalid_field",
            field=unknown[0][:40],
        )
    quota = body.get("quota_bytes")
    role = body.get("role")
    if quota is None and role is None:
        raise BadRequest("Give quota_bytes and/or role", code="invalid_field")
    # bool is an int subclass: `true` must not read as a quota of 1 byte.
    if quota is not None and (
        isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota <= MAX_QUOTA_BYTES
    ):
        raise BadRequest(
            "'quota_bytes' must be a whole number of bytes, 0 or more",
            code="invalid_field",
            field="quota_bytes",
        )
    if role is not None and role not in ROLES:
        raise BadRequest(
            "'role' must be one of " + ", ".join(ROLES), code="invalid_field", field="role"
        )
    return quota, role


@described(
    RouteSpec(
        summary="Read an account",
        tag="admin",
        ok={200: Answer("The account", ref("User"))},
        errors={403: "`admin_required` or `insufficient_scope`", 404: "`user_not_found`"},
    )
)
async def get_user(request: web.Request) -> web.Response:
    require_admin(request)
    user = await request.app[appkeys.ADMIN].get_user(path_uuid(request))
    return web.json_response(user_json(user, "admin"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Change an account's quota or role",
        tag="admin",
        body=obj(
            [],
            quota_bytes={"type": "integer", "minimum": 0, "maximum": MAX_QUOTA_BYTES},
            role={"enum": list(ROLES)},
        )
        | {"additionalProperties": False, "minProperties": 1},
        ok={200: Answer("The account", ref("User"))},
        errors={
            403: "`admin_required` or `insufficient_scope`",
            404: "`user_not_found`",
            409: "`cannot_demote_self`",
        },
    )
)
async def patch_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    user_id = path_uuid(request)
    quota, role = parse_changes(await read_json_object(request))
    user = await request.app[appkeys.ADMIN].update_user(
        admin, user_id, quota_bytes=quota, role=role
    )
    return web.json_response(user_json(user, "admin"), headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/users/{id}", get_user, name="admin.users.show")
    app.router.add_patch("/api/v1/admin/users/{id}", patch_user, name="admin.users.update")
