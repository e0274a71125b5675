"""The one JSON shape of a credit account and of a ledger row."""

from __future__ import annotations

from typing import Any

from server.credits.model import CreditAccount, CreditTransaction


def account_json(account: CreditAccount) -> dict[str, Any]:
    return {"balance": account.balance, "held": account.held}


def transaction_json(tx: CreditTransaction) -> dict[str, Any]:
    return {
        "id": str(tx.id),
        "kind": tx.kind,
        "balance_delta": tx.balance_delta,
        "held_delta": tx.held_delta,
        "balance_after": tx.balance_after,
        "held_after": tx.held_after,
        "hold_id": str(tx.hold_id) if tx.hold_id else None,
        "actor_id": str(tx.actor_id) if tx.actor_id else None,
        "reason": tx.reason,
        "created_at": tx.created_at.isoformat(),
    }
