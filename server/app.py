"""`create_app(settings)`: the one factory that `run.py` and the tests use.

Everything with a lifetime (database pool, storage client, token keys,
in-flight upload tracking) is a `cleanup_ctx` generator: opened in order at
start-up, closed in reverse at shutdown, and only if it was opened.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import WSCloseCode, web

from config.settings import Settings
from server import appkeys, data_dirs
from server.admin.service import AdminService
from server.apikeys.service import ApiKeyService
from server.audit.service import AuditLog
from server.auth.access_cache import AccessCache
from server.auth.middleware import auth_middleware
from server.auth.passwords import PasswordHasher
from server.auth.secret import load_or_create_secret
from server.auth.service import AuthService
from server.auth.tokens import TokenService
from server.batches.service import BatchService
from server.captions.service import CaptionService
from server.cleanup.sweep import CleanupReport, run_sweep
from server.cleanup.task import CleanupTask
from server.credits.ledger import CreditLedger
from server.credits.service import CreditService
from server.db.pool import open_database, resolve_database_url
from server.directuploads.service import DirectUploadService
from server.generations.operation import GenerateOperation
from server.generations.providers.base import RemoteProvider
from server.generations.providers.local import LocalProvider
from server.generations.providers.remote import build_remote_providers
from server.generations.registry import ProviderRegistry
from server.generations.service import GenerationService
from server.generations.worker import GenerationWorker
from server.images.service import ImageService
from server.jobs.operations import registry
from server.jobs.operations.catalog import OperationCatalog
from server.jobs.operations.protocol import Operation
from server.jobs.runner import JobRunner
from server.jobs.service import JobService
from server.limits.ratelimit import open_rate_limiter
from server.live.bus import open_bus
from server.live.publisher import EventPublisher
from server.logs import get_logger
from server.media.binary import resolve_ffmpeg
from server.media.encoders import load_encoders
from server.media.prober import Prober
from server.media.process import running_processes
from server.media.sandbox import detect_sandbox
from server.media.version import check_ffmpeg_version, parse_min_version, read_ffmpeg_version
from server.metrics import Metrics
from server.middlewares import add_request_id_header, request_envelope
from server.notify.mailer import make_mailer
from server.notify.outbox import Outbox
from server.presets.service import PresetService
from server.quota.ledger import QuotaLedger
from server.recovery.service import RecoveryService
from server.recovery.tokens import AccountTokens
from server.roles import API, WORKER, parts_of
from server.scanning.service import ScanService
from server.search.service import SearchService
from server.serving.cors import add_signed_media_cors
from server.serving.signing import UrlSigner
from server.shares.service import ShareService
from server.storage import open_storage
from server.tus.service import TusService
from server.uploads.service import UploadService
from server.videos.service import VideoService
from server.webhooks.delivery import WebhookSender
from server.webhooks.service import WebhookService

log = get_logger("frameflow.app")

# JSON bodies are small; uploads stream and never go through client_max_size.
CLIENT_MAX_SIZE = 1024 * 1024


def create_app(
    settings: Settings,
    *,
    operations: Mapping[str, Operation] | None = None,
    remote_providers: Mapping[str, RemoteProvider] | None = None,
) -> web.Application:
    """`operations` replaces the registry (tests run fake operations through it);
    `remote_providers` replaces the generation providers built from the settings."""
    app = web.Application(
        middlewares=[request_envelope, auth_middleware],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[appkeys.SETTINGS] = settings
    app[appkeys.METRICS] = Metrics()
    app[appkeys.OPERATIONS] = registry() if operations is None else operations
    app[appkeys.PROVIDERS] = ProviderRegistry(
        settings=settings,
        local=LocalProvider(
            price_per_second=settings.generation_local_price_per_second,
            max_seconds=settings.generation_local_max_seconds,
        ),
        remote=build_remote_providers(settings) if remote_providers is None else remote_providers,
    )
    app[appkeys.METRICS].watch_circuits(app[appkeys.PROVIDERS].circuit_states())
    app[appkeys.OPERATION_CATALOG] = OperationCatalog(
        operations=app[appkeys.OPERATIONS], settings=settings
    )
    app[appkeys.SOCKETS] = sockets = weakref.WeakSet[web.WebSocketResponse]()
    app[appkeys.METRICS].websockets.set_function(lambda: len(sockets))
    app[appkeys.METRICS].ffmpeg_processes.set_function(running_processes)
    app.on_response_prepare.append(add_request_id_header)
    app.on_response_prepare.append(add_signed_media_cors)
    app.on_shutdown.append(_close_sockets)
    parts = parts_of(settings.role)
    app.cleanup_ctx.extend(ctx for ctx, needed_by in _CONTEXTS if needed_by & parts)
    _add_routes(app, parts)
    return app


def _add_routes(app: web.Application, parts: frozenset[str]) -> None:
    # Imported here so that each domain module stays importable on its own.
    from server.admin.routes import add_routes as admin_routes
    from server.apikeys.routes import add_routes as api_key_routes
    from server.audit.routes import add_routes as audit_routes
    from server.auth.routes import add_routes as auth_routes
    from server.batches.routes import add_routes as batch_routes
    from server.captions.routes import add_routes as caption_routes
    from server.credits.routes import add_routes as credit_routes
    from server.directuploads.routes import add_routes as direct_upload_routes
    from server.generations.routes import add_routes as generation_routes
    from server.health.routes import add_routes as ops_routes
    from server.images.routes import add_routes as image_routes
    from server.jobs.operation_routes import add_routes as operation_routes
    from server.jobs.output_routes import add_routes as output_routes
    from server.jobs.routes import add_routes as job_routes
    from server.live.routes import add_routes as live_routes
    from server.openapi.routes import add_routes as openapi_routes
    from server.presets.routes import add_routes as preset_routes
    from server.recovery.routes import add_routes as recovery_routes
    from server.search.routes import add_routes as search_routes
    from server.shares.routes import add_routes as share_routes
    from server.static_files import add_routes as static_routes
    from server.tus.routes import add_routes as tus_routes
    from server.uploads.routes import add_routes as upload_routes
    from server.videos.routes import add_routes as video_routes
    from server.webhooks.routes import add_routes as webhook_routes

    ops_routes(app)  # every role: probes and /metrics
    if API not in parts:
        return  # a worker answers 404 to everything else
    for add in (
        auth_routes,
        recovery_routes,
        admin_routes,
        audit_routes,
        api_key_routes,
        upload_routes,
        tus_routes,
        direct_upload_routes,
        search_routes,  # before video_routes: /videos/suggest is not a video id
        caption_routes,
        video_routes,
        image_routes,
        batch_routes,  # before job_routes: /jobs/batch is not a job id
        job_routes,
        preset_routes,
        operation_routes,
        output_routes,
        live_routes,
        webhook_routes,
        openapi_routes,
        share_routes,
        credit_routes,
        generation_routes,
        static_routes,
    ):
        add(app)


async def _secrets_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    secret = load_or_create_secret(settings)
    app[appkeys.TOKENS] = TokenService(secret, settings)
    app[appkeys.SIGNER] = UrlSigner(secret.encode())
    app[appkeys.ACCOUNT_TOKENS] = AccountTokens(secret.encode())
    yield


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    # Kept: the job runner opens its own LISTEN connection with it.
    app[appkeys.DATABASE_URL] = await resolve_database_url(settings)
    async with open_database(settings, app[appkeys.DATABASE_URL]) as pool:
        app[appkeys.POOL] = pool
        app[appkeys.METRICS].watch_pool(pool)
        yield


async def _accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    # Sign-ups, sessions, the per-request token check, and administration.
    settings = app[appkeys.SETTINGS]
    passwords = PasswordHasher(settings.bcrypt_rounds)
    publisher = app[appkeys.PUBLISHER]
    # Every change below is recorded in the audit log, in its own transaction.
    audit = app[appkeys.AUDIT] = AuditLog(pool=app[appkeys.POOL])
    app[appkeys.API_KEYS] = ApiKeyService(
        pool=app[appkeys.POOL], audit=audit, on_revoked=publisher.api_key_revoked
    )
    # Role, disabled and verified per account, for at most a few seconds; every
    # service that changes one of them forgets the account at once.
    access_cache = AccessCache(settings.account_check_cache_seconds)
    app[appkeys.RECOVERY] = RecoveryService(
        pool=app[appkeys.POOL],
        passwords=passwords,
        tokens=app[appkeys.ACCOUNT_TOKENS],
        settings=settings,
        audit=audit,
        access_cache=access_cache,
        on_session_ended=publisher.session_revoked,
        # Mails go out sooner when this process runs the outbox; else its next poll.
        on_mail_queued=lambda: _wake_outbox(app),
    )
    app[appkeys.AUTH] = AuthService(
        pool=app[appkeys.POOL],
        passwords=passwords,
        tokens=app[appkeys.TOKENS],
        api_keys=app[appkeys.API_KEYS],
        audit=audit,
        settings=settings,
        recovery=app[appkeys.RECOVERY],
        access_cache=access_cache,
        # After the bus: an ended session closes its sockets on every instance.
        on_session_ended=publisher.session_revoked,
    )
    app[appkeys.ADMIN] = AdminService(
        pool=app[appkeys.POOL],
        passwords=passwords,
        audit=audit,
        settings=settings,
        access_cache=access_cache,
        on_account_disabled=publisher.account_disabled,
    )
    yield


def _wake_outbox(app: web.Application) -> None:
    outbox = app.get(appkeys.OUTBOX)
    if outbox is not None:
        outbox.wake()


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    storage = await open_storage(app[appkeys.SETTINGS])
    app[appkeys.STORAGE] = storage
    try:
        yield
    finally:
        await storage.close()


async def _ffmpeg_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    ffmpeg = resolve_ffmpeg(settings.ffmpeg_path)
    # Too old a release: refuse to start rather than fail on some upload later.
    version = await read_ffmpeg_version(ffmpeg)
    check_ffmpeg_version(ffmpeg, version, parse_min_version(settings.ffmpeg_min_version))
    app[appkeys.FFMPEG] = ffmpeg
    sandbox = await detect_sandbox(
        settings.ffmpeg_sandbox, ffmpeg=ffmpeg, scratch_root=data_dirs.tmp_dir(settings.data_dir)
    )
    app[appkeys.SANDBOX] = sandbox
    app[appkeys.PROBER] = Prober(ffmpeg=ffmpeg, sandbox=sandbox, settings=settings)
    # Cached per binary; loading it now keeps the ~30 ms probe off request paths.
    encoders = await load_encoders(ffmpeg)
    log.info(
        "ffmpeg_found",
        path=ffmpeg,
        version=version.describe(),
        sandbox=sandbox.name,
        encoders=len(encoders),
    )
    yield


async def _scanning_ctx(app: web.Application) -> AsyncIterator[None]:
    app[appkeys.SCANNER] = ScanService(settings=app[appkeys.SETTINGS])
    yield


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    # Before the runner: it publishes until it has stopped.
    async with open_bus(app[appkeys.SETTINGS]) as bus:
        app[appkeys.BUS] = bus
        app[appkeys.PUBLISHER] = EventPublisher(bus)
        yield


async def _limits_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_rate_limiter(app[appkeys.SETTINGS]) as limiter:
        app[appkeys.RATE_LIMITER] = limiter
        yield


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    app[appkeys.MAILER] = make_mailer(app[appkeys.SETTINGS])
    yield


async def _outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    # Sends the mails that job endings queued in the database (by any instance).
    outbox = Outbox(
        pool=app[appkeys.POOL],
        mailer=app[appkeys.MAILER],
        settings=app[appkeys.SETTINGS],
        signer=app[appkeys.SIGNER],
        account_tokens=app[appkeys.ACCOUNT_TOKENS],
        metrics=app[appkeys.METRICS],
    )
    app[appkeys.OUTBOX] = outbox
    await outbox.start()
    try:
        yield
    finally:
        await outbox.stop()


async def _webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    app[appkeys.WEBHOOK_SERVICE] = WebhookService(
        pool=app[appkeys.POOL], settings=app[appkeys.SETTINGS], audit=app[appkeys.AUDIT]
    )
    yield


async def _webhook_sender_ctx(app: web.Application) -> AsyncIterator[None]:
    # Sends the webhook deliveries that job endings queued in the database.
    sender = WebhookSender(
        pool=app[appkeys.POOL], settings=app[appkeys.SETTINGS], metrics=app[appkeys.METRICS]
    )
    app[appkeys.WEBHOOK_SENDER] = sender
    await sender.start()
    try:
        yield
    finally:
        await sender.stop()


async def _close_sockets(app: web.Application) -> None:
    """on_shutdown: WebSockets would otherwise hold shutdown until their clients leave."""
    sockets = app[appkeys.SOCKETS]
    closing = [
        ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in list(sockets)
    ]
    await asyncio.gather(*closing, return_exceptions=True)


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    """One service object per domain, each given exactly what it uses."""
    pool, settings, publisher = app[appkeys.POOL], app[appkeys.SETTINGS], app[appkeys.PUBLISHER]
    quota = QuotaLedger(pool=pool)
    jobs = JobService(
        pool=pool, settings=settings, operations=app[appkeys.OPERATIONS], publisher=publisher
    )
    presets = PresetService(pool=pool, settings=settings, jobs=jobs)
    app[appkeys.QUOTA] = quota
    ledger = CreditLedger(pool=pool, signup_grant=settings.credits_signup_grant)
    app[appkeys.CREDIT_LEDGER] = ledger
    app[appkeys.CREDITS] = CreditService(pool=pool, ledger=ledger, audit=app[appkeys.AUDIT])
    app[appkeys.JOBS] = jobs
    app[appkeys.PRESETS] = presets
    app[appkeys.CAPTIONS] = CaptionService(pool=pool)
    app[appkeys.VIDEOS] = VideoService(
        pool=pool, storage=app[appkeys.STORAGE], publisher=publisher, audit=app[appkeys.AUDIT]
    )
    app[appkeys.UPLOADS] = UploadService(
        pool=pool,
        storage=app[appkeys.STORAGE],
        settings=settings,
        prober=app[appkeys.PROBER],
        scanner=app[appkeys.SCANNER],
        quota=quota,
        jobs=jobs,
        presets=presets,
        publisher=publisher,
        metrics=app[appkeys.METRICS],
    )
    app[appkeys.TUS] = TusService(
        pool=pool, storage=app[appkeys.STORAGE], settings=settings, uploads=app[appkeys.UPLOADS]
    )
    app[appkeys.GENERATIONS] = GenerationService(
        pool=pool,
        settings=settings,
        providers=app[appkeys.PROVIDERS],
        ledger=ledger,
        jobs=jobs,
        publisher=publisher,
    )
    app[appkeys.DIRECT_UPLOADS] = DirectUploadService(
        pool=pool,
        settings=settings,
        uploads=app[appkeys.UPLOADS],
        tus=app[appkeys.TUS],
        publisher=publisher,
    )
    yield


async def _search_ctx(app: web.Application) -> AsyncIterator[None]:
    # Applies the text-search configuration and detects pg_trgm before the first search.
    search = SearchService(pool=app[appkeys.POOL], settings=app[appkeys.SETTINGS])
    await search.prepare()
    app[appkeys.SEARCH] = search
    # The image library lists through the search (kind fixed to image).
    app[appkeys.IMAGES] = ImageService(pool=app[appkeys.POOL], search=search)
    yield


async def _batches_ctx(app: web.Application) -> AsyncIterator[None]:
    # After search: a batch may pick its videos with a search.
    pool, settings, jobs = app[appkeys.POOL], app[appkeys.SETTINGS], app[appkeys.JOBS]
    app[appkeys.BATCHES] = BatchService(
        pool=pool,
        settings=settings,
        jobs=jobs,
        search=app[appkeys.SEARCH],
        presets=app[appkeys.PRESETS],
    )
    yield


async def _shares_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    app[appkeys.SHARES] = ShareService(
        pool=app[appkeys.POOL],
        passwords=PasswordHasher(settings.bcrypt_rounds),
        signer=app[appkeys.SIGNER],
        settings=settings,
        captions=app[appkeys.CAPTIONS],
    )
    yield


async def _runner_ctx(app: web.Application) -> AsyncIterator[None]:
    # Only on instances that run jobs: an API-only instance builds no runner.
    settings = app[appkeys.SETTINGS]
    if not settings.workers_enabled:
        yield
        return
    # The runner also runs generations: `generate` is an operation only it knows.
    worker = GenerationWorker(
        pool=app[appkeys.POOL],
        providers=app[appkeys.PROVIDERS],
        uploads=app[appkeys.UPLOADS],
        jobs=app[appkeys.JOBS],
        publisher=app[appkeys.PUBLISHER],
    )
    generate = GenerateOperation(worker)
    registered: Mapping[str, Operation] = app[appkeys.OPERATIONS]
    operations = {**registered, generate.name: generate}
    runner = JobRunner(
        pool=app[appkeys.POOL],
        storage=app[appkeys.STORAGE],
        settings=settings,
        ffmpeg=app[appkeys.FFMPEG],
        sandbox=app[appkeys.SANDBOX],
        operations=operations,
        dsn=app[appkeys.DATABASE_URL],
        publish=app[appkeys.GENERATIONS].publish_job_event,
        metrics=app[appkeys.METRICS],
    )
    app[appkeys.RUNNER] = runner
    await runner.start()
    try:
        yield
    finally:
        # Running jobs are handed back to the queue for another instance.
        await runner.stop()


async def _uploads_ctx(app: web.Application) -> AsyncIterator[None]:
    uploads = app[appkeys.UPLOADS]
    yield
    # Shutdown: uploads still streaming after the grace period are aborted so
    # that no temp file or multipart upload outlives the process.
    await uploads.abort_in_flight()


async def _cleanup_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    if not settings.cleanup_enabled:
        yield
        return

    async def sweep() -> CleanupReport:
        return await run_sweep(
            app[appkeys.POOL],
            app[appkeys.VIDEOS],
            app[appkeys.STORAGE],
            settings,
            tus=app[appkeys.TUS],
            audit=app[appkeys.AUDIT],
        )

    task = CleanupTask(sweep, settings.cleanup_interval_seconds, app[appkeys.METRICS])
    app[appkeys.CLEANUP] = task
    task.start()
    try:
        yield
    finally:
        # First to stop (last opened): it uses the pool, storage and bus.
        await task.stop()


_Context = Callable[[web.Application], AsyncIterator[None]]
_BOTH = frozenset({API, WORKER})

# The one table of roles: each start-up context, in start-up order, and the
# parts (server/roles.py) that need it. An `api` process starts no runner,
# sweep or sender; a `worker` process takes no uploads.
_CONTEXTS: tuple[tuple[_Context, frozenset[str]], ...] = (
    (_secrets_ctx, _BOTH),
    (_database_ctx, _BOTH),
    (_storage_ctx, _BOTH),
    (_ffmpeg_ctx, _BOTH),
    (_scanning_ctx, _BOTH),
    (_bus_ctx, _BOTH),
    (_accounts_ctx, _BOTH),
    (_notify_ctx, _BOTH),
    (_outbox_ctx, frozenset({WORKER})),
    (_webhooks_ctx, _BOTH),
    (_webhook_sender_ctx, frozenset({WORKER})),
    (_limits_ctx, _BOTH),
    (_services_ctx, _BOTH),
    (_search_ctx, frozenset({API})),
    (_batches_ctx, frozenset({API})),
    (_shares_ctx, frozenset({API})),
    (_runner_ctx, frozenset({WORKER})),
    (_uploads_ctx, frozenset({API})),
    (_cleanup_ctx, frozenset({WORKER})),
)
