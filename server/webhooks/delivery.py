"""Webhook deliveries: signing (pure) and the background sender.

Each delivery is a JSON POST signed with the webhook's secret:

    X-Frameflow-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    X-Frameflow-Timestamp: <unix seconds>   (receivers reject old ones: replays)
    X-Frameflow-Event: job.succeeded
    X-Frameflow-Delivery: <delivery id>     (the same on every retry: dedupe on it)

Redirects are not followed (a 3xx is a failed attempt: following one would
reach an address nobody checked). Any answer but 2xx, a timeout or a refused
address is recorded and retried with exponential backoff up to
`notify_max_attempts`. Rows come from a trigger in the job's final
transaction (sql/005_webhooks.sql); claims use `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import asyncpg

from config.settings import Settings
from server.db import webhooks as webhooks_db
from server.db.direct_uploads import direct_upload_from_snapshot
from server.db.jobs import job_from_snapshot
from server.directuploads.serializers import direct_upload_json
from server.drain import RETRY_BASE_SECONDS, DrainLoop, next_retry
from server.jobs.serializers import job_json
from server.logs import get_logger
from server.metrics import Metrics
from server.tracing import untraced
from server.webhooks.model import Delivery, Webhook
from server.webhooks.ssrf import (
    GuardedResolver,
    UnsafeURL,
    allowed_hosts,
    check_address,
    literal_ip,
    parse_url,
)

log = get_logger("frameflow.webhooks")

POLL_SECONDS = 1.0
BATCH = 20
USER_AGENT = "Frameflow-Webhooks/1"


def delivery_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The event's data: the job recorded by the trigger, rendered like the API renders
    it (rows queued before migration 007 hold their rendering already)."""
    if "job_row" in data:
        return {"job": job_json(job_from_snapshot(data["job_row"]))}
    if "direct_upload_row" in data:
        upload = direct_upload_from_snapshot(data["direct_upload_row"])
        return {"direct_upload": direct_upload_json(upload)}
    return dict(data)


def body_bytes(delivery: Delivery) -> bytes:
    """The JSON body, built from the row alone: every retry sends the same bytes."""
    payload = {
        "id": str(delivery.id),
        "type": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery_data(delivery.data),
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(
    secret: str, delivery: Delivery, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Frameflow-Event": delivery.event,
        "X-Frameflow-Delivery": str(delivery.id),
        "X-Frameflow-Timestamp": str(ts),
        "X-Frameflow-Signature": signature(secret, ts, body),
    }


class WebhookSender:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        poll_seconds: float | None = None,
        retry_base_seconds: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self._metrics = metrics
        self.allowed = allowed_hosts(settings.webhook_allowed_hosts)
        self.retry_base_seconds = (
            RETRY_BASE_SECONDS if retry_base_seconds is None else retry_base_seconds
        )
        self._session: aiohttp.ClientSession | None = None
        self._drain = DrainLoop(
            "webhook-sender",
            self.run_once,
            batch=BATCH,
            poll_seconds=POLL_SECONDS if poll_seconds is None else poll_seconds,
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.allowed),
            use_dns_cache=False,  # every delivery resolves (and checks) afresh
            force_close=True,  # no pooled connection outlives the check made for it
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout_seconds),
            trust_env=False,  # no proxy from the environment: we connect where we checked
        )
        self._drain.start()

    async def stop(self) -> None:
        # A delivery cut off mid-request is sent again after its claim lease.
        await self._drain.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        self._drain.wake()

    @property
    def poll_seconds(self) -> float:
        return self._drain.poll_seconds

    @poll_seconds.setter
    def poll_seconds(self, value: float) -> None:
        self._drain.poll_seconds = value

    def _lease_seconds(self) -> float:
        return self.settings.webhook_timeout_seconds * 2 + 30

    async def run_once(self) -> int:
        with untraced():  # polling: a trace only when there is something to send
            async with self.pool.acquire() as conn:
                due = await webhooks_db.claim_due(
                    conn, limit=BATCH, lease_seconds=self._lease_seconds()
                )
        # Concurrently: one slow receiver must not hold back everyone else's.
        await asyncio.gather(*(self._deliver(d) for d in due))
        return len(due)

    async def _deliver(self, delivery: Delivery) -> None:
        async with self.pool.acquire() as conn:
            hook = await webhooks_db.get_webhook(conn, delivery.webhook_id, None)
        if hook is None:
            return  # deleted meanwhile; its deliveries went with it
        status, error = await self._post(hook, delivery)
        delivered = error is None
        retry_in = (
            None
            if delivered
            else next_retry(
                delivery.attempts, self.settings.notify_max_attempts, self.retry_base_seconds
            )
        )
        async with self.pool.acquire() as conn:
            await webhooks_db.record_attempt(
                conn,
                delivery.id,
                delivered=delivered,
                response_status=status,
                error=error,
                retry_in=retry_in,
            )
        if self._metrics is not None:
            outcome = "sent" if delivered else ("failed" if retry_in is None else "retried")
            self._metrics.webhooks.labels(delivery.event, outcome).inc()
        log.info(
            "webhook_delivered" if delivered else "webhook_failed",
            delivery_id=str(delivery.id),
            webhook_id=str(hook.id),
            attempts=delivery.attempts,
            status=status,
            error=error,
            retry_in=retry_in,
        )

    async def _post(self, hook: Webhook, delivery: Delivery) -> tuple[int | None, str | None]:
        """(response status, error); error None means delivered."""
        assert self._session is not None
        body = body_bytes(delivery)
        try:
            parts = parse_url(hook.url)
            ip = literal_ip(parts.hostname or "")
            if ip is not None:  # aiohttp does not resolve literals: check here
                check_address(parts.hostname or "", ip, self.allowed)
            async with self._session.post(
                hook.url,
                data=body,
                headers=signed_headers(hook.secret, delivery, body),
                allow_redirects=False,
            ) as resp:
                if 200 <= resp.status < 300:
                    return resp.status, None
                if 300 <= resp.status < 400:
                    return resp.status, f"redirect to {_location(resp)} not followed"
                return resp.status, f"the receiver answered {resp.status}"
        except UnsafeURL as exc:
            return None, f"refused: {exc}"
        except aiohttp.ClientConnectorError as exc:
            # The guarded resolver's refusal arrives wrapped in a connector error.
            cause: Any = exc.__cause__ or exc.os_error
            if isinstance(cause, UnsafeURL):
                return None, f"refused: {cause}"
            return None, f"cannot connect: {exc.os_error or exc}"
        except TimeoutError:
            return None, f"timed out after {self.settings.webhook_timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]


def _location(resp: aiohttp.ClientResponse) -> str:
    return resp.headers.get("Location", "?")[:200]
