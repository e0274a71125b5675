"""The cleanup sweep against real PostgreSQL, both storage backends and real uploads."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import appkeys
from server.cleanup.sweep import CLEANUP_LOCK_ID, CleanupReport, run_sweep
from server.cleanup.task import CleanupTask, jittered
from server.db import quota as quota_db
from server.storage.base import Storage
from server.videos.service import VideoService
from tests.conftest import User, _admin, _with_database, leftovers
from tests.test_process import env_for, run_cli


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def clean(client: TestClient[Any, Any]) -> None:
    """The session's database is shared: start without other tests' pending deletes."""
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("TRUNCATE pending_deletions")


async def upload(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> dict[str, Any]:
    resp = await client.put(
        "/api/v1/uploads/a.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def expire(app: web.Application, video_id: str) -> None:
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE videos SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid",
            video_id,
        )


async def add_job(
    app: web.Application, user: User, video_id: str, status: str, output: bytes = b""
) -> uuid.UUID:
    """A job row in `status`; with `output`, a stored output charged to the quota."""
    job_id = uuid.uuid4()
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            """INSERT INTO jobs (id, user_id, video_id, operation, status, lease_expires_at,
                                 worker_id)
               VALUES ($1, $2::uuid, $3::uuid, 'thumbnail', $4,
                       CASE WHEN $4 = 'running' THEN now() + interval '1 hour' END, 'test')""",
            job_id,
            user.id,
            video_id,
            status,
        )
        if output:
            key = f"videos/{user.id}/{video_id}/jobs/{job_id}/thumb.jpg"
            async with app[appkeys.STORAGE].writer(key) as writer:
                await writer.write(output)
                await writer.commit()
            await conn.execute(
                """INSERT INTO job_outputs (job_id, name, storage_key, size, content_type)
                   VALUES ($1, 'thumb.jpg', $2, $3, 'image/jpeg')""",
                job_id,
                key,
                len(output),
            )
            await quota_db.add(conn, uuid.UUID(user.id), len(output))
    return job_id


async def used_bytes(app: web.Application, user: User) -> int:
    async with app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT used_bytes FROM users WHERE id = $1::uuid", user.id))


async def sweep(app: web.Application, **kw: Any) -> CleanupReport:
    return await sweep_with(app, app[appkeys.STORAGE], **kw)


async def sweep_with(app: web.Application, storage: Any, **kw: Any) -> CleanupReport:
    """A sweep whose deletes go through `storage` (a wrapper that is slow or fails)."""
    videos = VideoService(
        pool=app[appkeys.POOL],
        storage=storage,
        publisher=app[appkeys.PUBLISHER],
        audit=app[appkeys.AUDIT],
    )
    return await run_sweep(app[appkeys.POOL], videos, storage, app[appkeys.SETTINGS], **kw)


async def missing_referenced(app: web.Application) -> list[str]:
    """Keys that a videos or job_outputs row names but storage does not hold."""
    async with app[appkeys.POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT storage_key FROM videos UNION ALL SELECT storage_key FROM job_outputs"
        )
    storage = app[appkeys.STORAGE]
    return [r["storage_key"] for r in rows if await storage.stat(r["storage_key"]) is None]


@pytest.mark.usefixtures("clean")
async def test_expired_video_is_deleted_with_outputs_quota_and_event(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    keep = await upload(client, user, sample_mp4)
    gone = await upload(client, user, sample_mp4)
    await add_job(app, user, gone["id"], "succeeded", output=b"j" * 1000)
    before = await used_bytes(app, user)
    await expire(app, gone["id"])
    events: list[dict[str, Any]] = []
    app[appkeys.BUS].subscribe(user.id, events.append)

    report = await sweep(app)

    assert report.errors == []
    assert (report.videos_deleted, report.video_ids) == (1, [gone["id"]])
    assert report.bytes_freed == gone["size"] + 1000
    assert await used_bytes(app, user) == before - gone["size"] - 1000
    resp = await client.get(f"/api/v1/videos/{gone['id']}", headers=user.headers)
    assert resp.status == 404
    assert [(e["type"], e["video_id"]) for e in events] == [("video.deleted", gone["id"])]
    # Only the unexpired video's source is left: no output, no source of the other.
    stored = leftovers(app)
    assert len(stored) == 1 and stored[0].endswith(f"{keep['id']}/source")
    async with app[appkeys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pending_deletions") == 0
    # Nothing left to do.
    again = await sweep(app)
    assert (again.videos_deleted, again.errors) == (0, [])


@pytest.mark.usefixtures("clean")
@pytest.mark.parametrize("status", ["queued", "running"])
async def test_video_with_an_active_job_is_kept_until_the_job_ends(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, status: str
) -> None:
    app = client.app
    if status == "queued":
        # A worker would pick a queued job up; this test is about the sweep only.
        await app[appkeys.RUNNER].stop()
    video = await upload(client, user, sample_mp4)
    job_id = await add_job(app, user, video["id"], status)
    await expire(app, video["id"])

    dry = await sweep(app, dry_run=True)
    report = await sweep(app)
    assert dry.videos_deleted == report.videos_deleted == 0
    resp = await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert resp.status == 200
    assert len(leftovers(app)) == 1

    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'failed', lease_expires_at = NULL WHERE id = $1", job_id
        )
    report = await sweep(app)
    assert report.video_ids == [video["id"]]
    assert leftovers(app) == []


class SlowDeletes:
    """Storage whose deletes take a while (or fail): a sweep is caught mid-way."""

    def __init__(self, storage: Storage, delay: float = 0.0, fail: bool = False) -> None:
        self._storage = storage
        self.delay = delay
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    async def delete_prefix(self, prefix: str) -> int:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("simulated crash while deleting objects")
        return await self._storage.delete_prefix(prefix)


@pytest.mark.usefixtures("clean")
async def test_two_concurrent_sweeps_only_one_deletes(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    videos = [await upload(client, user, sample_mp4) for _ in range(2)]
    for video in videos:
        await expire(app, video["id"])
    slow: Any = SlowDeletes(app[appkeys.STORAGE], delay=0.3)

    async def slow_sweep() -> CleanupReport:
        return await sweep_with(app, slow)

    first = asyncio.create_task(slow_sweep())
    await asyncio.sleep(0.1)  # first holds the lock, deleting slowly
    second = await sweep(app)
    report = await first
    assert second.skipped and second.videos_deleted == 0
    assert not report.skipped
    assert sorted(report.video_ids) == sorted(v["id"] for v in videos)
    assert leftovers(app) == []


@pytest.mark.usefixtures("clean")
async def test_sweep_skips_while_another_instance_holds_the_lock(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, database_url: str
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    await expire(app, video["id"])
    other = await asyncpg.connect(database_url)  # "another instance"
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", CLEANUP_LOCK_ID)
        report = await sweep(app)
        assert report.skipped and report.videos_deleted == 0
        assert len(leftovers(app)) == 1
    finally:
        await other.close()
    report = await sweep(app)
    assert report.video_ids == [video["id"]]


@pytest.mark.usefixtures("clean")
async def test_dry_run_deletes_nothing_and_reports_the_same(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    await add_job(app, user, video["id"], "succeeded", output=b"o" * 500)
    await expire(app, video["id"])
    scratch = app[appkeys.SETTINGS].data_dir / "work" / "dead-attempt"
    scratch.mkdir(parents=True)
    (scratch / "frame.jpg").write_bytes(b"x")
    _age(scratch, hours=48)
    stored = leftovers(app)

    dry = await sweep(app, dry_run=True)
    assert dry.dry_run and dry.uploads_aborted is None
    assert leftovers(app) == stored and scratch.exists()
    resp = await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert resp.status == 200

    real = await sweep(app)
    assert not real.dry_run
    for name in ("videos_deleted", "bytes_freed", "video_ids", "temp_files_removed", "errors"):
        assert getattr(dry, name) == getattr(real, name), name
    assert real.bytes_freed == video["size"] + 500
    assert leftovers(app) == [] and not scratch.exists()


def _age(path: Path, hours: float) -> None:
    """Backdate `path` and everything in it."""
    then = time.time() - hours * 3600
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


@pytest.mark.usefixtures("clean")
async def test_stale_uploads_and_scratch_files_are_removed(
    client: TestClient[Any, Any], backend: str
) -> None:
    app = client.app
    storage, data_dir = app[appkeys.STORAGE], app[appkeys.SETTINGS].data_dir
    # A writer a crash left behind: a temp file, or an S3 multipart upload with a part.
    writer = await storage.open_writer(f"videos/{uuid.uuid4()}/{uuid.uuid4()}/source")
    await writer.write(b"p" * (5 * 1024 * 1024 + 1))
    old_work = data_dir / "work" / "job-1"
    old_tmp = data_dir / "tmp" / "s3" / "obj-old"
    fresh_work = data_dir / "work" / "job-2"
    for d in (old_work, old_tmp, fresh_work):
        d.mkdir(parents=True, exist_ok=True)
        (d / "object").write_bytes(b"x")
    _age(old_work, hours=48)
    _age(old_tmp, hours=48)
    try:
        # The default threshold (24 h): only what is old goes.
        report = await sweep(app)
        assert report.errors == []
        assert not old_work.exists() and not old_tmp.exists() and fresh_work.exists()
        assert (data_dir / "tmp" / "s3").is_dir()  # the S3 backend's own dir is kept
        assert report.temp_files_removed + (report.uploads_aborted or 0) >= 2
        if backend == "local":
            # (moto reports a fixed 2010 initiation time for every multipart
            # upload, so on S3 here even a fresh one looks stale.)
            assert report.uploads_aborted == 0 and len(leftovers(app)) == 1

        await asyncio.sleep(0.05)
        report = await sweep(app, stale_after=timedelta(0))
        assert report.errors == []
        assert leftovers(app) == [] and not fresh_work.exists()
    finally:
        await writer.abort()  # copes with its upload being gone


@pytest.mark.usefixtures("clean")
async def test_crash_between_row_and_objects_leaves_nothing_referenced_but_missing(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    await add_job(app, user, video["id"], "succeeded", output=b"o" * 100)
    await expire(app, video["id"])
    broken: Any = SlowDeletes(app[appkeys.STORAGE], fail=True)

    report = await sweep_with(app, broken)

    # The row (and its quota) are gone; the bytes are still there, unreferenced.
    assert report.video_ids == [video["id"]] and report.errors
    assert await used_bytes(app, user) == 0
    assert len(leftovers(app)) == 2
    assert await missing_referenced(app) == []
    # The next sweep finishes the delete from its record.
    report = await sweep(app)
    assert report.pending_prefixes_removed == 1 and report.errors == []
    assert leftovers(app) == []
    assert await missing_referenced(app) == []


@pytest.mark.usefixtures("clean")
async def test_user_delete_that_fails_in_storage_is_finished_by_the_sweep(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    storage = app[appkeys.STORAGE]
    with monkeypatch.context() as patch:
        patch.setattr(storage, "delete_prefix", SlowDeletes(storage, fail=True).delete_prefix)
        resp = await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
        assert resp.status == 204
    assert len(leftovers(app)) == 1
    report = await sweep(app)
    assert report.pending_prefixes_removed == 1
    assert leftovers(app) == []


@pytest.mark.usefixtures("clean")
async def test_background_task_sweeps_counts_and_stops(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    await expire(app, video["id"])
    metrics = app[appkeys.METRICS]
    calls = 0
    three_done = asyncio.Event()  # set when the 4th pass starts: 3 are counted

    async def flaky() -> CleanupReport:
        nonlocal calls
        calls += 1
        if calls == 4:
            three_done.set()
        if calls == 1:
            raise RuntimeError("first sweep fails")  # logged; the loop goes on
        return await sweep(app)

    task = CleanupTask(flaky, interval=0.05, metrics=metrics)
    before = asyncio.all_tasks()
    task.start()
    try:
        async with asyncio.timeout(10):
            await three_done.wait()
    finally:
        await task.stop()
    assert leftovers(app) == []

    def value(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    assert value("frameflow_cleanup_runs_total", outcome="error") == 1
    assert value("frameflow_cleanup_runs_total", outcome="ok") >= 2
    assert value("frameflow_cleanup_videos_deleted_total") == 1
    assert value("frameflow_cleanup_bytes_freed_total") == video["size"]
    # Stopped means gone: no task of the sweep is left running.
    assert not [t for t in asyncio.all_tasks() - before if t.get_name() == "cleanup"]


async def test_app_starts_and_stops_its_cleanup_task(client: TestClient[Any, Any]) -> None:
    task = client.app[appkeys.CLEANUP]
    assert task.interval == client.app[appkeys.SETTINGS].cleanup_interval_seconds
    assert [t for t in asyncio.all_tasks() if t.get_name() == "cleanup"]


def test_jitter_stays_within_20_percent() -> None:
    assert jittered(100, lambda: 0.0) == pytest.approx(80)
    assert jittered(100, lambda: 1.0) == pytest.approx(120)
    assert jittered(100, lambda: 0.5) == pytest.approx(100)


# --- the CLI, as a real process -------------------------------------------------------


@pytest.fixture
def cli_database(server_url: str) -> Iterator[str]:
    name = f"frameflow_clean_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _report(stdout: str) -> dict[str, Any]:
    """The JSON report printed last (log lines before it are one object per line)."""
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return dict(json.loads("\n".join(lines[start:])))


def test_cli_cleanup_dry_run_then_real(cli_database: str, tmp_path: Path) -> None:
    env = env_for(cli_database, FRAMEFLOW_DATA_DIR=str(tmp_path / "data"))
    assert run_cli("migrate", env=env).returncode == 0
    video_id = uuid.uuid4()

    async def seed() -> None:
        conn = await asyncpg.connect(cli_database)
        try:
            user_id = await conn.fetchval(
                """INSERT INTO users (email, password_hash, quota_bytes, used_bytes)
                   VALUES ('cli@example.com', 'x', 1000, 10) RETURNING id"""
            )
            await conn.execute(
                """INSERT INTO videos (id, user_id, filename, storage_key, size, sha256,
                                       content_type, kind, expires_at)
                   VALUES ($1, $2, 'v.mp4', 'videos/x/source', 10, '', 'video/mp4', 'video',
                           now() - interval '1 day')""",
                video_id,
                user_id,
            )
        finally:
            await conn.close()

    async def rows() -> int:
        conn = await asyncpg.connect(cli_database)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM videos"))
        finally:
            await conn.close()

    asyncio.run(seed())
    dry = run_cli("cleanup", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    report = _report(dry.stdout)
    assert report["dry_run"] is True
    assert (report["videos_deleted"], report["bytes_freed"]) == (1, 10)
    assert report["video_ids"] == [str(video_id)]
    assert asyncio.run(rows()) == 1

    real = run_cli("cleanup", env=env)
    assert real.returncode == 0, real.stdout + real.stderr
    report = _report(real.stdout)
    assert (report["dry_run"], report["videos_deleted"]) == (False, 1)
    assert "cleanup_done" in real.stdout  # logged as well as printed
    assert asyncio.run(rows()) == 0
