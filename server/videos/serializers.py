"""JSON shapes of videos as the API returns them."""

from __future__ import annotations

from typing import Any

from server.videos.model import Video


def content_path(video_id: object) -> str:
    return f"/api/v1/videos/{video_id}/content"


def video_json(video: Video) -> dict[str, Any]:
    return {
        "id": str(video.id),
        "filename": video.filename,
        "title": video.display_title,
        "description": video.description,
        "tags": list(video.tags),
        "size": video.size,
        "sha256": video.sha256,
        "content_type": video.content_type,
        "kind": video.kind,
        "status": video.status,
        "created_at": video.created_at.isoformat(),
        "expires_at": video.expires_at.isoformat() if video.expires_at else None,
        "metadata": video.metadata,
        "content_path": content_path(video.id),
    }
