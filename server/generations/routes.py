"""`/api/v1/generations` and `/api/v1/providers`: make, read and cancel generations."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.bodies import read_body
from server.generations.model import STATUSES
from server.generations.schemas import CreateGeneration
from server.generations.serializers import generation_json, provider_json
from server.http import path_uuid, query_int
from server.openapi.spec import (
    BOOLEAN,
    CURSOR,
    INTEGER,
    LIMIT,
    NUMBER,
    STRING,
    TIME,
    Answer,
    Param,
    RouteSpec,
    described,
    nullable,
    obj,
    page_of,
)
from server.pagination import decode_cursor, page_body

_STRINGS = {"type": "array", "items": STRING}
_GENERATION = obj(
    id=STRING,
    status={"enum": list(STATUSES)},
    progress=NUMBER,
    provider=STRING,
    model=STRING,
    prompt=STRING,
    negative_prompt=nullable(STRING),
    image_id=nullable(STRING),
    duration_seconds=INTEGER,
    resolution=STRING,
    aspect_ratio=STRING,
    seed=nullable(INTEGER),
    process=_STRINGS,
    estimate=INTEGER,
    credits_held=INTEGER,
    credits_charged=nullable(INTEGER),
    job_id=nullable(STRING),
    video_id=nullable(STRING),
    error=nullable(obj(code=STRING, message=nullable(STRING))),
    created_at=TIME,
    updated_at=TIME,
    finished_at=nullable(TIME),
)
_PROVIDER = obj(
    name=STRING,
    models=_STRINGS,
    resolutions=_STRINGS,
    durations={"type": "array", "items": INTEGER},
    aspect_ratios=_STRINGS,
    image_to_video=BOOLEAN,
    price_per_second=NUMBER,
    configured=BOOLEAN,
    circuit={"enum": ["closed", "open", "half_open"]},
)


@described(
    RouteSpec(
        summary="Generate a video from a prompt (and optionally one of your images)",
        tag="generations",
        body=CreateGeneration,
        params=[
            Param(
                "Idempotency-Key",
                "header",
                {"type": "string", "maxLength": 200},
                "The same key and body return the first generation instead of a new one",
            )
        ],
        ok={202: Answer("Queued (or the generation this key already made)", _GENERATION)},
        errors={
            400: "`invalid_json`, `invalid_field` or `unknown_operation`, naming the field",
            402: "`insufficient_credits`: the estimate is more than the balance",
            404: "`image_not_found`",
            413: "a body over the limit",
            422: "`invalid_input`, `no_provider`, `provider_not_configured`, "
            "`idempotency_key_reused` or `invalid_idempotency_key`",
        },
    )
)
async def create_generation(request: web.Request) -> web.Response:
    user = current_user(request)
    body = await read_body(request, CreateGeneration)
    generation, created = await request.app[appkeys.GENERATIONS].create(
        user.id, body, request.headers.get("Idempotency-Key")
    )
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return web.json_response(generation_json(generation), status=202, headers=headers)


@described(
    RouteSpec(
        summary="The caller's generations, newest first",
        tag="generations",
        params=[LIMIT, CURSOR],
        ok={200: Answer("A page", page_of(_GENERATION))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def list_generations(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 20, lo=1, hi=100)
    cursor = request.query.get("cursor")
    before = decode_cursor(cursor) if cursor else None
    rows = await request.app[appkeys.GENERATIONS].list(
        current_user(request).id, limit=limit + 1, before=before
    )
    return web.json_response(page_body(rows, limit, generation_json))


@described(
    RouteSpec(
        summary="One generation",
        tag="generations",
        ok={200: Answer("The generation", _GENERATION)},
        errors={404: "`generation_not_found`"},
    )
)
async def get_generation(request: web.Request) -> web.Response:
    generation = await request.app[appkeys.GENERATIONS].get(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response(generation_json(generation))


@described(
    RouteSpec(
        summary="Cancel a generation (its held credits are released)",
        tag="generations",
        ok={202: Answer("Canceled, or cancel requested", _GENERATION)},
        errors={404: "`generation_not_found`", 409: "`generation_finished`"},
    )
)
async def cancel_generation(request: web.Request) -> web.Response:
    generation = await request.app[appkeys.GENERATIONS].cancel(
        current_user(request).id, path_uuid(request)
    )
    return web.json_response(generation_json(generation), status=202)


@described(
    RouteSpec(
        summary="Video generation providers: what each supports, its price, its health",
        tag="generations",
        ok={200: Answer("The providers", obj(items={"type": "array", "items": _PROVIDER}))},
    )
)
async def list_providers(request: web.Request) -> web.Response:
    listings = request.app[appkeys.GENERATIONS].providers()
    return web.json_response({"items": [provider_json(p) for p in listings]})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/generations", create_generation, name="generations.create")
    app.router.add_get("/api/v1/generations", list_generations, name="generations.list")
    app.router.add_get("/api/v1/generations/{id}", get_generation, name="generations.show")
    app.router.add_post(
        "/api/v1/generations/{id}/cancel", cancel_generation, name="generations.cancel"
    )
    app.router.add_get("/api/v1/providers", list_providers, name="providers.list")
