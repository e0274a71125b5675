"""The one module that changes a generation's status.

Allowed transitions are listed in `TRANSITIONS`; every change goes through
`_check`, then a guarded UPDATE (`WHERE status = <what the caller read>`). A
stale caller gets None back and must not act further. The credits held for
the generation are settled in the same transaction as its final status:
captured (the actual cost) with `succeeded`, released with `failed` and
`canceled` — so a generation can never be charged without its video, nor
keep credits held once it has ended.
"""

from __future__ import annotations

import uuid

import asyncpg

from server.credits.ledger import CreditLedger
from server.db import generations as generations_db
from server.generations.model import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUBMITTED,
    SUCCEEDED,
    Generation,
)

TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (QUEUED, SUBMITTED),  # a remote provider accepted it (task id stored)
        (QUEUED, RUNNING),  # a local provider started on it
        (SUBMITTED, RUNNING),  # the provider reports it working
        (SUBMITTED, SUCCEEDED),  # done before a poll saw it running
        (RUNNING, SUCCEEDED),
        (QUEUED, FAILED),
        (SUBMITTED, FAILED),
        (RUNNING, FAILED),
        (QUEUED, CANCELED),
        (SUBMITTED, CANCELED),
        (RUNNING, CANCELED),
    }
)


class IllegalTransition(RuntimeError):
    def __init__(self, generation_id: uuid.UUID, source: str, target: str) -> None:
        super().__init__(f"generation {generation_id}: {source} → {target} is not allowed")


def _check(generation: Generation, target: str) -> None:
    if (generation.status, target) not in TRANSITIONS:
        raise IllegalTransition(generation.id, generation.status, target)


async def submitted(
    conn: asyncpg.Connection, generation: Generation, remote_task_id: str
) -> Generation | None:
    """queued → submitted, keeping the provider's task id (a restart resumes from it)."""
    _check(generation, SUBMITTED)
    return await generations_db.set_status(
        conn, generation.id, generation.status, SUBMITTED, remote_task_id=remote_task_id
    )


async def running(conn: asyncpg.Connection, generation: Generation) -> Generation | None:
    if generation.status == RUNNING:
        return generation
    _check(generation, RUNNING)
    return await generations_db.set_status(conn, generation.id, generation.status, RUNNING)


async def succeed(
    conn: asyncpg.Connection, generation: Generation, video_id: uuid.UUID, cost: int
) -> Generation | None:
    """→ succeeded with its video, capturing `cost` from the hold (in the caller's
    transaction: the video's own, so the charge and the video commit together)."""
    _check(generation, SUCCEEDED)
    done = await generations_db.set_status(
        conn,
        generation.id,
        generation.status,
        SUCCEEDED,
        video_id=video_id,
        credits_charged=cost,
        progress=100.0,
    )
    if done is not None and done.hold_id is not None:
        hold = await CreditLedger.capture(conn, done.hold_id, cost)
        if hold is not None and hold.captured != cost:
            # The hold caps the charge: never take more than was set aside.
            done = await generations_db.set_status(
                conn, done.id, SUCCEEDED, SUCCEEDED, credits_charged=hold.captured
            )
    return done


async def end(
    conn: asyncpg.Connection,
    generation: Generation,
    target: str,
    *,
    error_code: str | None = None,
    error: str | None = None,
) -> Generation | None:
    """→ failed | canceled, releasing the hold, in the caller's transaction."""
    _check(generation, target)
    done = await generations_db.set_status(
        conn,
        generation.id,
        generation.status,
        target,
        error_code=error_code,
        error=error,
        credits_charged=0,
    )
    if done is not None and done.hold_id is not None:
        await CreditLedger.release(conn, done.hold_id)
    return done
