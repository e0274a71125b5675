"""`/api/v1/presets`: a user's named operation sets — create, list, show, replace, delete.

Used by name: `?preset=` on uploads, `"preset"` in a batch.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.bodies import read_body
from server.openapi.spec import STRING, TIME, UUID, Answer, RouteSpec, described, obj, page_of
from server.presets.schemas import PresetBody
from server.presets.serializers import preset_json

PRESET = obj(
    ["id", "name", "operations"],
    id=UUID,
    name=STRING,
    operations={"type": "array", "items": {"type": "object"}},
    created_at=TIME,
    updated_at=TIME,
)
_NAME = {"name": STRING}
_INVALID = "`invalid_field`, `unknown_operation` or `invalid_params`, naming the field"


@described(
    RouteSpec(
        summary="Save a preset: a named set of operations with their params",
        tag="presets",
        body=PresetBody,
        ok={201: Answer("Saved", PRESET)},
        errors={400: _INVALID, 409: "`preset_exists` or `too_many_presets`"},
    )
)
async def create_preset(request: web.Request) -> web.Response:
    body = await read_body(request, PresetBody)
    preset = await request.app[appkeys.PRESETS].create(
        current_user(request).id, body.name, body.operations
    )
    return web.json_response(preset_json(preset), status=201)


@described(
    RouteSpec(
        summary="The caller's presets, by name",
        tag="presets",
        ok={200: Answer("Presets", page_of(PRESET, cursor=False))},
    )
)
async def list_presets(request: web.Request) -> web.Response:
    presets = await request.app[appkeys.PRESETS].list_presets(current_user(request).id)
    return web.json_response({"items": [preset_json(p) for p in presets]})


@described(
    RouteSpec(
        summary="One preset",
        tag="presets",
        path_schemas=_NAME,
        ok={200: Answer("The preset", PRESET)},
        errors={404: "`preset_not_found`"},
    )
)
async def get_preset(request: web.Request) -> web.Response:
    preset = await request.app[appkeys.PRESETS].get(
        current_user(request).id, request.match_info["name"]
    )
    return web.json_response(preset_json(preset))


@described(
    RouteSpec(
        summary="Replace a preset (its name too)",
        tag="presets",
        body=PresetBody,
        path_schemas=_NAME,
        ok={200: Answer("Saved", PRESET)},
        errors={400: _INVALID, 404: "`preset_not_found`", 409: "`preset_exists`"},
    )
)
async def replace_preset(request: web.Request) -> web.Response:
    body = await read_body(request, PresetBody)
    preset = await request.app[appkeys.PRESETS].replace(
        current_user(request).id, request.match_info["name"], body.name, body.operations
    )
    return web.json_response(preset_json(preset))


@described(
    RouteSpec(
        summary="Delete a preset",
        tag="presets",
        path_schemas=_NAME,
        ok={204: Answer("Deleted")},
        errors={404: "`preset_not_found`"},
    )
)
async def delete_preset(request: web.Request) -> web.Response:
    await request.app[appkeys.PRESETS].delete(current_user(request).id, request.match_info["name"])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/presets", create_preset, name="presets.create")
    app.router.add_get("/api/v1/presets", list_presets, name="presets.list")
    app.router.add_get("/api/v1/presets/{name}", get_preset, name="presets.show")
    app.router.add_put("/api/v1/presets/{name}", replace_preset, name="presets.replace")
    app.router.add_delete("/api/v1/presets/{name}", delete_preset, name="presets.delete")
