"""Storage backends against real things: files under tmp_path, and S3 over HTTP (moto).

Every behaviour test runs on both backends through the `storage` fixture; a
few S3-only tests check what only S3 has (multipart parts, Range headers,
bucket creation). Objects are a few MiB with the 5 MiB minimum part size, so
multipart paths are exercised while moto stays quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from config.settings import Settings
from server.storage import (
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    StorageUnavailable,
    open_storage,
)
from server.storage.base import managed_writer
from tests import storage_fixtures
from tests.s3_server import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    s3_settings,
    unique_bucket,
)
from tests.storage_fixtures import PART

# The `storage` fixture (local, moto, SeaweedFS) shared with the other storage tests.
storage = storage_fixtures.storage
s3_endpoint = storage_fixtures.s3_endpoint


def backend_of(request: pytest.FixtureRequest) -> str:
    """ "local", "s3" (moto) or "seaweedfs": the `storage` fixture's parameter."""
    return str(request.node.callspec.params["storage"])


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def put(store: Storage, key: str, data: bytes, chunk: int = 256 * 1024 + 7) -> None:
    """Write in odd-sized chunks so part boundaries fall inside chunks."""
    async with store.writer(key, "video/mp4") as writer:
        for i in range(0, len(data), chunk):
            await writer.write(data[i : i + chunk])
        await writer.commit()


async def read_all(store: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with aclosing(store.read(key, start, end)) as chunks:
        return b"".join([c async for c in chunks])


async def leftovers(store: Storage) -> list[str]:
    """What unfinished writers left behind: temp files, or multipart uploads."""
    if isinstance(store, LocalStorage):
        return sorted(os.listdir(store.tmp_dir))
    assert isinstance(store, S3Storage)
    response = await store.client.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in response.get("Uploads", [])]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- writing and reading -----------------------------------------------------


async def test_round_trip(storage: Storage) -> None:
    data = payload(100_000)
    before = datetime.now(UTC) - timedelta(seconds=2)
    async with storage.writer("videos/a/source.mp4", "video/mp4") as writer:
        await writer.write(data)
        assert writer.bytes_written == len(data)
        info = await writer.commit()
    assert info.key == "videos/a/source.mp4"
    assert info.size == len(data)
    assert info.last_modified.utcoffset() == timedelta(0)
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=2)
    assert await storage.stat("videos/a/source.mp4") == info
    assert await read_all(storage, "videos/a/source.mp4") == data


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 123])
async def test_sizes_around_part_boundaries(storage: Storage, size: int) -> None:
    data = payload(size, seed=size)
    await put(storage, "k/obj", data)
    info = await storage.stat("k/obj")
    assert info is not None and info.size == size
    assert await read_all(storage, "k/obj") == data
    if isinstance(storage, S3Storage):
        head = await storage.client.head_object(Bucket=storage.bucket, Key="k/obj")
        # A multipart ETag ends in "-<parts>": proves which path was taken, and
        # that no empty trailing part was sent for exact multiples.
        parts = -(-size // PART)
        expected = f'-{parts}"' if parts > 1 else None
        assert (head["ETag"].endswith(expected)) if expected else ("-" not in head["ETag"])
        assert head["ContentType"] == "video/mp4"


async def test_s3_upload_sends_parts_in_flight_side_by_side_and_no_more(storage: Storage) -> None:
    """Two parts go up at once (one at a time held uploads at one connection's pace),
    never a third, and the object is whole with its parts in order."""
    if not isinstance(storage, S3Storage):
        pytest.skip("parts are an S3 matter")
    storage.parts_in_flight = 2
    on_wire = most = 0
    two_at_once = asyncio.Event()

    async def before(**_: Any) -> None:
        nonlocal on_wire, most
        on_wire += 1
        most = max(most, on_wire)
        if on_wire == 2:
            two_at_once.set()
        # Each part waits until a second is on the wire (or the last part, alone, times out
        # quietly): a writer that sends one part at a time never gets past this.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await two_at_once.wait()

    def after(**_: Any) -> None:
        nonlocal on_wire
        on_wire -= 1

    storage.client.meta.events.register("before-call.s3.UploadPart", before)
    storage.client.meta.events.register("after-call.s3.UploadPart", after)
    data = payload(5 * PART + 1, seed=7)
    await put(storage, "inflight/obj", data)
    assert two_at_once.is_set() and most == 2
    assert await read_all(storage, "inflight/obj") == data
    head = await storage.client.head_object(Bucket=storage.bucket, Key="inflight/obj")
    assert head["ETag"].endswith('-6"')


async def test_chunk_size_is_an_upper_bound(storage: Storage) -> None:
    data = payload(300_000)
    await put(storage, "c", data)
    async with aclosing(storage.read("c", chunk_size=10_000)) as chunks:
        got = [chunk async for chunk in chunks]
    assert b"".join(got) == data
    assert max(len(c) for c in got) <= 10_000


@pytest.fixture
async def big(storage: Storage) -> bytes:
    """An object spanning two S3 parts, so ranges can cross a part boundary."""
    data = payload(PART + 4096, seed=7)
    await put(storage, "big", data)
    return data


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),  # first byte
        (PART + 4095, PART + 4095),  # last byte
        (PART + 4095, None),  # last byte, open-ended
        (1000, 1000),  # one byte in the middle
        (10, 20),
        (PART - 100, PART + 100),  # across the part boundary
        (123, None),  # to the end
        (PART, PART + 10_000_000),  # end past the object is clamped
    ],
)
async def test_ranged_reads(storage: Storage, big: bytes, start: int, end: int | None) -> None:
    expected = big[start:] if end is None else big[start : end + 1]
    assert await read_all(storage, "big", start, end) == expected


async def test_range_past_the_end_is_empty(storage: Storage, big: bytes) -> None:
    assert await read_all(storage, "big", len(big)) == b""
    assert await read_all(storage, "big", len(big) + 10, len(big) + 20) == b""
    await put(storage, "empty", b"")
    assert await read_all(storage, "empty", 0, 0) == b""


async def test_bad_range_arguments(storage: Storage, big: bytes) -> None:
    for start, end in [(-1, None), (10, 9)]:
        with pytest.raises(ValueError):
            await read_all(storage, "big", start, end)


async def test_read_of_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        await read_all(storage, "nope/missing")
    with pytest.raises(ObjectNotFound):
        await read_all(storage, "nope/missing", 5, 10)
    assert await storage.stat("nope/missing") is None


async def test_a_prefix_is_not_an_object(storage: Storage) -> None:
    await put(storage, "dir/file", b"x")
    assert await storage.stat("dir") is None
    with pytest.raises(ObjectNotFound):
        await read_all(storage, "dir")


async def test_stopping_a_read_early_releases_it(storage: Storage) -> None:
    data = payload(3 * PART)
    await put(storage, "long", data)
    # More reads than max_pool_connections (64): if closing the generator did
    # not release the HTTP response, the pool would run dry and this would hang.
    async with asyncio.timeout(30):
        for _ in range(70):
            async with aclosing(storage.read("long", chunk_size=64 * 1024)) as chunks:
                first = await anext(chunks)
            assert data.startswith(first)
    assert await read_all(storage, "long", 5, 9) == data[5:10]


# --- visibility and aborts -----------------------------------------------------


async def test_not_visible_before_commit(storage: Storage) -> None:
    data = payload(PART + 1000)
    async with storage.writer("v/obj") as writer:
        await writer.write(data)
        assert await storage.stat("v/obj") is None
        with pytest.raises(ObjectNotFound):
            await read_all(storage, "v/obj")
        await writer.commit()
    assert await read_all(storage, "v/obj") == data


async def test_overwrite_replaces_atomically(storage: Storage) -> None:
    old, new = payload(1000, seed=1), payload(PART + 10, seed=2)
    await put(storage, "same", old)
    async with storage.writer("same") as writer:
        await writer.write(new)
        assert await read_all(storage, "same") == old  # still the old one
        await writer.commit()
    assert await read_all(storage, "same") == new


async def test_abort_leaves_nothing(storage: Storage) -> None:
    writer = await storage.open_writer("a/obj")
    await writer.write(payload(PART + PART // 2))  # S3: a multipart upload is under way
    assert len(await leftovers(storage)) == 1
    await writer.abort()
    await writer.abort()  # idempotent
    assert await leftovers(storage) == []
    assert await storage.stat("a/obj") is None
    with pytest.raises(StorageError):
        await writer.write(b"more")
    with pytest.raises(StorageError):
        await writer.commit()


async def test_abort_after_commit_keeps_the_object(storage: Storage) -> None:
    writer = await storage.open_writer("kept")
    await writer.write(b"data")
    await writer.commit()
    await writer.abort()
    assert await read_all(storage, "kept") == b"data"


async def test_exception_in_writer_block_aborts(storage: Storage) -> None:
    with pytest.raises(RuntimeError, match="client went away"):
        async with storage.writer("e/obj") as writer:
            await writer.write(payload(PART + 1))
            raise RuntimeError("client went away")
    assert await leftovers(storage) == []
    assert await storage.stat("e/obj") is None


async def test_leaving_writer_block_without_commit_aborts(storage: Storage) -> None:
    async with storage.writer("n/obj") as writer:
        await writer.write(payload(PART + 1))
    assert await leftovers(storage) == []
    assert await storage.stat("n/obj") is None


async def test_cancellation_mid_write_aborts(storage: Storage) -> None:
    progress = asyncio.Event()

    async def upload_forever() -> None:
        async with storage.writer("c/obj") as writer:
            chunk = payload(256 * 1024)
            while True:
                await writer.write(chunk)
                if writer.bytes_written > PART + PART // 2:
                    progress.set()  # S3: past the first part, an upload exists
                await asyncio.sleep(0)

    task = asyncio.create_task(upload_forever())
    await asyncio.wait_for(progress.wait(), timeout=30)
    assert len(await leftovers(storage)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await leftovers(storage) == []
    assert await storage.stat("c/obj") is None


async def test_abort_survives_a_second_cancellation() -> None:
    """A timeout on top of a disconnect cancels twice; the abort must still finish."""
    abort_started, let_abort_finish, abort_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class SlowAbortWriter:
        bytes_written = 0

        async def write(self, chunk: bytes) -> None:
            await asyncio.Event().wait()  # blocks until cancelled

        async def commit(self) -> Any:
            raise AssertionError("not reached")

        async def abort(self) -> None:
            abort_started.set()
            await let_abort_finish.wait()
            abort_done.set()

    async def opening() -> SlowAbortWriter:
        return SlowAbortWriter()

    async def upload() -> None:
        async with managed_writer(opening()) as writer:
            await writer.write(b"x")

    task = asyncio.create_task(upload())
    await asyncio.sleep(0.01)
    task.cancel()  # first cancellation: the writer block starts aborting
    await asyncio.wait_for(abort_started.wait(), timeout=5)
    task.cancel()  # second one lands inside abort()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not abort_done.is_set()
    let_abort_finish.set()
    await asyncio.wait_for(abort_done.wait(), timeout=5)  # it carried on regardless


async def test_failures_surface_as_storage_errors(
    storage: Storage, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A backend that breaks mid-upload raises StorageError, which callers map to 503."""
    await put(storage, "x", b"before")
    broken = storage
    if backend_of(request) == "seaweedfs":
        # SeaweedFS creates a missing bucket again on the next write, so deleting
        # it breaks nothing there; credentials it does not know do.
        assert isinstance(storage, S3Storage)
        broken = await S3Storage.connect(
            bucket=storage.bucket,
            part_size=PART,
            tmp_dir=tmp_path / "broken",
            endpoint_url=storage.client.meta.endpoint_url,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key="not-the-secret",
            max_attempts=1,
        )
    elif isinstance(storage, S3Storage):
        await storage.delete("x")
        await storage.client.delete_bucket(Bucket=storage.bucket)
    else:
        assert isinstance(storage, LocalStorage)
        await asyncio.to_thread(_rmtree, storage.root)
    try:
        with pytest.raises(StorageError):
            async with broken.writer("y") as writer:
                await writer.write(payload(PART + 1))
                await writer.commit()
        if isinstance(broken, S3Storage):
            # Reads too; on SeaweedFS a refused signature is signed afresh once, then fails.
            with pytest.raises(StorageUnavailable):
                await read_all(broken, "x", 0, 1)
    finally:
        if broken is not storage:
            await broken.close()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


# --- deleting ------------------------------------------------------------------


async def test_delete(storage: Storage) -> None:
    await put(storage, "d/one", b"1")
    await storage.delete("d/one")
    assert await storage.stat("d/one") is None
    await storage.delete("d/one")  # missing is fine
    await storage.delete("never/existed")


async def test_delete_prefix(storage: Storage) -> None:
    for key in ["v/1/a", "v/1/b", "v/1/sub/c", "v/12/d", "v/2/e"]:
        await put(storage, key, key.encode())
    assert await storage.delete_prefix("v/1/") == 3
    assert await storage.stat("v/1/a") is None
    assert await storage.stat("v/1/sub/c") is None
    assert await read_all(storage, "v/12/d") == b"v/12/d"
    # A plain string prefix, as in S3: "v/1" also matches "v/12/...".
    assert await storage.delete_prefix("v/1") == 1
    assert await storage.delete_prefix("v/1") == 0
    assert await read_all(storage, "v/2/e") == b"v/2/e"
    if isinstance(storage, LocalStorage):  # emptied directories are pruned
        assert not (storage.root / "v" / "1").exists()
        assert (storage.root / "v" / "2").is_dir()


async def test_delete_prefix_ignores_writers_in_progress(storage: Storage) -> None:
    async with storage.writer("p/live") as writer:
        await writer.write(b"partial")
        assert await storage.delete_prefix("p") == 0
        await writer.commit()
    assert await read_all(storage, "p/live") == b"partial"


# --- listing -----------------------------------------------------------------


async def list_all(store: Storage, prefix: str) -> list[tuple[str, int]]:
    async with aclosing(store.list_prefix(prefix)) as infos:
        return sorted([(info.key, info.size) async for info in infos])


async def test_list_prefix(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    for key in ["v/1/a", "v/1/sub/c", "v/12/d", "v/2/e", "w/x"]:
        await put(storage, key, key.encode() * 3)
    assert await list_all(storage, "v/1/") == [("v/1/a", 15), ("v/1/sub/c", 27)]
    # A plain string prefix, as in S3: "v/1" also matches "v/12/...".
    assert [k for k, _ in await list_all(storage, "v/1")] == ["v/1/a", "v/1/sub/c", "v/12/d"]
    assert [k for k, _ in await list_all(storage, "v/")] == [
        "v/1/a",
        "v/1/sub/c",
        "v/12/d",
        "v/2/e",
    ]
    assert await list_all(storage, "nothing/") == []
    async with aclosing(storage.list_prefix("w/")) as infos:
        (info,) = [i async for i in infos]
    assert info == await storage.stat("w/x")
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=5)


async def test_list_prefix_skips_writers_in_progress(storage: Storage) -> None:
    await put(storage, "p/done", b"d")
    async with storage.writer("p/live") as writer:
        await writer.write(payload(PART + 1))  # S3: a multipart upload exists
        assert await list_all(storage, "p/") == [("p/done", 1)]
        await writer.commit()
    assert await list_all(storage, "p/") == [("p/done", 1), ("p/live", PART + 1)]


async def test_list_prefix_streams_page_by_page(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several pages, each fetched only when the consumer gets to it."""
    monkeypatch.setattr(f"server.storage.{storage.name}.LIST_PAGE_SIZE", 2)
    keys = [f"pg/{i:02}" for i in range(5)]
    for key in keys:
        await put(storage, key, b"x")
    pages = 0
    if isinstance(storage, S3Storage):

        def count_request(**_: Any) -> None:
            nonlocal pages
            pages += 1

        storage.client.meta.events.register("before-send.s3.ListObjectsV2", count_request)
    else:
        import server.storage.local as local_module

        real_next_page = local_module._next_page

        def counting_next_page(items: Any) -> Any:
            nonlocal pages
            page = real_next_page(items)
            pages += bool(page)
            return page

        monkeypatch.setattr(local_module, "_next_page", counting_next_page)
    async with aclosing(storage.list_prefix("pg/")) as infos:
        first = await anext(infos)
        assert pages == 1
        await storage.delete(first.key)  # deleting while listing is fine
        rest = [info.key async for info in infos]
    assert sorted([first.key, *rest]) == keys
    assert pages == 3
    # Stopping early releases the listing; another one starts afresh.
    async with aclosing(storage.list_prefix("pg/")) as infos:
        await anext(infos)
    assert len(await list_all(storage, "pg/")) == 4


async def test_list_prefix_rejects_bad_prefixes(storage: Storage) -> None:
    for prefix in ["", "/", "../x", "a//", ".tmp/"]:
        with pytest.raises(ValueError):
            await list_all(storage, prefix)


# --- keys --------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/abs",
    "a/../b",
    "..",
    "./a",
    "a//b",
    "a/",
    "nul\x00byte",
    "new\nline",
    "back\\slash",
    ".tmp/x",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_are_rejected(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError):
        await storage.open_writer(key)
    with pytest.raises(ValueError):
        async with storage.writer(key):
            pass
    with pytest.raises(ValueError):
        await storage.stat(key)
    with pytest.raises(ValueError):
        await read_all(storage, key)
    with pytest.raises(ValueError):
        await storage.delete(key)
    with pytest.raises(ValueError):
        async with storage.local_path(key):
            pass
    assert await leftovers(storage) == []


async def test_invalid_prefixes_are_rejected(storage: Storage) -> None:
    for prefix in ["", "/", "../x", "a//"]:
        with pytest.raises(ValueError):
            await storage.delete_prefix(prefix)


async def test_unusual_but_valid_keys(storage: Storage) -> None:
    for key in ["ünïcode/ファイル.mp4", "with space/x y", "a..b/c.d", ".hidden/x"]:
        await put(storage, key, key.encode())
        assert await read_all(storage, key) == key.encode()


# --- local_path ------------------------------------------------------------------


async def test_local_path(storage: Storage) -> None:
    data = payload(PART + 12345)
    await put(storage, "lp/source.mp4", data)
    async with storage.local_path("lp/source.mp4") as path:
        assert path.is_file()
        assert path.suffix == ".mp4"
        assert await asyncio.to_thread(path.read_bytes) == data
    if isinstance(storage, S3Storage):
        assert not path.exists()
        assert not path.parent.exists()
        assert os.listdir(storage.tmp_dir) == []
    else:
        assert path.exists()  # the real object, not a copy


async def test_local_path_of_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        async with storage.local_path("lp/missing"):
            pass
    if isinstance(storage, S3Storage):
        assert os.listdir(storage.tmp_dir) == []


async def test_local_path_removed_on_error(storage: Storage) -> None:
    await put(storage, "lp/x", b"abc")
    with pytest.raises(RuntimeError):
        async with storage.local_path("lp/x") as path:
            raise RuntimeError("ffmpeg failed")
    assert path.exists() == (storage.name == "local")


# --- readiness and housekeeping --------------------------------------------------


async def test_check(storage: Storage) -> None:
    await storage.check()
    if isinstance(storage, S3Storage):
        await storage.client.delete_bucket(Bucket=storage.bucket)
    else:
        assert isinstance(storage, LocalStorage)
        await asyncio.to_thread(_rmtree, storage.root)
    with pytest.raises(StorageUnavailable):
        await storage.check()


async def test_open_storage_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    """A second instance starting on the same data dir / bucket finds it ready."""
    await put(storage, "kept", b"k")
    if isinstance(storage, S3Storage):
        endpoint = storage.client.meta.endpoint_url
        settings = Settings(data_dir=tmp_path, **s3_settings(endpoint, bucket=storage.bucket))
    else:
        settings = Settings(data_dir=tmp_path, storage="local")
    again = await open_storage(settings)
    try:
        assert await read_all(again, "kept") == b"k"
    finally:
        await again.close()


async def test_abort_stale_uploads(storage: Storage, request: pytest.FixtureRequest) -> None:
    stale = await storage.open_writer("stale/obj")
    await stale.write(payload(PART + 1))  # S3: a multipart upload now exists
    if isinstance(storage, LocalStorage):
        (old_file,) = storage.tmp_dir.iterdir()
        hour_ago = time.time() - 3600
        os.utime(old_file, (hour_ago, hour_ago))
        fresh = await storage.open_writer("fresh/obj")
        await fresh.write(b"still uploading")
        assert await storage.abort_stale_uploads(timedelta(minutes=10)) == 1
        assert len(await leftovers(storage)) == 1  # the fresh one stays
        await fresh.write(b" and done")
        await fresh.commit()
        assert await read_all(storage, "fresh/obj") == b"still uploading and done"
    else:
        assert isinstance(storage, S3Storage)
        crashed_copy = storage.tmp_dir / "obj-crashed"
        crashed_copy.mkdir()
        hour_ago = time.time() - 3600
        os.utime(crashed_copy, (hour_ago, hour_ago))
        if backend_of(request) == "seaweedfs":
            # A real server dates each upload: one started just now is not stale.
            assert await storage.abort_stale_uploads(timedelta(minutes=10)) == 1  # the copy
            assert len(await leftovers(storage)) == 1
            await asyncio.sleep(1.1)  # "Initiated" has whole seconds
            assert await storage.abort_stale_uploads(timedelta(0)) == 1
        else:
            # moto reports a fixed 2010 "Initiated" for every multipart upload, so
            # age filtering cannot be told apart here: every upload looks stale.
            assert await storage.abort_stale_uploads(timedelta(minutes=10)) == 2
        assert not crashed_copy.exists()
    assert await leftovers(storage) == []
    await stale.abort()  # the writer's own abort copes with the upload being gone
    assert await storage.abort_stale_uploads(timedelta(0)) == 0


# --- S3 specifics ------------------------------------------------------------------


@pytest.fixture
async def s3(s3_endpoint: str, tmp_path: Path) -> AsyncIterator[S3Storage]:
    store = await open_storage(
        Settings(data_dir=tmp_path, s3_part_size=PART, **s3_settings(s3_endpoint))
    )
    assert isinstance(store, S3Storage)
    try:
        yield store
    finally:
        await store.close()


async def test_s3_reads_send_the_range(s3: S3Storage, monkeypatch: Any) -> None:
    """Ranged reads must fetch only the range, never the whole object."""
    await put(s3, "r", payload(PART + 10))
    ranges: list[str | None] = []
    lengths: list[int | None] = []
    session = s3._gets._session
    real_get = session.get

    async def spy(url: str, **kwargs: Any) -> Any:
        ranges.append(kwargs["headers"].get("Range"))
        response = await real_get(url, **kwargs)
        lengths.append(response.content_length)
        return response

    monkeypatch.setattr(session, "get", spy)
    assert len(await read_all(s3, "r", 100, 199)) == 100
    assert len(await read_all(s3, "r", PART)) == 10
    assert len(await read_all(s3, "r")) == PART + 10
    assert ranges == ["bytes=100-199", f"bytes={PART}-", None]
    assert lengths == [100, 10, PART + 10]


async def test_s3_reads_presign_once_per_key_and_still_see_deletion(
    s3: S3Storage, monkeypatch: Any
) -> None:
    """Reads reuse one presigned URL per key (no botocore call per range), yet
    every read asks the store: a deleted object is gone at once."""
    data = payload(1000)
    await put(s3, "p", data)
    presigned: list[str] = []
    real_presign = s3._presign_get

    async def counting(key: str, seconds: int) -> str:
        presigned.append(key)
        return await real_presign(key, seconds)

    monkeypatch.setattr(s3._gets, "_presign", counting)
    for start in (0, 10, 500):
        assert await read_all(s3, "p", start, start + 9) == data[start : start + 10]
    assert presigned == ["p"]
    await s3.delete("p")
    with pytest.raises(ObjectNotFound):
        await read_all(s3, "p", 0, 9)


async def test_s3_read_that_cannot_be_signed_is_unavailable(
    s3: S3Storage, monkeypatch: Any
) -> None:
    async def no_credentials(*args: Any, **kwargs: Any) -> str:
        raise NoCredentialsError()

    monkeypatch.setattr(s3.client, "generate_presigned_url", no_credentials)
    with pytest.raises(StorageUnavailable, match="signing"):
        await read_all(s3, "anything", 0, 9)


async def test_s3_read_signs_again_when_the_store_refuses_the_cached_url(
    storage: Storage, request: pytest.FixtureRequest
) -> None:
    """A URL the store no longer takes (rotated credentials) is presigned afresh once."""
    if backend_of(request) != "seaweedfs":
        pytest.skip("moto takes any signature; SeaweedFS checks them")
    s3 = storage
    assert isinstance(s3, S3Storage)
    await put(s3, "q", b"0123456789")
    url = await s3._presign_get("q", 60)
    forged = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    assert forged != url
    s3._gets._urls["q"] = (forged, time.monotonic())
    assert await read_all(s3, "q", 2, 4) == b"234"
    assert s3._gets._urls["q"][0] != forged


async def test_s3_at_most_one_part_in_flight(s3: S3Storage, monkeypatch: Any) -> None:
    """With FRAMEFLOW_S3_PARTS_IN_FLIGHT=1 memory stays at ~2 parts: one on the wire,
    one filling (the default of 2 is tested above)."""
    s3.parts_in_flight = 1
    real_upload_part = s3.client.upload_part
    in_flight = peak = 0

    async def slow_upload_part(**kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)  # slower than the producer
            return await real_upload_part(**kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(s3.client, "upload_part", slow_upload_part)
    data = payload(4 * PART + 1)
    async with s3.writer("mem") as writer:
        for i in range(0, len(data), 1024 * 1024):
            await writer.write(data[i : i + 1024 * 1024])
            assert writer._buf.tell() <= PART  # type: ignore[attr-defined]
        await writer.commit()
    assert peak == 1
    assert await read_all(s3, "mem") == data


async def test_s3_bucket_created_in_other_region(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = unique_bucket()
    settings = Settings(
        data_dir=tmp_path, **s3_settings(s3_endpoint, bucket=bucket, s3_region="eu-west-1")
    )
    store = await open_storage(settings)
    try:
        assert isinstance(store, S3Storage)
        location = await store.client.get_bucket_location(Bucket=bucket)
        assert location["LocationConstraint"] == "eu-west-1"
        await put(store, "k", b"v")
    finally:
        await store.close()


async def test_s3_bucket_creation_race(s3: S3Storage, monkeypatch: Any) -> None:
    """Another instance created the bucket between our HEAD and our CREATE."""
    s3.region = "eu-west-1"  # us-east-1 silently succeeds; elsewhere S3 says "already owned"
    await s3.client.create_bucket(
        Bucket=(bucket := unique_bucket()),
        CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
    )
    s3.bucket = bucket

    async def missing(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")

    monkeypatch.setattr(s3.client, "head_bucket", missing)
    await s3.ensure_bucket()


async def test_s3_unreachable(tmp_path: Path) -> None:
    store = await S3Storage.connect(
        bucket="frameflow-nowhere",
        part_size=PART,
        tmp_dir=tmp_path / "tmp",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens here
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        max_attempts=1,
    )
    try:
        with pytest.raises(StorageUnavailable, match="unreachable"):
            await store.check()
        with pytest.raises(StorageUnavailable):
            await store.ensure_bucket()
        with pytest.raises(StorageUnavailable):
            await store.stat("k")
        with pytest.raises(StorageUnavailable):
            await read_all(store, "k", 0, 9)
    finally:
        await store.close()


async def test_s3_half_configured_credentials_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        await S3Storage.connect(
            bucket="b", part_size=PART, tmp_dir=tmp_path, access_key_id=ACCESS_KEY_ID
        )
