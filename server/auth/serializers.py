"""The JSON of accounts and token pairs: the one user serializer of the API.

An account is shown in two places, each a view of the same fields: its
owner's `/api/v1/me` (`self`: with the owner's settings) and an
administrator's `/api/v1/admin/users/{id}` (`admin`: with when it was
created). A sign-up shows none: it must not say whether the address was new.
"""

from __future__ import annotations

from typing import Any, Literal

from server.auth.model import TokenPair, User

UserView = Literal["self", "admin"]


def user_json(user: User, view: UserView) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(user.id), "email": user.email}
    body.update(
        role=user.role,
        quota_bytes=user.quota_bytes,
        used_bytes=user.used_bytes,
        email_verified=user.email_verified,
    )
    if view == "self":
        body["email_notifications"] = user.email_notifications
    else:
        body["created_at"] = user.created_at.isoformat()
        body["disabled"] = user.disabled
        body["disabled_at"] = None if user.disabled_at is None else user.disabled_at.isoformat()
    return body


def token_pair_json(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
        "expires_in": pair.expires_in,
    }
