"""Where the job engine hands a generation its ending.

A generation runs as a job of operation `generate`. `server.jobs.state` calls
`job_ended` in the transaction that ends such a job — failed, canceled
(queued or running), or given up by the lease reaper — so the generation
ends, and its credits are released, in that same transaction. A succeeded
job changes nothing: its generation succeeded, and was charged, in the
transaction that made its video.
"""

from __future__ import annotations

import asyncpg

from server.db import generations as generations_db
from server.generations import state
from server.generations.model import CANCELED, FAILED, GENERATE_OPERATION, Generation
from server.jobs.model import Job


async def job_ended(conn: asyncpg.Connection, job: Job) -> Generation | None:
    """The generation of `job`, ended like it; None for other jobs or one already ended."""
    if job.operation != GENERATE_OPERATION or job.status not in (FAILED, CANCELED):
        return None
    generation = await generations_db.get_by_job(conn, job.id, lock=True)
    if generation is None or generation.finished:
        return None
    if job.status == CANCELED:
        return await state.end(conn, generation, CANCELED)
    code, _, message = (job.error or "").partition(": ")
    if code not in ERROR_CODES:
        code, message = "generation_failed", job.error or "the generation failed"
    return await state.end(conn, generation, FAILED, error_code=code, error=message)


# Codes a worker puts in front of its failure message ("code: message").
ERROR_CODES = frozenset(
    {"content_policy", "invalid_input", "provider_unavailable", "generation_failed"}
)
