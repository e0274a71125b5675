"""Registering webhooks: the URL check, the per-user cap, ownership of hooks and logs.

Sending is `delivery.WebhookSender`'s job; this service only manages what is
registered. A URL is refused at registration when it names an internal
address (and checked again at every delivery, since DNS can change).
"""

from __future__ import annotations

import secrets
import uuid

import asyncpg

from config.settings import Settings
from server.audit.model import Actor, Origin, Target
from server.audit.service import AuditLog
from server.auth.model import AuthUser
from server.auth.tokens import invalid_token
from server.db import webhooks as webhooks_db
from server.errors import BadRequest, Conflict, NotFound
from server.webhooks.model import Delivery, Webhook
from server.webhooks.ssrf import UnsafeURL, allowed_hosts, check_url

MAX_WEBHOOKS_PER_USER = 20


def _not_found() -> NotFound:
    return NotFound("No such webhook", code="webhook_not_found")


class WebhookService:
    def __init__(self, *, pool: asyncpg.Pool, settings: Settings, audit: AuditLog) -> None:
        self.pool = pool
        self.audit = audit
        self.allowed = allowed_hosts(settings.webhook_allowed_hosts)

    async def create(
        self, caller: AuthUser, url: str, events: list[str], origin: Origin | None = None
    ) -> Webhook:
        """The new hook, with the secret its deliveries are signed with."""
        user_id = caller.id
        try:
            await check_url(url, self.allowed)
        except UnsafeURL as exc:
            raise BadRequest(
                f"'url' is not allowed: {exc}", code="invalid_url", field="url"
            ) from None
        secret = "whsec_" + secrets.token_urlsafe(32)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await webhooks_db.lock_owner(conn, user_id):
                raise invalid_token()  # the account was deleted under its token
            if await webhooks_db.count_webhooks(conn, user_id) >= MAX_WEBHOOKS_PER_USER:
                raise Conflict(
                    f"At most {MAX_WEBHOOKS_PER_USER} webhooks per account",
                    code="too_many_webhooks",
                )
            hook = await webhooks_db.insert_webhook(
                conn, user_id=user_id, url=url, events=events, secret=secret
            )
            await self.audit.record(
                "webhook.create",
                actor=Actor.of(caller),
                target=Target("webhook", str(hook.id)),
                detail={"url": url, "events": events},
                origin=origin,
                conn=conn,
            )
            return hook

    async def list_hooks(self, user_id: uuid.UUID) -> list[Webhook]:
        async with self.pool.acquire() as conn:
            return await webhooks_db.list_webhooks(conn, user_id)

    async def delete(
        self, caller: AuthUser, webhook_id: uuid.UUID, origin: Origin | None = None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await webhooks_db.delete_webhook(conn, webhook_id, caller.id):
                raise _not_found()
            await self.audit.record(
                "webhook.delete",
                actor=Actor.of(caller),
                target=Target("webhook", str(webhook_id)),
                origin=origin,
                conn=conn,
            )

    async def deliveries(
        self, user_id: uuid.UUID, webhook_id: uuid.UUID, limit: int
    ) -> list[Delivery]:
        """The hook's delivery log, newest first; another user's hook is not found."""
        async with self.pool.acquire() as conn:
            if await webhooks_db.get_webhook(conn, webhook_id, user_id) is None:
                raise _not_found()
            return await webhooks_db.list_deliveries(conn, webhook_id, limit)
