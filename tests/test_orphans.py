"""The orphan step of the sweep: objects no row references, on both storage backends."""

from __future__ import annotations

import uuid
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import appkeys
from server.cleanup import orphans
from server.cleanup.orphans import sweep_orphans
from server.cleanup.sweep import CleanupReport
from server.db import orphans as orphans_db
from server.object_keys import source_key, video_prefix, video_prefix_of
from tests.conftest import User
from tests.test_cleanup import add_job, missing_referenced, sweep_with, upload


@pytest.fixture(params=["local", "s3", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def clean(client: TestClient[Any, Any]) -> None:
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("TRUNCATE pending_deletions")


async def store(app: web.Application, key: str, data: bytes = b"orphan") -> None:
    """An object written with no row: what a process killed before its INSERT leaves."""
    async with app[appkeys.STORAGE].writer(key) as writer:
        await writer.write(data)
        await writer.commit()


async def stored(app: web.Application, prefix: str = "videos/") -> list[str]:
    async with aclosing(app[appkeys.STORAGE].list_prefix(prefix)) as infos:
        return sorted([info.key async for info in infos])


async def sweep(app: web.Application, **kw: Any) -> CleanupReport:
    return await sweep_with(app, app[appkeys.STORAGE], **kw)


@pytest.mark.usefixtures("clean")
async def test_unreferenced_objects_are_deleted_and_referenced_ones_kept(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    app = client.app
    video = await upload(client, user, sample_mp4)
    await add_job(app, user, video["id"], "succeeded", output=b"o" * 10)
    kept = await stored(app)
    assert len(kept) == 2  # the source and the job's output
    # A crash between writing and inserting: objects under a prefix no row owns.
    lost = source_key(uuid.UUID(user.id), uuid.uuid4())
    await store(app, lost, b"x" * 1234)
    lost_output = video_prefix(uuid.UUID(user.id), uuid.uuid4()) + f"jobs/{uuid.uuid4()}/a.jpg"
    await store(app, lost_output, b"y" * 10)
    # The right video id under another user's name is not that video's object.
    wrong_owner = source_key(uuid.uuid4(), uuid.UUID(video["id"]))
    await store(app, wrong_owner)
    # Not made by Frameflow's key layout, or outside videos/: never touched.
    strangers = ["videos/not-a-uuid/x", f"videos/{user.id}/source", "elsewhere/x"]
    for key in strangers:
        await store(app, key)

    # The default age (stale uploads + grace): everything is far too young.
    report = await sweep(app)
    assert report.errors == []
    assert (report.orphans_removed, report.orphan_bytes_freed) == (0, 0)

    dry = await sweep(app, dry_run=True, orphans_after=timedelta(0))
    assert dry.errors == []
    assert (dry.orphans_removed, dry.orphan_bytes_freed) == (3, 1234 + 10 + 6)
    assert len(await stored(app)) == 7  # nothing deleted

    real = await sweep(app, orphans_after=timedelta(0))
    assert real.errors == []
    assert (real.orphans_removed, real.orphan_bytes_freed) == (3, 1234 + 10 + 6)
    assert await stored(app) == sorted([*kept, *strangers[:2]])
    assert await stored(app, "elsewhere/") == ["elsewhere/x"]
    assert await missing_referenced(app) == []
    resp = await client.get(f"/api/v1/videos/{video['id']}/content", headers=user.headers)
    assert resp.status in (200, 302)

    again = await sweep(app, orphans_after=timedelta(0))
    assert (again.orphans_removed, again.errors) == (0, [])


@pytest.mark.usefixtures("clean")
async def test_only_objects_older_than_the_cutoff_go(client: TestClient[Any, Any]) -> None:
    app = client.app
    key = source_key(uuid.uuid4(), uuid.uuid4())
    await store(app, key)
    info = await app[appkeys.STORAGE].stat(key)
    assert info is not None
    hour = timedelta(hours=1)
    async with app[appkeys.POOL].acquire() as conn:
        for dry_run in (True, False):
            young = await sweep_orphans(
                conn,
                app[appkeys.STORAGE],
                older_than=hour,
                dry_run=dry_run,
                now=info.last_modified + hour - timedelta(seconds=1),
            )
            assert young.objects == 0
        assert await stored(app) == [key]
        old = await sweep_orphans(
            conn,
            app[appkeys.STORAGE],
            older_than=hour,
            dry_run=False,
            now=info.last_modified + hour + timedelta(seconds=1),
        )
    assert old.objects == 1
    assert await stored(app) == []


@pytest.mark.usefixtures("clean")
async def test_prefixes_pending_deletion_are_left_to_their_own_step(
    client: TestClient[Any, Any],
) -> None:
    app = client.app
    key = source_key(uuid.uuid4(), uuid.uuid4())
    await store(app, key)
    owner = video_prefix_of(key)
    assert owner is not None
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("INSERT INTO pending_deletions (prefix) VALUES ($1)", owner.prefix)
        assert await orphans_db.claimed_prefixes(conn, {owner}) == {owner.prefix}
        found = await sweep_orphans(
            conn, app[appkeys.STORAGE], older_than=timedelta(0), dry_run=False
        )
    assert found.objects == 0 and await stored(app) == [key]
    # The pending step deletes it (and counts it there, not as an orphan).
    report = await sweep(app, orphans_after=timedelta(0))
    assert (report.pending_prefixes_removed, report.orphans_removed) == (1, 0)
    assert await stored(app) == []


@pytest.mark.usefixtures("clean")
async def test_orphans_are_settled_a_batch_at_a_time(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One query per batch, never the whole listing in memory."""
    app = client.app
    monkeypatch.setattr(orphans, "BATCH_SIZE", 2)
    batches: list[int] = []
    real_claimed = orphans_db.claimed_prefixes

    async def counting(conn: Any, candidates: Any) -> set[str]:
        batches.append(len(candidates))
        return await real_claimed(conn, candidates)

    monkeypatch.setattr(orphans_db, "claimed_prefixes", counting)
    for _ in range(5):
        await store(app, source_key(uuid.uuid4(), uuid.uuid4()))
    report = await sweep(app, orphans_after=timedelta(0))
    assert report.orphans_removed == 5
    assert batches == [2, 2, 1]
    assert await stored(app) == []


def test_video_prefix_of_accepts_only_keys_it_makes() -> None:
    user, video = uuid.uuid4(), uuid.uuid4()
    found = video_prefix_of(source_key(user, video))
    assert found is not None and (found.user_id, found.video_id) == (user, video)
    assert found.prefix == video_prefix(user, video)
    assert video_prefix_of(video_prefix(user, video) + "jobs/j/out.zip") == found
    for key in [
        video_prefix(user, video),  # the prefix itself is no object
        f"videos/{user}/{video}",
        f"videos/{str(user).upper()}/{video}/source",  # not how keys are written
        f"videos/{user.hex}/{video}/source",
        f"videos/{user}/not-a-uuid/source",
        f"other/{user}/{video}/source",
        "videos/x",
    ]:
        assert video_prefix_of(key) is None, key


async def test_default_age_is_stale_uploads_plus_grace(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = client.app
    settings = app[appkeys.SETTINGS]
    seen: list[timedelta] = []

    async def spy(*args: Any, older_than: timedelta, **kw: Any) -> orphans.OrphanReport:
        seen.append(older_than)
        return orphans.OrphanReport()

    monkeypatch.setattr("server.cleanup.sweep.sweep_orphans", spy)
    await sweep(app, dry_run=True)
    grace = settings.stale_upload_seconds + settings.orphan_grace_seconds
    assert seen == [timedelta(seconds=grace)]
    assert settings.orphan_grace_seconds == 3600


def test_orphan_grace_has_a_floor(make_settings: Any) -> None:
    assert make_settings(orphan_grace_seconds=300).orphan_grace_seconds == 300
    with pytest.raises(ValueError, match="ORPHAN_GRACE_SECONDS"):
        make_settings(orphan_grace_seconds=10)
