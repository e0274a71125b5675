"""Accounts and sessions through HTTP, against the real app and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, make_mocked_request

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.auth.middleware import USER, AuthUser, current_user, optional_user, require_admin
from server.auth.tokens import TokenService
from server.db import refresh_tokens, users
from server.errors import BadRequest, Forbidden, Unauthorized
from tests.conftest import PASSWORD, User, register_and_login, truncate_all

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"

Client = TestClient[Any, Any]


def _app(client: Client) -> web.Application:
    return client.server.app  # type: ignore[no-any-return]


async def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert body["error"]["code"] == code, body
    return body


async def _login(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Logs in again: a second, independent session (refresh-token family)."""
    resp = await client.post(LOGIN, json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _bearer(client: Client, token: str) -> Any:
    return await client.get(ME, headers={"Authorization": f"Bearer {token}"})


# --- register -------------------------------------------------------------------


async def test_register_creates_an_account(client: Client, settings: Settings) -> None:
    resp = await client.post(
        REGISTER, json={"email": "  New.User@Example.com ", "password": PASSWORD}
    )
    assert resp.status == 202
    body = await resp.json()
    assert body["status"] == "accepted" and "id" not in body  # no id: see test_recovery.py
    async with _app(client)[appkeys.POOL].acquire() as conn:
        stored = await users.get_user_by_email(conn, "new.user@example.com")
    assert stored is not None
    assert stored.email == "New.User@Example.com"  # trimmed, case kept
    assert not stored.email_verified
    assert stored.role == "user" and stored.used_bytes == 0
    assert stored.quota_bytes == settings.default_quota_bytes
    assert stored.password_hash.startswith("$2b$04$")  # bcrypt at the configured cost
    assert PASSWORD not in stored.password_hash


async def test_duplicate_email_in_another_case_makes_no_second_account(client: Client) -> None:
    # Answered like a new address (tests/test_recovery.py compares the answers).
    await register_and_login(client, "dup@example.com")
    resp = await client.post(REGISTER, json={"email": "DUP@Example.COM", "password": "other pass"})
    assert resp.status == 202
    async with _app(client)[appkeys.POOL].acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM users WHERE lower(email) = 'dup@example.com'"
        )
    assert count == 1
    resp = await client.post(LOGIN, json={"email": "dup@example.com", "password": "other pass"})
    await _error(resp, 401, "invalid_credentials")


@pytest.mark.parametrize(
    "email",
    ["", "plain", "a@b", "@example.com", "a@@example.com", "a b@example.com", "a@.com",
     "a" * 250 + "@x.io"],
)  # fmt: skip
async def test_malformed_email_is_400(client: Client, email: str) -> None:
    resp = await client.post(REGISTER, json={"email": email, "password": PASSWORD})
    await _error(resp, 400, "invalid_email")


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "x" * 73,
        "é" * 37,  # 37 characters but 74 bytes: the limit is bcrypt's, in bytes
        "\U0001f3ac" * 19,  # 76 bytes of emoji
    ],
)
async def test_unacceptable_password_is_400_not_500(client: Client, password: str) -> None:
    resp = await client.post(REGISTER, json={"email": "p@example.com", "password": password})
    await _error(resp, 400, "invalid_password")


async def test_72_byte_multibyte_password_is_accepted(client: Client) -> None:
    password = "é" * 36
    resp = await client.post(REGISTER, json={"email": "mb@example.com", "password": password})
    assert resp.status == 202
    resp = await client.post(LOGIN, json={"email": "mb@example.com", "password": password})
    assert resp.status == 200


@pytest.mark.parametrize("path", [REGISTER, LOGIN])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b"email=a@example.com", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b'["a@example.com", "password"]', "invalid_json"),
        (b'{"email": 5, "password": "correct horse"}', "invalid_field"),
        (b'{"email": "a@example.com", "password": ["x"]}', "invalid_field"),
        (b'{"email": "a@example.com"}', "invalid_field"),
        (b'{"password": "correct horse"}', "invalid_field"),
        (b'{"email": null, "password": "correct horse"}', "invalid_field"),
    ],
)
async def test_bad_bodies_are_400(client: Client, path: str, body: bytes, code: str) -> None:
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    await _error(resp, 400, code)


# --- login ------------------------------------------------------------------------


async def test_login_returns_a_token_pair(client: Client, settings: Settings) -> None:
    await register_and_login(client, "login@example.com")
    resp = await client.post(LOGIN, json={"email": "LOGIN@example.com", "password": PASSWORD})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = await resp.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert (await _bearer(client, body["access_token"])).status == 200


async def test_unknown_email_and_wrong_password_look_the_same(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await register_and_login(client, "known@example.com")
    # Timing parity, asserted structurally: each failure costs exactly one bcrypt check.
    checks: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)

    wrong = await client.post(LOGIN, json={"email": "known@example.com", "password": "wrong pass"})
    assert len(checks) == 1
    unknown = await client.post(LOGIN, json={"email": "nobody@example.com", "password": PASSWORD})
    assert len(checks) == 2
    assert checks[0] != checks[1]  # the second check ran against the dummy hash

    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["error"]["code"] == "invalid_credentials"
    assert wrong.headers.get("WWW-Authenticate") == unknown.headers.get("WWW-Authenticate")


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "known@example.com", "password": "x" * 100},  # over bcrypt's 72 bytes
        {"email": "known@example.com", "password": "short"},
        {"email": "not an email", "password": PASSWORD},
    ],
)
async def test_impossible_credentials_are_401_not_400_or_500(
    client: Client, credentials: dict[str, str]
) -> None:
    await register_and_login(client, "known@example.com")
    resp = await client.post(LOGIN, json=credentials)
    await _error(resp, 401, "invalid_credentials")


# --- refresh rotation ---------------------------------------------------------------


async def _refresh(client: Client, token: str) -> Any:
    return await client.post(REFRESH, json={"refresh_token": token})


async def test_refresh_rotates_the_pair(client: Client, user: User) -> None:
    resp = await _refresh(client, user.refresh_token)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    pair = await resp.json()
    assert pair["token_type"] == "bearer"
    assert pair["refresh_token"] != user.refresh_token
    assert pair["access_token"] != user.access_token
    assert (await _bearer(client, pair["access_token"])).status == 200
    # The chain keeps going.
    again = await _refresh(client, pair["refresh_token"])
    assert again.status == 200


async def test_reusing_a_spent_refresh_token_ends_the_session(client: Client, user: User) -> None:
    first = await (await _refresh(client, user.refresh_token)).json()
    second = await (await _refresh(client, first["refresh_token"])).json()

    # The original token is replayed: 401, and the whole family is revoked...
    await _error(await _refresh(client, user.refresh_token), 401, "token_reused")
    # ...so even the newest token of the session, never used, stops working.
    await _error(await _refresh(client, second["refresh_token"]), 401, "invalid_token")
    await _error(await _refresh(client, first["refresh_token"]), 401, "invalid_token")


async def test_reuse_does_not_touch_other_sessions(client: Client, user: User) -> None:
    other = await _login(client, user.email)
    await _refresh(client, user.refresh_token)
    await _error(await _refresh(client, user.refresh_token), 401, "token_reused")
    assert (await _refresh(client, other["refresh_token"])).status == 200


async def test_concurrent_refreshes_of_one_token_let_one_through(
    client: Client, user: User
) -> None:
    # The row lock serialises rotations of one token: exactly one wins, the next
    # is a replay that revokes the family, and the rest find it revoked.
    results = await asyncio.gather(*(_refresh(client, user.refresh_token) for _ in range(8)))
    winners = [r for r in results if r.status == 200]
    assert len(winners) == 1
    codes = [(await r.json())["error"]["code"] for r in results if r.status == 401]
    assert len(codes) == 7 and "token_reused" in codes
    assert set(codes) <= {"token_reused", "invalid_token"}
    # The replay ended the session, the winner's fresh token included.
    newest = (await winners[0].json())["refresh_token"]
    await _error(await _refresh(client, newest), 401, "invalid_token")


async def test_refresh_rejects_access_tokens_and_garbage(client: Client, user: User) -> None:
    await _error(await _refresh(client, user.access_token), 401, "invalid_token")
    await _error(await _refresh(client, "garbage"), 401, "invalid_token")
    resp = await client.post(REFRESH, json={})
    await _error(resp, 400, "invalid_field")


async def test_refresh_ignores_a_stale_bearer_header(client: Client, user: User) -> None:
    # Clients often send their expired access token with every call; refresh must still work.
    resp = await client.post(
        REFRESH,
        json={"refresh_token": user.refresh_token},
        headers={"Authorization": "Bearer expired-or-garbage"},
    )
    assert resp.status == 200


async def test_refresh_token_expired_in_the_database(client: Client, user: User) -> None:
    # A row whose expiry passed although its JWT is still valid (e.g. cut short by hand).
    app = _app(client)
    tokens: TokenService = app[appkeys.TOKENS]
    jti, family = uuid.uuid4(), uuid.uuid4()
    token, _ = tokens.issue_refresh(uuid.UUID(user.id), jti, family)
    async with app[appkeys.POOL].acquire() as conn:
        await refresh_tokens.insert_token(
            conn,
            jti=jti,
            family_id=family,
            user_id=uuid.UUID(user.id),
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
    await _error(await _refresh(client, token), 401, "token_expired")
    async with app[appkeys.POOL].acquire() as conn:
        assert await refresh_tokens.delete_expired(conn) == 1
    # Once cleaned up, the token is simply unknown.
    await _error(await _refresh(client, token), 401, "invalid_token")


async def test_expired_refresh_token(client: Client, user: User, settings: Settings) -> None:
    past = time.time() - settings.refresh_token_ttl_seconds - 60
    old = TokenService(settings.jwt_secret, settings, clock=lambda: past)
    token, _ = old.issue_refresh(uuid.UUID(user.id), uuid.uuid4(), uuid.uuid4())
    await _error(await _refresh(client, token), 401, "token_expired")


async def test_refresh_token_of_another_key_is_rejected(client: Client, user: User) -> None:
    forged = TokenService("f" * 48, Settings()).issue_refresh(
        uuid.UUID(user.id), uuid.uuid4(), uuid.uuid4()
    )[0]
    await _error(await _refresh(client, forged), 401, "invalid_token")


# --- logout ------------------------------------------------------------------------


async def test_logout_revokes_the_session_and_is_idempotent(client: Client, user: User) -> None:
    other = await _login(client, user.email)
    resp = await client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    assert await resp.read() == b""
    await _error(await _refresh(client, user.refresh_token), 401, "invalid_token")
    again = await client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert again.status == 204
    # Only that session ended.
    assert (await _refresh(client, other["refresh_token"])).status == 200


async def test_logout_ends_rotated_tokens_of_the_family_too(client: Client, user: User) -> None:
    rotated = await (await _refresh(client, user.refresh_token)).json()
    resp = await client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    await _error(await _refresh(client, rotated["refresh_token"]), 401, "invalid_token")


async def test_logout_ends_that_sessions_access_tokens_too(client: Client, user: User) -> None:
    """Not only its refresh tokens: an access token of the session is refused at once
    (`session_ended`), while another session of the same account goes on."""
    other = await _login(client, user.email)
    assert (await _bearer(client, user.access_token)).status == 200  # cached as live
    resp = await client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    await _error(await _bearer(client, user.access_token), 401, "session_ended")
    assert (await _bearer(client, other["access_token"])).status == 200
    # A WebSocket cannot authenticate with it either (the same check).
    async with client.ws_connect("/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": user.access_token})
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_ended")


async def test_a_replayed_refresh_token_ends_the_sessions_access_tokens(
    client: Client, user: User
) -> None:
    rotated = await (await _refresh(client, user.refresh_token)).json()
    assert (await _bearer(client, rotated["access_token"])).status == 200
    await _error(await _refresh(client, user.refresh_token), 401, "token_reused")
    await _error(await _bearer(client, rotated["access_token"]), 401, "session_ended")
    await _error(await _bearer(client, user.access_token), 401, "session_ended")


async def test_ended_sessions_are_forgotten_once_their_tokens_expired(
    client: Client, user: User
) -> None:
    """The refusal lasts as long as an access token can: the sweep then drops it."""
    resp = await client.post(LOGOUT, json={"refresh_token": user.refresh_token})
    assert resp.status == 204
    app = _app(client)
    async with app[appkeys.POOL].acquire() as conn:
        until = await conn.fetchval(
            "SELECT until - now() FROM ended_sessions WHERE user_id = $1::uuid", user.id
        )
        ttl = app[appkeys.SETTINGS].access_token_ttl_seconds
        assert timedelta(seconds=ttl - 60) < until <= timedelta(seconds=ttl)
        await conn.execute(
            "UPDATE ended_sessions SET until = now() - interval '1 second' "
            "WHERE user_id = $1::uuid",
            user.id,
        )
        assert await refresh_tokens.delete_ended(conn) >= 1
        left = "SELECT count(*) FROM ended_sessions WHERE user_id = $1::uuid"
        assert await conn.fetchval(left, user.id) == 0


async def test_logout_with_an_invalid_token_is_401(client: Client, user: User) -> None:
    resp = await client.post(LOGOUT, json={"refresh_token": "nope"})
    await _error(resp, 401, "invalid_token")
    resp = await client.post(LOGOUT, json={"refresh_token": user.access_token})
    await _error(resp, 401, "invalid_token")
    resp = await client.post(LOGOUT, data=b"nope", headers={"Content-Type": "application/json"})
    await _error(resp, 400, "invalid_json")


# --- /me and the middleware -------------------------------------------------------------


async def test_me(client: Client, user: User, settings: Settings) -> None:
    resp = await client.get(ME, headers=user.headers)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert await resp.json() == {
        "id": user.id,
        "email": user.email,
        "role": "user",
        "quota_bytes": settings.default_quota_bytes,
        "used_bytes": 0,
        "email_notifications": True,
        "email_verified": True,  # register_and_login verifies
    }


async def test_me_without_a_token_is_401(client: Client) -> None:
    resp = await client.get(ME)
    await _error(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Token abc", "garbage"],
)
async def test_malformed_authorization_is_401(client: Client, header: str) -> None:
    resp = await client.get(ME, headers={"Authorization": header})
    await _error(resp, 401, "invalid_token")


async def test_bearer_scheme_is_case_insensitive(client: Client, user: User) -> None:
    resp = await client.get(ME, headers={"Authorization": f"bearer {user.access_token}"})
    assert resp.status == 200


async def test_refresh_token_as_bearer_is_401(client: Client, user: User) -> None:
    await _error(await _bearer(client, user.refresh_token), 401, "invalid_token")


async def test_expired_access_token_is_401(client: Client, user: User, settings: Settings) -> None:
    past = time.time() - settings.access_token_ttl_seconds - 60
    old = TokenService(settings.jwt_secret, settings, clock=lambda: past)
    token, _ = old.issue_access(uuid.UUID(user.id), "user")
    resp = await _bearer(client, token)
    await _error(resp, 401, "token_expired")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_token_of_a_deleted_user_is_401(client: Client, user: User) -> None:
    async with _app(client)[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.id))
    await _error(await client.get(ME, headers=user.headers), 401, "invalid_token")
    await _error(await _refresh(client, user.refresh_token), 401, "invalid_token")


def _api_calls(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every API route that reads the bearer token, ids made up."""
    calls = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("path") or info.get("formatter") or ""
        if (
            not template.startswith("/api/v1/")
            or route.method in {"HEAD", "OPTIONS"}
            or getattr(route.handler, "__frameflow_ignores_bearer__", False)
        ):
            continue
        names = re.findall(r"{(\w+)", template)
        calls.append((route.method, template.format(**{n: str(uuid.uuid4()) for n in names})))
    return calls


async def test_token_of_a_deleted_user_is_401_on_every_route(client: Client, user: User) -> None:
    # Issue 9 #6: such a token used to create webhooks (500, foreign key) and list
    # empty collections (200); the account is gone, so the token is no longer valid.
    async with _app(client)[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.id))
    # Deleted behind the server's back (SQL): seen within account_check_cache_seconds
    # (test_a_deleted_users_token_is_refused_within_the_account_cache); not waited for here.
    _app(client)[appkeys.AUTH].access_cache.forget(uuid.UUID(user.id))
    calls = _api_calls(_app(client))
    assert ("POST", "/api/v1/webhooks") in calls and ("GET", "/api/v1/videos") in calls
    for method, path in calls:
        resp = await client.request(method, path, json={}, headers=user.headers)
        assert resp.status == 401, (method, path, resp.status, await resp.text())
        assert (await resp.json())["error"]["code"] == "invalid_token", (method, path)
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def _request_as(user: AuthUser | None) -> web.Request:
    request = make_mocked_request("GET", "/")
    if user is not None:
        request[USER] = user
    return request


def test_current_user_and_require_admin() -> None:
    member = AuthUser(uuid.uuid4(), "user")
    admin = AuthUser(uuid.uuid4(), "admin")
    assert current_user(_request_as(member)) == member
    assert optional_user(_request_as(None)) is None
    with pytest.raises(Unauthorized):
        current_user(_request_as(None))
    with pytest.raises(Unauthorized):
        require_admin(_request_as(None))
    with pytest.raises(Forbidden):
        require_admin(_request_as(member))
    assert require_admin(_request_as(admin)) == admin


# --- create_admin --------------------------------------------------------------------


async def test_create_admin_creates_an_administrator(client: Client, settings: Settings) -> None:
    admin = await _app(client)[appkeys.ADMIN].create_admin(" Root@Example.com", "admin password")
    assert admin.role == "admin" and admin.email == "Root@Example.com"
    assert admin.quota_bytes == settings.default_quota_bytes
    resp = await client.post(
        LOGIN, json={"email": "root@example.com", "password": "admin password"}
    )
    assert resp.status == 200
    me = await client.get(
        ME, headers={"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    )
    assert (await me.json())["role"] == "admin"


async def test_create_admin_promotes_and_resets_an_existing_account(
    client: Client, user: User, settings: Settings
) -> None:
    admin = await _app(client)[appkeys.ADMIN].create_admin(user.email.upper(), "new admin password")
    assert str(admin.id) == user.id and admin.role == "admin"
    assert admin.email == user.email  # the stored spelling is kept
    # The old password and the old sessions are gone; the new password works.
    await _error(await _refresh(client, user.refresh_token), 401, "invalid_token")
    old = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    await _error(old, 401, "invalid_credentials")
    new = await client.post(LOGIN, json={"email": user.email, "password": "new admin password"})
    assert new.status == 200


async def test_create_admin_validates_its_input(client: Client, settings: Settings) -> None:
    admins = _app(client)[appkeys.ADMIN]
    with pytest.raises(BadRequest) as info:
        await admins.create_admin("not-an-email", "admin password")
    assert info.value.error_code == "invalid_email"
    with pytest.raises(BadRequest) as info:
        await admins.create_admin("ok@example.com", "short")
    assert info.value.error_code == "invalid_password"


async def test_a_deleted_users_token_is_refused_within_the_account_cache(
    make_settings: Any, aiohttp_client: Any
) -> None:
    # Issue 10: no cache may outlive a few seconds. Here the account was seen a
    # moment before it was deleted, so the next requests may still pass, for
    # at most account_check_cache_seconds.
    app = create_app(make_settings(account_check_cache_seconds=0.5))
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client)
    assert (await client.get(ME, headers=user.headers)).status == 200
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.id))
    deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
    while (await client.get("/api/v1/videos", headers=user.headers)).status != 401:
        assert time.monotonic() < deadline, "the deleted account's token is still accepted"
        await asyncio.sleep(0.1)


async def test_routes_open_to_any_caller_still_need_a_caller(client: Client) -> None:
    """`ANY` in the permission table means any signed-in caller, whatever its scopes:
    without credentials each such route is a 401, not an answer."""
    from server.auth import permissions

    routes = [key for key, needed in permissions.ROUTE_SCOPES.items() if needed == permissions.ANY]
    assert ("GET", "/api/v1/providers") in routes
    for method, path in routes:
        resp = await client.request(method, path)
        assert resp.status == 401, (method, path, resp.status)


async def test_every_route_needing_a_caller_refuses_none_before_its_handler(
    client: Client,
) -> None:
    """Without credentials, every route of the permission table but the public ones is
    a 401 from the middleware (the same JSON as everywhere), whatever its path or body
    holds. The signed-URL routes reach their handler: a 401 without a signature, and
    with a wrong one the handler's 404 `invalid_signature`."""
    from server.auth import permissions

    def concrete(path: str) -> str:
        return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)

    guarded = [
        key for key, needed in permissions.ROUTE_SCOPES.items() if needed != permissions.PUBLIC
    ]
    assert ("POST", "/api/v1/videos/{id}/jobs") in guarded
    for method, path in guarded:
        resp = await client.request(method, concrete(path), data=b"{}")
        if method == "GET" and resp.status == 405:  # a HEAD-only route (tus), read as GET
            resp = await client.head(concrete(path))
            assert resp.status == 401, (path, resp.status)
            continue
        assert resp.status == 401, (method, path, resp.status)
        body = await resp.json()
        assert body["error"]["code"] == "unauthorized", (method, path)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
    for method, path in sorted(permissions.SIGNED_URL_ROUTES):
        assert permissions.ROUTE_SCOPES[(method, path)] not in (permissions.PUBLIC, permissions.ANY)
        resp = await client.request(method, concrete(path) + "?expires=1&signature=forged")
        assert resp.status == 404, (method, path, resp.status)
        assert (await resp.json())["error"]["code"] == "invalid_signature", (method, path)
