"""The JSON of an audit row: the one shape of the admin list, the export and a
user's own security events."""

from __future__ import annotations

from typing import Any

from server.audit.model import AuditEntry


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "created_at": entry.created_at.isoformat(),
        "actor": {
            "type": entry.actor_type,
            "user_id": None if entry.actor_user_id is None else str(entry.actor_user_id),
            "api_key_id": None if entry.actor_api_key_id is None else str(entry.actor_api_key_id),
        },
        "action": entry.action,
        "target": None
        if entry.target_type is None
        else {"type": entry.target_type, "id": entry.target_id},
        "outcome": entry.outcome,
        "client_ip": entry.client_ip,
        "user_agent": entry.user_agent,
        "request_id": entry.request_id,
        "detail": entry.detail,
    }
