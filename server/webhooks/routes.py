"""`/api/v1/webhooks`: register, list and delete hooks; read their delivery log."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.db import webhooks as webhooks_db
from server.db.webhooks import Delivery, Webhook
from server.errors import BadRequest, Conflict, NotFound
from server.http import path_uuid, query_int, read_json_object, require_str
from server.webhooks.ssrf import MAX_URL_CHARS, UnsafeURL, allowed_hosts, check_url

EVENTS = ("job.succeeded", "job.failed", "job.canceled")
MAX_WEBHOOKS_PER_USER = 20


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/webhooks", create)
    app.router.add_get("/api/v1/webhooks", list_)
    app.router.add_delete("/api/v1/webhooks/{id}", delete)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", deliveries)


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": str(hook.id),
        "url": hook.url,
        "events": hook.events,
        "created_at": hook.created_at.isoformat(),
    }


def delivery_json(d: Delivery) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return None if value is None else str(value.isoformat())

    return {
        "id": str(d.id),
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "response_status": d.response_status,
        "error": d.error,
        "created_at": iso(d.created_at),
        "last_attempt_at": iso(d.last_attempt_at),
        "next_attempt_at": iso(d.next_attempt_at) if d.status in {"pending", "retry"} else None,
    }


def _events(data: dict[str, Any]) -> list[str]:
    events = data.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and e in EVENTS for e in events)
    ):
        raise BadRequest(
            f"'events' must be a non-empty list of: {', '.join(EVENTS)}",
            code="invalid_field",
            field="events",
        )
    return sorted(set(events), key=EVENTS.index)


async def create(request: web.Request) -> web.Response:
    auth = current_user(request)
    data = await read_json_object(request)
    url = require_str(data, "url", max_len=MAX_URL_CHARS)
    events = _events(data)
    settings = request.app[appkeys.SETTINGS]
    try:
        await check_url(url, allowed_hosts(settings.webhook_allowed_hosts))
    except UnsafeURL as exc:
        raise BadRequest(f"'url' is not allowed: {exc}", code="invalid_url", field="url") from None
    secret = "whsec_" + secrets.token_urlsafe(32)
    async with request.app[appkeys.POOL].acquire() as conn, conn.transaction():
        # Serialises one user's registrations so the cap holds under concurrency.
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", auth.id)
        if len(await webhooks_db.list_webhooks(conn, auth.id)) >= MAX_WEBHOOKS_PER_USER:
            raise Conflict(
                f"At most {MAX_WEBHOOKS_PER_USER} webhooks per account",
                code="too_many_webhooks",
            )
        hook = await webhooks_db.insert_webhook(
            conn, user_id=auth.id, url=url, events=events, secret=secret
        )
    # The only time the secret is shown: it is what receivers verify with.
    return web.json_response({**webhook_json(hook), "secret": secret}, status=201)


async def list_(request: web.Request) -> web.Response:
    auth = current_user(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        hooks = await webhooks_db.list_webhooks(conn, auth.id)
    return web.json_response({"items": [webhook_json(h) for h in hooks]})


async def delete(request: web.Request) -> web.Response:
    auth = current_user(request)
    webhook_id = path_uuid(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        if not await webhooks_db.delete_webhook(conn, webhook_id, auth.id):
            raise NotFound("No such webhook", code="webhook_not_found")
    return web.Response(status=204)


async def deliveries(request: web.Request) -> web.Response:
    auth = current_user(request)
    webhook_id = path_uuid(request)
    limit = query_int(request, "limit", 50, lo=1, hi=200)
    async with request.app[appkeys.POOL].acquire() as conn:
        if await webhooks_db.get_webhook(conn, webhook_id, auth.id) is None:
            raise NotFound("No such webhook", code="webhook_not_found")
        items = await webhooks_db.list_deliveries(conn, webhook_id, limit)
    return web.json_response({"items": [delivery_json(d) for d in items]})
