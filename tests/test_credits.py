"""Credits: the sign-up grant, the ledger summing to the account, an admin's grant
and adjustment, and holds racing on one account never taking it below zero."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.db import credits as credits_db
from server.errors import PaymentRequired
from tests.conftest import User, register_and_login
from tests.test_admin import make_admin

Client = TestClient[Any, Any]


async def _credits(client: Client, user: User) -> dict[str, Any]:
    resp = await client.get("/api/v1/credits", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


async def _ledger_matches(client: Client, user_id: uuid.UUID) -> tuple[int, int]:
    async with client.app[appkeys.POOL].acquire() as conn:
        account = await credits_db.get_account(conn, user_id)
        sums = await credits_db.sums(conn, user_id)
    assert account is not None
    assert sums == (account.balance, account.held)
    return sums


async def test_new_account_gets_the_signup_grant(client: Client, user: User) -> None:
    grant = client.app[appkeys.SETTINGS].credits_signup_grant
    assert await _credits(client, user) == {"balance": grant, "held": 0}
    resp = await client.get("/api/v1/credits/transactions", headers=user.headers)
    body = await resp.json()
    assert [t["kind"] for t in body["items"]] == ["grant"]
    assert body["items"][0]["balance_after"] == grant
    assert body["next_cursor"] is None
    await _ledger_matches(client, uuid.UUID(user.id))


async def test_admin_grants_and_adjusts(client: Client, user: User, settings: Settings) -> None:
    admin = await make_admin(client, settings)
    url = f"/api/v1/admin/users/{user.id}/credits"
    resp = await client.post(url, json={"amount": 50, "reason": "promo"}, headers=admin.headers)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["transaction"]["kind"] == "grant"
    assert body["transaction"]["actor_id"] == admin.id
    balance = settings.credits_signup_grant + 50
    assert body["account"] == {"balance": balance, "held": 0}

    resp = await client.post(
        url, json={"kind": "adjustment", "amount": -(balance + 1)}, headers=admin.headers
    )
    assert resp.status == 402
    assert (await resp.json())["error"]["code"] == "insufficient_credits"
    resp = await client.post(url, json={"kind": "adjustment", "amount": -30}, headers=admin.headers)
    assert resp.status == 201
    assert (await _credits(client, user))["balance"] == balance - 30
    # Both changes are on the audit record; the refused one is not.
    resp = await client.get(
        f"/api/v1/admin/audit?action=credits.change&target_id={user.id}", headers=admin.headers
    )
    entries = (await resp.json())["items"]
    assert [(e["detail"]["kind"], e["detail"]["amount"]) for e in entries] == [
        ("adjustment", -30),
        ("grant", 50),
    ]
    assert entries[1]["actor"]["user_id"] == admin.id
    assert entries[1]["detail"]["reason"] == "promo"

    # Not for users, and not for unknown accounts.
    resp = await client.post(url, json={"amount": 5}, headers=user.headers)
    assert resp.status == 403
    resp = await client.post(
        f"/api/v1/admin/users/{uuid.uuid4()}/credits", json={"amount": 5}, headers=admin.headers
    )
    assert resp.status == 404
    resp = await client.post(url, json={"amount": 0}, headers=admin.headers)
    assert resp.status == 400

    # A cursor walks the ledger.
    resp = await client.get("/api/v1/credits/transactions?limit=2", headers=user.headers)
    first = await resp.json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    resp = await client.get(
        f"/api/v1/credits/transactions?limit=2&cursor={first['next_cursor']}",
        headers=user.headers,
    )
    rest = await resp.json()
    assert [t["kind"] for t in rest["items"]] == ["grant"]
    await _ledger_matches(client, uuid.UUID(user.id))


async def test_concurrent_holds_never_overdraw(client: Client) -> None:
    """60 holds of 7 race for 100 credits: exactly 14 fit, the ledger sums to the account."""
    user = await register_and_login(client)
    user_id = uuid.UUID(user.id)
    ledger = client.app[appkeys.CREDIT_LEDGER]
    pool = client.app[appkeys.POOL]
    grant = client.app[appkeys.SETTINGS].credits_signup_grant
    await ledger.account(user_id)

    async def hold() -> uuid.UUID | None:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    h = await ledger.hold(conn, user_id, 7, reference="test")
                    return h.id
            except PaymentRequired:
                return None

    results = await asyncio.gather(*(hold() for _ in range(60)))
    held = [h for h in results if h is not None]
    assert len(held) == grant // 7
    balance, held_sum = await _ledger_matches(client, user_id)
    assert (balance, held_sum) == (grant - 7 * len(held), 7 * len(held))

    # Settle them all at once, twice each: capture half (cost 3), release the rest.
    async def settle(i: int, hold_id: uuid.UUID) -> None:
        async with pool.acquire() as conn, conn.transaction():
            if i % 2:
                await ledger.capture(conn, hold_id, 3)
            else:
                await ledger.release(conn, hold_id)

    await asyncio.gather(*(settle(i, h) for i, h in enumerate(held + held)))
    captured = len(held[1::2])
    assert await _ledger_matches(client, user_id) == (grant - 3 * captured, 0)
    assert await _credits(client, user) == {"balance": grant - 3 * captured, "held": 0}
