"""`GET /api/v1/operations`: every operation, its params and the server's limits."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.jobs.operation_serializers import catalog_json
from server.openapi.spec import ANY_OBJECT, Answer, RouteSpec, described, obj


@described(
    RouteSpec(
        summary="Every operation, its params and the server's limits",
        tag="jobs",
        ok={
            200: Answer(
                "The catalog",
                obj(
                    ["operations", "limits"],
                    operations={"type": "array", "items": ANY_OBJECT},
                    limits=ANY_OBJECT,
                ),
            )
        },
    )
)
async def list_operations(request: web.Request) -> web.Response:
    current_user(request)  # authenticated like the rest of /api/v1
    catalog = request.app[appkeys.OPERATION_CATALOG].describe()
    return web.json_response(catalog_json(catalog))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/operations", list_operations, name="operations.list")
