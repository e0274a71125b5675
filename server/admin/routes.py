"""`/api/v1/admin/users/{id}`: read an account, change its quota or role. Admins only.

A role change applies to access tokens issued from then on (a refresh reads
the role from the database); tokens already out keep their role until they
expire (FRAMEFLOW_ACCESS_TOKEN_TTL_SECONDS).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import appkeys
from server.auth.middleware import require_admin
from server.db import users
from server.db.users import User
from server.errors import BadRequest, Conflict, NotFound
from server.http import path_uuid, read_json_object

ROLES = ("user", "admin")
MAX_QUOTA_BYTES = 2**63 - 1  # PostgreSQL bigint
_FIELDS = frozenset({"quota_bytes", "role"})
NO_STORE = {"Cache-Control": "no-store"}


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "email": user.email,
        "role": user.role,
        "quota_bytes": user.quota_bytes,
        "used_bytes": user.used_bytes,
        "created_at": user.created_at.isoformat(),
    }


def _not_found() -> NotFound:
    return NotFound("No such user", code="user_not_found")


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


async def get_user(request: web.Request) -> web.Response:
    require_admin(request)
    user_id = path_uuid(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        user = await users.get_user(conn, user_id)
    if user is None:
        raise _not_found()
    return web.json_response(user_json(user), headers=NO_STORE)


async def patch_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    user_id = path_uuid(request)
    quota, role = parse_changes(await read_json_object(request))
    if user_id == admin.id and role not in (None, "admin"):
        # An admin demoting themselves could leave the server with none.
        raise Conflict(
            "Administrators cannot remove their own admin role", code="cannot_demote_self"
        )
    async with request.app[appkeys.POOL].acquire() as conn:
        user = await users.update_user(conn, user_id, quota_bytes=quota, role=role)
    if user is None:
        raise _not_found()
    return web.json_response(user_json(user), headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/users/{id}", get_user, name="admin.users.show")
    app.router.add_patch("/api/v1/admin/users/{id}", patch_user, name="admin.users.update")
