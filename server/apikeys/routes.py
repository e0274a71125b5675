"""`/api/v1/api-keys`: create (the secret is shown once), list and revoke keys.

Only a password session reaches these (`permissions.SESSION`): a key cannot
mint or revoke keys.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.apikeys.schemas import CreateApiKey
from server.apikeys.serializers import api_key_json, new_api_key_json
from server.auth.middleware import current_user
from server.bodies import read_body
from server.http import path_uuid

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/api-keys", create, name="api_keys.create")
    app.router.add_get("/api/v1/api-keys", list_, name="api_keys.list")
    app.router.add_delete("/api/v1/api-keys/{id}", revoke, name="api_keys.revoke")


async def create(request: web.Request) -> web.Response:
    owner = current_user(request)
    body = await read_body(request, CreateApiKey)
    new = await request.app[appkeys.API_KEYS].create(
        owner, name=body.name, scopes=list(body.scopes), expires_at=body.expires_at
    )
    return web.json_response(new_api_key_json(new), status=201, headers=NO_STORE)


async def list_(request: web.Request) -> web.Response:
    keys = await request.app[appkeys.API_KEYS].list_keys(current_user(request).id)
    return web.json_response({"items": [api_key_json(k) for k in keys]})


async def revoke(request: web.Request) -> web.Response:
    await request.app[appkeys.API_KEYS].revoke(current_user(request).id, path_uuid(request))
    return web.Response(status=204)
