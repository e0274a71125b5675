"""Videos API and playback: listing, ownership, ranges, signed URLs, delete."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from tests.conftest import User, leftovers, register_and_login


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs against local disk and a real S3-protocol server."""
    return str(request.param)


async def upload(client: TestClient[Any, Any], user: User, path: Path, name: str = "v.mp4") -> Any:
    resp = await client.put(f"/api/v1/uploads/{name}", data=path.read_bytes(), headers=user.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


@pytest.fixture
async def video(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> Any:
    return await upload(client, user, sample_mp4)


def content(video: Any) -> str:
    return f"/api/v1/videos/{video['id']}/content"


async def test_full_get_has_playback_headers(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    resp = await client.get(content(video), headers=user.headers)
    assert resp.status == 200
    assert await resp.read() == sample_mp4.read_bytes()
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.headers["ETag"] == f'"{video["sha256"]}"'
    assert "Last-Modified" in resp.headers
    assert resp.headers["Content-Disposition"].startswith("inline;")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None)],
)
async def test_single_range(
    client: TestClient[Any, Any],
    user: User,
    video: Any,
    sample_mp4: Path,
    header: str,
    start: int,
    end: int | None,
) -> None:
    data = sample_mp4.read_bytes()
    size = len(data)
    expected = data[start : (end + 1 if end is not None else None)]
    resp = await client.get(content(video), headers={**user.headers, "Range": header})
    assert resp.status == 206
    assert await resp.read() == expected
    first = start if start >= 0 else size + start
    assert resp.headers["Content-Range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"
    assert int(resp.headers["Content-Length"]) == len(expected)


async def test_unsatisfiable_range_is_416(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    size = video["size"]
    resp = await client.get(content(video), headers={**user.headers, "Range": f"bytes={size}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert (await resp.json())["error"]["code"] == "range_not_satisfiable"


async def test_multi_range_costs_one_range(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    header = "bytes=0-9,20-29," + ",".join(f"{i}-{i}" for i in range(40, 90))
    resp = await client.get(content(video), headers={**user.headers, "Range": header})
    assert resp.status == 206
    assert await resp.read() == sample_mp4.read_bytes()[:10]
    # A header too large to parse is ignored: the full body, not an error.
    resp = await client.get(
        content(video), headers={**user.headers, "Range": "bytes=" + "0-1," * 500}
    )
    assert resp.status == 200


async def test_if_range_and_if_none_match(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    etag = f'"{video["sha256"]}"'
    ranged = {**user.headers, "Range": "bytes=0-9"}
    resp = await client.get(content(video), headers={**ranged, "If-Range": etag})
    assert resp.status == 206
    resp = await client.get(content(video), headers={**ranged, "If-Range": '"stale"'})
    assert resp.status == 200
    assert len(await resp.read()) == video["size"]
    resp = await client.get(content(video), headers={**user.headers, "If-None-Match": etag})
    assert resp.status == 304


async def test_head_sends_headers_only(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    resp = await client.head(content(video), headers={**user.headers, "Range": "bytes=0-9"})
    assert resp.status == 206
    assert resp.headers["Content-Length"] == "10"
    assert await resp.read() == b""
    resp = await client.head(content(video), headers=user.headers)
    assert resp.status == 200
    assert int(resp.headers["Content-Length"]) == video["size"]


async def test_download_disposition(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4, name='a"b;c%0D%0A.mp4')
    resp = await client.get(content(video) + "?download=1", headers=user.headers)
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition


async def test_signed_content_url_plays_without_headers(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    resp = await client.get(content(video) + "-url", headers=user.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["expires_at"]
    url = body["url"]
    assert url.startswith(str(client.make_url("/")).rstrip("/"))
    resp = await client.session.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == sample_mp4.read_bytes()[10:20]
    # Tampering with the signature or reusing it for another video fails.
    resp = await client.session.get(url[:-3] + "AAA")
    assert resp.status == 404
    other = await upload(client, user, sample_mp4, name="other.mp4")
    resp = await client.session.get(url.replace(video["id"], other["id"]))
    assert resp.status == 404


async def test_expired_signed_url_is_refused(client: TestClient[Any, Any], video: Any) -> None:
    signer = client.app[appkeys.SIGNER]
    path = content(video)
    query, _ = signer.signed_query(path, 60, now=time.time() - 120)
    resp = await client.get(path, params=query)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "invalid_signature"


async def test_another_users_video_is_404_everywhere(
    client: TestClient[Any, Any], video: Any
) -> None:
    mallory = await register_and_login(client)
    vid = video["id"]
    for method, path in [
        ("GET", f"/api/v1/videos/{vid}"),
        ("GET", f"/api/v1/videos/{vid}/content"),
        ("HEAD", f"/api/v1/videos/{vid}/content"),
        ("GET", f"/api/v1/videos/{vid}/content-url"),
        ("DELETE", f"/api/v1/videos/{vid}"),
    ]:
        resp = await client.request(method, path, headers=mallory.headers)
        assert resp.status == 404, (method, path)
    resp = await client.get("/api/v1/videos", headers=mallory.headers)
    assert (await resp.json())["items"] == []


async def test_not_a_uuid_is_404(client: TestClient[Any, Any], user: User) -> None:
    resp = await client.get("/api/v1/videos/not-a-uuid", headers=user.headers)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_delete_removes_objects_and_frees_quota(
    client: TestClient[Any, Any], user: User, video: Any, settings: Settings
) -> None:
    assert leftovers(client.app)
    resp = await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert resp.status == 204
    assert leftovers(client.app) == []
    resp = await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert resp.status == 404
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["used_bytes"] == 0


async def test_list_pagination_newest_first(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    ids = [(await upload(client, user, sample_mp4, name=f"{i}.mp4"))["id"] for i in range(3)]
    resp = await client.get("/api/v1/videos?limit=2", headers=user.headers)
    page = await resp.json()
    assert [v["id"] for v in page["items"]] == ids[::-1][:2]
    assert page["next_cursor"]
    resp = await client.get(
        f"/api/v1/videos?limit=2&cursor={page['next_cursor']}", headers=user.headers
    )
    page2 = await resp.json()
    assert [v["id"] for v in page2["items"]] == [ids[0]]
    assert page2["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=1000", "limit=x", "cursor=%%%"])
async def test_list_bad_query_is_400(client: TestClient[Any, Any], user: User, query: str) -> None:
    resp = await client.get(f"/api/v1/videos?{query}", headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_query"


async def test_links_and_bearer_playback_are_404_once_deleted(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    # Neither the signed link (which carries what serving needs, no query) nor
    # the bearer path (whose video is remembered) may outlive the video.
    url = (await (await client.get(content(video) + "-url", headers=user.headers)).json())["url"]
    assert "claims=" in url
    etag = f'"{video["sha256"]}"'
    for _ in range(2):
        assert (await client.session.get(url, headers={"Range": "bytes=0-9"})).status == 206
        resp = await client.get(content(video), headers={**user.headers, "Range": "bytes=0-9"})
        assert resp.status == 206
    resp = await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert resp.status == 204
    # Plain, conditional, unsatisfiable: none may answer as if the video were there.
    for headers in (
        {},
        {"If-None-Match": etag},
        {"Range": "bytes=0-9"},
        {"Range": "bytes=999999999-"},
    ):
        resp = await client.session.get(url, headers=headers)
        assert resp.status == 404, headers
        assert (await resp.json())["error"]["code"] == "video_not_found"
        resp = await client.get(content(video), headers={**user.headers, **headers})
        assert resp.status == 404, headers
    assert (await client.session.head(url)).status == 404


async def test_link_claims_are_bound_to_the_signature(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    other = await upload(client, user, sample_mp4, name="other.mp4")
    queries = {}
    for v in (video, other):
        resp = await client.get(content(v) + "-url", headers=user.headers)
        queries[v["id"]] = dict(
            part.split("=", 1) for part in (await resp.json())["url"].split("?", 1)[1].split("&")
        )
    mine, theirs = queries[video["id"]], queries[other["id"]]
    for query in (
        {**mine, "claims": theirs["claims"]},  # another video's claims under this signature
        {k: v for k, v in mine.items() if k != "claims"},  # claims dropped
        {**mine, "claims": mine["claims"][:-2]},  # claims cut
    ):
        resp = await client.get(content(video), params=query)
        assert resp.status == 404, query
        assert (await resp.json())["error"]["code"] == "invalid_signature"
    resp = await client.get(content(video), params=mine, headers={"Range": "bytes=0-3"})
    assert resp.status == 206
    assert resp.headers["ETag"] == f'"{video["sha256"]}"'
    assert await resp.read() == sample_mp4.read_bytes()[:4]
