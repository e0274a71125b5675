"""Routes of live events."""

from __future__ import annotations

from aiohttp import web

from server.live.socket import websocket
from server.openapi.spec import Answer, RouteSpec, described

# The handler lives in socket.py; its contract is declared with its route.
WEBSOCKET = RouteSpec(
    summary="Live job and video events (WebSocket; authenticate with the first message)",
    tag="live",
    ok={101: Answer("Switching protocols")},
    errors={400: "Not a WebSocket upgrade", 403: "`origin_not_allowed`"},
)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/ws", described(WEBSOCKET)(websocket), name="websocket")
