"""A share link and what a visitor of one may see."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from server.captions.model import Caption
from server.videos.model import Video

Exposure = Literal["video", "hls", "thumbnail"]
EXPOSURES: tuple[Exposure, ...] = ("video", "hls", "thumbnail")


@dataclass(frozen=True)
class Share:
    id: uuid.UUID
    token: str
    video_id: uuid.UUID
    user_id: uuid.UUID
    exposes: tuple[str, ...]
    allow_download: bool
    password_hash: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    view_count: int
    created_at: datetime

    @property
    def password_protected(self) -> bool:
        return self.password_hash is not None


@dataclass(frozen=True)
class ShareSpec:
    """What POST /api/v1/videos/{id}/shares asked for (validated)."""

    exposes: tuple[Exposure, ...]
    allow_download: bool
    password: str | None
    expires_in_seconds: int | None


@dataclass(frozen=True)
class SharedView:
    """What an opened link shows: the video, its share, the outputs that exist,
    and the grant that media URLs carry (proof the password was given)."""

    share: Share
    video: Video
    grant: str
    grant_expires_at: int | None
    grant_lifetime: int | None  # seconds from when it was minted (None: never expires)
    has_hls: bool
    has_thumbnail: bool
    captions: tuple[Caption, ...] = ()


@dataclass(frozen=True)
class ShareCard:
    """What a link's page says about it before anyone opens it (link previews):
    nothing about the video when it has a password."""

    share: Share
    video: Video
    has_thumbnail: bool
