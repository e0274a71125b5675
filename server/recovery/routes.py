"""HTTP endpoints of account recovery; the rules live in `RecoveryService`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import appkeys
from server.audit.origin import origin_of
from server.auth.middleware import current_user, ignores_bearer
from server.auth.serializers import user_json
from server.auth.service import validate_email
from server.bodies import read_body
from server.limits import policy
from server.openapi.spec import STRING, Answer, RouteSpec, described, obj, ref
from server.recovery.schemas import EmailBody, PasswordChange, ResetConfirm, TokenBody

# Token and account answers must never sit in a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

ACCEPTED = obj(["status", "message"], status={"const": "accepted"}, message=STRING)
TOKEN_ERRORS = {
    400: "`token_invalid`: unknown or malformed token",
    410: "`token_used`, `token_expired` or `token_superseded` (the email changed since)",
    429: "`rate_limited`",
}

# The one answer to a reset request, whoever asked about whichever address.
RESET_REQUESTED = {
    "status": "accepted",
    "message": "If an account has this email address, a link to reset its password is on its way.",
}
VERIFICATION_SENT = {
    "status": "accepted",
    "message": "A new verification link is on its way to the account's email address.",
}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/auth/verify-email", verify_email)
    app.router.add_post("/api/v1/auth/password-reset", request_password_reset)
    app.router.add_post("/api/v1/auth/password-reset/confirm", confirm_password_reset)
    app.router.add_post("/api/v1/me/password", change_password)
    app.router.add_post("/api/v1/me/verify-email", resend_verification)


def _accepted(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=202, headers=NO_STORE)


@described(
    RouteSpec(
        summary="Verify the account's email with the token from a verification link",
        tag="accounts",
        body=TokenBody,
        ok={200: Answer("The verified account", ref("User"))},
        errors=TOKEN_ERRORS,
    )
)
@ignores_bearer
async def verify_email(request: web.Request) -> web.Response:
    await policy.limit_account_token(request)
    token = (await read_body(request, TokenBody)).token
    user = await request.app[appkeys.RECOVERY].verify_email(token, origin_of(request))
    return web.json_response(user_json(user, "self"), headers=NO_STORE)


@described(
    RouteSpec(
        summary="Mail a password reset link",
        tag="accounts",
        description="Answers the same whether or not an account has the address.",
        body=EmailBody,
        ok={202: Answer("Accepted (whether or not the address has an account)", ACCEPTED)},
        errors={429: "`rate_limited`"},
    )
)
@ignores_bearer
async def request_password_reset(request: web.Request) -> web.Response:
    await policy.limit_password_reset_ip(request)
    email = validate_email((await read_body(request, EmailBody)).email)
    await policy.limit_password_reset_account(request, email)
    await request.app[appkeys.RECOVERY].request_password_reset(email, origin_of(request))
    return _accepted(RESET_REQUESTED)


@described(
    RouteSpec(
        summary="Set a new password with the token from a reset link",
        tag="accounts",
        description="Ends every session of the account: refresh tokens revoked, access "
        "tokens refused (401 `session_ended`).",
        body=ResetConfirm,
        ok={204: Answer("The password is set; sign in with it")},
        errors=TOKEN_ERRORS,
    )
)
@ignores_bearer
async def confirm_password_reset(request: web.Request) -> web.Response:
    await policy.limit_account_token(request)
    body = await read_body(request, ResetConfirm)
    token, password = body.token, body.password
    await request.app[appkeys.RECOVERY].reset_password(token, password, origin_of(request))
    return web.Response(status=204, headers=NO_STORE)


@described(
    RouteSpec(
        summary="Change the password",
        tag="accounts",
        description="Needs the current password; ends every other session of the account "
        "(their access tokens too). The caller's access and refresh tokens keep working.",
        body=PasswordChange,
        ok={204: Answer("Changed; this session goes on, the others have ended")},
        errors={403: "`wrong_password`", 429: "`rate_limited`"},
    )
)
async def change_password(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_password_change(request, user)
    body = await read_body(request, PasswordChange)
    current, new = body.current_password, body.new_password
    await request.app[appkeys.RECOVERY].change_password(user, current, new, origin_of(request))
    return web.Response(status=204, headers=NO_STORE)


@described(
    RouteSpec(
        summary="Mail a new email verification link",
        tag="accounts",
        ok={202: Answer("Sent", ACCEPTED)},
        errors={409: "`email_already_verified`", 429: "`rate_limited`"},
    )
)
async def resend_verification(request: web.Request) -> web.Response:
    user = current_user(request)
    await policy.limit_verification_resend(request, user)
    await request.app[appkeys.RECOVERY].resend_verification(user.id)
    return _accepted(VERIFICATION_SENT)
