"""Hostile path and query parameters: never a 500, whatever reaches SQL."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server import appkeys
from server.jobs.links import make_token
from tests.conftest import User
from tests.edge_helpers import captured_logs, stored_video, succeeded_job


def cursor_of(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


ZERO = b'"00000000-0000-0000-0000-000000000000"'
HOSTILE_CURSORS = {
    "id_not_a_string": cursor_of(b'["2024-01-01T00:00:00+00:00", 5]'),
    "deep_nesting": cursor_of(b"[" * 3000),
    "before_year_1_in_utc": cursor_of(b'["0001-01-01T00:00:00+23:59", ' + ZERO + b"]"),
    "after_year_9999_in_utc": cursor_of(b'["9999-12-31T23:59:59-23:59", ' + ZERO + b"]"),
    "three_items": cursor_of(b'["2024-01-01T00:00:00+00:00", ' + ZERO + b", 1]"),
    "a_string": cursor_of(b'"\\u0000"'),
    "not_base64": "%00",
    "long": "A" * 6000,
}


@pytest.fixture
async def output(client: TestClient[Any, Any], user: User) -> tuple[str, str]:
    video = await stored_video(client.app, user.id, b"v" * 100)
    job = await succeeded_job(client.app, user.id, video, "thumbnail.jpg", b"jpg" * 10)
    token = make_token(client.app[appkeys.SIGNER], job, int(time.time()) + 600)
    return str(job), token


async def test_nul_in_an_output_name_is_404(
    client: TestClient[Any, Any], user: User, output: tuple[str, str]
) -> None:
    job, token = output
    ok = await client.get(f"/api/v1/jobs/{job}/outputs/thumbnail.jpg", headers=user.headers)
    assert ok.status == 200
    with captured_logs() as logs:
        for path in (
            f"/api/v1/jobs/{job}/outputs/thumbnail.jpg%00.png",
            f"/api/v1/jobs/{job}/t/{token}/thumbnail.jpg%00.png",
            f"/api/v1/jobs/{job}/outputs/%00",
            f"/api/v1/videos/{job}%00",
        ):
            resp = await client.get(path, headers=user.headers)
            assert resp.status == 404, (path, await resp.text())
    assert logs.tracebacks() == []


@pytest.mark.parametrize(
    "query",
    ["status=%00", "video_id=%00", "limit=1%00", "cursor=%00", "x%00y=1", "download=%00"],
)
async def test_nul_in_a_query_is_400(
    client: TestClient[Any, Any], user: User, output: tuple[str, str], query: str
) -> None:
    job, _ = output
    for path in ("/api/v1/jobs", "/api/v1/videos", f"/api/v1/jobs/{job}/outputs/thumbnail.jpg"):
        resp = await client.get(f"{path}?{query}", headers=user.headers)
        assert resp.status == 400, (path, query, await resp.text())
        assert (await resp.json())["error"]["code"] == "invalid_query"


@pytest.mark.parametrize("name", sorted(HOSTILE_CURSORS))
async def test_hostile_cursors_are_400(client: TestClient[Any, Any], user: User, name: str) -> None:
    cursor = HOSTILE_CURSORS[name]
    for path in ("/api/v1/jobs", "/api/v1/videos"):
        resp = await client.get(path, params={"cursor": cursor}, headers=user.headers)
        assert resp.status == 400, (path, await resp.text())
        assert (await resp.json())["error"]["field"] == "cursor"
