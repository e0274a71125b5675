"""What a request knows about its account (role, disabled, verified), kept for a
moment so that a player's parallel range requests do not each ask the database.

Entries live at most `account_check_cache_seconds` (capped at a few seconds:
issue 10 allows no cache that outlives that). A change made by this process —
a role, a disable, a verification, a password reset — forgets the account at
once; another instance sees it within the lifetime. A missing account is never
cached: it is asked again every time. `checked_at` says when an entry was read
(wall clock), so that what is derived from it (nginx's reuse of an
authorization, `X-Accel-Expires`) ends when the entry would.
"""

from __future__ import annotations

import time
import uuid

from server.auth.model import Access

MAX_ENTRIES = 10_000


class AccessCache:
    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        # user id -> (expiry on the monotonic clock, checked at on the wall clock, access)
        self._entries: dict[uuid.UUID, tuple[float, float, Access]] = {}

    def get(self, user_id: uuid.UUID) -> Access | None:
        entry = self._entries.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[2]

    def checked_at(self, user_id: uuid.UUID) -> float | None:
        """When the live entry of `user_id` was read from the database (time.time())."""
        entry = self._entries.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, user_id: uuid.UUID, access: Access, checked_at: float | None = None) -> None:
        """`checked_at`: when the read began (wall clock); now when not given."""
        if self.ttl <= 0:
            return
        now = time.monotonic()
        wall = time.time()
        checked = wall if checked_at is None else min(checked_at, wall)
        if len(self._entries) >= MAX_ENTRIES:
            # Drop what has expired; if all is fresh, start over (one query each).
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
        # Expires `ttl` after the read began, as the wall-clock view says.
        self._entries[user_id] = (now + self.ttl - (wall - checked), checked, access)

    def forget(self, user_id: uuid.UUID) -> None:
        self._entries.pop(user_id, None)
