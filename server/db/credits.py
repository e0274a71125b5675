"""SQL for `credit_accounts`, `credit_holds` and `credit_transactions`.

Called by server.credits.ledger only: it is the one writer of balances. Every
balance change is a guarded UPDATE of the account (the row lock serialises
concurrent changes; the WHERE refuses one that would go below zero) followed
by its ledger row, in the caller's transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from server.credits.model import CreditAccount, CreditHold, CreditTransaction, TransactionKind
from server.db import paging

_ACCOUNT = "user_id, balance, held, updated_at"
_HOLD = "id, user_id, amount, status, captured, reference, created_at, settled_at"
_TRANSACTION = (
    "id, user_id, kind, balance_delta, held_delta, balance_after, held_after, hold_id,"
    " actor_id, reason, created_at"
)


async def create_account(conn: asyncpg.Connection, user_id: uuid.UUID) -> bool:
    """The account row, if the user has none yet; True when this call made it."""
    row = await conn.fetchrow(
        """INSERT INTO credit_accounts (user_id) VALUES ($1)
           ON CONFLICT (user_id) DO NOTHING RETURNING user_id""",
        user_id,
    )
    return row is not None


async def get_account(conn: asyncpg.Connection, user_id: uuid.UUID) -> CreditAccount | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT} FROM credit_accounts WHERE user_id = $1",  # noqa: S608
        user_id,
    )
    return None if row is None else CreditAccount(**dict(row))


async def move(
    conn: asyncpg.Connection, user_id: uuid.UUID, balance_delta: int, held_delta: int
) -> CreditAccount | None:
    """Apply the deltas if neither amount goes below zero; None when refused."""
    row = await conn.fetchrow(
        f"""
        UPDATE credit_accounts
        SET balance = balance + $2, held = held + $3, updated_at = now()
        WHERE user_id = $1 AND balance + $2 >= 0 AND held + $3 >= 0
        RETURNING {_ACCOUNT}
        """,  # noqa: S608
        user_id,
        balance_delta,
        held_delta,
    )
    return None if row is None else CreditAccount(**dict(row))


async def insert_transaction(
    conn: asyncpg.Connection,
    account: CreditAccount,
    *,
    kind: TransactionKind,
    balance_delta: int,
    held_delta: int,
    hold_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> CreditTransaction:
    row = await conn.fetchrow(
        f"""
        INSERT INTO credit_transactions
            (id, user_id, kind, balance_delta, held_delta, balance_after, held_after,
             hold_id, actor_id, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING {_TRANSACTION}
        """,  # noqa: S608
        uuid.uuid4(),
        account.user_id,
        kind,
        balance_delta,
        held_delta,
        account.balance,
        account.held,
        hold_id,
        actor_id,
        reason,
    )
    assert row is not None
    return CreditTransaction(**dict(row))


async def list_transactions(
    conn: asyncpg.Connection,
    user_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[CreditTransaction]:
    """Newest first; `before` is the (created_at, id) of the previous page's last row."""
    rows = await paging.newest_first(
        conn,
        columns=_TRANSACTION,
        table="credit_transactions",
        owned_by="user_id = $1",
        user_id=user_id,
        limit=limit,
        before=before,
    )
    return [CreditTransaction(**dict(r)) for r in rows]


async def sums(conn: asyncpg.Connection, user_id: uuid.UUID) -> tuple[int, int]:
    """SUM(balance_delta), SUM(held_delta) of the user's ledger (checks and tests)."""
    row = await conn.fetchrow(
        """SELECT COALESCE(SUM(balance_delta), 0)::bigint AS b,
                  COALESCE(SUM(held_delta), 0)::bigint AS h
           FROM credit_transactions WHERE user_id = $1""",
        user_id,
    )
    assert row is not None
    return int(row["b"]), int(row["h"])


async def insert_hold(
    conn: asyncpg.Connection,
    hold_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    reference: str | None,
) -> CreditHold:
    row = await conn.fetchrow(
        f"""INSERT INTO credit_holds (id, user_id, amount, reference) VALUES ($1, $2, $3, $4)
            RETURNING {_HOLD}""",  # noqa: S608
        hold_id,
        user_id,
        amount,
        reference,
    )
    assert row is not None
    return CreditHold(**dict(row))


async def settle_hold(
    conn: asyncpg.Connection, hold_id: uuid.UUID, status: str, captured: int | None
) -> CreditHold | None:
    """held → captured | released, once: None when the hold is not (or no longer) held."""
    row = await conn.fetchrow(
        f"""
        UPDATE credit_holds SET status = $2, captured = $3, settled_at = now()
        WHERE id = $1 AND status = 'held'
        RETURNING {_HOLD}
        """,  # noqa: S608
        hold_id,
        status,
        captured,
    )
    return None if row is None else CreditHold(**dict(row))


async def get_hold(conn: asyncpg.Connection, hold_id: uuid.UUID) -> CreditHold | None:
    row = await conn.fetchrow(
        f"SELECT {_HOLD} FROM credit_holds WHERE id = $1",  # noqa: S608
        hold_id,
    )
    return None if row is None else CreditHold(**dict(row))
