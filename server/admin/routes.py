"""`/api/v1/admin/...`: accounts (list, read, role, quota, disable, enable), any
video's deletion, every user's jobs, the system summary. Admins only (the
permission table gives each route the `admin` scope).

The rules (who may change what) live in `AdminService`; this module reads
the request (the PATCH body is `schemas.AccountChange`) and renders. The
audit log's admin routes are in `server/audit/routes.py`.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.admin import params
from server.admin.schemas import AccountChange
from server.admin.serializers import account_json, admin_job_json, summary_json
from server.audit.model import Actor
from server.audit.origin import origin_of
from server.auth.middleware import require_admin
from server.auth.permissions import ROLES
from server.auth.serializers import user_json
from server.bodies import read_body
from server.http import path_uuid, query_int
from server.jobs.model import STATUSES
from server.openapi.spec import (
    CURSOR,
    LIMIT,
    STRING,
    TIME,
    UUID,
    Answer,
    Param,
    RouteSpec,
    described,
    page_of,
    ref,
)
from server.pagination import page_body

NO_STORE = {"Cache-Control": "no-store"}


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
        body=AccountChange,
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
    change = await read_body(request, AccountChange)
    user = await request.app[appkeys.ADMIN].update_user(
        admin, user_id, quota_bytes=change.quota_bytes, role=change.role, origin=origin_of(request)
    )
    return web.json_response(user_json(user, "admin"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Accounts with their usage, newest first; search by email",
        tag="admin",
        params=[
            Param("q", "query", STRING, "Part of the email (case-insensitive)"),
            Param("role", "query", {"enum": list(ROLES)}),
            Param("disabled", "query", {"enum": ["true", "false"]}),
            CURSOR,
            LIMIT,
        ],
        ok={200: Answer("A page of accounts", page_of(ref("Account")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    query = request.query
    limit = query_int(request, "limit", 50, lo=1, hi=100)
    rows = await request.app[appkeys.ADMIN].list_accounts(
        q=params.text(query, "q"),
        role=params.choice(query, "role", ROLES),
        disabled=params.boolean(query, "disabled"),
        limit=limit + 1,
        before=params.cursor(query),
    )
    return web.json_response(page_body(rows, limit, account_json), headers=NO_STORE)


_DISABLE_SPEC = RouteSpec(
    summary="Disable an account: every refresh token and API key revoked, its sockets closed",
    tag="admin",
    ok={200: Answer("The account", ref("User"))},
    errors={
        403: "`admin_required` or `insufficient_scope`",
        404: "`user_not_found`",
        409: "`cannot_disable_self`",
    },
)


@described(_DISABLE_SPEC)
async def disable_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    user = await request.app[appkeys.ADMIN].set_disabled(
        admin, path_uuid(request), True, origin_of(request)
    )
    return web.json_response(user_json(user, "admin"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Enable a disabled account (its revoked credentials stay revoked)",
        tag="admin",
        ok={200: Answer("The account", ref("User"))},
        errors={403: "`admin_required` or `insufficient_scope`", 404: "`user_not_found`"},
    )
)
async def enable_user(request: web.Request) -> web.Response:
    admin = require_admin(request)
    user = await request.app[appkeys.ADMIN].set_disabled(
        admin, path_uuid(request), False, origin_of(request)
    )
    return web.json_response(user_json(user, "admin"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Delete any user's video (recorded in the audit log)",
        tag="admin",
        ok={204: Answer("Deleted")},
        errors={403: "`admin_required` or `insufficient_scope`", 404: "`video_not_found`"},
    )
)
async def delete_video(request: web.Request) -> web.Response:
    admin = require_admin(request)
    await request.app[appkeys.VIDEOS].delete(
        None, path_uuid(request), actor=Actor.of(admin), origin=origin_of(request)
    )
    return web.Response(status=204)


@described(
    RouteSpec(
        summary="Every user's jobs, newest first",
        tag="admin",
        params=[
            Param("status", "query", {"enum": list(STATUSES)}),
            Param("operation", "query", STRING),
            Param("user_id", "query", UUID),
            Param("created_after", "query", TIME, "ISO 8601; inclusive"),
            Param("created_before", "query", TIME, "ISO 8601; exclusive"),
            CURSOR,
            LIMIT,
        ],
        ok={200: Answer("A page of jobs", page_of(ref("AdminJob")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_jobs(request: web.Request) -> web.Response:
    require_admin(request)
    query = request.query
    limit = query_int(request, "limit", 50, lo=1, hi=100)
    rows = await request.app[appkeys.ADMIN].list_jobs(
        status=params.choice(query, "status", STATUSES),
        operation=params.text(query, "operation"),
        user_id=params.uuid_param(query, "user_id"),
        created_after=params.instant(query, "created_after"),
        created_before=params.instant(query, "created_before"),
        limit=limit + 1,
        before=params.cursor(query),
    )
    return web.json_response(page_body(rows, limit, admin_job_json), headers=NO_STORE)


@described(
    RouteSpec(
        summary="The system summary: users, videos, bytes stored, jobs, live workers",
        tag="admin",
        ok={200: Answer("The summary", ref("Summary"))},
    )
)
async def summary(request: web.Request) -> web.Response:
    require_admin(request)
    found = await request.app[appkeys.ADMIN].summary()
    return web.json_response(summary_json(found), headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/users", list_users, name="admin.users.list")
    app.router.add_get("/api/v1/admin/users/{id}", get_user, name="admin.users.show")
    app.router.add_patch("/api/v1/admin/users/{id}", patch_user, name="admin.users.update")
    app.router.add_post(
        "/api/v1/admin/users/{id}/disable", disable_user, name="admin.users.disable"
    )
    app.router.add_post("/api/v1/admin/users/{id}/enable", enable_user, name="admin.users.enable")
    app.router.add_delete("/api/v1/admin/videos/{id}", delete_video, name="admin.videos.delete")
    app.router.add_get("/api/v1/admin/jobs", list_jobs, name="admin.jobs.list")
    app.router.add_get("/api/v1/admin/summary", summary, name="admin.summary")
