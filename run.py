"""Frameflow command line: serve (default), migrate, cleanup, create-admin.

python run.py                      # serve on 127.0.0.1:8080, data in ./data
python run.py --port 9000 --data-dir /srv/frameflow
python run.py migrate              # apply sql/ migrations and exit
python run.py cleanup [--dry-run]  # one cleanup sweep now; prints its report as JSON
python run.py create-admin EMAIL   # password from the prompt or stdin
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from config.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Frameflow video server")
    parser.add_argument("--host", help="address to listen on (FRAMEFLOW_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (FRAMEFLOW_PORT)")
    parser.add_argument("--data-dir", type=Path, help="data directory (FRAMEFLOW_DATA_DIR)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (the default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    cleanup = sub.add_parser("cleanup", help="run one cleanup sweep now and print its report")
    cleanup.add_argument(
        "--dry-run", action="store_true", help="only report what a sweep would delete"
    )
    admin = sub.add_parser("create-admin", help="create an admin account, or promote one")
    admin.add_argument("email")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    return Settings.from_env(**overrides)


def _serve(settings: Settings) -> None:
    from aiohttp import web

    from server.app import create_app
    from server.logs import get_logger

    get_logger().info("starting", settings=settings.describe())
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # SIGTERM/SIGINT: stop accepting, let in-flight requests finish for
        # this long, then cancel them (uploads abort) and close cleanly.
        shutdown_timeout=settings.shutdown_grace_seconds,
        access_log=None,  # our middleware logs each request with its request id
        print=lambda msg: get_logger().info("listening", message=msg),
    )


async def _migrate(settings: Settings) -> None:
    from server.db.pool import open_database

    async with open_database(settings):
        pass  # open_database migrates


async def _cleanup(settings: Settings, dry_run: bool) -> int:
    import json

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
            videos = VideoService(pool=pool, storage=storage, publisher=publisher)
            tus = _tus_service(settings, pool, storage, publisher)
            report = await run_sweep(pool, videos, storage, settings, dry_run=dry_run, tus=tus)
        finally:
            await storage.close()
    if not dry_run:
        get_logger("frameflow.cleanup").info("cleanup_done", **report.to_json())
    print(json.dumps(report.to_json(), indent=2))
    return 1 if report.errors else 0


def _tus_service(settings: Settings, pool: Any, storage: Any, publisher: Any) -> Any:
    """The sweep expires resumable uploads through TusService, built as app.py builds it."""
    from server.jobs.operations import registry
    from server.jobs.service import JobService
    from server.media.binary import resolve_ffmpeg
    from server.metrics import Metrics
    from server.quota.ledger import QuotaLedger
    from server.tus.service import TusService
    from server.uploads.service import UploadService

    jobs = JobService(pool=pool, settings=settings, operations=registry(), publisher=publisher)
    uploads = UploadService(
        pool=pool,
        storage=storage,
        settings=settings,
        ffmpeg=resolve_ffmpeg(settings.ffmpeg_path),
        quota=QuotaLedger(pool=pool),
        jobs=jobs,
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


async def _create_admin(settings: Settings, email: str, password: str) -> None:
    from server.auth.service import create_admin
    from server.db.pool import open_database

    async with open_database(settings) as pool:
        user = await create_admin(pool, settings, email, password)
    print(f"admin {user.email} ({user.id})")


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except SettingsError as exc:
        raise SystemExit(f"configuration error: {exc}") from None

    from server.errors import HTTPError
    from server.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    command = args.command or "serve"
    if command == "serve":
        _serve(settings)
    elif command == "migrate":
        asyncio.run(_migrate(settings))
    elif command == "cleanup":
        sys.exit(asyncio.run(_cleanup(settings, args.dry_run)))
    elif command == "create-admin":
        try:
            asyncio.run(_create_admin(settings, args.email, _read_password()))
        except HTTPError as exc:
            raise SystemExit(f"error: {exc.message}") from None


if __name__ == "__main__":
    main()
