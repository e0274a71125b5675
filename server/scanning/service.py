"""`ScanService`: what a malware scan means for an upload.

Called by the upload service on the stored object's local file, after the
bytes are complete and before the probe and the row: an infected file is
refused with 422 `infected` (the caller then deletes the object, so nothing
is kept), and a clamd that cannot be reached answers 503
`scanner_unavailable` — or, with `malware_scan_fail_open`, lets the upload
through unscanned with a warning in the log. With `malware_scan` off it does
nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from config.settings import Settings
from server.errors import ServiceUnavailable, Unprocessable
from server.localfiles import file_chunks
from server.logs import get_logger
from server.scanning.clamd import ClamdClient, ClamdError, parse_address

log = get_logger("frameflow.scanning")

# Read size of the file streamed to clamd: memory per scan is about this.
SCAN_CHUNK_BYTES = 256 * 1024
# What a client should wait before retrying when clamd is down.
RETRY_AFTER_SECONDS = 30


class ScanService:
    def __init__(self, *, settings: Settings, client: ClamdClient | None = None) -> None:
        self.enabled = settings.malware_scan
        self.fail_open = settings.malware_scan_fail_open
        self.client = client or ClamdClient(
            parse_address(settings.clamd_address), timeout=settings.malware_scan_timeout_seconds
        )

    async def require_clean(self, path: Path) -> None:
        """Return if the file at ``path`` may be kept; raise the HTTP error if not."""
        if not self.enabled:
            return
        try:
            verdict = await self.client.scan(_file_chunks(path))
        except ClamdError as exc:
            if self.fail_open:
                log.warning("malware_scan_skipped", reason=str(exc))
                return
            log.error("malware_scan_unavailable", reason=str(exc))
            raise ServiceUnavailable(
                "The malware scanner is unavailable; try again later",
                code="scanner_unavailable",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        if verdict.infected:
            log.warning("upload_infected", signature=verdict.signature)
            raise Unprocessable(
                f"The file contains malware ({verdict.signature})",
                code="infected",
                signature=verdict.signature,
            )


def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    return file_chunks(path, SCAN_CHUNK_BYTES)
