"""`EventPublisher`: the one way domain code announces what happened.

Services and the job runner get one as a dependency (`appkeys.PUBLISHER`);
event names are Literals, so a misspelt one fails mypy, not a client.
Publishing never blocks: the bus queues the event for local sockets and,
with Redis, for the other instances.
"""

from __future__ import annotations

import uuid

from server.directuploads.model import DirectUpload
from server.generations.model import Generation
from server.jobs.model import Job
from server.live.bus import Bus
from server.live.events import (
    GenerationEventType,
    JobEventType,
    direct_upload_completed_event,
    generation_event,
    job_event,
    session_revoked_event,
    video_deleted_event,
    video_ready_event,
)
from server.videos.model import Video


class EventPublisher:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def job(self, kind: JobEventType, job: Job) -> None:
        """The job runner's `publish` callback (async: the runner awaits its callbacks)."""
        self._bus.publish(job_event(kind, job))

    def video_ready(self, video: Video) -> None:
        self._bus.publish(video_ready_event(video))

    def video_deleted(self, user_id: uuid.UUID, video_id: uuid.UUID) -> None:
        self._bus.publish(video_deleted_event(user_id, video_id))

    def direct_upload_completed(self, upload: DirectUpload) -> None:
        self._bus.publish(direct_upload_completed_event(upload))

    def generation(self, kind: GenerationEventType, generation: Generation) -> None:
        self._bus.publish(generation_event(kind, generation))

    def session_revoked(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """A session ended (logout, a replayed refresh token): its sockets close with
        4401 on every instance. Server-side only: never sent to a client."""
        self._bus.publish(session_revoked_event(user_id, session_id))

    def api_key_revoked(self, user_id: uuid.UUID, api_key_id: uuid.UUID) -> None:
        """An API key was revoked: the sockets it authenticated close with 4401."""
        self._bus.publish(session_revoked_event(user_id, api_key_id=api_key_id))

    def account_disabled(self, user_id: uuid.UUID) -> None:
        """An account was disabled: every socket of it closes with 4401, on every instance."""
        self._bus.publish(session_revoked_event(user_id, every_session=True))
