"""`/api/v1/admin/users/{id}`: administrators read and change quotas and roles."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from tests.conftest import User, register_and_login

Client = TestClient[Any, Any]


async def make_admin(client: Client, settings: Settings) -> User:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    password = "admin password"
    await client.app[appkeys.ADMIN].create_admin(email, password)
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    return User(
        (await me.json())["id"], email, password, body["access_token"], body["refresh_token"]
    )


@pytest.fixture
async def admin(client: Client, settings: Settings) -> User:
    return await make_admin(client, settings)


def url(user_id: str) -> str:
    return f"/api/v1/admin/users/{user_id}"


async def test_admin_reads_and_raises_a_quota(client: Client, admin: User, user: User) -> None:
    resp = await client.get(url(user.id), headers=admin.headers)
    assert resp.status == 200, await resp.text()
    before = await resp.json()
    assert before["email"] == user.email and before["role"] == "user"
    assert before["used_bytes"] == 0

    resp = await client.patch(url(user.id), json={"quota_bytes": 12345}, headers=admin.headers)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["quota_bytes"] == 12345 and body["role"] == "user"
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["quota_bytes"] == 12345


async def test_admin_changes_a_role(client: Client, admin: User, user: User) -> None:
    resp = await client.patch(url(user.id), json={"role": "admin"}, headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["role"] == "admin"
    # The new role is in the next access token: the promoted user can now administer.
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token})
    token = (await resp.json())["access_token"]
    resp = await client.get(url(admin.id), headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


async def test_non_admins_are_refused(client: Client, user: User) -> None:
    other = await register_and_login(client)
    for method in ("GET", "PATCH"):
        resp = await client.request(
            method, url(other.id), json={"quota_bytes": 10**12}, headers=user.headers
        )
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["error"]["code"] == "admin_required"
    # Not even on their own account.
    resp = await client.patch(url(user.id), json={"quota_bytes": 10**12}, headers=user.headers)
    assert resp.status == 403
    resp = await client.patch(url(user.id), json={"quota_bytes": 1})
    assert resp.status == 401


async def test_unknown_user_is_404(client: Client, admin: User) -> None:
    for method in ("GET", "PATCH"):
        resp = await client.request(
            method, url(str(uuid.uuid4())), json={"role": "user"}, headers=admin.headers
        )
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "user_not_found"
    resp = await client.get(url("not-a-uuid"), headers=admin.headers)
    assert resp.status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quota_bytes": -1}, "quota_bytes"),
        ({"quota_bytes": 1.5}, "quota_bytes"),
        ({"quota_bytes": "10"}, "quota_bytes"),
        ({"quota_bytes": True}, "quota_bytes"),
        ({"quota_bytes": 2**63}, "quota_bytes"),
        ({"role": "root"}, "role"),
        ({"role": 1}, "role"),
        ({"email": "x@example.com"}, "email"),
        ({}, None),
    ],
)
async def test_bad_values_are_400(
    client: Client, admin: User, user: User, body: dict[str, Any], field: str | None
) -> None:
    resp = await client.patch(url(user.id), json=body, headers=admin.headers)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_field"
    assert error.get("field") == field
    if field == "email":  # an unknown field: the message says what the body takes
        assert "quota_bytes, role" in error["message"]
    after = await (await client.get(url(user.id), headers=admin.headers)).json()
    assert after["role"] == "user"


async def test_an_admin_cannot_demote_themselves(client: Client, admin: User) -> None:
    resp = await client.patch(url(admin.id), json={"role": "user"}, headers=admin.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "cannot_demote_self"
    resp = await client.patch(url(admin.id), json={"quota_bytes": 0}, headers=admin.headers)
    assert resp.status == 200
