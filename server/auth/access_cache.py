"""What a request knows about its account (role, disabled, verified), kept for a
moment so that a player's parallel range requests do not each ask the database.

Entries live at most `account_check_cache_seconds` (capped at a few seconds:
issue 10 allows no cache that outlives that). A change made by this process —
a role, a disable, a verification, a password reset — forgets the account at
once; another instance sees it within the lifetime. A missing account is never
cached: it is asked again every time.
"""

from __future__ import annotations

import time
import uuid

from server.auth.model import Access

MAX_ENTRIES = 10_000


class AccessCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[uuid.UUID, tuple[float, Access]] = {}

    def get(self, user_id: uuid.UUID) -> Access | None:
        entry = self._entries.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, user_id: uuid.UUID, access: Access) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= MAX_ENTRIES:
            # Drop what has expired; if all is fresh, start over (one query each).
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
        self._entries[user_id] = (now + self.ttl, access)

    def forget(self, user_id: uuid.UUID) -> None:
        self._entries.pop(user_id, None)
