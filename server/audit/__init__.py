"""The audit log: who did what to which account, key, video or hook, append-only."""
