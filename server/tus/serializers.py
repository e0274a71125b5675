"""Rendering a tus upload as response headers (the protocol answers without bodies)."""

from __future__ import annotations

from collections.abc import Callable

from server.tus.headers import (
    CHECKSUM_ALGORITHMS,
    EXTENSIONS,
    TUS_VERSION,
    format_metadata,
    http_date,
)
from server.tus.model import COMPLETED, TusUpload

VIDEO_ID_HEADER = "Frameflow-Video-Id"
VIDEO_LOCATION_HEADER = "Frameflow-Video-Location"


def discovery_headers(max_size: int) -> dict[str, str]:
    """OPTIONS: what this server speaks."""
    return {
        "Tus-Resumable": TUS_VERSION,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


def offset_headers(upload: TusUpload, url_for: Callable[[str], str]) -> dict[str, str]:
    """PATCH and creation: the offset, the expiry while unfinished, and the video once
    there is one (`url_for` makes an absolute URL of a path)."""
    headers = {"Tus-Resumable": TUS_VERSION, "Upload-Offset": str(upload.upload_offset)}
    if upload.unfinished:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    if upload.status == COMPLETED:
        headers[VIDEO_ID_HEADER] = str(upload.video_id)
        headers[VIDEO_LOCATION_HEADER] = url_for(f"/api/v1/videos/{upload.video_id}")
    return headers


def head_headers(upload: TusUpload, url_for: Callable[[str], str]) -> dict[str, str]:
    headers = offset_headers(upload, url_for)
    headers["Cache-Control"] = "no-store"
    if upload.upload_length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.upload_length)
    if upload.metadata:
        headers["Upload-Metadata"] = format_metadata(upload.metadata)
    return headers
