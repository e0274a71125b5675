"""FRAMEFLOW_ACCEL_REDIRECT_PREFIX through real nginx (the shipped site config):
Frameflow authorizes, nginx sends the file. Ranges, 416, conditional requests
and deletion hold for the bearer path and the signed link alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from tests.cluster import Nginx, free_port, nginx_binary
from tests.conftest import User, register_and_login, truncate_all

PREFIX = "/_frameflow_media/"

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason="nginx is not installed (scripts/test installs Debian's nginx)"
)


@pytest.fixture
async def behind_nginx(
    make_settings: Callable[..., Any], aiohttp_client: Any, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], str]]:
    settings = make_settings(accel_redirect_prefix=PREFIX)
    client = await aiohttp_client(create_app(settings))
    await truncate_all(client.app)
    nginx = Nginx(
        tmp_path / "nginx",
        free_port(),
        [client.server.port],
        media_root=Path(settings.data_dir) / "objects",
    )
    nginx.start()
    try:
        yield client, nginx.url
    finally:
        nginx.stop()


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

    # Frameflow itself answers with the redirect, and no bytes.
    resp = await client.get(content, headers=user.headers)
    assert resp.status == 200
    assert resp.headers["X-Accel-Redirect"].startswith(PREFIX)
    assert await resp.read() == b""

    signed = urlsplit(
        (await (await client.get(content + "-url", headers=user.headers)).json())["url"]
    )
    link = f"{signed.path}?{signed.query}"
    async with aiohttp.ClientSession(base) as http:
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
        for path, headers in ((content, user.headers), (link, {})):
            resp = await http.get(path, headers={**headers, "Range": "bytes=0-9"})
            assert resp.status == 404, path
