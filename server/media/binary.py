"""Find the ffmpeg binary: the configured one, else PATH, else imageio-ffmpeg's.

Resolved once at start-up by whoever builds the app; nothing here is cached,
so a changed PATH or setting is seen by the next call (and by tests).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class FfmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary; the message says which setting to fix."""


def resolve_ffmpeg(configured: str = "") -> str:
    """Absolute path of the ffmpeg to run.

    ``configured`` is ``Settings.ffmpeg_path``: a path (must exist and be
    executable) or a bare command name looked up on PATH. Empty means
    ``ffmpeg`` on PATH, else the static build shipped by imageio-ffmpeg.
    """
    if configured:
        return _check_configured(configured)
    on_path = shutil.which("ffmpeg")
    if on_path:
        return os.path.abspath(on_path)
    try:
        # Imported lazily: it is only needed when no system ffmpeg exists.
        import imageio_ffmpeg

        bundled = str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise FfmpegNotFoundError(
            "no ffmpeg found: none on PATH and imageio-ffmpeg has no binary "
            f"({exc}); install ffmpeg or set FRAMEFLOW_FFMPEG_PATH"
        ) from exc
    if not _is_executable_file(Path(bundled)):
        raise FfmpegNotFoundError(
            f"imageio-ffmpeg's ffmpeg {bundled!r} is not an executable file; "
            "install ffmpeg or set FRAMEFLOW_FFMPEG_PATH"
        )
    return bundled


def _check_configured(configured: str) -> str:
    # A bare name ("ffmpeg7") is looked up on PATH like a shell would; anything
    # with a directory part is taken as a path.
    if os.sep not in configured and (os.altsep is None or os.altsep not in configured):
        found = shutil.which(configured)
        if found is None:
            raise FfmpegNotFoundError(
                f"FRAMEFLOW_FFMPEG_PATH={configured!r}: no such command on PATH"
            )
        return os.path.abspath(found)
    path = Path(configured).expanduser()
    if not path.exists():
        raise FfmpegNotFoundError(f"FRAMEFLOW_FFMPEG_PATH={configured!r}: file does not exist")
    if not _is_executable_file(path):
        raise FfmpegNotFoundError(f"FRAMEFLOW_FFMPEG_PATH={configured!r}: not an executable file")
    return str(path.absolute())


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
