"""`CaptionService`: a video's caption tracks — add (SRT converted), list, delete, read.

Adding, in order: the video must be the caller's (404); the file is at most
`caption_max_bytes` (413, checked by the handler while reading); it is read
as SRT or WebVTT into cues (422 `invalid_captions` naming the cue) and written
back as sanitised WebVTT (`vtt.py`); then stored, replacing the language's
previous file. Readers without a login (a signed URL, an HLS token, a share
link) have been authorised by their route; they read by video id.
"""

from __future__ import annotations

import re
import uuid

import asyncpg

from server.captions.model import Caption
from server.captions.vtt import CaptionError, read_captions, write_vtt
from server.db import captions as captions_db
from server.db import videos as videos_db
from server.errors import BadRequest, NotFound, Unprocessable
from server.logs import get_logger

log = get_logger("frameflow.captions")

# BCP 47, loosely: a 2-3 letter language and up to three subtags ("pt-BR", "zh-Hant-TW").
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")
MAX_LABEL = 100


def _caption_not_found() -> NotFound:
    return NotFound("No such captions", code="caption_not_found")


def parse_language(raw: str | None, field: str = "language") -> str:
    if not raw or not LANGUAGE.match(raw):
        raise BadRequest(
            "'language' must be a language tag such as 'en' or 'pt-BR'",
            code="invalid_query",
            field=field,
        )
    return raw


def parse_label(raw: str | None, language: str) -> str:
    label = " ".join((raw or "").split())
    if len(label) > MAX_LABEL:
        raise BadRequest(
            f"'label' is longer than {MAX_LABEL} characters", code="invalid_query", field="label"
        )
    return label or language


class CaptionService:
    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(
        self, user_id: uuid.UUID, video_id: uuid.UUID, language: str, label: str, data: bytes
    ) -> Caption:
        await self._owned(user_id, video_id)
        try:
            cues, source_format = read_captions(data)
        except CaptionError as exc:
            raise Unprocessable(f"Invalid captions: {exc}", code="invalid_captions") from None
        try:
            async with self._pool.acquire() as conn:
                caption = await captions_db.upsert_caption(
                    conn,
                    video_id=video_id,
                    language=language,
                    label=label,
                    vtt=write_vtt(cues),
                    source_format=source_format,
                    cue_count=len(cues),
                )
        except asyncpg.ForeignKeyViolationError:
            raise NotFound("No such video", code="video_not_found") from None
        log.info("captions_added", video_id=str(video_id), language=language, cues=len(cues))
        return caption

    async def list_owned(self, user_id: uuid.UUID, video_id: uuid.UUID) -> list[Caption]:
        await self._owned(user_id, video_id)
        return await self.of_video(video_id)

    async def delete(self, user_id: uuid.UUID, video_id: uuid.UUID, language: str) -> None:
        await self._owned(user_id, video_id)
        async with self._pool.acquire() as conn:
            if not await captions_db.delete_caption(conn, video_id, language):
                raise _caption_not_found()

    async def of_video(self, video_id: uuid.UUID) -> list[Caption]:
        """Every caption track of a video (for a reader its route has authorised)."""
        async with self._pool.acquire() as conn:
            return await captions_db.list_captions(conn, video_id)

    async def vtt(
        self, video_id: uuid.UUID, language: str, user_id: uuid.UUID | None = None
    ) -> tuple[Caption, str]:
        """The WebVTT of one track; with `user_id`, only of that user's video."""
        if user_id is not None:
            await self._owned(user_id, video_id)
        async with self._pool.acquire() as conn:
            found = await captions_db.get_vtt(conn, video_id, language)
        if found is None:
            raise _caption_not_found()
        return found

    async def _owned(self, user_id: uuid.UUID, video_id: uuid.UUID) -> None:
        async with self._pool.acquire() as conn:
            if await videos_db.get_video(conn, video_id, user_id) is None:
                raise NotFound("No such video", code="video_not_found")
