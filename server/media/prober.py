"""`Prober`: the one way uploads are probed, with the server's limits applied.

A probe decodes a frame, which can take hundreds of MB for a large picture,
so the number running at once is bounded (`probe_concurrency`); the others
wait their turn. Each probe gets the `max_pixels` setting (the decoder
refuses larger pictures before allocating them) and runs in the sandbox.
Built once in `server.app` and reached through `appkeys.PROBER`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from config.settings import Settings
from server.media.probe import MediaInfo, probe
from server.media.sandbox import Sandbox


class Prober:
    def __init__(self, *, ffmpeg: str, sandbox: Sandbox, settings: Settings) -> None:
        self._ffmpeg = ffmpeg
        self._sandbox = sandbox
        self._timeout = settings.probe_timeout_seconds
        self._max_pixels = settings.max_pixels
        self._slots = asyncio.Semaphore(settings.probe_concurrency)
        self._running = 0

    @property
    def running(self) -> int:
        """Probes running now (not counting those waiting for a slot)."""
        return self._running

    async def probe(self, path: Path, demuxer: str) -> MediaInfo:
        """`server.media.probe.probe` of ``path``, once a slot is free.

        Raises ProbeError (not a usable video, or over `max_pixels`) and
        FfmpegTimeout (over `probe_timeout_seconds`, not counting the wait).
        """
        async with self._slots:
            self._running += 1
            try:
                return await probe(
                    self._ffmpeg,
                    path,
                    demuxer,
                    timeout=self._timeout,
                    max_pixels=self._max_pixels,
                    sandbox=self._sandbox,
                )
            finally:
                self._running -= 1
