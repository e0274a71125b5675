"""tus 1.0 resumable uploads over HTTP: protocol, extensions, limits, both storage backends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from server import appkeys
from server.storage.base import AppendState
from tests.conftest import User, leftovers

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


async def create(client: TestClient[Any, Any], user: User, length: int | None, **pairs: str) -> str:
    headers = {**user.headers, **TUS, "Upload-Metadata": meta(filename="clip.mp4", **pairs)}
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    resp = await client.post("/api/v1/tus/", headers=headers)
    assert resp.status == 201, await resp.text()
    return path_of(resp.headers["Location"])


def path_of(url: str) -> str:
    return URL(url).path


async def patch(
    client: TestClient[Any, Any], user: User, url: str, offset: int, body: bytes, **extra: str
) -> Any:
    headers = {**user.headers, **TUS, **OCTETS, "Upload-Offset": str(offset), **extra}
    return await client.patch(url, data=body, headers=headers)


async def head(client: TestClient[Any, Any], user: User, url: str) -> Any:
    return await client.head(url, headers={**user.headers, **TUS})


async def open_request(
    client: TestClient[Any, Any], head_lines: list[str], length: int, first: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request announcing `length` body bytes, sent over a raw socket with only `first`
    of them, the connection left open: the test decides what comes next (more bytes, a
    stall, a cut). `tests/edge_helpers.raw_request` sends a whole request instead."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    lines = [*head_lines, "Host: 127.0.0.1", f"Content-Length: {length}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
    await writer.drain()
    return reader, writer


async def raw_patch(
    client: TestClient[Any, Any], user: User, url: str, length: int, first: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A tus PATCH at offset 0 over a raw socket (`open_request`)."""
    head_lines = [
        f"PATCH {url} HTTP/1.1",
        f"Authorization: {user.headers['Authorization']}",
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        "Upload-Offset: 0",
    ]
    return await open_request(client, head_lines, length, first)


async def stored_sha256(client: TestClient[Any, Any], user: User, video_id: str) -> str:
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["sha256"])


async def finish(
    client: TestClient[Any, Any], user: User, url: str, offset: int, data: bytes
) -> str:
    """PATCH the rest of `data` from `offset` (204 expected): the video's stored sha256."""
    resp = await patch(client, user, url, offset, data[offset:])
    assert resp.status == 204, await resp.text()
    return await stored_sha256(client, user, resp.headers["Frameflow-Video-Id"])


async def used_bytes(app: web.Application, user: User) -> int:
    async with app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT used_bytes FROM users WHERE id = $1::uuid", user.id))


async def test_chunked_upload_becomes_a_video(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    assert await used_bytes(client.app, user) == len(data)  # held from creation
    resp = await head(client, user, url)
    assert resp.status == 200
    assert resp.headers["Upload-Offset"] == "0"
    assert resp.headers["Upload-Length"] == str(len(data))
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Upload-Expires" in resp.headers
    offset = 0
    for size in (10_000, 25_000, len(data)):
        chunk = data[offset : offset + size]
        resp = await patch(client, user, url, offset, chunk)
        assert resp.status == 204, await resp.text()
        offset += len(chunk)
        assert resp.headers["Upload-Offset"] == str(offset)
        if offset == len(data):
            break
    video_id = resp.headers["Frameflow-Video-Id"]
    assert resp.headers["Frameflow-Video-Location"].endswith(f"/api/v1/videos/{video_id}")
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    video = await resp.json()
    assert video["sha256"] == hashlib.sha256(data).hexdigest()
    assert video["filename"] == "clip.mp4"
    assert video["size"] == len(data)
    assert await used_bytes(client.app, user) == len(data)  # the hold became the video's
    resp = await head(client, user, url)
    assert resp.headers["Frameflow-Video-Id"] == video_id
    assert sorted(leftovers(client.app)) == [f"objects/videos/{user.id}/{video_id}/source"] or (
        client.app[appkeys.SETTINGS].storage == "s3"
        and leftovers(client.app) == [f"videos/{user.id}/{video_id}/source"]
    )


async def expire_upload(app: web.Application, url: str) -> None:
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE tus_uploads SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
            url.rsplit("/", 1)[-1],
        )


async def sweep(app: web.Application) -> Any:
    from server.cleanup.sweep import run_sweep

    return await run_sweep(
        app[appkeys.POOL],
        app[appkeys.VIDEOS],
        app[appkeys.STORAGE],
        app[appkeys.SETTINGS],
        tus=app[appkeys.TUS],
    )


async def test_options_discovery_needs_no_credentials(client: TestClient[Any, Any]) -> None:
    resp = await client.options("/api/v1/tus/")
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(resp.headers["Tus-Extension"].split(","))
    assert {"creation", "creation-with-upload", "creation-defer-length"} <= extensions
    assert {"termination", "expiration", "checksum"} <= extensions
    assert set(resp.headers["Tus-Checksum-Algorithm"].split(",")) >= {"sha1", "md5", "sha256"}
    assert int(resp.headers["Tus-Max-Size"]) == client.app[appkeys.SETTINGS].max_upload_bytes


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
async def test_other_protocol_versions_are_412(
    client: TestClient[Any, Any], user: User, version: str | None
) -> None:
    headers = {**user.headers, "Upload-Length": "10"}
    if version:
        headers["Tus-Resumable"] = version
    resp = await client.post("/api/v1/tus/", headers=headers)
    assert resp.status == 412
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert resp.headers["Tus-Resumable"] == "1.0.0"


async def test_needs_a_user_and_hides_other_users_uploads(
    client: TestClient[Any, Any], user: User
) -> None:
    from tests.conftest import register_and_login

    resp = await client.post("/api/v1/tus/", headers={**TUS, "Upload-Length": "10"})
    assert resp.status == 401
    url = await create(client, user, 10)
    other = await register_and_login(client)
    assert (await head(client, other, url)).status == 404
    assert (await patch(client, other, url, 0, b"x")).status == 404


async def test_wrong_offset_is_409_and_names_the_offset(
    client: TestClient[Any, Any], user: User
) -> None:
    url = await create(client, user, 100)
    assert (await patch(client, user, url, 0, b"a" * 10)).status == 204
    resp = await patch(client, user, url, 5, b"b" * 10)
    assert resp.status == 409
    assert resp.headers["Upload-Offset"] == "10"
    assert (await resp.json())["error"]["code"] == "offset_mismatch"
    resp = await patch(client, user, url, 10, b"c" * 91)  # past Upload-Length
    assert resp.status == 413
    assert (await head(client, user, url)).headers["Upload-Offset"] == "10"


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256"])
async def test_checksum_match_and_mismatch(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, algorithm: str
) -> None:
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))

    def checksum(body: bytes) -> str:
        return f"{algorithm} " + base64.b64encode(hashlib.new(algorithm, body).digest()).decode()

    first = data[:20_000]
    resp = await patch(client, user, url, 0, first, **{"Upload-Checksum": checksum(first)})
    assert resp.status == 204
    rest = data[20_000:]
    resp = await patch(client, user, url, 20_000, rest, **{"Upload-Checksum": checksum(b"x")})
    assert resp.status == 460
    assert (await resp.json())["error"]["code"] == "checksum_mismatch"
    assert (await head(client, user, url)).headers["Upload-Offset"] == "20000"  # discarded
    resp = await patch(client, user, url, 20_000, rest, **{"Upload-Checksum": checksum(rest)})
    assert resp.status == 204, await resp.text()
    video_id = resp.headers["Frameflow-Video-Id"]
    assert await stored_sha256(client, user, video_id) == hashlib.sha256(data).hexdigest()


async def test_unknown_checksum_algorithm_is_400(client: TestClient[Any, Any], user: User) -> None:
    url = await create(client, user, 10)
    resp = await patch(client, user, url, 0, b"x", **{"Upload-Checksum": "crc32 AAAAAA=="})
    assert resp.status == 400


async def test_creation_with_upload_and_deferred_length(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    headers = {
        **user.headers,
        **TUS,
        **OCTETS,
        "Upload-Defer-Length": "1",
        "Upload-Metadata": meta(filename="deferred.mp4", ttl="3600"),
    }
    resp = await client.post("/api/v1/tus/", data=data[:30_000], headers=headers)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Upload-Offset"] == "30000"
    url = path_of(resp.headers["Location"])
    resp = await head(client, user, url)
    assert resp.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in resp.headers
    resp = await patch(client, user, url, 30_000, data[30_000:])
    assert resp.status == 204
    assert "Frameflow-Video-Id" not in resp.headers  # the length is still unknown
    resp = await patch(client, user, url, len(data), b"", **{"Upload-Length": str(len(data))})
    assert resp.status == 204, await resp.text()
    video_id = resp.headers["Frameflow-Video-Id"]
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    video = await resp.json()
    assert (video["filename"], video["sha256"]) == (
        "deferred.mp4",
        hashlib.sha256(data).hexdigest(),
    )
    assert await used_bytes(client.app, user) == len(data)


async def test_termination_gives_everything_back(client: TestClient[Any, Any], user: User) -> None:
    url = await create(client, user, 50_000)
    assert (await patch(client, user, url, 0, b"\0" * 20_000)).status == 204
    resp = await client.delete(url, headers={**user.headers, **TUS})
    assert resp.status == 204
    assert resp.headers["Tus-Resumable"] == "1.0.0"
    assert (await head(client, user, url)).status == 404
    assert (await patch(client, user, url, 20_000, b"x")).status == 404
    assert await used_bytes(client.app, user) == 0
    assert leftovers(client.app) == []


async def test_expired_upload_is_410_and_swept(client: TestClient[Any, Any], user: User) -> None:
    url = await create(client, user, 50_000)
    assert (await patch(client, user, url, 0, b"\0" * 20_000)).status == 204
    await expire_upload(client.app, url)
    assert (await head(client, user, url)).status == 410
    resp = await patch(client, user, url, 20_000, b"x")
    assert resp.status == 410
    assert (await resp.json())["error"]["code"] == "upload_expired"
    assert await used_bytes(client.app, user) == 50_000  # until the sweep
    report = await sweep(client.app)
    assert report.errors == [] and report.tus_uploads_expired == 1
    assert await used_bytes(client.app, user) == 0
    assert leftovers(client.app) == []
    assert (await head(client, user, url)).status == 410


async def test_quota_and_the_cap_on_unfinished_uploads(
    client: TestClient[Any, Any], user: User
) -> None:
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE users SET quota_bytes = 100000 WHERE id = $1::uuid", user.id)
    headers = {**user.headers, **TUS, "Upload-Length": "100001"}
    resp = await client.post("/api/v1/tus/", headers=headers)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "quota_exceeded"
    await create(client, user, 60_000)
    resp = await client.post("/api/v1/tus/", headers={**headers, "Upload-Length": "60000"})
    assert resp.status == 413  # the first one holds its length
    cap = client.app[appkeys.SETTINGS].tus_max_unfinished_uploads
    for _ in range(cap - 1):
        await create(client, user, 1)
    resp = await client.post("/api/v1/tus/", headers={**headers, "Upload-Length": "1"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "too_many_unfinished_uploads"
    assert len(leftovers(client.app)) == cap  # a temp file or a multipart upload each


async def test_concurrent_patch_is_refused(client: TestClient[Any, Any], user: User) -> None:
    url = await create(client, user, 100_000)
    release = asyncio.Event()

    async def slow_body() -> Any:
        yield b"a" * 1000
        await release.wait()
        yield b"b" * 1000

    first = asyncio.ensure_future(patch(client, user, url, 0, slow_body()))
    await asyncio.sleep(0.3)
    second = await patch(client, user, url, 0, b"c" * 1000)
    assert second.status in (409, 423)
    assert (await second.json())["error"]["code"] == "upload_locked"
    release.set()
    assert (await first).status == 204
    assert (await head(client, user, url)).headers["Upload-Offset"] == "2000"


async def test_a_body_that_breaks_off_keeps_what_arrived(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    # A raw socket: the first 25,000 bytes surely leave, then the connection is cut.
    _reader, writer = await raw_patch(client, user, url, len(data), data[:25_000])
    await asyncio.sleep(0.3)
    writer.transport.abort()
    async with asyncio.timeout(10):
        while True:  # the server notices the cut and records what arrived
            offset = int((await head(client, user, url)).headers["Upload-Offset"])
            if offset:
                break
            await asyncio.sleep(0.05)
    assert offset == 25_000
    assert await finish(client, user, url, offset, data) == hashlib.sha256(data).hexdigest()


async def test_a_file_that_is_not_a_video_is_refused_at_the_end(
    client: TestClient[Any, Any], user: User
) -> None:
    body = b"just some text that is not a video" * 100
    url = await create(client, user, len(body))
    resp = await patch(client, user, url, 0, body)
    assert resp.status == 415
    resp = await head(client, user, url)
    assert resp.status == 410
    assert await used_bytes(client.app, user) == 0
    assert leftovers(client.app) == []


async def test_bad_metadata_options_are_refused_at_creation(
    client: TestClient[Any, Any], user: User
) -> None:
    for pairs, code in (({"ttl": "5"}, "invalid_ttl"), ({"process": "nope"}, "unknown_operation")):
        headers = {**user.headers, **TUS, "Upload-Length": "10", "Upload-Metadata": meta(**pairs)}
        resp = await client.post("/api/v1/tus/", headers=headers)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == code
    resp = await client.post(
        "/api/v1/tus/",
        headers={**user.headers, **TUS, "Upload-Length": "1", "Upload-Metadata": "a b c"},
    )
    assert resp.status == 400
    assert leftovers(client.app) == []


async def test_a_completion_cut_short_is_finished_by_the_next_head(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As after a crash between the last byte and the video's transaction (the object
    already made, on S3 the multipart upload already completed), and with the running
    hash lost as after a restart."""
    from server.errors import ServiceUnavailable
    from server.tus.hashes import RunningHashes

    tus = client.app[appkeys.TUS]
    real = tus._uploads.accept_stored
    calls: list[int] = []

    async def crash_first(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ServiceUnavailable("simulated crash")
        return await real(**kwargs)

    monkeypatch.setattr(tus._uploads, "accept_stored", crash_first)
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    assert (await patch(client, user, url, 0, data[:30_000])).status == 204
    monkeypatch.setattr(tus, "_hashes", RunningHashes())  # "restarted"
    resp = await patch(client, user, url, 30_000, data[30_000:])
    assert resp.status == 503
    resp = await head(client, user, url)
    assert resp.status == 200, await resp.text()
    video_id = resp.headers["Frameflow-Video-Id"]
    assert await stored_sha256(client, user, video_id) == hashlib.sha256(data).hexdigest()
    assert await used_bytes(client.app, user) == len(data)
    # The last PATCH repeated (its answer was lost) names the same video.
    resp = await patch(client, user, url, len(data), b"")
    assert (resp.status, resp.headers["Frameflow-Video-Id"]) == (204, video_id)
    assert len(calls) == 2


async def test_a_chunk_being_written_when_the_body_breaks_off_counts_and_is_hashed(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    """A chunk is written while the next is read; the body breaks off while one is
    still being written. That chunk arrived whole: its write is finished, counted
    and hashed before the PATCH ends, and the SHA-256 of the video is the file's."""
    if backend != "local":
        pytest.skip("the local appender's write is the one with a thread hop to cut into")
    from server.storage.local_append import LocalAppender

    calls: list[int] = []
    original_write = LocalAppender.write

    async def slow_write(self: LocalAppender, chunk: bytes) -> AppendState | None:
        calls.append(len(chunk))
        if len(calls) > 1:
            await asyncio.sleep(1)  # the body breaks off while this chunk is being written
        return await original_write(self, chunk)

    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    monkeypatch.setattr(LocalAppender, "write", slow_write)
    _reader, writer = await raw_patch(client, user, url, len(data), data[:10_000])
    await asyncio.sleep(0.3)
    writer.write(data[10_000:25_000])
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()
    offset = 0
    for _ in range(100):  # the interrupted PATCH records what it kept, then ends
        resp = await head(client, user, url)
        offset = int(resp.headers["Upload-Offset"])
        if offset:
            break
        await asyncio.sleep(0.1)
    monkeypatch.undo()
    assert len(calls) == 2 and offset == 25_000  # both chunks, the one in flight too
    # The running hash was put back covering both: completion need not read the file again.
    hashes = client.app[appkeys.TUS]._hashes._entries
    upload_id = uuid.UUID(url.rstrip("/").rsplit("/", 1)[1])
    assert hashes[upload_id][0] == 25_000
    assert await finish(client, user, url, offset, data) == hashlib.sha256(data).hexdigest()


async def test_a_break_while_the_last_chunk_is_stored_leaves_it_to_complete(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    """Every byte has arrived and the last chunk is still being written when the
    request is cut: the upload is recorded as complete, not as an upload at its full
    length that no client would ever PATCH again, and the next HEAD finishes it."""
    if backend != "local":
        pytest.skip("the local appender's write is the one with a thread hop to cut into")
    from server.storage.local_append import LocalAppender

    original_write = LocalAppender.write
    written: list[int] = []
    last_chunk = asyncio.Event()

    async def slow_write(self: LocalAppender, chunk: bytes) -> AppendState | None:
        written.append(len(chunk))
        if sum(written) == len(data):
            last_chunk.set()
            await asyncio.sleep(1)  # the last chunk: the client goes away meanwhile
        return await original_write(self, chunk)

    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    monkeypatch.setattr(LocalAppender, "write", slow_write)
    _reader, writer = await raw_patch(client, user, url, len(data), data)
    async with asyncio.timeout(10):
        await last_chunk.wait()
    writer.transport.abort()
    video_id = None
    for _ in range(100):  # the cut PATCH records what it kept; a HEAD then completes it
        resp = await head(client, user, url)
        assert resp.status == 200
        async with client.app[appkeys.POOL].acquire() as conn:
            video_id = await conn.fetchval(
                "SELECT video_id FROM tus_uploads WHERE status = 'completed'"
            )
        if video_id is not None:
            break
        await asyncio.sleep(0.1)
    monkeypatch.undo()
    assert video_id is not None
    assert int(resp.headers["Upload-Offset"]) == len(data)
    assert await stored_sha256(client, user, video_id) == hashlib.sha256(data).hexdigest()


async def test_a_database_failure_at_completion_keeps_the_bytes(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    """The video's transaction fails once for the server's reasons (the connection to
    PostgreSQL lost): the assembled object must survive, so the next HEAD finishes the
    upload instead of answering 410 upload_lost."""
    import asyncpg

    from server.quota.ledger import QuotaLedger

    real = QuotaLedger.charge_upload
    calls: list[int] = []

    async def fail_once(conn: Any, user_id: Any, size: int) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise asyncpg.PostgresConnectionError("simulated: the database went away")
        await real(conn, user_id, size)

    monkeypatch.setattr(QuotaLedger, "charge_upload", staticmethod(fail_once))
    data = sample_mp4.read_bytes()
    url = await create(client, user, len(data))
    resp = await patch(client, user, url, 0, data)
    assert resp.status >= 500, await resp.text()
    resp = await head(client, user, url)
    assert resp.status == 200, await resp.text()
    video_id = resp.headers["Frameflow-Video-Id"]
    resp = await client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 200
    assert (await resp.json())["sha256"] == hashlib.sha256(data).hexdigest()
    resp = await client.get(f"/api/v1/videos/{video_id}/content", headers=user.headers)
    assert resp.status == 200 and await resp.read() == data
    assert await used_bytes(client.app, user) == len(data)
    assert len(calls) == 2
