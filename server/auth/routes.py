"""HTTP endpoints for accounts and sessions; the rules live in `service`."""

from __future__ import annotations

import uuid

from aiohttp import web

from server import appkeys
from server.auth import service
from server.auth.middleware import current_user, ignores_bearer
from server.auth.passwords import PasswordHasher
from server.auth.tokens import invalid_token
from server.db import users
from server.errors import BadRequest
from server.http import read_json_object, require_str
from server.limits import policy
from server.live.bus import session_ended_publisher

# Token and account answers must never sit in a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/auth/register", register)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/refresh", refresh)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_get("/api/v1/me", me)
    app.router.add_patch("/api/v1/me", update_me)


def _hasher(request: web.Request) -> PasswordHasher:
    return PasswordHasher(request.app[appkeys.SETTINGS].bcrypt_rounds)


def _token_response(pair: service.TokenPair) -> web.Response:
    body = {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
        "expires_in": pair.expires_in,
    }
    return web.json_response(body, headers=NO_STORE)


@ignores_bearer
async def register(request: web.Request) -> web.Response:
    await policy.limit_register(request)
    data = await read_json_object(request)
    email, password = require_str(data, "email"), require_str(data, "password")
    settings = request.app[appkeys.SETTINGS]
    user = await service.register(
        request.app[appkeys.POOL], _hasher(request), email, password, settings.default_quota_bytes
    )
    return web.json_response({"id": str(user.id), "email": user.email}, status=201)


@ignores_bearer
async def login(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    email, password = require_str(data, "email"), require_str(data, "password")
    await policy.limit_login(request, email)
    pair = await service.login(
        request.app[appkeys.POOL], _hasher(request), request.app[appkeys.TOKENS], email, password
    )
    return _token_response(pair)


@ignores_bearer
async def refresh(request: web.Request) -> web.Response:
    token = require_str(await read_json_object(request), "refresh_token", max_len=4096)
    await policy.limit_refresh(request, token)
    pair = await service.refresh(
        request.app[appkeys.POOL],
        request.app[appkeys.TOKENS],
        token,
        on_session_ended=session_ended_publisher(request.app[appkeys.BUS]),
    )
    return _token_response(pair)


@ignores_bearer
async def logout(request: web.Request) -> web.Response:
    token = require_str(await read_json_object(request), "refresh_token", max_len=4096)
    await service.logout(
        request.app[appkeys.POOL],
        request.app[appkeys.TOKENS],
        token,
        on_session_ended=session_ended_publisher(request.app[appkeys.BUS]),
    )
    return web.Response(status=204, headers=NO_STORE)


async def me(request: web.Request) -> web.Response:
    auth = current_user(request)
    async with request.app[appkeys.POOL].acquire() as conn:
        user = await users.get_user(conn, auth.id)
    if user is None:  # deleted since the token was issued
        raise invalid_token()
    body = {
        "id": str(user.id),
        "email": user.email,
        "role": user.role,
        "quota_bytes": user.quota_bytes,
        "used_bytes": user.used_bytes,
        "email_notifications": bool(await _email_notifications(request, user.id)),
    }
    return web.json_response(body, headers=NO_STORE)


async def _email_notifications(request: web.Request, user_id: uuid.UUID) -> bool | None:
    async with request.app[appkeys.POOL].acquire() as conn:
        return await users.email_notifications(conn, user_id)


async def update_me(request: web.Request) -> web.Response:
    """The account's own settings; only `email_notifications` so far."""
    auth = current_user(request)
    data = await read_json_object(request)
    unknown = sorted(set(data) - {"email_notifications"})
    if unknown:
        raise BadRequest(
            f"'{unknown[0]}' cannot be changed", code="invalid_field", field=unknown[0]
        )
    enabled = data.get("email_notifications")
    if not isinstance(enabled, bool):
        raise BadRequest(
            "'email_notifications' must be true or false",
            code="invalid_field",
            field="email_notifications",
        )
    async with request.app[appkeys.POOL].acquire() as conn:
        if not await users.set_email_notifications(conn, auth.id, enabled):
            raise invalid_token()
    return await me(request)
