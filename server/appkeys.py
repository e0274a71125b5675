"""Every piece of application state, declared once as a typed `web.AppKey`.

Resources (pool, storage, bus, ...) and the one service object per domain,
each built once in `server/app.py`. Handlers reach a service through its key;
services get their dependencies as constructor arguments, never the app.
This module only names types: nothing it names imports it back at run time.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from config.settings import Settings

if TYPE_CHECKING:
    from server.admin.service import AdminService
    from server.apikeys.service import ApiKeyService
    from server.audit.service import AuditLog
    from server.auth.service import AuthService
    from server.auth.tokens import TokenService
    from server.batches.service import BatchService
    from server.captions.service import CaptionService
    from server.cleanup.task import CleanupTask
    from server.credits.ledger import CreditLedger
    from server.credits.service import CreditService
    from server.directuploads.service import DirectUploadService
    from server.generations.registry import ProviderRegistry
    from server.generations.service import GenerationService
    from server.images.service import ImageService
    from server.jobs.operations.catalog import OperationCatalog
    from server.jobs.operations.protocol import Operation
    from server.jobs.runner import JobRunner
    from server.jobs.service import JobService
    from server.limits.ratelimit import RateLimiter
    from server.live.bus import Bus
    from server.live.publisher import EventPublisher
    from server.media.prober import Prober
    from server.media.sandbox import Sandbox
    from server.metrics import Metrics
    from server.notify.mailer import Mailer
    from server.notify.outbox import Outbox
    from server.presets.service import PresetService
    from server.quota.ledger import QuotaLedger
    from server.recovery.service import RecoveryService
    from server.recovery.tokens import AccountTokens
    from server.scanning.service import ScanService
    from server.search.service import SearchService
    from server.serving.signing import UrlSigner
    from server.shares.service import ShareService
    from server.storage.base import Storage
    from server.tus.service import TusService
    from server.uploads.service import UploadService
    from server.videos.service import VideoService
    from server.webhooks.delivery import WebhookSender
    from server.webhooks.service import WebhookService

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DATABASE_URL = web.AppKey("database_url", str)  # resolved (embedded or configured)
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
SIGNER: web.AppKey[UrlSigner] = web.AppKey("signer")
ACCOUNT_TOKENS: web.AppKey[AccountTokens] = web.AppKey("account_tokens")
RECOVERY: web.AppKey[RecoveryService] = web.AppKey("recovery")
FFMPEG = web.AppKey("ffmpeg", str)
# How every ffmpeg that touches an upload is confined (detected at start-up).
SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox")
PROBER: web.AppKey[Prober] = web.AppKey("prober")
# The malware scan of uploads (a no-op unless FRAMEFLOW_MALWARE_SCAN is on).
SCANNER: web.AppKey[ScanService] = web.AppKey("scanner")
BUS: web.AppKey[Bus] = web.AppKey("bus")
PUBLISHER: web.AppKey[EventPublisher] = web.AppKey("publisher")
# The operation registry: name -> Operation (tests inject fakes through create_app).
OPERATIONS: web.AppKey[Mapping[str, Operation]] = web.AppKey("operations")
# What GET /api/v1/operations describes, from the same declarations.
OPERATION_CATALOG: web.AppKey[OperationCatalog] = web.AppKey("operation_catalog")
# Absent when FRAMEFLOW_WORKERS_ENABLED=false: such an instance runs no ffmpeg.
RUNNER: web.AppKey[JobRunner] = web.AppKey("runner")

# One service per domain.
QUOTA: web.AppKey[QuotaLedger] = web.AppKey("quota")
VIDEOS: web.AppKey[VideoService] = web.AppKey("videos")
JOBS: web.AppKey[JobService] = web.AppKey("jobs")
SEARCH: web.AppKey[SearchService] = web.AppKey("search")
IMAGES: web.AppKey[ImageService] = web.AppKey("images")
SHARES: web.AppKey[ShareService] = web.AppKey("shares")
BATCHES: web.AppKey[BatchService] = web.AppKey("batches")
CAPTIONS: web.AppKey[CaptionService] = web.AppKey("captions")
PRESETS: web.AppKey[PresetService] = web.AppKey("presets")
UPLOADS: web.AppKey[UploadService] = web.AppKey("uploads")
TUS: web.AppKey[TusService] = web.AppKey("tus")
DIRECT_UPLOADS: web.AppKey[DirectUploadService] = web.AppKey("direct_uploads")
# The one writer of credit balances, and the API's view of credits.
CREDIT_LEDGER: web.AppKey[CreditLedger] = web.AppKey("credit_ledger")
CREDITS: web.AppKey[CreditService] = web.AppKey("credits")
# Video generation: the providers (with their health) and the service.
PROVIDERS: web.AppKey[ProviderRegistry] = web.AppKey("providers")
GENERATIONS: web.AppKey[GenerationService] = web.AppKey("generations")
# Absent when FRAMEFLOW_CLEANUP_ENABLED=false.
CLEANUP: web.AppKey[CleanupTask] = web.AppKey("cleanup")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
# The background sender of deliveries, and the service that registers hooks.
WEBHOOK_SENDER: web.AppKey[WebhookSender] = web.AppKey("webhook_sender")
WEBHOOK_SERVICE: web.AppKey[WebhookService] = web.AppKey("webhook_service")
AUTH: web.AppKey[AuthService] = web.AppKey("auth")
ADMIN: web.AppKey[AdminService] = web.AppKey("admin")
# The audit log: the one recorder of security-relevant actions.
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
API_KEYS: web.AppKey[ApiKeyService] = web.AppKey("api_keys")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# Open WebSockets, closed with GOING_AWAY at shutdown.
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")

# Per-request state.
REQUEST_ID = web.RequestKey("request_id", str)
# The server span's W3C context, echoed as `traceresponse` (tracing on only).
TRACE_RESPONSE = web.RequestKey("trace_response", str)
