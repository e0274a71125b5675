"""`CreditService`: what the API does with credits — read the account and its
ledger, and an admin's grant or adjustment. Every change goes through
`CreditLedger`, the one writer of balances.

Audit: an admin's grant and adjustment are the calls to record in the audit
log (actor, target user, amount, reason, the transaction id), next to
`admin_change` below.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import asyncpg

from server.credits.ledger import CreditLedger
from server.credits.model import CreditAccount, CreditTransaction
from server.db import users as users_db
from server.errors import NotFound

AdminChange = Literal["grant", "adjustment"]


class CreditService:
    def __init__(self, *, pool: asyncpg.Pool, ledger: CreditLedger) -> None:
        self._pool = pool
        self._ledger = ledger

    async def account(self, user_id: uuid.UUID) -> CreditAccount:
        return await self._ledger.account(user_id)

    async def transactions(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[CreditTransaction]:
        return await self._ledger.transactions(user_id, limit=limit, before=before)

    async def admin_change(
        self,
        user_id: uuid.UUID,
        kind: AdminChange,
        amount: int,
        *,
        actor_id: uuid.UUID,
        reason: str | None,
    ) -> tuple[CreditTransaction, CreditAccount]:
        """An admin's grant (positive) or adjustment (signed; 402 below zero).
        AUDIT: record (actor_id, user_id, kind, amount, reason, transaction.id) here."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await users_db.user_exists(conn, user_id):
                raise NotFound("No such user", code="user_not_found")
            if kind == "grant":
                tx = await self._ledger.grant(
                    conn, user_id, amount, actor_id=actor_id, reason=reason
                )
            else:
                tx = await self._ledger.adjust(
                    conn, user_id, amount, actor_id=actor_id, reason=reason
                )
            account = await self._ledger.ensure_account(conn, user_id)
        return tx, account
