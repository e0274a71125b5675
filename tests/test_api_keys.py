"""API keys against the real server: scopes, revocation, expiry, uploads with curl, WebSocket."""

from __future__ import annotations

import asyncio
import json
import shutil
import typing
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from server import appkeys
from server.apikeys.schemas import Scope
from server.auth import permissions
from tests.conftest import User
from tests.test_admin import make_admin

Client = TestClient[Any, Any]
KEYS = "/api/v1/api-keys"


async def create_key(client: Client, owner: User, *scopes: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "script", "scopes": list(scopes), **extra}
    resp = await client.post(KEYS, json=body, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    return typing.cast(dict[str, Any], await resp.json())


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def upload(client: Client, headers: dict[str, str], clip: Path) -> Any:
    resp = await client.put("/api/v1/uploads/clip.mp4", data=clip.read_bytes(), headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_key_is_shown_once_and_listed_by_its_prefix(client: Client, user: User) -> None:
    created = await create_key(client, user, "videos:read", "videos:write")
    secret = created["secret"]
    assert secret.startswith("ff_") and len(secret) >= 3 + 43  # 256 bits of URL-safe base64
    assert secret.startswith(created["prefix"]) and len(created["prefix"]) < len(secret)
    assert created["scopes"] == ["videos:read", "videos:write"]
    assert created["last_used_at"] is None and created["expires_at"] is None
    resp = await client.get(KEYS, headers=user.headers)
    [listed] = (await resp.json())["items"]
    assert "secret" not in listed and listed["prefix"] == created["prefix"]
    # Stored as a hash only.
    async with client.app[appkeys.POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM api_keys")
    assert secret.encode() not in b"".join(str(v).encode() for v in row.values())


async def test_write_only_key_uploads_with_curl_and_is_refused_a_job(
    client: Client, user: User, sample_mp4: Path
) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    secret = (await create_key(client, user, "videos:write"))["secret"]
    url = str(client.make_url("/api/v1/uploads/"))
    proc = await asyncio.create_subprocess_exec(
        curl, "-sS", "-T", str(sample_mp4), "-H", f"X-API-Key: {secret}", "-w", "\n%{http_code}",
        url, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    body, _, status = out.decode().rpartition("\n")
    assert status == "201", body
    video_id = json.loads(body)["id"]

    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs",
        json={"operation": "thumbnail", "params": {}},
        headers=bearer(secret),
    )
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "insufficient_scope" and error["scope"] == "jobs:write"
    # Nor may it read: that is videos:read.
    resp = await client.get("/api/v1/videos", headers=bearer(secret))
    assert resp.status == 403 and (await resp.json())["error"]["scope"] == "videos:read"
    # Delete is videos:write.
    resp = await client.delete(f"/api/v1/videos/{video_id}", headers=bearer(secret))
    assert resp.status == 204


async def test_revoked_key_is_401_at_once(client: Client, user: User) -> None:
    created = await create_key(client, user, "videos:read")
    headers = {"X-API-Key": created["secret"]}
    assert (await client.get("/api/v1/videos", headers=headers)).status == 200
    resp = await client.delete(f"{KEYS}/{created['id']}", headers=user.headers)
    assert resp.status == 204
    resp = await client.get("/api/v1/videos", headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.delete(f"{KEYS}/{created['id']}", headers=user.headers)
    assert resp.status == 404


async def test_expired_key_is_401(client: Client, user: User) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    created = await create_key(client, user, "videos:read", expires_at=soon.isoformat())
    assert created["expires_at"] is not None
    headers = bearer(created["secret"])
    assert (await client.get("/api/v1/videos", headers=headers)).status == 200
    await asyncio.sleep(1.6)
    resp = await client.get("/api/v1/videos", headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "token_expired"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "scopes": ["videos:read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["videos:everything"]}, "scopes.0"),
        ({"name": "x", "scopes": ["videos:read"], "expires_at": "2020-01-01T00:00:00Z"}, None),
        ({"name": "x", "scopes": ["videos:read"], "expires_at": "2999-01-01T00:00:00"}, None),
        ({"name": "x", "scopes": ["videos:read"], "extra": 1}, "extra"),
    ],
)
async def test_invalid_key_requests_are_400(
    client: Client, user: User, body: dict[str, Any], field: str | None
) -> None:
    resp = await client.post(KEYS, json=body, headers=user.headers)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_field"
    if field is not None:
        assert error["field"] == field


async def test_unknown_and_deleted_owners_keys_are_401(client: Client, user: User) -> None:
    resp = await client.get("/api/v1/videos", headers=bearer("ff_" + "A" * 43))
    assert resp.status == 401
    secret = (await create_key(client, user, "videos:read"))["secret"]
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.id))
    resp = await client.get("/api/v1/videos", headers=bearer(secret))
    assert resp.status == 401


async def test_admin_scope_is_for_admins_only(client: Client, user: User, settings: Any) -> None:
    resp = await client.post(KEYS, json={"name": "x", "scopes": ["admin"]}, headers=user.headers)
    assert resp.status == 403
    assert (await resp.json())["error"] == {
        "code": "scope_not_allowed",
        "message": "Only administrators can create keys with the 'admin' scope",
        "scope": "admin",
    }
    admin = await make_admin(client, settings)
    admin_key = (await create_key(client, admin, "admin"))["secret"]
    resp = await client.get(f"/api/v1/admin/users/{user.id}", headers=bearer(admin_key))
    assert resp.status == 200
    # An administrator's key without the admin scope is refused admin routes.
    read_key = (await create_key(client, admin, "videos:read"))["secret"]
    resp = await client.get(f"/api/v1/admin/users/{user.id}", headers=bearer(read_key))
    assert resp.status == 403 and (await resp.json())["error"]["scope"] == "admin"
    # Demoted: the key keeps its row but loses what the role no longer allows.
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE users SET role = 'user' WHERE id = $1", uuid.UUID(admin.id))
    resp = await client.get(f"/api/v1/admin/users/{user.id}", headers=bearer(admin_key))
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "admin_required"


async def test_keys_cannot_manage_keys_or_the_account(client: Client, user: User) -> None:
    secret = (await create_key(client, user, *permissions.ROLE_SCOPES["user"]))["secret"]
    for method, path in [("POST", KEYS), ("GET", KEYS), ("PATCH", "/api/v1/me")]:
        resp = await client.request(method, path, json={}, headers=bearer(secret))
        assert resp.status == 403, (method, path)
        assert (await resp.json())["error"]["code"] == "session_required"
    assert (await client.get("/api/v1/me", headers=bearer(secret))).status == 200


async def test_last_used_at_is_written_at_most_once_a_minute(client: Client, user: User) -> None:
    created = await create_key(client, user, "videos:read")
    for _ in range(3):
        assert (await client.get("/api/v1/videos", headers=bearer(created["secret"]))).status == 200
    [listed] = (await (await client.get(KEYS, headers=user.headers)).json())["items"]
    first = listed["last_used_at"]
    assert first is not None
    await client.get("/api/v1/videos", headers=bearer(created["secret"]))
    [listed] = (await (await client.get(KEYS, headers=user.headers)).json())["items"]
    assert listed["last_used_at"] == first


async def test_websocket_authenticates_with_a_key(client: Client, user: User) -> None:
    good = (await create_key(client, user, "videos:read"))["secret"]
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": good})
    assert await ws.receive_json(timeout=5) == {"type": "ready", "user_id": user.id}
    await ws.close()

    blind = (await create_key(client, user, "videos:write"))["secret"]
    ws = await client.ws_connect("/api/v1/ws")
    await ws.send_json({"type": "auth", "token": blind})
    msg = await ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (WSMsgType.CLOSE, 4401, "insufficient_scope")
    await ws.close()


async def test_rate_limits_count_a_keys_calls_against_its_owner(
    make_settings: Any, aiohttp_client: Any, sample_mp4: Path
) -> None:
    from server.app import create_app
    from tests.conftest import register_and_login, truncate_all

    app = create_app(make_settings(rate_limit_uploads_per_hour=1))
    limited = await aiohttp_client(app)
    await truncate_all(app)
    owner = await register_and_login(limited)
    secret = (await create_key(limited, owner, "videos:write"))["secret"]
    await upload(limited, bearer(secret), sample_mp4)
    resp = await limited.put(
        "/api/v1/uploads/again.mp4", data=sample_mp4.read_bytes(), headers=owner.headers
    )
    assert resp.status == 429


def test_every_route_has_a_permission_and_scopes_match_the_schema(app: Any) -> None:
    assert set(typing.get_args(Scope)) == set(permissions.SCOPES)
    missing = []
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or resource.canonical == "/static":
            continue
        if permissions.required_scope(route.method, resource.canonical) is None:
            missing.append((route.method, resource.canonical))
    assert missing == []
