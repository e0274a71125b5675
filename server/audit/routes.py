"""`/api/v1/admin/audit` (a page, filtered), `/api/v1/admin/audit/export` (JSON Lines,
streamed) and `/api/v1/me/security-events` (the caller's own rows).

Read-only: no route changes or deletes a row (the table's trigger refuses it
anyway).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from server import appkeys
from server.admin import params
from server.audit.model import Actor, AuditFilter, Target
from server.audit.origin import origin_of
from server.audit.serializers import audit_entry_json
from server.auth.middleware import current_user, require_admin
from server.errors import BadRequest
from server.http import query_int
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
MAX_ACTION_CHARS = 64
JSON_LINES = "application/x-ndjson"

FILTER_PARAMS = [
    Param("actor", "query", UUID, "The acting user's id (also matches their API keys)"),
    Param("action", "query", STRING, "An action (`auth.login`), or a prefix ending in `.`"),
    Param("target_type", "query", STRING, "`user`, `api_key`, `video`, `webhook`, ..."),
    Param("target_id", "query", STRING),
    Param("since", "query", TIME, "ISO 8601; inclusive"),
    Param("until", "query", TIME, "ISO 8601; exclusive"),
]


def parse_filter(query: Mapping[str, str]) -> AuditFilter:
    action = params.text(query, "action")
    if action is not None and len(action) > MAX_ACTION_CHARS:
        raise BadRequest(
            f"'action' is longer than {MAX_ACTION_CHARS} characters",
            code="invalid_query",
            field="action",
        )
    return AuditFilter(
        actor_user_id=params.uuid_param(query, "actor"),
        action=action,
        target_type=params.text(query, "target_type"),
        target_id=params.text(query, "target_id"),
        since=params.instant(query, "since"),
        until=params.instant(query, "until"),
    )


@described(
    RouteSpec(
        summary="The audit log, newest first, filtered",
        tag="audit",
        params=[*FILTER_PARAMS, CURSOR, LIMIT],
        ok={200: Answer("A page of rows", page_of(ref("AuditEntry")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_audit(request: web.Request) -> web.Response:
    require_admin(request)
    f = parse_filter(request.query)
    limit = query_int(request, "limit", 50, lo=1, hi=100)
    rows = await request.app[appkeys.AUDIT].page(
        f, limit=limit + 1, before=params.cursor(request.query)
    )
    return web.json_response(page_body(rows, limit, audit_entry_json), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Export the audit log as JSON Lines, oldest first (streamed)",
        tag="audit",
        params=FILTER_PARAMS,
        ok={200: Answer("One JSON object (an AuditEntry) per line", STRING, JSON_LINES)},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def export_audit(request: web.Request) -> web.StreamResponse:
    admin = require_admin(request)
    f = parse_filter(request.query)
    audit = request.app[appkeys.AUDIT]
    # The export itself is on record (before it starts: it may be cut off).
    await audit.record(
        "admin.audit_export",
        actor=Actor.of(admin),
        target=Target("audit"),
        detail={k: v for k, v in request.query.items() if k in _FILTER_NAMES},
        origin=origin_of(request),
    )
    resp = web.StreamResponse(
        headers={
            "Content-Type": f"{JSON_LINES}; charset=utf-8",
            "Content-Disposition": 'attachment; filename="audit.jsonl"',
            **NO_STORE,
        }
    )
    await resp.prepare(request)
    async with audit.export(f) as batches:
        async for batch in batches:
            lines = "".join(json.dumps(audit_entry_json(e)) + "\n" for e in batch)
            await resp.write(lines.encode())
    await resp.write_eof()
    return resp


_FILTER_NAMES = frozenset(p.name for p in FILTER_PARAMS)


@described(
    RouteSpec(
        summary="The caller's recent security events (what they did, and what was done "
        "to their account), newest first",
        tag="accounts",
        params=[CURSOR, LIMIT],
        ok={200: Answer("A page of rows", page_of(ref("AuditEntry")))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def security_events(request: web.Request) -> web.Response:
    user = current_user(request)
    limit = query_int(request, "limit", 20, lo=1, hi=100)
    rows = await request.app[appkeys.AUDIT].for_user(
        user.id, limit=limit + 1, before=params.cursor(request.query)
    )
    return web.json_response(page_body(rows, limit, audit_entry_json), headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/admin/audit", list_audit, name="admin.audit.list")
    app.router.add_get("/api/v1/admin/audit/export", export_audit, name="admin.audit.export")
    app.router.add_get("/api/v1/me/security-events", security_events, name="me.security_events")
