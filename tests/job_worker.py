"""A bare job worker process for the crash tests: a JobRunner with the fake operations.

    python -m tests.job_worker      # settings from the FRAMEFLOW_* environment

It prints `worker <worker id>` before it starts (a job may kill it at once)
and `ready` once it listens for work; SIGTERM stops it gracefully (running
jobs go back to the queue). No HTTP: the crash tests need a real second
process that claims and runs jobs, nothing more.
"""

from __future__ import annotations

import asyncio
import signal

from config.settings import Settings
from server.db.pool import open_database
from server.jobs.runner import JobRunner
from server.logs import configure_logging
from server.media.binary import resolve_ffmpeg
from server.storage import open_storage
from tests.fake_operations import fake_operations


async def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level, "console")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with open_database(settings) as pool:
        storage = await open_storage(settings)
        runner = JobRunner(
            pool=pool,
            storage=storage,
            settings=settings,
            ffmpeg=resolve_ffmpeg(settings.ffmpeg_path),
            operations=fake_operations(),
            dsn=settings.database_url,
        )
        print("worker", runner.worker_id, flush=True)
        try:
            await runner.start()
            await runner.listening.wait()
            print("ready", flush=True)
            await stop.wait()
        finally:
            await runner.stop()
            await storage.close()


if __name__ == "__main__":
    asyncio.run(main())
