"""Who is calling and whether they may: checked once per request.

`auth_middleware` identifies the caller from `Authorization: Bearer <JWT or
ff_ key>` or `X-API-Key: ff_…` (`AuthService.authenticate`: the signature or
the key, the expiry, and that the account still exists), then checks the
route's entry in the permission table (`server.auth.permissions`): a caller
without the scope it names gets 403 `insufficient_scope`, and an account whose
email is not verified yet 403 `email_unverified` for what the setting
`unverified_email_denies` keeps from it. A request without credentials to a
route that needs a caller is a 401 here, except on the table's signed-URL routes
(`SIGNED_URL_ROUTES`), whose handlers check the signature. Handlers get the
caller with `current_user` (or `require_admin`).
Tokens are never logged or echoed back in errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from server import appkeys
from server.auth import permissions
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
    "reads_credentials",
    "require_admin",
    "require_scope",
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


def reads_credentials(handler: object) -> bool:
    """Whether the middleware checks credentials presented to this handler."""
    return not getattr(handler, _IGNORES_BEARER, False)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if getattr(request.match_info.handler, _IGNORES_BEARER, False):
        return await handler(request)
    token = _presented_token(request)
    if token is not None:
        user = await request.app[appkeys.AUTH].authenticate(token)
        request[USER] = user
        _check_scope(request, user)
        _check_verified(request, user)
    elif _needs_credentials(request):
        # Refused here, in one place; the table's signed-URL routes go on to their
        # handler, which checks the signature instead.
        raise Unauthorized()
    return await handler(request)


def _required(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    if resource is None:
        return None  # unmatched: aiohttp answers 404/405
    return permissions.required_scope(request.method, resource.canonical)


def _needs_credentials(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    if resource is None:
        return False  # unmatched: aiohttp answers 404/405
    return permissions.needs_credentials(request.method, resource.canonical)


def _presented_token(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key is not None:
        key = key.strip()
        if not key.startswith("ff_") or " " in key:
            raise invalid_token("The X-API-Key header must hold an ff_ API key")
        return key
    header = request.headers.get("Authorization")
    return None if header is None else bearer_token(header)


def _check_scope(request: web.Request, user: AuthUser) -> None:
    needed = _required(request)
    if needed is None or needed in (permissions.PUBLIC, permissions.ANY):
        return
    if needed == permissions.SESSION:
        if user.api_key_id is not None:
            raise Forbidden(
                "This call needs a password session; API keys cannot make it",
                code="session_required",
            )
        return
    if needed == permissions.ADMIN and not user.is_admin:
        raise _admin_required()  # the account, not the credential, is what lacks it
    require_scope(user, needed)


def _check_verified(request: web.Request, user: AuthUser) -> None:
    if user.email_verified:
        return
    resource = request.match_info.route.resource
    if resource is None:
        return
    denied = request.app[appkeys.SETTINGS].unverified_email_denied
    gate = permissions.unverified_refusal(request.method, resource.canonical, denied)
    if gate is not None:
        raise Forbidden(
            "Verify your email address first (POST /api/v1/me/verify-email sends a new link)",
            code="email_unverified",
            needs=gate,
        )


def require_scope(user: AuthUser, scope: str) -> None:
    """403 `insufficient_scope` naming `scope` unless `user` holds it."""
    if scope not in user.scopes:
        raise Forbidden(
            f"This call needs the '{scope}' scope", code="insufficient_scope", scope=scope
        )


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
        raise _admin_required()
    return user


def _admin_required() -> Forbidden:
    return Forbidden("An administrator account is required", code="admin_required")
