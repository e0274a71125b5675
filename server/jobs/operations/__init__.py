"""Operations a job can run, by name: the typed dispatch map."""

from __future__ import annotations

from server.jobs.operations.protocol import Operation


def registry() -> dict[str, Operation]:
    """Every operation, keyed by the name clients send."""
    from server.jobs.operations.convert import OPERATION as CONVERT
    from server.jobs.operations.frames import OPERATION as FRAMES
    from server.jobs.operations.hls import OPERATION as HLS
    from server.jobs.operations.thumbnail import OPERATION as THUMBNAIL
    from server.jobs.operations.transcode import OPERATION as TRANSCODE

    operations: list[Operation] = [FRAMES, TRANSCODE, HLS, THUMBNAIL, CONVERT]
    return {op.name: op for op in operations}
