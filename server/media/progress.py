"""Parse ffmpeg's `-progress pipe:1` stream into a percentage (pure).

ffmpeg writes blocks of `key=value` lines, each block ending with
`progress=continue` (or `progress=end`). `out_time_us` (microseconds of
output written) divided by the expected output duration is the fraction
done. Chunks arrive split anywhere, so the parser buffers partial lines.
"""

from __future__ import annotations

from collections.abc import Callable

# One line is a few dozen bytes; anything longer is not progress output.
_MAX_LINE = 4096


class ProgressParser:
    """Feed it stdout chunks; it calls `on_percent` with a non-decreasing 0-100 value."""

    def __init__(self, duration: float | None, on_percent: Callable[[float], None]) -> None:
        self.duration = duration if duration and duration > 0 else None
        self.on_percent = on_percent
        self.percent = 0.0
        self.ended = False
        self._buffer = b""
        self._out_time_us: int | None = None

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > _MAX_LINE:
            self._buffer = b""
        for line in lines:
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        key, sep, value = line.partition(b"=")
        if not sep:
            return
        if key in (b"out_time_us", b"out_time_ms"):
            # Despite its name, out_time_ms is also in microseconds.
            try:
                self._out_time_us = int(value)
            except ValueError:
                return
        elif key == b"progress":
            if value == b"end":
                self.ended = True
                self._emit(100.0)
            elif self._out_time_us is not None and self.duration:
                done = self._out_time_us / 1_000_000 / self.duration * 100
                # Never 100 before ffmpeg says it has ended.
                self._emit(min(max(done, 0.0), 99.9))

    def _emit(self, value: float) -> None:
        if value > self.percent:
            self.percent = value
            self.on_percent(value)


def scaled(
    on_percent: Callable[[float], None], start: float, end: float
) -> Callable[[float], None]:
    """Map a step's 0-100 into `start`-`end` of the whole job (multi-step operations)."""

    def report(value: float) -> None:
        on_percent(start + (end - start) * value / 100)

    return report
