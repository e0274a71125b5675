"""`CreditService`: what the API does with credits — read the account and its
ledger, and an admin's grant or adjustment. Every change goes through
`CreditLedger`, the one writer of balances.

An admin's grant and adjustment are on the audit record (`credits.change`),
written in the transaction that makes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import asyncpg

from server.audit.model import Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.model import AuthUser
from server.credits.ledger import CreditLedger
from server.credits.model import CreditAccount, CreditTransaction
from server.db import users as users_db
from server.errors import NotFound

AdminChange = Literal["grant", "adjustment"]


class CreditService:
    def __init__(self, *, pool: asyncpg.Pool, ledger: CreditLedger, audit: AuditLog) -> None:
        self._pool = pool
        self._ledger = ledger
        self._audit = audit

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
        admin: AuthUser,
        reason: str | None,
        origin: Origin | None = None,
    ) -> tuple[CreditTransaction, CreditAccount]:
        """An admin's grant (positive) or adjustment (signed; 402 below zero), on record."""
        actor_id = admin.id
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
            await self._audit.record(
                "credits.change",
                actor=Actor.of(admin),
                target=Target.user(user_id),
                detail={
                    "kind": kind,
                    "amount": amount,
                    "reason": reason or "",
                    "transaction_id": str(tx.id),
                    "balance": account.balance,
                },
                origin=origin,
                conn=conn,
            )
        return tx, account
