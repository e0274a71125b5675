"""The background cleanup task: a sweep every `cleanup_interval_seconds`, jittered.

Jitter (±20%) keeps instances that started together from all waking at the
same moment; the advisory lock makes any that still collide skip. A failing
sweep is logged and counted, and the loop goes on: cleanup is never a reason
for the server to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from server.cleanup.sweep import CleanupReport
from server.logs import get_logger
from server.metrics import Metrics

log = get_logger("frameflow.cleanup")

JITTER = 0.2

Sweep = Callable[[], Awaitable[CleanupReport]]


def jittered(interval: float, rand: Callable[[], float] = random.random) -> float:
    """`interval` ± JITTER x interval, uniformly."""
    return interval * (1 - JITTER + 2 * JITTER * rand())


def record(metrics: Metrics, report: CleanupReport) -> str:
    """Count a finished sweep; returns its outcome label."""
    outcome = "skipped" if report.skipped else "error" if report.errors else "ok"
    metrics.cleanup_runs.labels(outcome).inc()
    metrics.cleanup_videos_deleted.inc(report.videos_deleted)
    metrics.cleanup_bytes_freed.inc(report.bytes_freed)
    metrics.cleanup_uploads_aborted.inc(report.uploads_aborted or 0)
    metrics.cleanup_temp_removed.inc(report.temp_files_removed)
    metrics.cleanup_tokens_deleted.labels("account").inc(report.account_tokens_deleted)
    metrics.cleanup_tokens_deleted.labels("refresh").inc(report.refresh_tokens_deleted)
    return outcome


class CleanupTask:
    def __init__(self, sweep: Sweep, interval: float, metrics: Metrics) -> None:
        self._sweep = sweep
        self.interval = interval
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # finished passes, whatever their outcome (tests wait on it)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="cleanup")

    async def stop(self) -> None:
        """Cancel and await: a sweep cut off here is safe (see sweep.py), a leaked task is not."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run_once(self) -> CleanupReport | None:
        try:
            report = await self._sweep()
        except Exception:
            log.exception("cleanup_failed")
            self._metrics.cleanup_runs.labels("error").inc()
            return None
        finally:
            self.runs += 1
        outcome = record(self._metrics, report)
        if outcome != "skipped":
            log.info("cleanup_done", outcome=outcome, **_summary(report))
        return report

    async def _loop(self) -> None:
        # The first pass also waits: start-up is busy enough, and instances
        # restarted together should not sweep in lockstep.
        while True:
            await asyncio.sleep(jittered(self.interval))
            await self.run_once()


def _summary(report: CleanupReport) -> dict[str, object]:
    return {
        "videos_deleted": report.videos_deleted,
        "bytes_freed": report.bytes_freed,
        "uploads_aborted": report.uploads_aborted,
        "temp_files_removed": report.temp_files_removed,
        "pending_prefixes_removed": report.pending_prefixes_removed,
        "orphans_removed": report.orphans_removed,
        "tus_uploads_expired": report.tus_uploads_expired,
        "account_tokens_deleted": report.account_tokens_deleted,
        "refresh_tokens_deleted": report.refresh_tokens_deleted,
        "errors": len(report.errors),
    }
