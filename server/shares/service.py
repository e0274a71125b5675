"""`ShareService`: share links — made by a video's owner, opened by anyone.

The owner's side: create (an unguessable token, optional expiry and
bcrypt-hashed password, what it exposes), list, revoke. The visitor's side
never says why a link does not work: unknown, revoked, expired, a video
that is gone, or an owner whose account is disabled are one and the same 404
(the links of a re-enabled account work again).

Every visitor request reads the share row again (`live_share`), so a revoke
or an expiry stops the next request — the page, a playlist, a segment, a
range of the video — at once. Media URLs carry a *grant* in their path: "open"
for a link without a password, else `{expires}.{signature}` minted when the
password was given (valid for the video's duration plus the link TTL, like
other playback links). A path, not a query, so that the relative URIs of an
HLS playlist keep it. A player renews its grant before it expires (`renew`:
an unexpired grant buys a fresh one while the link lives), so a paused or long
film plays to the end without the password being asked again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from config.settings import Settings
from server.auth.passwords import PasswordHasher
from server.captions.model import Caption
from server.captions.service import CaptionService
from server.db import shares as shares_db
from server.db import videos as videos_db
from server.errors import Forbidden, NotFound
from server.jobs.model import OutputFile
from server.logs import get_logger
from server.serving.serve import StoredFile
from server.serving.signing import UrlSigner, playback_seconds
from server.shares.model import Share, ShareCard, SharedView, ShareSpec
from server.videos.model import Video

log = get_logger("frameflow.shares")

OPEN_GRANT = "open"
# 24 random bytes: 32 URL-safe characters, 192 bits.
TOKEN_BYTES = 24
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")
_GRANT_RE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
HLS_OPERATION, HLS_PREFIX, HLS_MASTER = "hls", "hls/", "master.m3u8"
THUMBNAIL_OPERATION, THUMBNAIL_NAME = "thumbnail", "thumbnail.jpg"
_MAX_HLS_NAME = 200


def share_not_found() -> NotFound:
    # One answer for unknown, revoked, expired and deleted: nothing to learn from it.
    return NotFound("No such share link", code="share_not_found")


def _video_not_found() -> NotFound:
    return NotFound("No such video", code="video_not_found")


class ShareService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        passwords: PasswordHasher,
        signer: UrlSigner,
        settings: Settings,
        captions: CaptionService,
    ) -> None:
        self._pool = pool
        self._captions = captions
        self._passwords = passwords
        self._signer = signer
        self._link_ttl = settings.signed_url_ttl_seconds

    # --- the owner -----------------------------------------------------------------

    async def create(self, user_id: uuid.UUID, video_id: uuid.UUID, spec: ShareSpec) -> Share:
        password_hash = None
        if spec.password is not None:
            password_hash = await self._passwords.hash(spec.password)
        async with self._pool.acquire() as conn:
            if await videos_db.get_video(conn, video_id, user_id) is None:
                raise _video_not_found()
            share = await shares_db.insert_share(
                conn,
                id=uuid.uuid4(),
                token=secrets.token_urlsafe(TOKEN_BYTES),
                video_id=video_id,
                user_id=user_id,
                exposes=spec.exposes,
                allow_download=spec.allow_download,
                password_hash=password_hash,
                expires_in_seconds=spec.expires_in_seconds,
            )
        log.info("share_created", share_id=str(share.id), video_id=str(video_id))
        return share

    async def list(self, user_id: uuid.UUID, video_id: uuid.UUID) -> list[Share]:
        async with self._pool.acquire() as conn:
            if await videos_db.get_video(conn, video_id, user_id) is None:
                raise _video_not_found()
            return await shares_db.list_shares(conn, video_id, user_id)

    async def revoke(self, user_id: uuid.UUID, video_id: uuid.UUID, share_id: uuid.UUID) -> None:
        async with self._pool.acquire() as conn:
            if not await shares_db.revoke_share(conn, share_id, video_id, user_id):
                raise NotFound("No such share", code="share_not_found")
        log.info("share_revoked", share_id=str(share_id))

    # --- the visitor ---------------------------------------------------------------

    async def check(self, token: str) -> None:
        """404 unless the link works now (for the player page itself)."""
        await self._live(token)

    async def card(self, token: str) -> ShareCard:
        """The link's preview for its page's OpenGraph tags (404 unless it works); no view."""
        share, video = await self._live(token)
        thumb = None
        if "thumbnail" in share.exposes and share.password_hash is None:
            async with self._pool.acquire() as conn:
                thumb = await shares_db.newest_output(
                    conn, video.id, THUMBNAIL_OPERATION, THUMBNAIL_NAME
                )
        return ShareCard(share=share, video=video, has_thumbnail=thumb is not None)

    async def open(self, token: str, password: str | None) -> SharedView | None:
        """What the link shows, counted as a view; None when it needs a password that
        was not given. A wrong password is a 403."""
        share, video = await self._live(token)
        if share.password_hash is not None:
            if password is None:
                return None
            if not await self._passwords.verify(password, share.password_hash):
                raise Forbidden("Wrong password", code="wrong_password")
        return await self._view(share, video, count=True)

    async def renew(self, token: str, grant: str | None) -> SharedView | None:
        """Fresh media links for a player already showing the link, before its grant
        expires (not a view). The link is checked as for any request (404 when dead);
        None when it has a password and `grant` is not an unexpired grant of it: the
        visitor must give the password again."""
        share, video = await self._live(token)
        if share.password_hash is not None and not self._grant_ok(token, grant):
            return None
        return await self._view(share, video, count=False)

    async def _view(self, share: Share, video: Video, *, count: bool) -> SharedView:
        grant, grant_expires, lifetime = OPEN_GRANT, None, None
        if share.password_hash is not None:
            lifetime = playback_seconds(self._link_ttl, video.metadata.get("duration"))
            grant_expires = int(time.time()) + lifetime
            grant = f"{grant_expires}.{self._signer.sign(_grant_path(share.token), grant_expires)}"
        async with self._pool.acquire() as conn:
            if count:
                await shares_db.count_view(conn, share.id)
            hls = await shares_db.newest_output(
                conn, video.id, HLS_OPERATION, HLS_PREFIX + HLS_MASTER
            )
            thumb = await shares_db.newest_output(
                conn, video.id, THUMBNAIL_OPERATION, THUMBNAIL_NAME
            )
        captions = await self._captions.of_video(video.id)
        return SharedView(
            share=share,
            video=video,
            grant=grant,
            grant_expires_at=grant_expires,
            grant_lifetime=lifetime,
            has_hls="hls" in share.exposes and hls is not None,
            has_thumbnail="thumbnail" in share.exposes and thumb is not None,
            captions=tuple(captions),
        )

    async def source(self, token: str, grant: str, *, download: bool) -> StoredFile:
        share, video = await self._granted(token, grant)
        if "video" not in share.exposes or (download and not share.allow_download):
            raise share_not_found()
        return StoredFile(
            key=video.storage_key,
            size=video.size,
            etag_token=video.sha256,
            last_modified=video.created_at,
            content_type=video.content_type,
            filename=video.filename,
        )

    async def thumbnail(self, token: str, grant: str) -> StoredFile:
        share, video = await self._granted(token, grant)
        if "thumbnail" not in share.exposes:
            raise share_not_found()
        return await self._output(video, THUMBNAIL_OPERATION, THUMBNAIL_NAME)

    async def hls_file(self, token: str, grant: str, name: str) -> StoredFile:
        share, video = await self._granted(token, grant)
        if "hls" not in share.exposes or len(name) > _MAX_HLS_NAME:
            raise share_not_found()
        return await self._output(video, HLS_OPERATION, HLS_PREFIX + name)

    async def hls_captions(self, token: str, grant: str) -> tuple[Video, Sequence[Caption]]:
        """The video and its captions, for the HLS files a share link shows."""
        share, video = await self._granted(token, grant)
        if "hls" not in share.exposes:
            raise share_not_found()
        return video, await self._captions.of_video(video.id)

    async def caption_vtt(self, token: str, grant: str, language: str) -> str:
        """One caption track of the shared video (any link that shows it plays it)."""
        _, video = await self._granted(token, grant)
        try:
            _, text = await self._captions.vtt(video.id, language)
        except NotFound:
            raise share_not_found() from None
        return text

    async def _output(self, video: Video, operation: str, name: str) -> StoredFile:
        async with self._pool.acquire() as conn:
            found = await shares_db.newest_output(conn, video.id, operation, name)
        if found is None:
            raise share_not_found()
        output, finished = found
        return _stored_output(output, finished or video.created_at)

    async def _live(self, token: str) -> tuple[Share, Video]:
        if not _TOKEN_RE.fullmatch(token):
            raise share_not_found()
        async with self._pool.acquire() as conn:
            share = await shares_db.live_share(conn, token)
            video = None if share is None else await videos_db.get_video(conn, share.video_id, None)
        if share is None or video is None:
            raise share_not_found()
        return share, video

    async def _granted(self, token: str, grant: str) -> tuple[Share, Video]:
        share, video = await self._live(token)
        ok = grant == OPEN_GRANT if share.password_hash is None else self._grant_ok(token, grant)
        if not ok:
            raise share_not_found()
        return share, video

    def _grant_ok(self, token: str, grant: str | None) -> bool:
        """An unexpired grant minted for this link (proof its password was given)."""
        match = None if grant is None else _GRANT_RE.fullmatch(grant)
        return match is not None and self._signer.verify(
            _grant_path(token), int(match.group(1)), match.group(2)
        )


def _grant_path(token: str) -> str:
    # Signed with the token, so a grant opens only the link it was made for.
    return f"/s/{token}/grant"


def _stored_output(output: OutputFile, finished: datetime) -> StoredFile:
    # Outputs of a finished job never change; key, size and finish time pin them.
    tag = hashlib.sha256(f"{output.storage_key}:{output.size}:{finished.isoformat()}".encode())
    return StoredFile(
        key=output.storage_key,
        size=output.size,
        etag_token=tag.hexdigest()[:40],
        last_modified=finished,
        content_type=output.content_type,
        filename=output.name.rsplit("/", 1)[-1],
    )
