"""FRAMEFLOW_ACCEL_REDIRECT_PREFIX through real nginx (the shipped site config):
Frameflow authorizes, nginx sends the file. Ranges, 416, conditional requests
and deletion hold for the bearer path and the signed link alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server import appkeys
from server.app import create_app
from tests.cluster import Nginx, free_port, nginx_binary
from tests.conftest import User, register_and_login, truncate_all

PREFIX = "/_frameflow_media/"

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (scripts/test installs Debian's nginx)"
)


Started = tuple[TestClient[Any, Any], str]


@pytest.fixture
async def start_behind_nginx(
    make_settings: Callable[..., Any], aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Frameflow (with these settings) behind nginx running the shipped config."""
    started: list[Nginx] = []

    async def start(**overrides: Any) -> Started:
        settings = make_settings(accel_redirect_prefix=PREFIX, **overrides)
        client = await aiohttp_client(create_app(settings))
        await truncate_all(client.app)
        nginx = Nginx(
            tmp_path / "nginx",
            free_port(),
            [client.server.port],
            media_root=Path(settings.data_dir) / "objects",
        )
        nginx.start()
        started.append(nginx)
        return client, nginx.url

    try:
        yield start
    finally:
        for nginx in started:
            nginx.stop()


@pytest.fixture
async def behind_nginx(start_behind_nginx: Callable[..., Awaitable[Started]]) -> Started:
    # Long enough that every check below meets an authorization nginx reuses.
    return await start_behind_nginx(accel_cache_seconds=5, account_check_cache_seconds=5)


def content_requests(client: TestClient[Any, Any]) -> float:
    """How many requests of the content route reached Frameflow."""
    text = client.app[appkeys.METRICS].render().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("frameflow_http_requests_total{")
        and 'route="/api/v1/videos/{id}/content"' in line
    )


async def upload(client: TestClient[Any, Any], clip: Path) -> tuple[User, str, str]:
    """A new account with one video: its content path and a signed link of it."""
    user = await register_and_login(client)
    data = clip.read_bytes()
    resp = await client.put("/api/v1/uploads/v.mp4", data=data, headers=user.headers)
    assert resp.status == 201
    content = f"/api/v1/videos/{(await resp.json())['id']}/content"
    signed = urlsplit(
        (await (await client.get(content + "-url", headers=user.headers)).json())["url"]
    )
    return user, content, f"{signed.path}?{signed.query}"


async def first_bytes(
    http: aiohttp.ClientSession, path: str, headers: dict[str, str] | None = None
) -> int:
    """The status of a request for the first ten bytes (its body read)."""
    async with http.get(path, headers={**(headers or {}), "Range": "bytes=0-9"}) as resp:
        await resp.read()
        return resp.status


async def refusal(http: aiohttp.ClientSession, path: str, headers: dict[str, str]) -> str:
    """The error code of a refused request for the first ten bytes."""
    async with http.get(path, headers={**headers, "Range": "bytes=0-9"}) as resp:
        assert resp.status in (401, 404), resp.status
        return str((await resp.json())["error"]["code"])


async def test_nginx_sends_the_file_frameflow_authorized(
    behind_nginx: tuple[TestClient[Any, Any], str], sample_mp4: Path
) -> None:
    client, base = behind_nginx
    user: User = await register_and_login(client)
    data = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/v.mp4", data=data, headers=user.headers)
    assert resp.status == 201
    video = await resp.json()
    content = f"/api/v1/videos/{video['id']}/content"

    # Frameflow itself answers with the redirect, and no bytes; nginx may reuse it.
    resp = await client.get(content, headers=user.headers)
    assert resp.status == 200
    assert resp.headers["X-Accel-Redirect"].startswith(PREFIX)
    assert int(resp.headers["X-Accel-Expires"]) > 0
    assert await resp.read() == b""

    signed = urlsplit(
        (await (await client.get(content + "-url", headers=user.headers)).json())["url"]
    )
    link = f"{signed.path}?{signed.query}"
    async with aiohttp.ClientSession(base) as http:
        before = content_requests(client)
        for path, headers in ((content, user.headers), (link, {})):
            resp = await http.get(path, headers={**headers, "Range": "bytes=10-19"})
            assert resp.status == 206, path
            assert await resp.read() == data[10:20]
            assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
            assert resp.headers["Content-Type"] == "video/mp4"
            assert resp.headers["Content-Disposition"].startswith("inline;")
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "X-Accel-Redirect" not in resp.headers
            etag = resp.headers["ETag"]
            assert (await http.get(path, headers={**headers, "If-None-Match": etag})).status == 304
            resp = await http.get(
                path, headers={**headers, "If-Range": etag, "Range": f"bytes={len(data) - 4}-"}
            )
            assert resp.status == 206 and await resp.read() == data[-4:]
            resp = await http.get(
                path, headers={**headers, "If-Range": '"stale"', "Range": "bytes=0-3"}
            )
            assert resp.status == 200 and await resp.read() == data
            resp = await http.get(path, headers={**headers, "Range": f"bytes={len(data)}-"})
            assert resp.status == 416
            resp = await http.head(path, headers=headers)
            assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))
            assert "X-Accel-Expires" not in resp.headers
        # One authorization per URI and credentials served all of the above: the
        # other requests never reached Frameflow.
        assert content_requests(client) - before == 2
        # A preflight is Frameflow's to answer, never an authorization's.
        resp = await http.options(
            link, headers={"Origin": "https://p.example", "Access-Control-Request-Method": "GET"}
        )
        assert resp.status in (200, 204) and resp.headers["Access-Control-Allow-Origin"] == "*"
        # CORS for the signed link only.
        resp = await http.get(link, headers={"Origin": "https://player.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        resp = await http.get(content, headers={**user.headers, "Origin": "https://x.example"})
        assert "Access-Control-Allow-Origin" not in resp.headers

        # Authorization is still Frameflow's: no token, a bad signature, the
        # internal location asked for directly.
        assert (await http.get(content)).status == 401
        bad = f"{signed.path}?expires=9999999999&signature={'A' * 43}"
        assert (await http.get(bad)).status == 404
        redirect = (await client.get(content, headers=user.headers)).headers["X-Accel-Redirect"]
        assert (await http.get(redirect)).status == 404

        resp = await http.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
        assert resp.status == 204
        # At once, though nginx still holds both authorizations: the file is gone.
        for path, headers in ((content, user.headers), (link, {})):
            assert await refusal(http, path, headers) == "video_not_found", path


async def test_a_reused_authorization_never_outlives_its_link_or_signature(
    behind_nginx: Started, sample_mp4: Path
) -> None:
    client, base = behind_nginx
    _, content, link = await upload(client, sample_mp4)
    signer = client.app[appkeys.SIGNER]
    query, expires_at = signer.signed_query(content, 2)
    short = f"{content}?expires={query['expires']}&signature={query['signature']}"
    async with aiohttp.ClientSession(base) as http:
        for path in (link, short):
            assert await first_bytes(http, path) == 206
        # Another signature of the same path and expiry: not the cached one.
        tampered = link.replace("signature=", "signature=A", 1)
        assert await refusal(http, tampered, {}) == "invalid_signature"
        # Past its expiry the short link is refused, whatever nginx kept.
        await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.2)
        assert await refusal(http, short, {}) == "invalid_signature"
        assert await first_bytes(http, link) == 206


async def test_a_disabled_account_is_refused_within_the_account_check(
    start_behind_nginx: Callable[..., Awaitable[Started]], sample_mp4: Path
) -> None:
    check_seconds = 3
    client, base = await start_behind_nginx(
        accel_cache_seconds=check_seconds, account_check_cache_seconds=check_seconds
    )
    user, content, _ = await upload(client, sample_mp4)
    async with aiohttp.ClientSession(base) as http:
        assert await first_bytes(http, content, user.headers) == 206
        # Behind the server's back (another instance, an operator's SQL): nothing
        # forgets the account, so only the bounds end the reuse.
        async with client.app[appkeys.POOL].acquire() as conn:
            await conn.execute(
                "UPDATE users SET disabled_at = now() WHERE id = $1", uuid.UUID(user.id)
            )
        await asyncio.sleep(check_seconds + 0.2)
        assert await refusal(http, content, user.headers) == "account_disabled"


async def test_api_keys_are_never_reused_so_revoking_one_applies_at_once(
    behind_nginx: Started, sample_mp4: Path
) -> None:
    client, base = behind_nginx
    user, content, _ = await upload(client, sample_mp4)
    resp = await client.post(
        "/api/v1/api-keys", json={"name": "player", "scopes": ["videos:read"]}, headers=user.headers
    )
    assert resp.status == 201
    key = await resp.json()
    async with aiohttp.ClientSession(base) as http:
        for headers in ({"X-API-Key": key["secret"]}, {"Authorization": f"Bearer {key['secret']}"}):
            before = content_requests(client)
            for _ in range(3):
                assert await first_bytes(http, content, headers) == 206
            assert content_requests(client) - before == 3  # each one asked Frameflow
        resp = await http.delete(f"/api/v1/api-keys/{key['id']}", headers=user.headers)
        assert resp.status == 204
        assert await refusal(http, content, {"X-API-Key": key["secret"]}) == "invalid_token"
