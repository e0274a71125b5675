"""Routes of live events."""

from __future__ import annotations

from aiohttp import web

from server.live.socket import websocket


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/ws", websocket, name="websocket")
