"""HTTP endpoints for accounts and sessions; the rules live in `AuthService`."""

from __future__ import annotations

from aiohttp import web

from server import appkeys
from server.audit.origin import origin_of
from server.auth.devices import DEVICE_COOKIE, DEVICE_COOKIE_PATH
from server.auth.middleware import current_user, ignores_bearer
from server.auth.model import LoginResult, TokenPair
from server.auth.schemas import AccountChanges, Credentials, RefreshBody
from server.auth.serializers import token_pair_json, user_json
from server.bodies import read_body
from server.limits import policy
from server.openapi.spec import STRING, Answer, RouteSpec, described, obj, ref

# Token and account answers must never sit in a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/auth/register", register)
    app.router.add_post("/api/v1/auth/login", login)
    app.router.add_post("/api/v1/auth/refresh", refresh)
    app.router.add_post("/api/v1/auth/logout", logout)
    app.router.add_get("/api/v1/me", me)
    app.router.add_patch("/api/v1/me", update_me)


def _token_response(pair: TokenPair) -> web.Response:
    return web.json_response(token_pair_json(pair), headers=NO_STORE)


def _set_device_cookie(request: web.Request, resp: web.Response, result: LoginResult) -> None:
    settings = request.app[appkeys.SETTINGS]
    resp.set_cookie(
        DEVICE_COOKIE,
        result.device_token,
        max_age=result.device_ttl_seconds,
        path=DEVICE_COOKIE_PATH,  # sent with login attempts only
        httponly=True,
        samesite="Strict",
        # Behind a TLS-terminating proxy the request itself is plain HTTP.
        secure=request.secure or settings.public_url.startswith("https://"),
    )


# The one answer to a sign-up, new address or taken: it must not tell them apart.
REGISTERED = {
    "status": "accepted",
    "message": "Check your email: a link to confirm the address is on its way. "
    "Then sign in with your email and password.",
}


@described(
    RouteSpec(
        summary="Create an account",
        tag="accounts",
        description="Answers the same whether or not the address already has an account "
        "(its owner is mailed instead); sign in afterwards to get the account's id.",
        body=Credentials,
        ok={
            202: Answer(
                "Accepted",
                obj(["status", "message"], status={"const": "accepted"}, message=STRING),
            )
        },
        errors={429: "`rate_limited`"},
    )
)
@ignores_bearer
async def register(request: web.Request) -> web.Response:
    await policy.limit_register(request)
    body = await read_body(request, Credentials)
    email, password = body.email, body.password
    await request.app[appkeys.AUTH].register(email, password, origin_of(request))
    return web.json_response(REGISTERED, status=202, headers=NO_STORE)


@described(
    RouteSpec(
        summary="Start a session",
        tag="accounts",
        body=Credentials,
        ok={200: Answer("A token pair", ref("TokenPair"))},
        errors={
            401: "`invalid_credentials`",
            403: "`account_disabled` (the password was right)",
            429: "`rate_limited`",
        },
    )
)
@ignores_bearer
async def login(request: web.Request) -> web.Response:
    # Counted before the body is read: a malformed or hostile body is an attempt too.
    await policy.limit_login_ip(request)
    body = await read_body(request, Credentials)
    email, password = body.email, body.password
    await policy.limit_login_account(request, email)
    result = await request.app[appkeys.AUTH].login(email, password, origin_of(request))
    resp = _token_response(result.tokens)
    _set_device_cookie(request, resp, result)
    return resp


@described(
    RouteSpec(
        summary="Exchange a refresh token for the next pair",
        tag="accounts",
        body=RefreshBody,
        ok={200: Answer("A token pair", ref("TokenPair"))},
        errors={
            401: "`invalid_token`, `token_expired`, `token_reused` or `account_disabled`",
            429: "`rate_limited`",
        },
    )
)
@ignores_bearer
async def refresh(request: web.Request) -> web.Response:
    await policy.limit_refresh_ip(request)
    token = (await read_body(request, RefreshBody)).refresh_token
    await policy.limit_refresh_account(request, token)
    return _token_response(await request.app[appkeys.AUTH].refresh(token, origin_of(request)))


@described(
    RouteSpec(
        summary="End a session",
        tag="accounts",
        body=RefreshBody,
        ok={204: Answer("Ended")},
        errors={401: "`invalid_token` or `token_expired`"},
    )
)
@ignores_bearer
async def logout(request: web.Request) -> web.Response:
    token = (await read_body(request, RefreshBody)).refresh_token
    await request.app[appkeys.AUTH].logout(token, origin_of(request))
    return web.Response(status=204, headers=NO_STORE)


@described(
    RouteSpec(
        summary="The caller's account", tag="accounts", ok={200: Answer("The account", ref("User"))}
    )
)
async def me(request: web.Request) -> web.Response:
    user = await request.app[appkeys.AUTH].account(current_user(request).id)
    return web.json_response(user_json(user, "self"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Change the account's settings",
        tag="accounts",
        description="A new `email` needs `current_password`; it is unverified until the link "
        "mailed to it is followed, and the old address is mailed a notice (no link).",
        body=AccountChanges,
        ok={200: Answer("The account", ref("User"))},
        errors={
            400: "`current_password_required` (with a new `email`)",
            403: "`wrong_password`",
            409: "`email_taken`: another account has this address",
            429: "`rate_limited`",
        },
    )
)
async def update_me(request: web.Request) -> web.Response:
    auth = current_user(request)
    changes = await read_body(request, AccountChanges)
    enabled, email = changes.email_notifications, changes.email
    user = await request.app[appkeys.AUTH].account(auth.id)
    if email is not None:
        # Guessing the password here costs what it costs on POST /me/password.
        await policy.limit_password_change(request, auth)
        password = changes.current_password
        user = await request.app[appkeys.RECOVERY].change_email(
            auth, email, password, origin_of(request)
        )
    if enabled is not None:
        user = await request.app[appkeys.AUTH].set_email_notifications(auth.id, enabled)
    return web.json_response(user_json(user, "self"), headers=NO_STORE)
