"""Upload requests that real clients and hostile ones send: clean 4xx, nothing stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from tests.conftest import User, leftovers
from tests.edge_helpers import captured_logs, status_of

MAX_UPLOAD = 4 * 1024 * 1024
IDLE = 1.0


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Aborts must leave nothing on local disk and no multipart upload on S3."""
    return str(request.param)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_upload_bytes=MAX_UPLOAD, body_idle_timeout_seconds=IDLE)


BOUNDARY = "xyzBOUNDARYxyz"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def form(*parts: bytes, close: bool = True) -> bytes:
    body = b"".join(b"--" + BOUNDARY.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + BOUNDARY.encode() + b"--\r\n" if close else b"")


def file_part(data: bytes, *, extra_header: bytes = b"") -> bytes:
    return (
        b'Content-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        + extra_header
        + b"Content-Type: video/mp4\r\n\r\n"
        + data
    )


async def video_rows(client: TestClient[Any, Any]) -> int:
    async with client.app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM videos"))


def malformed_forms(clip: bytes) -> dict[str, bytes]:
    long_header = b"X-Long: " + b"a" * 9000 + b"\r\n"
    return {
        # The file's bytes, then the connection ends: no closing boundary.
        "truncated_in_the_file": form(file_part(clip), close=False)[:-2],
        "truncated_after_the_file": form(file_part(clip), close=False),
        "truncated_in_part_headers": b"--" + BOUNDARY.encode() + b"\r\nContent-Disp",
        "part_header_over_8190_bytes": form(file_part(clip, extra_header=long_header)),
        "long_header_in_a_text_field": form(
            b'Content-Disposition: form-data; name="ttl"\r\n' + long_header + b"\r\n3600",
            file_part(clip),
        ),
        "no_boundary_at_all": clip,
        "garbage_after_the_file": form(file_part(clip), close=False) + b"--" + b"x" * 50,
    }


@pytest.mark.parametrize(
    "name",
    [
        "truncated_in_the_file",
        "truncated_after_the_file",
        "truncated_in_part_headers",
        "part_header_over_8190_bytes",
        "long_header_in_a_text_field",
        "no_boundary_at_all",
        "garbage_after_the_file",
    ],
)
async def test_malformed_multipart_is_400_and_nothing_stored(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, name: str
) -> None:
    body = malformed_forms(sample_mp4.read_bytes())[name]
    with captured_logs() as logs:
        resp = await client.post(
            "/api/v1/uploads", data=body, headers={**user.headers, **MULTIPART}
        )
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["code"] == "invalid_multipart"
    assert logs.tracebacks() == []
    assert logs.errors() == []
    assert leftovers(client.app) == []
    assert await video_rows(client) == 0
    assert len(client.app[appkeys.UPLOADS].tracker) == 0


async def test_chunked_body_with_broken_framing_is_400(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    clip = sample_mp4.read_bytes()[:4096]
    writer.write(
        (
            "PUT /api/v1/uploads/a.mp4 HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {user.access_token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + b"%x\r\n" % len(clip)
        + clip
        + b"\r\nzz-not-a-size\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert status_of(answer) == 400, answer[:300]
    assert leftovers(client.app) == []
    assert await video_rows(client) == 0


# --- curl -C N -T: a partial PUT is refused, not stored as a whole file --------


async def test_put_with_content_range_is_400_and_nothing_stored(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    offset = len(data) // 2
    resp = await client.put(
        "/api/v1/uploads/clip.mp4",
        data=data[offset:],
        headers={
            **user.headers,
            "Content-Range": f"bytes {offset}-{len(data) - 1}/{len(data)}",
        },
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "partial_upload_unsupported"
    assert "tus" in error["message"]
    assert leftovers(client.app) == []
    assert await video_rows(client) == 0


# --- curl -T FILE URL without the trailing slash ---------------------------------


@pytest.mark.parametrize("path", ["/api/v1/uploads", "/api/v1/uploads/"])
async def test_put_without_a_file_name_says_what_to_do(
    client: TestClient[Any, Any], user: User, path: str
) -> None:
    resp = await client.put(path, data=b"\x00" * 1000, headers=user.headers)
    assert resp.status == 405
    assert resp.headers["Allow"] == "POST"
    error = (await resp.json())["error"]
    assert error["code"] == "upload_needs_filename"
    assert "slash" in error["message"] and "/api/v1/uploads/NAME" in error["message"]


# --- Expect: 100-continue is answered only once the upload may proceed ------------


async def expect_continue(
    client: TestClient[Any, Any], head: str, *, wait: float = 3.0
) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Send `head` with `Expect: 100-continue` and no body; what came back within `wait`."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write((head + "\r\nExpect: 100-continue\r\n\r\n").encode())
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
    except TimeoutError:
        answer = b""
    return answer, reader, writer


@pytest.mark.parametrize(
    ("case", "status"),
    [("no_credentials", 401), ("over_the_size_limit", 413), ("over_the_quota", 413)],
)
async def test_a_refused_put_gets_no_100_continue(
    client: TestClient[Any, Any], user: User, case: str, status: int
) -> None:
    auth = "" if case == "no_credentials" else f"Authorization: Bearer {user.access_token}\r\n"
    size = MAX_UPLOAD + 1 if case == "over_the_size_limit" else 1024 * 1024
    if case == "over_the_quota":
        async with client.app[appkeys.POOL].acquire() as conn:
            await conn.execute("UPDATE users SET quota_bytes = 1000")
    answer, _, writer = await expect_continue(
        client,
        f"PUT /api/v1/uploads/big.mp4 HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {size}",
    )
    try:
        assert status_of(answer) == status, answer
        assert b"100 Continue" not in answer
        assert b"Connection: close" in answer  # the announced body never comes
    finally:
        writer.close()
    assert leftovers(client.app) == []


async def test_a_refused_form_gets_no_100_continue(
    client: TestClient[Any, Any], user: User
) -> None:
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE users SET quota_bytes = 100000")
    answer, _, writer = await expect_continue(
        client,
        "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {user.access_token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 3000000",
    )
    writer.close()
    assert status_of(answer) == 413, answer
    assert b"100 Continue" not in answer


async def test_an_accepted_put_gets_100_continue_then_201(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    data = sample_mp4.read_bytes()
    answer, reader, writer = await expect_continue(
        client,
        f"PUT /api/v1/uploads/ok.mp4 HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {user.access_token}\r\nContent-Length: {len(data)}",
    )
    try:
        assert answer == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(data)
        await writer.drain()
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert status_of(final) == 201, final
    finally:
        writer.close()
    assert await video_rows(client) == 1


# --- a body that stops arriving ---------------------------------------------------


@pytest.mark.parametrize("sent", [100, 200_000])  # before the sniff, and mid-stream
async def test_a_stalled_body_is_408_and_nothing_stored(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, sent: int
) -> None:
    data = sample_mp4.read_bytes()[:sent]
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            "PUT /api/v1/uploads/slow.mp4 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {user.access_token}\r\n"
            f"Content-Length: {MAX_UPLOAD}\r\n\r\n"
        ).encode()
        + data
    )
    await writer.drain()
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(65536), IDLE + 10)
    assert status_of(answer) == 408, answer[:300]
    assert b"Connection: close" in answer
    # ...and the server closes the connection rather than wait for the rest.
    rest = await asyncio.wait_for(reader.read(), 15)
    elapsed = time.monotonic() - started
    writer.close()
    assert rest == b""
    assert elapsed < IDLE + 12
    assert len(client.app[appkeys.UPLOADS].tracker) == 0
    assert leftovers(client.app) == []
    assert await video_rows(client) == 0


async def test_a_file_full_of_near_boundaries_is_stored_byte_for_byte(
    make_settings: Callable[..., Settings], aiohttp_client: Any, sample_mp4: Path
) -> None:
    # The file part is read straight from the stream with a small read size, so
    # delimiter-like bytes straddle reads: none may end the file early or be lost.
    from server.app import create_app
    from tests.conftest import register_and_login, truncate_all

    client = await aiohttp_client(create_app(make_settings(upload_chunk_bytes=4096)))
    await truncate_all(client.app)
    user = await register_and_login(client)
    near = b"".join(
        b"\r\n--" + BOUNDARY.encode()[:cut] + b"\r" * (i % 3)
        for i, cut in enumerate(range(len(BOUNDARY)))
    )
    payload = near * 700
    # A top-level `free` box: players and the probe skip it.
    data = sample_mp4.read_bytes() + (8 + len(payload)).to_bytes(4, "big") + b"free" + payload
    resp = await client.post(
        "/api/v1/uploads", data=form(file_part(data)), headers={**user.headers, **MULTIPART}
    )
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    assert video["size"] == len(data)
    resp = await client.get(f"/api/v1/videos/{video['id']}/content", headers=user.headers)
    assert await resp.read() == data
