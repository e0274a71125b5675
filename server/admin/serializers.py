"""JSON of what the admin console reads: accounts with usage, every user's jobs, the summary."""

from __future__ import annotations

from typing import Any

from server.admin.model import SystemSummary
from server.auth.model import AccountUsage
from server.auth.serializers import user_json
from server.jobs.model import Job
from server.jobs.serializers import job_json


def account_json(account: AccountUsage) -> dict[str, Any]:
    body = user_json(account.user, "admin")
    body["video_count"] = account.video_count
    return body


def admin_job_json(job: Job) -> dict[str, Any]:
    return {**job_json(job), "user_id": str(job.user_id)}


def summary_json(summary: SystemSummary) -> dict[str, Any]:
    return {
        "users": {
            "total": sum(summary.users_by_role.values()),
            "by_role": summary.users_by_role,
            "disabled": summary.users_disabled,
        },
        "videos": summary.videos,
        "bytes_stored": summary.bytes_stored,
        "video_bytes": summary.video_bytes,
        "output_bytes": summary.output_bytes,
        "jobs_by_status": summary.jobs_by_status,
        "workers": [
            {
                "worker_id": w.worker_id,
                "concurrency": w.concurrency,
                "running": w.running,
                "started_at": w.started_at.isoformat(),
                "seen_at": w.seen_at.isoformat(),
            }
            for w in summary.workers
        ],
    }
