"""`/api/v1/api-keys`: create (the secret is shown once), list and revoke keys.

Only a password session reaches these (`permissions.SESSION`): a key cannot
mint or revoke keys.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.apikeys.schemas import CreateApiKey
from server.apikeys.serializers import api_key_json, new_api_key_json
from server.audit.origin import origin_of
from server.auth.middleware import current_user
from server.bodies import read_body
from server.http import path_uuid
from server.openapi.spec import STRING, Answer, RouteSpec, described, obj, page_of, ref

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/api-keys", create, name="api_keys.create")
    app.router.add_get("/api/v1/api-keys", list_, name="api_keys.list")
    app.router.add_delete("/api/v1/api-keys/{id}", revoke, name="api_keys.revoke")


@described(
    RouteSpec(
        summary="Create an API key (the secret is shown once)",
        tag="api keys",
        body=CreateApiKey,
        ok={
            201: Answer(
                "The key and its secret", {"allOf": [ref("ApiKey"), obj(["secret"], secret=STRING)]}
            )
        },
        errors={403: "`session_required` or `scope_not_allowed`", 409: "`too_many_api_keys`"},
    )
)
async def create(request: web.Request) -> web.Response:
    owner = current_user(request)
    body = await read_body(request, CreateApiKey)
    new = await request.app[appkeys.API_KEYS].create(
        owner,
        name=body.name,
        scopes=list(body.scopes),
        expires_at=body.expires_at,
        origin=origin_of(request),
    )
    return web.json_response(new_api_key_json(new), status=201, headers=NO_STORE)


@described(
    RouteSpec(
        summary="The caller's API keys",
        tag="api keys",
        ok={200: Answer("Keys, newest first", page_of(ref("ApiKey"), cursor=False))},
    )
)
async def list_(request: web.Request) -> web.Response:
    keys = await request.app[appkeys.API_KEYS].list_keys(current_user(request).id)
    return web.json_response({"items": [api_key_json(k) for k in keys]})


@described(
    RouteSpec(
        summary="Revoke an API key",
        tag="api keys",
        ok={204: Answer("Revoked")},
        errors={404: "`api_key_not_found`"},
    )
)
async def revoke(request: web.Request) -> web.Response:
    await request.app[appkeys.API_KEYS].revoke(
        current_user(request), path_uuid(request), origin_of(request)
    )
    return web.Response(status=204)
