"""The JSON of webhooks and their deliveries (the secret is shown only at creation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.webhooks.model import Delivery, Webhook


def webhook_json(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(hook.id),
        "url": hook.url,
        "events": hook.events,
        "created_at": hook.created_at.isoformat(),
    }
    if with_secret:
        # The only time the secret is shown: it is what receivers verify with.
        body["secret"] = hook.secret
    return body


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "response_status": d.response_status,
        "error": d.error,
        "created_at": _iso(d.created_at),
        "last_attempt_at": _iso(d.last_attempt_at),
        "next_attempt_at": _iso(d.next_attempt_at) if d.status in {"pending", "retry"} else None,
    }
