"""The audit log (issue 10 §4): a row for each listed action, with the right actor
and outcome; the export streams JSON Lines; retention deletes only old rows; the
database refuses to change or delete history; no secret ever lands in a row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.audit.model import ACTIONS, SYSTEM, Target
from server.audit.service import SecretInDetail, check_detail
from server.cleanup.sweep import run_sweep
from tests.conftest import PASSWORD, User, register_and_login
from tests.test_admin import make_admin

Client = TestClient[Any, Any]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers_enabled=False, webhook_allowed_hosts="127.0.0.1")


@pytest.fixture
async def admin(client: Client, settings: Settings) -> User:
    return await make_admin(client, settings)


async def rows(client: Client, admin: User, **query: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/admin/audit", params=query, headers=admin.headers)
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["items"])


async def one(client: Client, admin: User, **query: str) -> dict[str, Any]:
    found = await rows(client, admin, **query)
    assert len(found) == 1, found
    return found[0]


async def upload(client: Client, user: User, clip: Path) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{clip.name}", data=clip.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


def actor(row: dict[str, Any]) -> tuple[str, str | None, str | None]:
    a = row["actor"]
    return a["type"], a["user_id"], a["api_key_id"]


async def test_each_listed_action_is_recorded_with_its_actor_and_outcome(
    client: Client, admin: User, sample_mp4: Path
) -> None:
    ua = {"User-Agent": "audit-test/1.0", "X-Request-ID": "req-audit-1"}
    email = f"audited-{uuid.uuid4().hex[:6]}@example.com"
    resp = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert resp.status == 202
    async with client.app[appkeys.POOL].acquire() as conn:  # as the mailed link would
        await conn.execute("UPDATE users SET email_verified_at = now() WHERE email = $1", email)
    secrets: list[str] = [PASSWORD]

    # Logins: success, wrong password, unknown email.
    resp = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=ua
    )
    tokens = await resp.json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    user_id = (await (await client.get("/api/v1/me", headers=headers)).json())["id"]
    registered = await one(client, admin, action="auth.register", actor=user_id)
    assert registered["target"] == {"type": "user", "id": user_id}
    login = await one(client, admin, action="auth.login", actor=user_id)
    assert actor(login) == ("user", user_id, None)
    assert (login["outcome"], login["target"]) == ("success", {"type": "user", "id": user_id})
    assert (login["user_agent"], login["request_id"]) == ("audit-test/1.0", "req-audit-1")
    assert login["client_ip"] == "127.0.0.1"

    resp = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong " + PASSWORD}
    )
    assert resp.status == 401
    secrets.append("wrong " + PASSWORD)
    failed = await one(client, admin, action="auth.login_failed", target_id=user_id)
    assert actor(failed) == ("anonymous", None, None)
    assert failed["outcome"] == "failure"
    assert failed["detail"] == {"reason": "wrong_password", "email": email}
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x y z w"}
    )
    assert resp.status == 401
    failures = await rows(client, admin, action="auth.login_failed")
    assert any(r["detail"].get("reason") == "unknown_email" for r in failures)

    # API keys: created and revoked, by the owner's session.
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "ci", "scopes": ["videos:write"]}, headers=headers
    )
    key = await resp.json()
    secrets.append(key["secret"])
    created = await one(client, admin, action="apikey.create", actor=user_id)
    assert created["target"] == {"type": "api_key", "id": key["id"]}
    assert created["detail"]["scopes"] == ["videos:write"]
    assert created["detail"]["prefix"] == key["prefix"]

    # A video deleted by its owner through an API key: the key is the actor.
    video = await upload(client, User(user_id, email, PASSWORD, key["secret"], ""), sample_mp4)
    resp = await client.delete(f"/api/v1/videos/{video}", headers={"X-API-Key": key["secret"]})
    assert resp.status == 204
    deleted = await one(client, admin, action="video.delete", target_id=video)
    assert actor(deleted) == ("api_key", user_id, key["id"])
    assert deleted["detail"]["reason"] == "owner"

    resp = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=headers)
    assert resp.status == 204
    revoked = await one(client, admin, action="apikey.revoke", actor=user_id)
    assert revoked["target"]["id"] == key["id"]

    # Webhooks.
    resp = await client.post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]},
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    hook = await resp.json()
    secrets.append(hook["secret"])
    assert (await one(client, admin, action="webhook.create", actor=user_id))["target"][
        "id"
    ] == hook["id"]
    await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=headers)
    assert (await one(client, admin, action="webhook.delete", actor=user_id))["outcome"] == (
        "success"
    )

    # Admin actions: role, quota, disable, enable, deleting someone's video.
    admin_url = f"/api/v1/admin/users/{user_id}"
    changes = {"role": "viewer", "quota_bytes": 10**9}
    await client.patch(admin_url, json=changes, headers=admin.headers)
    role = await one(client, admin, action="user.role_change", target_id=user_id)
    assert actor(role) == ("user", admin.id, None)
    assert role["detail"] == {"from": "user", "to": "viewer"}
    quota = await one(client, admin, action="user.quota_change", target_id=user_id)
    assert quota["detail"]["to"] == 10**9
    await client.patch(admin_url, json={"role": "user"}, headers=admin.headers)
    await client.post(f"{admin_url}/disable", headers=admin.headers)
    disabled = await one(client, admin, action="user.disable", target_id=user_id)
    assert disabled["detail"]["sessions_revoked"] == 1
    await client.post(f"{admin_url}/enable", headers=admin.headers)
    assert (await one(client, admin, action="user.enable", target_id=user_id))["outcome"] == (
        "success"
    )
    resp = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=ua
    )
    tokens = await resp.json()
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    owner = User(user_id, email, PASSWORD, tokens["access_token"], tokens["refresh_token"])
    video = await upload(client, owner, sample_mp4)
    await client.delete(f"/api/v1/admin/videos/{video}", headers=admin.headers)
    by_admin = await one(client, admin, action="video.delete", target_id=video)
    assert actor(by_admin) == ("user", admin.id, None)
    assert by_admin["detail"] == {
        "reason": "admin",
        "owner_id": user_id,
        "filename": sample_mp4.name,
        "bytes_freed": sample_mp4.stat().st_size,
    }

    # Refresh-token reuse, then logout.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    rotated = await resp.json()
    secrets += [rotated["access_token"], rotated["refresh_token"]]
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": owner.refresh_token})
    assert resp.status == 401
    reuse = await one(client, admin, action="auth.refresh_reuse", target_id=user_id)
    assert (actor(reuse)[0], reuse["outcome"]) == ("anonymous", "denied")
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    last = await resp.json()
    resp = await client.post("/api/v1/auth/logout", json={"refresh_token": last["refresh_token"]})
    assert resp.status == 204
    assert (await one(client, admin, action="auth.logout", actor=user_id))["outcome"] == "success"
    # Repeating the logout ends nothing and records nothing.
    await client.post("/api/v1/auth/logout", json={"refresh_token": last["refresh_token"]})
    assert len(await rows(client, admin, action="auth.logout", actor=user_id)) == 1

    # Disabled login: denied, on record.
    await client.post(f"{admin_url}/disable", headers=admin.headers)
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status == 403
    denied = [
        r
        for r in await rows(client, admin, action="auth.login_failed", target_id=user_id)
        if r["outcome"] == "denied"
    ]
    assert [r["detail"]["reason"] for r in denied] == ["account_disabled"]

    # Filters: a prefix, a time range.
    auth_rows = await rows(client, admin, action="auth.", target_id=user_id)
    assert {r["action"] for r in auth_rows} == {
        "auth.login",
        "auth.login_failed",
        "auth.logout",
        "auth.refresh_reuse",
        "auth.register",
    }
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await rows(client, admin, since=future) == []

    # No row anywhere holds a secret.
    everything = json.dumps(await all_rows(client), default=str)
    for secret in secrets:
        assert secret not in everything


async def all_rows(client: Client) -> list[dict[str, Any]]:
    async with client.app[appkeys.POOL].acquire() as conn:
        return [dict(r) for r in await conn.fetch("SELECT *, detail::text FROM audit_log")]


async def test_expiry_deletes_are_recorded_as_the_systems(
    client: Client, admin: User, user: User, sample_mp4: Path
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE videos SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid", video
        )
    report = await run_sweep(
        app[appkeys.POOL], app[appkeys.VIDEOS], app[appkeys.STORAGE], app[appkeys.SETTINGS]
    )
    assert report.video_ids == [video]
    row = await one(client, admin, action="video.delete", target_id=video)
    assert actor(row) == ("system", None, None)
    assert row["detail"]["reason"] == "expired" and row["detail"]["owner_id"] == user.id


async def test_users_see_their_own_security_events_only(
    client: Client, admin: User, user: User
) -> None:
    other = await register_and_login(client)
    await client.post(f"/api/v1/admin/users/{user.id}/disable", headers=admin.headers)
    await client.post(f"/api/v1/admin/users/{user.id}/enable", headers=admin.headers)
    resp = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    resp = await client.get("/api/v1/me/security-events?limit=2", headers=headers)
    assert resp.status == 200
    page = await resp.json()
    assert [r["action"] for r in page["items"]] == ["auth.login", "user.enable"]
    resp = await client.get(
        f"/api/v1/me/security-events?cursor={page['next_cursor']}", headers=headers
    )
    assert [r["action"] for r in (await resp.json())["items"]] == [
        "user.disable",
        "auth.login",
        "auth.register",
    ]
    resp = await client.get("/api/v1/me/security-events", headers=other.headers)
    mine = (await resp.json())["items"]
    assert [r["action"] for r in mine] == ["auth.login", "auth.register"]
    assert all(user.id not in json.dumps(r) for r in mine)


async def test_export_streams_json_lines(client: Client, admin: User) -> None:
    # The log outlives each test's TRUNCATE (it refuses one), so this test looks only at
    # its own rows: however many earlier tests of this run logged in, the page below holds all.
    since = datetime.now(UTC).isoformat()
    for _ in range(3):
        await register_and_login(client)
    resp = await client.get(
        "/api/v1/admin/audit/export",
        params={"action": "auth.login", "since": since},
        headers=admin.headers,
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    assert "chunked" in resp.headers.get("Transfer-Encoding", "")
    text = await resp.text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    page = await rows(client, admin, action="auth.login", since=since, limit="100")
    # Oldest first in the export, newest first in the list: the same rows.
    assert [r["id"] for r in lines] == [r["id"] for r in reversed(page)]
    assert len(lines) == 3 and all(r["action"] == "auth.login" for r in lines)
    # The export is itself on record.
    exported = await rows(client, admin, action="admin.audit_export")
    assert exported[0]["detail"]["action"] == "auth.login"
    assert exported[0]["actor"]["user_id"] == admin.id


async def test_export_holds_one_cursor_not_the_whole_result(client: Client, admin: User) -> None:
    """5,000 rows come through the server-side cursor in chunks (read here piece by
    piece), each line a whole JSON object; the response is chunked, never sized up
    front, since the server never holds the whole result."""
    marker = uuid.uuid4().hex
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            """
            INSERT INTO audit_log (actor_type, action, target_type, target_id, outcome, detail)
            SELECT 'system', 'user.enable', 'bulk', $1, 'success', jsonb_build_object('n', n)
            FROM generate_series(1, 5000) AS n
            """,
            marker,
        )
    resp = await client.get(
        "/api/v1/admin/audit/export",
        params={"target_type": "bulk", "target_id": marker},
        headers=admin.headers,
    )
    count = 0
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            assert json.loads(line)["target"]["id"] == marker
            count += 1
    assert buffer == b"" and count == 5000
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.headers


async def test_retention_deletes_only_old_rows(
    client: Client, make_settings: Callable[..., Settings]
) -> None:
    app = client.app
    marker = uuid.uuid4().hex
    async with app[appkeys.POOL].acquire() as conn:
        for days in (400, 366, 364, 1):
            await conn.execute(
                """INSERT INTO audit_log (created_at, actor_type, action, target_type, target_id,
                                          outcome)
                   VALUES (now() - make_interval(days => $1), 'system', 'user.enable', 'age',
                           $2, 'success')""",
                days,
                marker,
            )
    report = await run_sweep(
        app[appkeys.POOL],
        app[appkeys.VIDEOS],
        app[appkeys.STORAGE],
        make_settings(audit_retention_days=365),
        audit=app[appkeys.AUDIT],
    )
    assert report.errors == []
    assert report.audit_rows_deleted >= 2
    async with app[appkeys.POOL].acquire() as conn:
        left = await conn.fetch(
            "SELECT now() - created_at AS age FROM audit_log WHERE target_id = $1 ORDER BY 1",
            marker,
        )
    assert [r["age"].days for r in left] == [1, 364]
    # 0 keeps everything.
    assert await app[appkeys.AUDIT].delete_expired(datetime.now(UTC), 0) == 0


async def test_the_database_refuses_to_change_history(client: Client, admin: User) -> None:
    async with client.app[appkeys.POOL].acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_log SET outcome = 'failure'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("TRUNCATE audit_log")
        # The retention setting opens only rows older than its cutoff: a delete
        # reaching a newer row fails as a whole.
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('frameflow.audit_delete_before', $1, true)",
                (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # a savepoint
                    await conn.execute("DELETE FROM audit_log")
        count = await conn.fetchval("SELECT count(*) FROM audit_log")
    assert count > 0
    # And no API route writes to it other than by recording.
    doc = await (await client.get("/api/v1/openapi.json")).json()
    for path, ops in doc["paths"].items():
        if "audit" in path or "security-events" in path:
            assert set(ops) == {"get"}, path


async def test_details_never_hold_secrets() -> None:
    with pytest.raises(SecretInDetail):
        check_detail({"password": "x"})
    with pytest.raises(SecretInDetail):
        check_detail({"nested": {"refresh_token": "x"}})
    # Values that look like a credential (user input: a key pasted as an email)
    # are redacted rather than refused, so that a login never fails on them.
    assert check_detail({"note": "ff_" + "a" * 43}) == {"note": "[redacted]"}
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"
    assert check_detail({"n": {"note": jwt}}) == {"n": {"note": "[redacted]"}}
    # A key's shown prefix is not a secret.
    assert check_detail({"prefix": "ff_abcdefgh"}) == {"prefix": "ff_abcdefgh"}
    assert "password.change" in ACTIONS and "email.verify" in ACTIONS


async def test_unknown_actions_are_a_bug(client: Client) -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        await client.app[appkeys.AUDIT].record("user.teleport", actor=SYSTEM, target=Target("x"))


async def test_audit_queries_refuse_bad_filters(client: Client, admin: User) -> None:
    for bad in ("actor=me", "since=soon", "limit=101", "action=" + "a" * 65, "cursor=!"):
        resp = await client.get(f"/api/v1/admin/audit?{bad}", headers=admin.headers)
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["code"] == "invalid_query"


async def test_a_key_pasted_as_an_email_is_redacted_not_a_500(client: Client, admin: User) -> None:
    pasted = "ff_" + "k" * 43 + "@example.com"
    resp = await client.post("/api/v1/auth/login", json={"email": pasted, "password": "x" * 9})
    assert resp.status == 401
    failures = await rows(client, admin, action="auth.login_failed")
    assert failures[0]["detail"] == {"reason": "unknown_email", "email": "[redacted]"}
    assert pasted not in json.dumps(await all_rows(client), default=str)
