"""FRAMEFLOW_S3_REDIRECT_SECONDS against SeaweedFS, a real S3 server: Frameflow
authorizes, then a 307 to a short-lived presigned URL; the S3 server sends the
bytes, ranges included, to a real HTTP client following the redirect."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from server.app import create_app
from tests.conftest import register_and_login, truncate_all

pytestmark = pytest.mark.seaweedfs


@pytest.fixture
def backend() -> str:
    return "seaweedfs"


async def test_media_requests_redirect_to_short_lived_presigned_urls(
    make_settings: Callable[..., Any], aiohttp_client: Any, sample_mp4: Path
) -> None:
    client = await aiohttp_client(create_app(make_settings(s3_redirect_seconds=30)))
    await truncate_all(client.app)
    user = await register_and_login(client)
    data = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/v.mp4", data=data, headers=user.headers)
    assert resp.status == 201
    video = await resp.json()
    content = f"/api/v1/videos/{video['id']}/content"
    url = (await (await client.get(content + "-url", headers=user.headers)).json())["url"]
    signed = urlsplit(url)
    link = f"{signed.path}?{signed.query}"

    targets = []
    for path, headers in ((content, user.headers), (link, {})):
        resp = await client.get(path, headers=headers, allow_redirects=False)
        assert resp.status == 307
        assert resp.headers["Cache-Control"] == "no-store"
        target = resp.headers["Location"]
        query = parse_qs(urlsplit(target).query)
        if "X-Amz-Expires" in query:  # SigV4
            assert query["X-Amz-Expires"] == ["30"]
        else:  # SigV2: an epoch second
            assert 0 < int(query["Expires"][0]) - time.time() <= 31
        targets.append(target)
    # Unauthorized requests get no redirect.
    assert (await client.get(content, allow_redirects=False)).status == 401

    async with aiohttp.ClientSession() as http:
        # Followed by a real client, the Range goes to the S3 server.
        resp = await http.get(client.make_url(link), headers={"Range": "bytes=10-19"})
        assert resp.status == 206
        assert await resp.read() == data[10:20]
        assert resp.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert resp.headers["Content-Type"] == "video/mp4"
        assert resp.headers["Content-Disposition"].startswith("inline;")
        etag = resp.headers["ETag"]
        resp = await http.get(targets[0], headers={"If-None-Match": etag})
        assert resp.status == 304

        resp = await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
        assert resp.status == 204
        # Deletion: Frameflow refuses, and URLs handed out before no longer work.
        for path, headers in ((content, user.headers), (link, {})):
            resp = await client.get(path, headers=headers, allow_redirects=False)
            assert resp.status == 404
        for target in targets:
            assert (await http.get(target, headers={"Range": "bytes=0-9"})).status == 404
