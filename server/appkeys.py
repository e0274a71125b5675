"""Every piece of application state, declared once as a typed `web.AppKey`."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from config.settings import Settings

if TYPE_CHECKING:
    from server.auth.tokens import TokenService
    from server.cleanup.task import CleanupTask
    from server.jobs.runner import JobRunner
    from server.limits.ratelimit import RateLimiter
    from server.live.bus import Bus
    from server.media.prober import Prober
    from server.media.sandbox import Sandbox
    from server.metrics import Metrics
    from server.notify.mailer import Mailer
    from server.notify.outbox import Outbox
    from server.scanning.service import ScanService
    from server.serving.signing import UrlSigner
    from server.storage.base import Storage
    from server.uploads.service import UploadTracker
    from server.webhooks.delivery import WebhookSender

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DATABASE_URL = web.AppKey("database_url", str)  # resolved (embedded or configured)
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
SIGNER: web.AppKey[UrlSigner] = web.AppKey("signer")
FFMPEG = web.AppKey("ffmpeg", str)
# How every ffmpeg that touches an upload is confined (detected at start-up).
SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox")
PROBER: web.AppKey[Prober] = web.AppKey("prober")
# The malware scan of uploads (a no-op unless FRAMEFLOW_MALWARE_SCAN is on).
SCANNER: web.AppKey[ScanService] = web.AppKey("scanner")
UPLOADS: web.AppKey[UploadTracker] = web.AppKey("uploads")
RUNNER: web.AppKey[JobRunner] = web.AppKey("runner")
BUS: web.AppKey[Bus] = web.AppKey("bus")
# Absent when FRAMEFLOW_CLEANUP_ENABLED=false.
CLEANUP: web.AppKey[CleanupTask] = web.AppKey("cleanup")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# Open WebSockets, closed with GOING_AWAY at shutdown.
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")

# Per-request state.
REQUEST_ID = web.RequestKey("request_id", str)
