"""What an operation gets to do its work, and nothing more.

Operations know nothing of the database, the queue or sockets: they read the
source, run ffmpeg, write outputs under `output_prefix`, report progress
through a callback, and return the outputs they stored. The runner owns
everything else (status, leases, output rows, cancellation, timeouts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings
from server.jobs.model import Job
from server.videos.model import Video

if TYPE_CHECKING:
    from server.media.sandbox import Sandbox
    from server.storage.base import Storage


@dataclass(frozen=True)
class JobContext:
    job: Job
    source: Video | None  # None for work without a source video (a generation)
    storage: Storage
    settings: Settings
    ffmpeg: str
    # Confines ffmpeg: it may write `workdir` and read its inputs, nothing else.
    sandbox: Sandbox
    workdir: Path  # empty scratch directory of this attempt; removed afterwards
    output_prefix: str  # e.g. "videos/<user>/<video>/jobs/<job>/"; keys are deterministic
    # Percent done, 0-100. The runner keeps it monotonic, throttles
    # publishing, and treats an advance as proof of life for the
    # no-progress timeout.
    report_progress: Callable[[float], None]
    # Proof of life without a percentage (e.g. while uploading outputs).
    touch: Callable[[], None]

    @property
    def video(self) -> Video:
        """The source video: every operation but a generation has one."""
        if self.source is None:
            raise RuntimeError(f"job {self.job.id} has no source video")
        return self.source

    def output_key(self, name: str) -> str:
        return self.output_prefix + name
