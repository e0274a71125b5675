"""Who is calling: the bearer access token, checked once per request.

`auth_middleware` only identifies (`AuthService.authenticate`: the signature,
the expiry, and that the account still exists); handlers decide what needs a
user (`current_user`) or an administrator (`require_admin`). Tokens are never
logged or echoed back in errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from server import appkeys
from server.auth.model import AuthUser
from server.auth.tokens import invalid_token
from server.errors import Forbidden, Unauthorized

__all__ = [
    "USER",
    "AuthUser",
    "auth_middleware",
    "current_user",
    "ignores_bearer",
    "optional_user",
    "require_admin",
]

# A typed key: aiohttp 3.14 warns about plain string keys on requests.
USER = web.RequestKey("user", AuthUser)
_IGNORES_BEARER = "__frameflow_ignores_bearer__"

F = TypeVar("F", bound=Callable[..., Any])


def ignores_bearer(handler: F) -> F:
    """Marks a handler whose credentials come in the body (login, refresh, ...).

    Clients often attach their (possibly expired) access token to every call;
    on these routes that must not turn a refresh into a 401.
    """
    setattr(handler, _IGNORES_BEARER, True)
    return handler


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization")
    if header is not None and not getattr(request.match_info.handler, _IGNORES_BEARER, False):
        token = bearer_token(header)
        request[USER] = await request.app[appkeys.AUTH].authenticate(token)
    return await handler(request)


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    # The scheme is case-insensitive (RFC 7235); the token has no spaces.
    if scheme.lower() != "bearer" or not token or " " in token:
        raise invalid_token("The Authorization header must be 'Bearer <access token>'")
    return token


def optional_user(request: web.Request) -> AuthUser | None:
    return request.get(USER)


def current_user(request: web.Request) -> AuthUser:
    user = request.get(USER)
    if user is None:
        raise Unauthorized()
    return user


def require_admin(request: web.Request) -> AuthUser:
    user = current_user(request)
    if not user.is_admin:
        raise Forbidden("An administrator account is required", code="admin_required")
    return user
