"""Operations a job can run, by name: the typed dispatch map."""

from __future__ import annotations

from server.jobs.operations.base import Operation


def registry() -> dict[str, Operation]:
    """Every operation, keyed by the name clients send."""
    from server.jobs.operations import convert, frames, hls, thumbnail, transcode

    operations: list[Operation] = [
        frames.OPERATION,
        transcode.OPERATION,
        hls.OPERATION,
        thumbnail.OPERATION,
        convert.OPERATION,
    ]
    return {op.name: op for op in operations}
