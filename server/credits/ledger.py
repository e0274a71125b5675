"""`CreditLedger`: the one owner of every credit balance change.

Each change is an UPDATE of the user's `credit_accounts` row guarded so that
neither `balance` nor `held` goes below zero (the row lock serialises
concurrent changes, the WHERE refuses an overdraft, a CHECK backs both up),
and the `credit_transactions` row that records it, in the same transaction —
so the ledger sums to the account at every commit:

- `grant` (sign-up grant, an admin's grant) and `adjustment` (an admin's
  signed correction, refused below zero) move `balance`;
- `hold` moves an amount from `balance` to `held` (402 when it does not fit)
  and opens a `credit_holds` row;
- `capture` ends a hold paying its actual cost: the whole hold leaves `held`,
  the unspent rest goes back to `balance`;
- `release` ends a hold paying nothing: it all goes back to `balance`;
- `refund` gives back (part of) what a captured hold paid.

A hold ends once: capture and release are guarded UPDATEs of the hold
(`held` → `captured` | `released`), so a repeated or racing settlement is a
no-op. Methods taking `conn` run in the caller's transaction, next to the row
change they pay for (a generation's insert, its final status).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from server.credits.model import (
    CAPTURED,
    RELEASED,
    CreditAccount,
    CreditHold,
    CreditTransaction,
    TransactionKind,
)
from server.db import credits as credits_db
from server.errors import BadRequest, PaymentRequired


def insufficient_credits(needed: int, balance: int) -> PaymentRequired:
    return PaymentRequired(
        f"This needs {needed} credits but only {balance} are available",
        code="insufficient_credits",
        needed=needed,
        balance=balance,
    )


class CreditLedger:
    def __init__(self, *, pool: asyncpg.Pool, signup_grant: int) -> None:
        """`signup_grant`: what a new account starts with (a `grant` row)."""
        self._pool = pool
        self._signup_grant = signup_grant

    # --- reads -------------------------------------------------------------------------

    async def account(self, user_id: uuid.UUID) -> CreditAccount:
        async with self._pool.acquire() as conn, conn.transaction():
            return await self.ensure_account(conn, user_id)

    async def transactions(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[CreditTransaction]:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await self.ensure_account(conn, user_id)
            return await credits_db.list_transactions(conn, user_id, limit=limit, before=before)

    # --- changes (each in the caller's transaction) -----------------------------------------

    async def ensure_account(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> CreditAccount:
        """The user's account, opened with the sign-up grant on first use."""
        if await credits_db.create_account(conn, user_id) and self._signup_grant > 0:
            await _apply(conn, user_id, "grant", self._signup_grant, 0, reason="sign-up grant")
        account = await credits_db.get_account(conn, user_id)
        if account is None:  # the user row is gone (FK) — or was never there
            raise BadRequest("No such account", code="user_not_found")
        return account

    async def grant(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        amount: int,
        *,
        actor_id: uuid.UUID | None,
        reason: str | None,
    ) -> CreditTransaction:
        if amount <= 0:
            raise BadRequest("'amount' must be positive", code="invalid_field", field="amount")
        await self.ensure_account(conn, user_id)
        return await _apply(conn, user_id, "grant", amount, 0, actor_id=actor_id, reason=reason)

    async def adjust(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        delta: int,
        *,
        actor_id: uuid.UUID | None,
        reason: str | None,
    ) -> CreditTransaction:
        """A signed correction; refused (402) when it would take the balance below zero."""
        if delta == 0:
            raise BadRequest("'amount' must not be zero", code="invalid_field", field="amount")
        await self.ensure_account(conn, user_id)
        return await _apply(conn, user_id, "adjustment", delta, 0, actor_id=actor_id, reason=reason)

    async def hold(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, amount: int, *, reference: str
    ) -> CreditHold:
        """Set `amount` aside for work about to start; 402 when the balance lacks it.
        A zero hold is still a hold (its settlement is recorded the same way)."""
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        await self.ensure_account(conn, user_id)
        hold = await credits_db.insert_hold(conn, uuid.uuid4(), user_id, amount, reference)
        await _apply(conn, user_id, "hold", -amount, amount, hold_id=hold.id, reason=reference)
        return hold

    @staticmethod
    async def capture(conn: asyncpg.Connection, hold_id: uuid.UUID, cost: int) -> CreditHold | None:
        """End the hold paying `cost` (capped at the hold); None if it had already ended."""
        current = await credits_db.get_hold(conn, hold_id)
        if current is None:
            return None
        paid = min(max(cost, 0), current.amount)
        hold = await credits_db.settle_hold(conn, hold_id, CAPTURED, paid)
        if hold is None:
            return None
        await _apply(
            conn,
            hold.user_id,
            "capture",
            hold.amount - paid,
            -hold.amount,
            hold_id=hold.id,
            reason=hold.reference,
        )
        return hold

    @staticmethod
    async def release(conn: asyncpg.Connection, hold_id: uuid.UUID) -> CreditHold | None:
        """End the hold paying nothing; None if it had already ended."""
        hold = await credits_db.settle_hold(conn, hold_id, RELEASED, None)
        if hold is None:
            return None
        await _apply(
            conn,
            hold.user_id,
            "release",
            hold.amount,
            -hold.amount,
            hold_id=hold.id,
            reason=hold.reference,
        )
        return hold

    async def refund(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        amount: int,
        *,
        actor_id: uuid.UUID | None,
        reason: str | None,
        hold_id: uuid.UUID | None = None,
    ) -> CreditTransaction:
        """Give back credits that were paid (e.g. for a result that turned out unusable)."""
        if amount <= 0:
            raise BadRequest("'amount' must be positive", code="invalid_field", field="amount")
        await self.ensure_account(conn, user_id)
        return await _apply(
            conn, user_id, "refund", amount, 0, hold_id=hold_id, actor_id=actor_id, reason=reason
        )


async def _apply(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    kind: TransactionKind,
    balance_delta: int,
    held_delta: int,
    *,
    hold_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> CreditTransaction:
    account = await credits_db.move(conn, user_id, balance_delta, held_delta)
    if account is None:
        current = await credits_db.get_account(conn, user_id)
        raise insufficient_credits(-balance_delta, current.balance if current else 0)
    return await credits_db.insert_transaction(
        conn,
        account,
        kind=kind,
        balance_delta=balance_delta,
        held_delta=held_delta,
        hold_id=hold_id,
        actor_id=actor_id,
        reason=reason,
    )
