"""`/api/v1/webhooks`: register, list and delete hooks; read their delivery log."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import BadRequest
from server.http import path_uuid, query_int, read_json_object, require_str
from server.webhooks.model import EVENTS
from server.webhooks.serializers import delivery_json, webhook_json
from server.webhooks.ssrf import MAX_URL_CHARS


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/webhooks", create)
    app.router.add_get("/api/v1/webhooks", list_)
    app.router.add_delete("/api/v1/webhooks/{id}", delete)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", deliveries)


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
    hook = await request.app[appkeys.WEBHOOK_SERVICE].create(auth.id, url, events)
    return web.json_response(webhook_json(hook, with_secret=True), status=201)


async def list_(request: web.Request) -> web.Response:
    hooks = await request.app[appkeys.WEBHOOK_SERVICE].list_hooks(current_user(request).id)
    return web.json_response({"items": [webhook_json(h) for h in hooks]})


async def delete(request: web.Request) -> web.Response:
    auth = current_user(request)
    await request.app[appkeys.WEBHOOK_SERVICE].delete(auth.id, path_uuid(request))
    return web.Response(status=204)


async def deliveries(request: web.Request) -> web.Response:
    auth = current_user(request)
    webhook_id = path_uuid(request)
    limit = query_int(request, "limit", 50, lo=1, hi=200)
    items = await request.app[appkeys.WEBHOOK_SERVICE].deliveries(auth.id, webhook_id, limit)
    return web.json_response({"items": [delivery_json(d) for d in items]})
