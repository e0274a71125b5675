"""What one Frameflow process does, chosen by `--role` / `FRAMEFLOW_ROLE`.

A role is a set of parts. The `api` part serves HTTP and WebSockets (uploads
are probed there, jobs are only queued); the `worker` part runs queued jobs,
the cleanup sweep and the senders of mails and webhooks, and serves only the
probes and `/metrics`. `all` (the default) is both: one machine, one process.
Every part shares its state through PostgreSQL, Redis and the object store,
so any number of `api` and `worker` processes can run side by side.

`server/app.py` holds the one table that says which start-up context belongs
to which part; this module only names the roles.
"""

from __future__ import annotations

API = "api"
WORKER = "worker"
ROLES: dict[str, frozenset[str]] = {
    "all": frozenset({API, WORKER}),
    API: frozenset({API}),
    WORKER: frozenset({WORKER}),
}


def parts_of(role: str) -> frozenset[str]:
    """The parts a role runs (settings validation has refused unknown roles)."""
    return ROLES[role]
