"""Frameflow command line: serve (default), migrate, cleanup, create-admin, stop-db.

python run.py                      # serve on 127.0.0.1:8080, data in ./data
python run.py --port 9000 --data-dir /srv/frameflow
python run.py --role api           # HTTP and WebSockets only; --role worker: jobs only
python run.py migrate              # apply sql/ migrations and exit
python run.py cleanup [--dry-run]  # one cleanup sweep now; prints its report as JSON
python run.py create-admin EMAIL   # password from the prompt or stdin
python run.py create-admin EMAIL --account-role viewer   # or user: any role
python run.py stop-db [--force]    # stop the embedded PostgreSQL of the data dir
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings, SettingsError
from server.auth.permissions import ROLES as ACCOUNT_ROLES
from server.db.embedded import EmbeddedPostgresMissing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Frameflow video server")
    parser.add_argument("--host", help="address to listen on (FRAMEFLOW_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (FRAMEFLOW_PORT)")
    parser.add_argument("--data-dir", type=Path, help="data directory (FRAMEFLOW_DATA_DIR)")
    parser.add_argument(
        "--role",
        choices=("all", "api", "worker"),
        help="api: HTTP and WebSockets; worker: jobs, sweep, senders; all: both "
        "(FRAMEFLOW_ROLE, default all)",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (the default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    cleanup = sub.add_parser("cleanup", help="run one cleanup sweep now and print its report")
    cleanup.add_argument(
        "--dry-run", action="store_true", help="only report what a sweep would delete"
    )
    admin = sub.add_parser("create-admin", help="create an admin account, or promote one")
    admin.add_argument("email")
    admin.add_argument(
        "--account-role",
        choices=ACCOUNT_ROLES,
        default="admin",
        help="the account's role (default admin; `--role` is the process's role)",
    )
    stop_db = sub.add_parser(
        "stop-db",
        help="stop the embedded PostgreSQL of the data dir (it stops by itself when the "
        "last Frameflow process using it exits)",
    )
    stop_db.add_argument(
        "--force", action="store_true", help="stop it even while Frameflow processes use it"
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "role": args.role,
    }
    return Settings.from_env(**overrides)


def _serve(settings: Settings) -> None:
    from server.app import create_app
    from server.listener import serve_until_signalled
    from server.logs import get_logger
    from server.tracing import TracingConfigError, configure_tracing

    try:
        # Before create_app: the aiohttp instrumentation hooks applications made after it.
        traced = configure_tracing()
    except TracingConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    get_logger().info("starting", settings=settings.describe(), tracing=traced)
    # Not web.run_app: the listener adds header deadlines and per-address
    # connection caps that aiohttp's server does not have (server/listener.py).
    asyncio.run(serve_until_signalled(create_app(settings), settings))


async def _migrate(settings: Settings) -> None:
    from server.db.pool import open_database

    async with open_database(settings):
        pass  # open_database migrates


async def _cleanup(settings: Settings, dry_run: bool) -> int:
    import json

    from server.audit.service import AuditLog
    from server.cleanup.sweep import run_sweep
    from server.db.pool import open_database
    from server.live.bus import open_bus
    from server.live.publisher import EventPublisher
    from server.logs import get_logger
    from server.storage import open_storage
    from server.videos.service import VideoService

    async with open_database(settings) as pool, open_bus(settings) as bus:
        storage = await open_storage(settings)
        try:
            # With Redis configured, open pages hear of the deletions too.
            publisher = EventPublisher(bus)
            audit = AuditLog(pool=pool)
            videos = VideoService(pool=pool, storage=storage, publisher=publisher, audit=audit)
            tus = await _tus_service(settings, pool, storage, publisher)
            report = await run_sweep(
                pool, videos, storage, settings, dry_run=dry_run, tus=tus, audit=audit
            )
        finally:
            await storage.close()
    if not dry_run:
        get_logger("frameflow.cleanup").info("cleanup_done", **report.to_json())
    print(json.dumps(report.to_json(), indent=2))
    return 1 if report.errors else 0


async def _tus_service(settings: Settings, pool: Any, storage: Any, publisher: Any) -> Any:
    """The sweep expires resumable uploads through TusService, built as app.py builds it."""
    from server import data_dirs
    from server.jobs.operations import registry
    from server.jobs.service import JobService
    from server.media.binary import resolve_ffmpeg
    from server.media.prober import Prober
    from server.media.sandbox import detect_sandbox
    from server.metrics import Metrics
    from server.presets.service import PresetService
    from server.quota.ledger import QuotaLedger
    from server.scanning.service import ScanService
    from server.tus.service import TusService
    from server.uploads.service import UploadService

    ffmpeg = resolve_ffmpeg(settings.ffmpeg_path)
    sandbox = await detect_sandbox(
        settings.ffmpeg_sandbox, ffmpeg=ffmpeg, scratch_root=data_dirs.tmp_dir(settings.data_dir)
    )
    jobs = JobService(pool=pool, settings=settings, operations=registry(), publisher=publisher)
    uploads = UploadService(
        pool=pool,
        storage=storage,
        settings=settings,
        prober=Prober(ffmpeg=ffmpeg, sandbox=sandbox, settings=settings),
        scanner=ScanService(settings=settings),
        quota=QuotaLedger(pool=pool),
        jobs=jobs,
        presets=PresetService(pool=pool, settings=settings, jobs=jobs),
        publisher=publisher,
        metrics=Metrics(),
    )
    return TusService(pool=pool, storage=storage, settings=settings, uploads=uploads)


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("Passwords differ")
    return first


async def _create_admin(settings: Settings, email: str, password: str, role: str = "admin") -> None:
    from server.admin.service import AdminService
    from server.audit.service import AuditLog
    from server.auth.access_cache import AccessCache
    from server.auth.passwords import PasswordHasher
    from server.db.pool import open_database

    async with open_database(settings) as pool:
        admins = AdminService(
            pool=pool,
            passwords=PasswordHasher(settings.bcrypt_rounds),
            audit=AuditLog(pool=pool),
            settings=settings,
            access_cache=AccessCache(0),  # one command: nothing to remember
        )
        user = await admins.create_account(email, password, role=role)
    print(f"{user.role} {user.email} ({user.id})")


def _stop_db(settings: Settings, force: bool) -> int:
    from server.db.embedded import stop_embedded_postgres

    result = stop_embedded_postgres(settings.data_dir, force=force)
    if result.others and not force:
        print(f"in use by Frameflow processes {result.others}; stop them, or use --force")
        return 1
    print(f"stopped {result.pgdata}" if result.stopped else f"not running: {result.pgdata}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None

    from server.logs import configure_logging

    # Serving writes log lines from a thread (a busy disk must not stall the loop);
    # the one-shot commands write them in order with what they print.
    serving = (args.command or "serve") == "serve"
    configure_logging(settings.log_level, settings.log_format, background=serving)
    try:
        _run(args, settings)
    except EmbeddedPostgresMissing as exc:
        raise SystemExit(f"configuration error: {exc}") from None


def _run(args: argparse.Namespace, settings: Settings) -> None:
    from server.errors import HTTPError

    command = args.command or "serve"
    if command == "serve":
        _serve(settings)
    elif command == "migrate":
        asyncio.run(_migrate(settings))
    elif command == "cleanup":
        sys.exit(asyncio.run(_cleanup(settings, args.dry_run)))
    elif command == "stop-db":
        sys.exit(_stop_db(settings, args.force))
    elif command == "create-admin":
        try:
            asyncio.run(_create_admin(settings, args.email, _read_password(), args.account_role))
        except HTTPError as exc:
            raise SystemExit(f"error: {exc.message}") from None


if __name__ == "__main__":
    main()
