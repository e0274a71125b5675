"""`GET /api/v1/videos/suggest`: titles and tags for a search box.

(The search itself is `GET /api/v1/videos` with `q` or a filter; see
server/videos/routes.py.) Registered before `/api/v1/videos/{id}`, which
would otherwise take "suggest" for an id.
"""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.auth.middleware import current_user
from server.errors import BadRequest
from server.http import query_int
from server.openapi.spec import Answer, Param, RouteSpec, described, obj
from server.search.serializers import suggestion_json
from server.search.text import MAX_QUERY_CHARS


@described(
    RouteSpec(
        summary="Titles and tags that complete what is typed (a search box)",
        tag="videos",
        params=[
            Param("q", "query", {"type": "string", "maxLength": MAX_QUERY_CHARS}),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 20}),
        ],
        ok={200: Answer("Suggestions", obj(suggestions={"type": "array", "items": obj()}))},
        errors={400: "`invalid_query` naming the parameter"},
    )
)
async def suggest(request: web.Request) -> web.Response:
    user = current_user(request)
    typed = request.query.get("q", "")
    if len(typed) > MAX_QUERY_CHARS:
        raise BadRequest(
            f"'q' is longer than {MAX_QUERY_CHARS} characters", code="invalid_query", field="q"
        )
    limit = query_int(request, "limit", 8, lo=1, hi=20)
    found = await request.app[appkeys.SEARCH].suggest(user.id, typed, limit)
    return web.json_response({"suggestions": [suggestion_json(s) for s in found]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/videos/suggest", suggest)
