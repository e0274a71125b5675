"""Event dicts as they travel on the bus and go out on WebSockets (pure).

Every event names its `user_id`: the bus routes on it. The rest is the
protocol documented in the README ("Live progress (WebSocket)").
"""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from server.directuploads.model import DirectUpload
from server.directuploads.serializers import direct_upload_json
from server.generations.model import Generation
from server.generations.serializers import generation_json
from server.jobs.model import Job, JobStatus
from server.jobs.serializers import job_json
from server.videos.model import Video
from server.videos.serializers import video_json

# Literals, so that mypy catches a misspelt event name.
JobEventType = Literal[
    "job.queued", "job.started", "job.progress", "job.succeeded", "job.failed", "job.canceled"
]
VideoEventType = Literal["video.ready", "video.deleted"]
JOB_EVENTS: frozenset[JobEventType] = frozenset(get_args(JobEventType))
VIDEO_READY: Final = "video.ready"
VIDEO_DELETED: Final = "video.deleted"
# A direct upload's file became the creator's video (README, "Direct uploads").
DIRECT_UPLOAD_COMPLETED: Final = "direct_upload.completed"

# The event that announces a job reaching each status.
_STATUS_EVENTS: dict[JobStatus, JobEventType] = {
    "queued": "job.queued",
    "running": "job.started",
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "canceled": "job.canceled",
}


def status_event(status: JobStatus) -> JobEventType:
    """The event for a job that has just reached `status`."""
    return _STATUS_EVENTS[status]


GenerationEventType = Literal[
    "generation.queued",
    "generation.submitted",
    "generation.progress",
    "generation.succeeded",
    "generation.failed",
    "generation.canceled",
]


# Server-side only: closes the user's sockets of that session, never sent to a client.
SESSION_REVOKED: Final = "session.revoked"

Event = dict[str, Any]


class SharedEvent(dict[str, Any]):
    """An event fanned out to many sockets: JSON-encoded once, not once per socket,
    and framed once — `frame()` is the WebSocket frame every socket is sent as is.

    ws_bench showed encoding per socket as about a fifth of the server's cost
    per delivery with 1,000 subscribers. The routing key stays server-side.
    """

    _wire: str | None = None
    _frame: bytes | None = None

    def wire(self) -> str:
        if self._wire is None:
            self._wire = json.dumps({k: v for k, v in self.items() if k != "user_id"})
        return self._wire

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.wire().encode())
        return self._frame


_FIN_TEXT = 0x81  # FIN, opcode 1 (text); no RSV bit: these sockets never compress


def text_frame(payload: bytes) -> bytes:
    """A whole, unmasked text frame (RFC 6455 section 5.2) as a server sends it."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + payload


def _now() -> str:
    return datetime.now(UTC).isoformat()


def job_event(kind: JobEventType, job: Job) -> Event:
    body = job_json(job)
    return {
        "type": kind,
        "user_id": str(job.user_id),
        "job_id": body["id"],
        "video_id": body["video_id"],
        "status": job.status,
        "progress": body["progress"],
        "at": _now(),
        "job": body,
    }


def video_ready_event(video: Video) -> Event:
    return {
        "type": VIDEO_READY,
        "user_id": str(video.user_id),
        "job_id": None,
        "video_id": str(video.id),
        "status": video.status,
        "progress": None,
        "at": _now(),
        "video": video_json(video),
    }


def video_deleted_event(user_id: uuid.UUID, video_id: uuid.UUID) -> Event:
    return {
        "type": VIDEO_DELETED,
        "user_id": str(user_id),
        "job_id": None,
        "video_id": str(video_id),
        "status": "deleted",
        "progress": None,
        "at": _now(),
    }


def direct_upload_completed_event(upload: DirectUpload) -> Event:
    return {
        "type": DIRECT_UPLOAD_COMPLETED,
        "user_id": str(upload.user_id),
        "job_id": None,
        "video_id": str(upload.video_id) if upload.video_id else None,
        "status": upload.shown_status,
        "progress": None,
        "at": _now(),
        "direct_upload": direct_upload_json(upload),
    }


def generation_event(kind: GenerationEventType, generation: Generation) -> Event:
    body = generation_json(generation)
    return {
        "type": kind,
        "user_id": str(generation.user_id),
        "job_id": body["job_id"],
        "video_id": body["video_id"],
        "status": generation.status,
        "progress": body["progress"],
        "at": _now(),
        "generation": body,
    }


def session_revoked_event(
    user_id: uuid.UUID,
    session_id: uuid.UUID | None = None,
    *,
    api_key_id: uuid.UUID | None = None,
    every_session: bool = False,
) -> Event:
    """Closes the user's sockets of one session, of one API key, or all of them."""
    return {
        "type": SESSION_REVOKED,
        "user_id": str(user_id),
        "session_id": None if session_id is None else str(session_id),
        "api_key_id": None if api_key_id is None else str(api_key_id),
        "all": every_session,
        "at": _now(),
    }
