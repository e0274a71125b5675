"""JSON of share links (for their owner) and of an opened link (for a visitor)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from server.shares.model import Share, SharedView

EMBED_WIDTH, EMBED_HEIGHT = 640, 360

# The one place the public paths are spelled.


def page_path(token: str) -> str:
    return f"/s/{token}"


def embed_path(token: str) -> str:
    return f"/s/{token}/embed"


def media_prefix(token: str, grant: str) -> str:
    return f"/s/{token}/m/{quote(grant, safe='')}/"


def share_json(share: Share, absolute: Callable[[str], str]) -> dict[str, Any]:
    return {
        "id": str(share.id),
        "video_id": str(share.video_id),
        "url": absolute(page_path(share.token)),
        "embed_url": absolute(embed_path(share.token)),
        "embed_html": iframe_snippet(absolute(embed_path(share.token))),
        "token": share.token,
        "exposes": list(share.exposes),
        "download": share.allow_download,
        "password_protected": share.password_protected,
        "expires_at": share.expires_at.isoformat() if share.expires_at else None,
        "revoked_at": share.revoked_at.isoformat() if share.revoked_at else None,
        "view_count": share.view_count,
        "created_at": share.created_at.isoformat(),
    }


def locked_json() -> dict[str, Any]:
    """A link with a password, before it was given: nothing about the video."""
    return {"password_required": True}


def shared_view_json(view: SharedView) -> dict[str, Any]:
    share, video = view.share, view.video
    prefix = media_prefix(share.token, view.grant)
    media: dict[str, Any] = {"video": None, "hls": None, "thumbnail": None, "download": None}
    if "video" in share.exposes:
        media["video"] = prefix + "video"
        if share.allow_download:
            media["download"] = prefix + "video?download=1"
    if view.has_hls:
        media["hls"] = prefix + "hls/master.m3u8"
    if view.has_thumbnail:
        media["thumbnail"] = prefix + "thumbnail"
    return {
        "password_required": False,
        "title": video.display_title,
        "description": video.description,
        "kind": video.kind,
        "content_type": video.content_type,
        "duration": video.metadata.get("duration"),
        "width": video.metadata.get("width"),
        "height": video.metadata.get("height"),
        "media": media,
        # What POST /s/{token}/renew takes to make fresh links (they hold it too).
        "grant": view.grant,
        # Relative paths: the page is on the same origin; embedders resolve them.
        "media_expires_at": view.grant_expires_at,
        # The same, in seconds from now: a player schedules its renewal with this
        # (its own clock may be off), a little before (POST /s/{token}/renew).
        "media_expires_in": view.grant_lifetime,
        "captions": [
            {"language": c.language, "label": c.label, "url": f"{prefix}captions/{c.language}"}
            for c in view.captions
        ],
    }


def iframe_snippet(embed_url: str, title: str = "Frameflow video") -> str:
    """The `<iframe>` a share dialog offers to copy."""
    return (
        f'<iframe src="{html.escape(embed_url, quote=True)}" width="{EMBED_WIDTH}" '
        f'height="{EMBED_HEIGHT}" title="{html.escape(title, quote=True)}" frameborder="0" '
        'allow="autoplay; fullscreen; picture-in-picture" allowfullscreen '
        'referrerpolicy="no-referrer"></iframe>'
    )
