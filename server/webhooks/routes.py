"""`/api/v1/webhooks`: register, list and delete hooks; read their delivery log."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.audit.origin import origin_of
from server.auth.middleware import current_user
from server.bodies import read_body
from server.http import path_uuid, query_int
from server.openapi.spec import Answer, Param, RouteSpec, described, page_of, ref
from server.webhooks.model import EVENTS
from server.webhooks.schemas import CreateWebhook
from server.webhooks.serializers import delivery_json, webhook_json


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/webhooks", create)
    app.router.add_get("/api/v1/webhooks", list_)
    app.router.add_delete("/api/v1/webhooks/{id}", delete)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", deliveries)


@described(
    RouteSpec(
        summary="Register a webhook (the secret is shown once)",
        tag="webhooks",
        body=CreateWebhook,
        ok={201: Answer("The hook and its secret", ref("Webhook"))},
        errors={
            400: "`invalid_url` or `invalid_field`, naming the field",
            409: "`too_many_webhooks`",
        },
    )
)
async def create(request: web.Request) -> web.Response:
    auth = current_user(request)
    body = await read_body(request, CreateWebhook)
    url = body.url
    events: list[str] = sorted(set(body.events), key=EVENTS.index)
    hook = await request.app[appkeys.WEBHOOK_SERVICE].create(auth, url, events, origin_of(request))
    return web.json_response(webhook_json(hook, with_secret=True), status=201)


@described(
    RouteSpec(
        summary="The caller's webhooks",
        tag="webhooks",
        ok={200: Answer("Hooks", page_of(ref("Webhook"), cursor=False))},
    )
)
async def list_(request: web.Request) -> web.Response:
    hooks = await request.app[appkeys.WEBHOOK_SERVICE].list_hooks(current_user(request).id)
    return web.json_response({"items": [webhook_json(h) for h in hooks]})


@described(
    RouteSpec(
        summary="Delete a webhook",
        tag="webhooks",
        ok={204: Answer("Deleted")},
        errors={404: "`webhook_not_found`"},
    )
)
async def delete(request: web.Request) -> web.Response:
    auth = current_user(request)
    await request.app[appkeys.WEBHOOK_SERVICE].delete(auth, path_uuid(request), origin_of(request))
    return web.Response(status=204)


@described(
    RouteSpec(
        summary="A webhook's delivery log, newest first",
        tag="webhooks",
        params=[Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200})],
        ok={200: Answer("Deliveries", page_of(ref("Delivery"), cursor=False))},
        errors={400: "`invalid_query`", 404: "`webhook_not_found`"},
    )
)
async def deliveries(request: web.Request) -> web.Response:
    auth = current_user(request)
    webhook_id = path_uuid(request)
    limit = query_int(request, "limit", 50, lo=1, hi=200)
    items = await request.app[appkeys.WEBHOOK_SERVICE].deliveries(auth.id, webhook_id, limit)
    return web.json_response({"items": [delivery_json(d) for d in items]})
