"""Which encoders the ffmpeg in use was built with, asked once per binary.

Builds differ: imageio-ffmpeg's static 9.x has SVT-AV1 and libaom, Debian's
5.1 has a different set, a custom build may lack libx264. Operations ask here
instead of assuming, so a missing encoder is a clear 400 at submission (or a
clear failure at run time on an instance built differently), not an ffmpeg
error in the middle of a job.

The answer is cached per binary path for the life of the process: the binary
does not change under a running server. The first call runs ffmpeg (~30 ms);
`load_encoders` does that off the event loop, for start-up.
"""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess

# " V....D libx264   libx264 H.264 ..." — six capability flags, then the name.
# ffmpeg 4.x to 9.x all print this shape below a " ------" separator.
_ENCODER_LINE = re.compile(r"^\s*[VAS.][F.][S.][X.][B.][D.]\s+(?P<name>[\w.\-]+)\s")
_LIST_TIMEOUT_SECONDS = 30


class EncoderListError(RuntimeError):
    """ffmpeg could not list its encoders (not cached: the next call tries again)."""


def parse_encoders(text: str) -> frozenset[str]:
    """Encoder names from `ffmpeg -hide_banner -encoders` output (pure)."""
    names: set[str] = set()
    in_list = False
    for line in text.splitlines():
        if not in_list:
            # The legend above the separator has flag lines too (" V..... = Video").
            in_list = line.strip().startswith("------")
            continue
        match = _ENCODER_LINE.match(line)
        if match:
            names.add(match["name"])
    return frozenset(names)


@functools.lru_cache(maxsize=8)
def available_encoders(ffmpeg: str) -> frozenset[str]:
    """Encoder names of the `ffmpeg` binary (an absolute path), cached per path."""
    try:
        proc = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-encoders"],
            capture_output=True,
            text=True,
            timeout=_LIST_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EncoderListError(f"cannot list ffmpeg's encoders: {exc}") from exc
    names = parse_encoders(proc.stdout)
    if proc.returncode != 0 or not names:
        raise EncoderListError(
            f"cannot list ffmpeg's encoders (exit status {proc.returncode}): "
            + proc.stderr.strip()[-300:]
        )
    return names


async def load_encoders(ffmpeg: str) -> frozenset[str]:
    """`available_encoders` without blocking the event loop; call it at start-up."""
    return await asyncio.to_thread(available_encoders, ffmpeg)


def first_available(encoders: frozenset[str], *candidates: str) -> str | None:
    """The first of `candidates` (in order of preference) that the build has."""
    return next((name for name in candidates if name in encoders), None)
