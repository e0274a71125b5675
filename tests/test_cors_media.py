"""CORS on signed media links (players on other origins), and only there."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from server import appkeys
from server.jobs.links import make_token, output_path
from tests.conftest import User
from tests.edge_helpers import stored_video, succeeded_job

ORIGIN = {"Origin": "https://player.example"}
EXPOSED = {"content-range", "content-length", "accept-ranges", "etag"}


def listed(header: str | None) -> set[str]:
    return {item.strip().lower() for item in (header or "").split(",") if item.strip()}


@pytest.fixture
async def links(client: TestClient[Any, Any], user: User) -> dict[str, str]:
    video = await stored_video(client.app, user.id, b"v" * 5000)
    # Not a playlist: those are rewritten per fetch and answer 200 to a Range.
    job = await succeeded_job(client.app, user.id, video, "hls/480p/seg_00001.ts", b"t" * 500)
    resp = await client.get(f"/api/v1/videos/{video}/content-url", headers=user.headers)
    signed = urlsplit((await resp.json())["url"])
    token = make_token(client.app[appkeys.SIGNER], job, int(time.time()) + 600)
    return {
        "content": f"{signed.path}?{signed.query}",
        "bad_signature": f"{signed.path}?expires=9999999999&signature={'A' * 43}",
        "token": output_path(job, token, "hls/480p/seg_00001.ts"),
        "bearer_content": f"/api/v1/videos/{video}/content",
        "bearer_output": f"/api/v1/jobs/{job}/outputs/hls/480p/seg_00001.ts",
    }


@pytest.mark.parametrize("link", ["content", "token"])
async def test_signed_links_answer_any_origin(
    client: TestClient[Any, Any], links: dict[str, str], link: str
) -> None:
    for method in ("GET", "HEAD"):
        resp = await client.request(method, links[link], headers={**ORIGIN, "Range": "bytes=0-3"})
        assert resp.status == 206
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in resp.headers
        assert listed(resp.headers.get("Access-Control-Expose-Headers")) >= EXPOSED


@pytest.mark.parametrize("link", ["content", "token"])
async def test_preflight_on_signed_links(
    client: TestClient[Any, Any], links: dict[str, str], link: str
) -> None:
    resp = await client.options(
        links[link],
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range, if-range, if-none-match",
        },
    )
    assert resp.status == 204, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert listed(resp.headers.get("Access-Control-Allow-Methods")) >= {"get", "head"}
    assert listed(resp.headers.get("Access-Control-Allow-Headers")) >= {
        "range",
        "if-range",
        "if-none-match",
    }
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


async def test_a_refused_signed_link_still_tells_the_player_why(
    client: TestClient[Any, Any], links: dict[str, str]
) -> None:
    resp = await client.get(links["bad_signature"], headers=ORIGIN)
    assert resp.status == 404
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("link", ["bearer_content", "bearer_output"])
async def test_bearer_routes_stay_same_origin(
    client: TestClient[Any, Any], user: User, links: dict[str, str], link: str
) -> None:
    resp = await client.get(links[link], headers={**user.headers, **ORIGIN})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.options(
        links[link], headers={**ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert resp.status == 405
    assert "Access-Control-Allow-Origin" not in resp.headers
