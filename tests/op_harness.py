"""Run one operation directly on a real clip, with real storage and ffmpeg, no database.

`OpHarness` does what the upload path and the job runner do around an
operation, and nothing more: it sniffs and probes the file (the same probe as
uploads), stores it as a video's source (local disk, or S3 on moto), builds a
real `JobContext` with an empty scratch directory, runs `parse_params` then
`run`, and records every progress value reported::

    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(frames.OPERATION, {"fps": 2})
        data = await h.read(outputs[0])
        assert h.progress[-1] == 100

Pass `s3_endpoint=` (the `s3_endpoint` fixture) to run on the S3 backend, and
any Settings field as a keyword to change a limit.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.settings import Settings
from server.jobs.context import JobContext
from server.jobs.model import RUNNING, Job, OutputFile
from server.jobs.operations.protocol import Operation
from server.media.probe import MediaInfo, decoded_frames, parse_probe_output, probe
from server.media.sandbox import Sandbox, detect_sandbox
from server.media.sniff import SNIFF_BYTES, sniff
from server.object_keys import source_key, video_prefix
from server.storage import Storage, open_storage
from server.videos.model import Video
from tests.clips import ffmpeg_exe
from tests.s3_server import s3_settings


@dataclass
class OpHarness:
    settings: Settings
    storage: Storage
    video: Video
    info: MediaInfo
    root: Path
    # Operations run confined as in the server (bwrap here when it works).
    sandbox: Sandbox
    progress: list[float] = field(default_factory=list)
    touches: int = 0
    runs: int = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls, source: Path, tmp: Path, *, s3_endpoint: str | None = None, **overrides: Any
    ) -> AsyncIterator[OpHarness]:
        storage_settings = s3_settings(s3_endpoint) if s3_endpoint else {}
        settings = Settings(
            data_dir=tmp / "data",
            ffmpeg_path=ffmpeg_exe(),
            log_level="warning",
            **{**storage_settings, **overrides},
        )
        storage = await open_storage(settings)
        sandbox = await detect_sandbox(
            settings.ffmpeg_sandbox, ffmpeg=ffmpeg_exe(), scratch_root=tmp / "sandbox-check"
        )
        try:
            video, info = await _store_source(storage, settings, source)
            yield cls(settings, storage, video, info, tmp, sandbox)
        finally:
            await storage.close()

    def parse(self, op: Operation, params: dict[str, Any]) -> dict[str, Any]:
        return op.parse_params(params, self.video, self.settings)

    async def run(self, op: Operation, params: dict[str, Any] | None = None) -> list[OutputFile]:
        """parse_params, then run in a fresh scratch directory; `progress` holds this run's."""
        parsed = self.parse(op, params or {})
        self.progress = []
        self.runs += 1
        workdir = self.root / f"work-{uuid.uuid4().hex[:8]}"
        workdir.mkdir()
        job = _job(self.video, op.name, parsed)
        ctx = JobContext(
            job=job,
            source=self.video,
            storage=self.storage,
            settings=self.settings,
            ffmpeg=ffmpeg_exe(),
            sandbox=self.sandbox,
            workdir=workdir,
            output_prefix=video_prefix(self.video.user_id, self.video.id) + f"jobs/{job.id}/",
            report_progress=self.progress.append,
            touch=self._touch,
        )
        outputs = await op.run(ctx)
        for output in outputs:
            assert output.storage_key == ctx.output_key(output.name)
            info = await self.storage.stat(output.storage_key)
            assert info is not None and info.size == output.size, output
        return outputs

    def _touch(self) -> None:
        self.touches += 1

    async def read(self, output: OutputFile) -> bytes:
        return b"".join([chunk async for chunk in self.storage.read(output.storage_key)])

    async def fetch(self, output: OutputFile) -> Path:
        """The output copied to a local file (named like it) for zipfile or the probe."""
        path = self.root / "fetched" / uuid.uuid4().hex / output.name
        path.parent.mkdir(parents=True)
        path.write_bytes(await self.read(output))
        return path


def media_info(path: Path) -> tuple[MediaInfo, int]:
    """An output's metadata and how many video frames decode from it.

    Decodes the whole file (outputs are tiny), with ffmpeg's own format
    detection: these are files we made, and some (GIF) are not upload types.
    """
    proc = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-map",
            "0:V:0",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = decoded_frames(proc.stderr)
    assert frames is not None, proc.stderr[-2000:]
    return parse_probe_output(proc.stderr), frames


def image_size(data: bytes, tmp: Path) -> tuple[int, int]:
    """Width and height of an encoded image (JPEG, PNG, WebP) given as bytes."""
    path = tmp / f"image-{uuid.uuid4().hex}"
    path.write_bytes(data)
    try:
        info, _ = media_info(path)
    finally:
        path.unlink()
    return info.width, info.height


def progress_ok(values: list[float]) -> bool:
    """Non-decreasing, within 0-100, ending at exactly 100."""
    return (
        bool(values)
        and all(0 <= v <= 100 for v in values)
        and all(a <= b for a, b in itertools.pairwise(values))
        and values[-1] == 100
    )


VIDEO_META = {
    "container": "mov,mp4,m4a,3gp,3g2,mj2",
    "duration": 2.0,
    "bitrate": 200_000,
    "width": 320,
    "height": 240,
    "fps": 25.0,
    "video_codec": "h264",
    "pixel_format": "yuv420p",
    "audio_codec": "aac",
    "rotation": 0,
}
IMAGE_META = {**VIDEO_META, "duration": None, "fps": None, "audio_codec": None, "width": 300}
IMAGE_META["container"], IMAGE_META["video_codec"], IMAGE_META["height"] = "png_pipe", "png", 200


def fake_video(kind: str = "video", **meta: Any) -> Video:
    """A Video row for pure tests: a 2 s 320x240 25 fps H.264/AAC clip, or a 300x200 PNG."""
    base = VIDEO_META if kind == "video" else IMAGE_META
    return Video(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        filename="clip.mp4" if kind == "video" else "still.png",
        storage_key="videos/u/v/source",
        size=1000,
        sha256="0" * 64,
        content_type="video/mp4" if kind == "video" else "image/png",
        kind=kind,
        status="ready",
        metadata={**base, **meta},
        created_at=datetime.now(UTC),
    )


async def _store_source(
    storage: Storage, settings: Settings, path: Path
) -> tuple[Video, MediaInfo]:
    data = path.read_bytes()
    sniffed = sniff(data[:SNIFF_BYTES])
    assert sniffed is not None, f"{path} is not an accepted media type"
    info = await probe(
        ffmpeg_exe(), path, sniffed.demuxer, timeout=60, max_pixels=settings.max_pixels
    )
    user_id, video_id = uuid.uuid4(), uuid.uuid4()
    key = source_key(user_id, video_id)
    async with storage.writer(key, sniffed.content_type) as writer:
        await writer.write(data)
        await writer.commit()
    video = Video(
        id=video_id,
        user_id=user_id,
        filename=path.name,
        storage_key=key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=sniffed.content_type,
        kind=sniffed.kind,
        status="ready",
        metadata=info.to_json(),
        created_at=datetime.now(UTC),
    )
    return video, info


def _job(video: Video, operation: str, params: dict[str, Any]) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4(),
        user_id=video.user_id,
        video_id=video.id,
        operation=operation,
        params=params,
        status=RUNNING,
        priority=0,
        progress=0.0,
        attempts=1,
        max_attempts=3,
        error=None,
        worker_id="op-harness",
        lease_expires_at=now,
        cancel_requested=False,
        created_at=now,
        started_at=now,
        finished_at=None,
    )
