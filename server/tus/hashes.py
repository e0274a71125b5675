"""The running SHA-256 of resumable uploads, kept between the PATCHes one process serves."""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from typing import Any


class RunningHashes:
    """SHA-256 of each upload's first `offset` bytes, kept between the PATCHes this
    process serves (bounded, least recently used out). A miss costs one read of the
    finished object."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._entries: OrderedDict[uuid.UUID, tuple[int, Any]] = OrderedDict()

    def take(self, upload_id: uuid.UUID, offset: int) -> Any | None:
        entry = self._entries.pop(upload_id, None)
        if offset == 0:
            return hashlib.sha256()
        if entry is not None and entry[0] == offset:
            return entry[1]
        return None

    def put(self, upload_id: uuid.UUID, offset: int, hasher: Any | None) -> None:
        if hasher is None:
            return
        self._entries[upload_id] = (offset, hasher)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def forget(self, upload_id: uuid.UUID) -> None:
        self._entries.pop(upload_id, None)
