"""The share link's page filled in for link previews (pure): OpenGraph and Twitter-card
tags, and the embed variant's class.

A link with a password says nothing about its video ("A protected video", no
image); an open one names its title, description, thumbnail, the video
itself (when the link shows the source) and the embed page as the Twitter
player. Every value is HTML-escaped; URLs are absolute (crawlers need them).
"""

from __future__ import annotations

import html
from collections.abc import Callable

from server.shares.model import ShareCard
from server.shares.serializers import (
    EMBED_HEIGHT,
    EMBED_WIDTH,
    embed_path,
    media_prefix,
    page_path,
)
from server.shares.service import OPEN_GRANT

MAX_DESCRIPTION = 300


def _meta(attribute: str, name: str, content: object) -> str:
    return f'<meta {attribute}="{name}" content="{html.escape(str(content), quote=True)}">'


def preview_tags(card: ShareCard, absolute: Callable[[str], str]) -> list[str]:
    share, video = card.share, card.video
    url = absolute(page_path(share.token))
    if share.password_protected:
        return [
            _meta("property", "og:type", "website"),
            _meta("property", "og:title", "A protected video"),
            _meta("property", "og:url", url),
            _meta("name", "twitter:card", "summary"),
            _meta("name", "twitter:title", "A protected video"),
        ]
    title = video.display_title
    description = " ".join(video.description.split())[:MAX_DESCRIPTION]
    prefix = absolute(media_prefix(share.token, OPEN_GRANT))
    width, height = video.metadata.get("width"), video.metadata.get("height")
    is_video = video.kind == "video"
    tags = [
        _meta("property", "og:type", "video.other" if is_video else "website"),
        _meta("property", "og:title", title),
        _meta("property", "og:url", url),
        _meta("property", "og:site_name", "Frameflow"),
        _meta("name", "twitter:title", title),
    ]
    if description:
        tags += [
            _meta("property", "og:description", description),
            _meta("name", "twitter:description", description),
        ]
    if card.has_thumbnail:
        tags += [
            _meta("property", "og:image", prefix + "thumbnail"),
            _meta("name", "twitter:image", prefix + "thumbnail"),
        ]
    elif not is_video and "video" in share.exposes:
        tags.append(_meta("property", "og:image", prefix + "video"))
    if is_video and "video" in share.exposes:
        tags += [
            _meta("property", "og:video", prefix + "video"),
            _meta("property", "og:video:secure_url", prefix + "video"),
            _meta("property", "og:video:type", video.content_type),
        ]
        if isinstance(width, int) and isinstance(height, int):
            tags += [
                _meta("property", "og:video:width", width),
                _meta("property", "og:video:height", height),
            ]
    if is_video:
        tags += [
            _meta("name", "twitter:card", "player"),
            _meta("name", "twitter:player", absolute(embed_path(share.token))),
            _meta("name", "twitter:player:width", EMBED_WIDTH),
            _meta("name", "twitter:player:height", EMBED_HEIGHT),
        ]
    else:
        tags.append(_meta("name", "twitter:card", "summary_large_image"))
    return tags


def render_page(
    template: str, card: ShareCard, absolute: Callable[[str], str], *, embed: bool
) -> str:
    page = template.replace("</head>", "\n".join(["", *preview_tags(card, absolute), "</head>"]), 1)
    if embed:
        page = page.replace('<body class="share-page">', '<body class="share-page embed">', 1)
    return page
