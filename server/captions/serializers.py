"""The one JSON shape of a caption track."""

from __future__ import annotations

from typing import Any

from server.captions.model import Caption


def caption_json(caption: Caption, url: str) -> dict[str, Any]:
    return {
        "language": caption.language,
        "label": caption.label,
        "source_format": caption.source_format,
        "cue_count": caption.cue_count,
        "size": caption.size,
        "created_at": caption.created_at.isoformat(),
        "url": url,  # signed: usable as <track src> without headers, from any origin
    }


def caption_path(caption: Caption) -> str:
    return f"/api/v1/videos/{caption.video_id}/captions/{caption.language}"
