"""JSON shapes of jobs, their outputs and their history as the API returns them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from server.jobs.links import make_token, output_path
from server.jobs.model import Job, JobEvent, OutputFile
from server.jobs.operations import hls
from server.jobs.operations.thumbnail import THUMBNAIL_NAME
from server.serving.signing import UrlSigner

# An HLS job has a playlist per rendition and many segments; clients need only
# the master playlist (everything else loads relative to it).
HLS_PREFIX = hls.OUTPUT_PREFIX
HLS_MASTER = hls.OUTPUT_PREFIX + hls.MASTER


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "video_id": str(job.video_id) if job.video_id else None,
        "operation": job.operation,
        "params": job.params,
        "status": job.status,
        "progress": round(job.progress, 1),
        "attempts": job.attempts,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def listed_outputs(outputs: Sequence[OutputFile]) -> list[OutputFile]:
    """What a client is shown: every output, except that HLS is its master playlist."""
    return [o for o in outputs if not o.name.startswith(HLS_PREFIX) or o.name == HLS_MASTER]


def output_link_maker(
    signer: UrlSigner, job_id: uuid.UUID, ttl_seconds: int, absolute: Callable[[str], str]
) -> Callable[[str], str]:
    """Signed URLs for a job's outputs; one token (valid `ttl_seconds`) opens them all."""
    token = make_token(signer, job_id, int(time.time()) + ttl_seconds)
    return lambda name: absolute(output_path(job_id, token, name))


def thumbnail_links(
    signer: UrlSigner,
    jobs_by_video: Mapping[uuid.UUID, uuid.UUID],
    ttl_seconds: int,
    absolute: Callable[[str], str],
) -> dict[str, str]:
    """video id (text) -> the signed URL of its thumbnail job's `thumbnail.jpg`."""
    return {
        str(video_id): output_link_maker(signer, job_id, ttl_seconds, absolute)(THUMBNAIL_NAME)
        for video_id, job_id in jobs_by_video.items()
    }


def job_detail_json(
    job: Job, outputs: Sequence[OutputFile], link: Callable[[str], str]
) -> dict[str, Any]:
    shown = listed_outputs(outputs)
    return {
        **job_json(job),
        "outputs": [
            {"name": o.name, "size": o.size, "content_type": o.content_type, "url": link(o.name)}
            for o in shown
        ],
        "output_count": len(outputs),
    }


def event_json(event: JobEvent) -> dict[str, Any]:
    duration = None
    if event.ended_at is not None:
        duration = round((event.ended_at - event.started_at).total_seconds(), 3)
    return {
        "attempt": event.attempt,
        "worker_id": event.worker_id,
        "started_at": _iso(event.started_at),
        "ended_at": _iso(event.ended_at),
        "outcome": event.outcome,
        "error": event.error,
        "duration_seconds": duration,
    }
