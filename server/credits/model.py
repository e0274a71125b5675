"""Credit accounts, holds and ledger rows as the rest of the code sees them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

TransactionKind = Literal["grant", "hold", "capture", "release", "refund", "adjustment"]
TRANSACTION_KINDS: tuple[TransactionKind, ...] = get_args(TransactionKind)

HoldStatus = Literal["held", "captured", "released"]
HELD: Final = "held"
CAPTURED: Final = "captured"
RELEASED: Final = "released"


@dataclass(frozen=True)
class CreditAccount:
    user_id: uuid.UUID
    balance: int  # spendable now
    held: int  # set aside by open holds
    updated_at: datetime


@dataclass(frozen=True)
class CreditHold:
    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    status: HoldStatus
    captured: int | None
    reference: str | None
    created_at: datetime
    settled_at: datetime | None


@dataclass(frozen=True)
class CreditTransaction:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: TransactionKind
    balance_delta: int
    held_delta: int
    balance_after: int
    held_after: int
    hold_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    reason: str | None
    created_at: datetime
