"""`PresetService`: a user's named, saved operation sets.

A preset's params are checked when it is saved against the operations'
declared schemas (types, bounds, choices, this server's limits) for some kind
of source the operation applies to; the checks that need a probed video run
again when the preset is used — at an upload, with its video, and in a batch,
with each video — exactly as for operations given by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from config.settings import Settings
from server.db import presets as presets_db
from server.errors import BadRequest, Conflict, NotFound
from server.jobs.operations.params import read_params
from server.jobs.operations.protocol import Operation, param_models
from server.jobs.service import JobService, RequestedJob
from server.jobs.steps import OperationStep, steps_json
from server.presets.model import Preset


def _preset_not_found(field: str | None = None) -> NotFound:
    if field is None:
        return NotFound("No such preset", code="preset_not_found")
    return NotFound("No such preset", code="preset_not_found", field=field)


def _name_taken() -> Conflict:
    return Conflict("You already have a preset of that name", code="preset_exists")


def _in_step(exc: BadRequest, index: int) -> BadRequest:
    field = exc.details.get("field")
    where = f"operations[{index}]"
    details = dict(exc.details) | {"field": f"{where}.{field}" if field else where}
    return BadRequest(f"{where}: {exc.message}", code=exc.error_code, **details)


class PresetService:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, jobs: JobService) -> None:
        self._pool = pool
        self._settings = settings
        self._jobs = jobs

    # --- checking ------------------------------------------------------------------

    def check_steps(self, steps: list[OperationStep]) -> None:
        """400 naming the first step whose operation or params are not valid."""
        for index, step in enumerate(steps):
            try:
                operation = self._jobs.resolve_operation(step.operation)
                self._check_params(operation, step.params)
            except BadRequest as exc:
                raise _in_step(exc, index) from None

    def _check_params(self, operation: Operation, params: Mapping[str, Any]) -> None:
        models = param_models(operation)
        errors: list[BadRequest] = []
        for kind in sorted(operation.kinds):
            if kind not in models:
                continue
            try:
                read_params(models[kind], params, self._settings, siblings=models)
                return  # valid for a source of this kind
            except BadRequest as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    # --- using ---------------------------------------------------------------------

    async def get(self, user_id: uuid.UUID, name: str) -> Preset:
        async with self._pool.acquire() as conn:
            preset = await presets_db.get_preset(conn, user_id, name)
        if preset is None:
            raise _preset_not_found()
        return preset

    async def for_upload(self, user_id: uuid.UUID, name: str | None) -> list[RequestedJob]:
        """An upload's `?preset=` as operations with params; 400 on `preset` if unknown."""
        if not name:
            return []
        async with self._pool.acquire() as conn:
            preset = await presets_db.get_preset(conn, user_id, name[:100])
        if preset is None:
            raise BadRequest("No such preset", code="preset_not_found", field="preset")
        return [(self._jobs.resolve_operation(s.operation), s.params) for s in preset.steps]

    # --- managing ------------------------------------------------------------------

    async def list_presets(self, user_id: uuid.UUID) -> list[Preset]:
        async with self._pool.acquire() as conn:
            return await presets_db.list_presets(conn, user_id)

    async def create(self, user_id: uuid.UUID, name: str, steps: list[OperationStep]) -> Preset:
        self.check_steps(steps)
        async with self._pool.acquire() as conn, conn.transaction():
            if await presets_db.count_presets(conn, user_id) >= self._settings.presets_per_user:
                raise Conflict(
                    f"At most {self._settings.presets_per_user} presets per user",
                    code="too_many_presets",
                )
            preset = await presets_db.insert_preset(conn, user_id, name, steps_json(steps))
        if preset is None:
            raise _name_taken()
        return preset

    async def replace(
        self, user_id: uuid.UUID, name: str, new_name: str, steps: list[OperationStep]
    ) -> Preset:
        self.check_steps(steps)
        try:
            async with self._pool.acquire() as conn:
                preset = await presets_db.replace_preset(
                    conn, user_id, name, new_name, steps_json(steps)
                )
        except asyncpg.UniqueViolationError:
            raise _name_taken() from None
        if preset is None:
            raise _preset_not_found()
        return preset

    async def delete(self, user_id: uuid.UUID, name: str) -> None:
        async with self._pool.acquire() as conn:
            if not await presets_db.delete_preset(conn, user_id, name):
                raise _preset_not_found()
