"""Roles (issue 10 §3): the read-only viewer, the admin API, disabling accounts.

The permission table is walked, not copied: a write route added later is
covered by the viewer test without anyone touching this file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.auth import permissions
from server.jobs.runner import JobRunner
from tests.conftest import PASSWORD, User, register_and_login
from tests.test_admin import make_admin

Client = TestClient[Any, Any]
_PLACEHOLDER = re.compile(r"\{[^}]+\}")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # No runner: queued jobs stay queued, so lists and counts hold still.
    return make_settings(workers_enabled=False, webhook_allowed_hosts="127.0.0.1")


@pytest.fixture
async def admin(client: Client, settings: Settings) -> User:
    return await make_admin(client, settings)


async def make_viewer(client: Client, admin: User) -> User:
    viewer = await register_and_login(client)
    resp = await client.patch(
        f"/api/v1/admin/users/{viewer.id}", json={"role": "viewer"}, headers=admin.headers
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "viewer"
    return viewer


async def upload(client: Client, user: User, clip: Path) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{clip.name}", data=clip.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def queue_job(client: Client, user: User, video_id: str, operation: str) -> str:
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs", json={"operation": operation}, headers=user.headers
    )
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


def concrete(path: str) -> str:
    return _PLACEHOLDER.sub(lambda _m: str(uuid.uuid4()), path)


def write_routes() -> list[tuple[str, str, str]]:
    """Every route needing a scope the viewer role lacks."""
    viewer = permissions.role_scopes("viewer")
    skip = {permissions.PUBLIC, permissions.ANY, permissions.SESSION}
    return sorted(
        (method, path, scope)
        for (method, path), scope in permissions.ROUTE_SCOPES.items()
        if scope not in skip and scope not in viewer
    )


# --- the table itself ------------------------------------------------------------


def test_every_scoped_write_needs_a_scope_beyond_reading() -> None:
    """A route that changes something cannot hide under `videos:read`: the viewer
    would then be allowed it. GET (and HEAD, read as GET) are the only reads."""
    for (method, path), scope in permissions.ROUTE_SCOPES.items():
        if method != "GET" and scope in permissions.READ_SCOPES:
            pytest.fail(f"{method} {path} writes but needs only {scope}")
    assert permissions.role_scopes("viewer") == permissions.READ_SCOPES
    assert permissions.ROLES == ("admin", "user", "viewer")


def test_the_document_shows_each_operations_scope_and_roles(app: web.Application) -> None:
    from server.openapi.document import build_document

    doc = build_document(app)
    upload_op = doc["paths"]["/api/v1/uploads/{filename}"]["put"]
    assert upload_op["x-required-scope"] == "videos:write"
    assert upload_op["x-allowed-roles"] == ["admin", "user"]
    assert "roles: admin, user" in upload_op["description"]
    listing = doc["paths"]["/api/v1/videos"]["get"]
    assert listing["x-allowed-roles"] == ["admin", "user", "viewer"]
    assert doc["paths"]["/api/v1/admin/users"]["get"]["x-allowed-roles"] == ["admin"]


# --- the viewer --------------------------------------------------------------------


async def test_the_viewer_is_refused_every_write(
    client: Client, admin: User, user: User, sample_mp4: Path
) -> None:
    viewer = await make_viewer(client, admin)
    routes = write_routes()
    assert len(routes) > 20  # the walk found the table
    for method, path, scope in routes:
        resp = await client.request(method, concrete(path), json={}, headers=viewer.headers)
        if resp.status == 405 and method == "GET":  # a HEAD-only route (tus), read as GET
            resp = await client.head(concrete(path), headers=viewer.headers)
            assert resp.status == 403, (path, resp.status)
            continue
        assert resp.status == 403, (method, path, resp.status, await resp.text())
        error = (await resp.json())["error"]
        if scope == permissions.ADMIN:
            assert error["code"] == "admin_required", (method, path)
        else:
            assert (error["code"], error["scope"]) == ("insufficient_scope", scope), (method, path)

    # ...on real objects too: someone's video they might try to touch is not theirs,
    # and their own reads work.
    resp = await client.get("/api/v1/videos", headers=viewer.headers)
    assert resp.status == 200
    resp = await client.put(
        "/api/v1/uploads/a.mp4", data=sample_mp4.read_bytes(), headers=viewer.headers
    )
    assert resp.status == 403
    # A viewer's API key reads, like the viewer.
    resp = await client.post(
        "/api/v1/api-keys",
        json={"name": "w", "scopes": ["videos:write"]},
        headers=viewer.headers,
    )
    assert resp.status == 403
    assert (await resp.json())["error"] == {
        "code": "scope_not_allowed",
        "message": "The viewer role cannot create keys with the 'videos:write' scope",
        "scope": "videos:write",
    }
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "r", "scopes": ["videos:read"]}, headers=viewer.headers
    )
    assert resp.status == 201


async def test_a_role_change_applies_to_tokens_already_out(
    client: Client, admin: User, user: User, sample_mp4: Path
) -> None:
    await upload(client, user, sample_mp4)
    resp = await client.patch(
        f"/api/v1/admin/users/{user.id}", json={"role": "viewer"}, headers=admin.headers
    )
    assert resp.status == 200
    # The same access token: the role is read per request, not from the token.
    resp = await client.put(
        "/api/v1/uploads/b.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 403
    assert (await client.get("/api/v1/videos", headers=user.headers)).status == 200


# --- the admin API -----------------------------------------------------------------


async def test_admin_routes_refuse_non_admins(client: Client, admin: User, user: User) -> None:
    viewer = await make_viewer(client, admin)
    admin_routes = [r for r in write_routes() if r[2] == permissions.ADMIN]
    assert len(admin_routes) >= 10
    for method, path, _ in admin_routes:
        url = concrete(path)
        for who in (user, viewer):
            resp = await client.request(method, url, json={}, headers=who.headers)
            assert resp.status == 403, (method, path)
            assert (await resp.json())["error"]["code"] == "admin_required"
        resp = await client.request(method, url, json={})
        assert resp.status == 401, (method, path)


async def test_admin_lists_and_searches_users_with_usage(
    client: Client, admin: User, sample_mp4: Path
) -> None:
    alice = await register_and_login(client, f"alice-{uuid.uuid4().hex[:6]}@example.com")
    bob = await register_and_login(client, f"bob-{uuid.uuid4().hex[:6]}@example.com")
    viewer = await make_viewer(client, admin)
    await upload(client, alice, sample_mp4)
    await upload(client, alice, sample_mp4)

    async def listed(query: str) -> list[dict[str, Any]]:
        resp = await client.get(f"/api/v1/admin/users?{query}", headers=admin.headers)
        assert resp.status == 200, await resp.text()
        return list((await resp.json())["items"])

    [found] = await listed("q=ALICE-")
    assert found["id"] == alice.id
    assert found["video_count"] == 2
    assert found["used_bytes"] == 2 * sample_mp4.stat().st_size
    assert found["quota_bytes"] > 0 and found["disabled"] is False
    assert [u["id"] for u in await listed("role=viewer")] == [viewer.id]
    assert {u["id"] for u in await listed("role=user")} == {alice.id, bob.id}
    # Wildcards in q are literal characters, not patterns.
    assert await listed("q=%25") == []
    assert await listed("q=_") == []

    # Cursor paging: newest first, every account once.
    seen: list[str] = []
    cursor = ""
    while True:
        resp = await client.get(f"/api/v1/admin/users?limit=2{cursor}", headers=admin.headers)
        page = await resp.json()
        seen += [u["id"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [viewer.id, bob.id, alice.id, admin.id]

    for bad in ("role=root", "disabled=maybe", "limit=0", "cursor=zz"):
        resp = await client.get(f"/api/v1/admin/users?{bad}", headers=admin.headers)
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["code"] == "invalid_query"


async def test_admin_lists_every_users_jobs_with_filters(
    client: Client, admin: User, sample_mp4: Path
) -> None:
    alice = await register_and_login(client)
    bob = await register_and_login(client)
    a_video = await upload(client, alice, sample_mp4)
    b_video = await upload(client, bob, sample_mp4)
    a_thumb = await queue_job(client, alice, a_video, "thumbnail")
    b_thumb = await queue_job(client, bob, b_video, "thumbnail")
    b_frames = await queue_job(client, bob, b_video, "frames")

    async def ids(query: str = "") -> list[str]:
        resp = await client.get(f"/api/v1/admin/jobs?{query}", headers=admin.headers)
        assert resp.status == 200, await resp.text()
        return [j["id"] for j in (await resp.json())["items"]]

    assert await ids() == [b_frames, b_thumb, a_thumb]
    assert await ids(f"user_id={alice.id}") == [a_thumb]
    assert await ids("operation=thumbnail") == [b_thumb, a_thumb]
    assert await ids("status=queued&operation=frames") == [b_frames]
    assert await ids("status=succeeded") == []
    assert await ids("created_after=2999-01-01T00:00:00Z") == []
    assert await ids("created_before=2000-01-01") == []
    resp = await client.get("/api/v1/admin/jobs?limit=2", headers=admin.headers)
    page = await resp.json()
    assert page["items"][0]["user_id"] == bob.id
    resp = await client.get(
        f"/api/v1/admin/jobs?limit=2&cursor={page['next_cursor']}", headers=admin.headers
    )
    assert [j["id"] for j in (await resp.json())["items"]] == [a_thumb]
    for bad in ("status=done", "user_id=x", "created_after=yesterday"):
        resp = await client.get(f"/api/v1/admin/jobs?{bad}", headers=admin.headers)
        assert resp.status == 400, bad


async def test_the_summary_counts_are_right(
    client: Client, admin: User, sample_mp4: Path, settings: Settings
) -> None:
    app = client.app
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM workers")
    alice = await register_and_login(client)
    bob = await register_and_login(client)
    await make_viewer(client, admin)
    resp = await client.post(f"/api/v1/admin/users/{bob.id}/disable", headers=admin.headers)
    assert resp.status == 200
    video = await upload(client, alice, sample_mp4)
    await upload(client, alice, sample_mp4)
    await queue_job(client, alice, video, "thumbnail")
    await queue_job(client, alice, video, "frames")
    job = await queue_job(client, alice, video, "thumbnail")
    resp = await client.post(f"/api/v1/jobs/{job}/cancel", headers=alice.headers)
    assert resp.status == 202

    # A runner's heartbeat is what makes a worker "seen".
    runner = JobRunner(
        pool=app[appkeys.POOL],
        storage=app[appkeys.STORAGE],
        settings=settings,
        ffmpeg="ffmpeg",
        operations={},
        worker_id="test-worker-1",
    )
    await runner.heartbeat()

    resp = await client.get("/api/v1/admin/summary", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    summary = await resp.json()
    assert summary["users"] == {
        "total": 4,
        "by_role": {"admin": 1, "user": 2, "viewer": 1},
        "disabled": 1,
    }
    assert summary["videos"] == 2
    assert summary["bytes_stored"] == 2 * sample_mp4.stat().st_size
    assert summary["jobs_by_status"] == {"queued": 2, "canceled": 1}
    [worker] = summary["workers"]
    assert worker["worker_id"] == "test-worker-1"
    assert worker["running"] == 0

    # A worker not seen for over a minute is not counted.
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE workers SET seen_at = now() - interval '61 seconds'")
    resp = await client.get("/api/v1/admin/summary", headers=admin.headers)
    assert (await resp.json())["workers"] == []


async def test_admin_deletes_any_video(client: Client, admin: User, sample_mp4: Path) -> None:
    owner = await register_and_login(client)
    video = await upload(client, owner, sample_mp4)
    resp = await client.delete(f"/api/v1/admin/videos/{video}", headers=admin.headers)
    assert resp.status == 204
    resp = await client.get(f"/api/v1/videos/{video}", headers=owner.headers)
    assert resp.status == 404
    resp = await client.delete(f"/api/v1/admin/videos/{video}", headers=admin.headers)
    assert resp.status == 404


# --- disabling ---------------------------------------------------------------------


async def _socket(client: Client, token: str) -> Any:
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": token})
    ready = await ws.receive_json(timeout=5)
    assert ready["type"] == "ready", ready
    assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    return ws


async def test_disabling_closes_sockets_and_kills_tokens_and_keys(
    client: Client, admin: User, user: User
) -> None:
    resp = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "scopes": ["videos:read"]},
        headers=user.headers,
    )
    secret = (await resp.json())["secret"]
    session_ws = await _socket(client, user.access_token)
    key_ws = await _socket(client, secret)
    # Another user's socket is left alone.
    other = await register_and_login(client)
    other_ws = await _socket(client, other.access_token)

    resp = await client.post(f"/api/v1/admin/users/{user.id}/disable", headers=admin.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["disabled"] is True and body["disabled_at"]

    for ws in (session_ws, key_ws):
        msg = await ws.receive(timeout=5)
        assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
    await other_ws.send_json({"type": "ping"})
    assert await other_ws.receive_json(timeout=5) == {"type": "pong"}
    await other_ws.close()

    # The access token, the key, the refresh token: all refused.
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "account_disabled"
    resp = await client.get("/api/v1/videos", headers={"X-API-Key": secret})
    assert resp.status == 401
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert resp.status == 401
    # A new socket is refused too.
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": user.access_token})
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "account_disabled")
    # Login: the right password gets a clear refusal; a wrong one is just wrong.
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "account_disabled"
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": "nope"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    # The admin's list shows it.
    resp = await client.get("/api/v1/admin/users?disabled=true", headers=admin.headers)
    assert [u["id"] for u in (await resp.json())["items"]] == [user.id]

    # Enabled again: a new login works; what was revoked stays revoked.
    resp = await client.post(f"/api/v1/admin/users/{user.id}/enable", headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["disabled"] is False
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status == 200
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    assert resp.status == 401
    resp = await client.get("/api/v1/videos", headers={"X-API-Key": secret})
    assert resp.status == 401
    # The access token from before the disable does not come back to life.
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "session_ended"


async def test_an_admin_cannot_disable_themselves(client: Client, admin: User) -> None:
    resp = await client.post(f"/api/v1/admin/users/{admin.id}/disable", headers=admin.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "cannot_disable_self"
    resp = await client.post(f"/api/v1/admin/users/{uuid.uuid4()}/disable", headers=admin.headers)
    assert resp.status == 404


async def test_revoking_a_key_closes_the_sockets_it_opened(client: Client, user: User) -> None:
    keys = []
    for name in ("a", "b"):
        resp = await client.post(
            "/api/v1/api-keys", json={"name": name, "scopes": ["videos:read"]}, headers=user.headers
        )
        keys.append(await resp.json())
    revoked_ws = await _socket(client, keys[0]["secret"])
    kept_ws = await _socket(client, keys[1]["secret"])
    session_ws = await _socket(client, user.access_token)
    resp = await client.delete(f"/api/v1/api-keys/{keys[0]['id']}", headers=user.headers)
    assert resp.status == 204
    msg = await revoked_ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "session_revoked")
    for ws in (kept_ws, session_ws):
        await ws.send_json({"type": "ping"})
        assert await ws.receive_json(timeout=5) == {"type": "pong"}
        await ws.close()


async def test_create_admin_accepts_every_role_and_reenables(
    client: Client, admin: User, user: User
) -> None:
    admins = client.app[appkeys.ADMIN]
    await admins.create_account(user.email, "new password 1", role="viewer")
    resp = await client.get(f"/api/v1/admin/users/{user.id}", headers=admin.headers)
    assert (await resp.json())["role"] == "viewer"
    await client.post(f"/api/v1/admin/users/{user.id}/disable", headers=admin.headers)
    await admins.create_admin(user.email, "new password 2")
    resp = await client.get(f"/api/v1/admin/users/{user.id}", headers=admin.headers)
    body = await resp.json()
    assert (body["role"], body["disabled"]) == ("admin", False)
    # The database refuses any other role.
    import asyncpg

    async with client.app[appkeys.POOL].acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE users SET role = 'root' WHERE id = $1::uuid", user.id)


async def test_a_disabled_accounts_upload_urls_are_refused(
    client: Client, admin: User, user: User, sample_mp4: Path
) -> None:
    resp = await client.post("/api/v1/direct-uploads", json={}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    url = (await resp.json())["url"]
    path = url[url.index("/api/v1/") :]
    await client.post(f"/api/v1/admin/users/{user.id}/disable", headers=admin.headers)
    resp = await client.put(path, data=sample_mp4.read_bytes())
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "account_disabled"
    # Enabled again, the same URL works (it was never used).
    await client.post(f"/api/v1/admin/users/{user.id}/enable", headers=admin.headers)
    resp = await client.put(path, data=sample_mp4.read_bytes())
    assert resp.status == 201, await resp.text()


async def test_the_command_line_sets_any_role(
    client: Client, admin: User, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import run

    args = run._parser().parse_args(["create-admin", "v@example.com", "--account-role", "viewer"])
    assert (args.email, args.account_role) == ("v@example.com", "viewer")
    assert run._parser().parse_args(["create-admin", "a@example.com"]).account_role == "admin"
    with pytest.raises(SystemExit):
        run._parser().parse_args(["create-admin", "r@example.com", "--account-role", "root"])
    await run._create_admin(settings, "v@example.com", "viewer password", args.account_role)
    assert "\nviewer v@example.com (" in capsys.readouterr().out
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "v@example.com", "password": "viewer password"}
    )
    token = (await resp.json())["access_token"]
    me = await (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["role"] == "viewer"
    created = await one_audit_row(client, admin, "user.create_cli", me["id"])
    assert (created["actor"]["type"], created["detail"]) == (
        "system",
        {"role": "viewer", "existing": False},
    )


async def one_audit_row(client: Client, admin: User, action: str, target: str) -> dict[str, Any]:
    resp = await client.get(
        "/api/v1/admin/audit",
        params={"action": action, "target_id": target},
        headers=admin.headers,
    )
    [row] = (await resp.json())["items"]
    return dict(row)
