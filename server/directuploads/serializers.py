"""Direct uploads as the API shows them."""

from __future__ import annotations

from typing import Any

from server.directuploads.model import DirectUpload


def direct_upload_json(upload: DirectUpload, *, url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(upload.id),
        "status": upload.shown_status,
        "max_size": upload.max_bytes,
        "allowed_types": upload.allowed_types,
        "process": upload.process,
        "ttl": upload.ttl_seconds,
        "preset": upload.preset,
        "metadata": upload.metadata,
        "cors_origin": upload.cors_origin,
        "video_id": str(upload.video_id) if upload.video_id else None,
        "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
    }
    if url is not None:
        body["url"] = url  # shown once: only its hash is stored
    return body
