"""The share link's page and its embed page: OpenGraph and Twitter-card tags (nothing
about the video behind a password, every value escaped), headers for embedding, the
<iframe> snippet, and one 404 page for revoked, expired, unknown and deleted links."""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp.test_utils import TestClient

from server import appkeys
from tests.conftest import User
from tests.test_shares import path_of, run_job, share, video  # noqa: F401 - fixture

Client = TestClient[Any, Any]


def metas(page: str) -> dict[str, str]:
    found = re.findall(r'<meta (?:property|name)="([^"]+)" content="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in found}


async def test_open_link_has_preview_tags_and_an_embed_page(
    client: Client,
    user: User,
    video: Any,  # noqa: F811 - the fixture
) -> None:
    title = 'Holiday <script>alert("x")</script> & more'
    resp = await client.patch(
        f"/api/v1/videos/{video['id']}",
        json={"title": title, "description": "Sun,  sea\nand sand"},
        headers=user.headers,
    )
    assert resp.status == 200, await resp.text()
    await run_job(client, user, video, "thumbnail")
    made = await share(client, user, video, exposes=["video", "thumbnail"])

    resp = await client.get(path_of(made))
    assert resp.status == 200
    page = await resp.text()
    assert "<script>alert" not in page  # escaped
    tags = metas(page)
    base = str(client.make_url("")).rstrip("/")
    assert tags["og:title"] == title and tags["twitter:title"] == title
    assert tags["og:description"] == "Sun, sea and sand"
    assert tags["og:type"] == "video.other"
    assert tags["og:url"] == f"{base}/s/{made['token']}"
    assert tags["og:image"] == f"{base}/s/{made['token']}/m/open/thumbnail"
    assert tags["og:video"] == f"{base}/s/{made['token']}/m/open/video"
    assert tags["og:video:type"] == "video/mp4"
    assert tags["og:video:width"] == "320" and tags["og:video:height"] == "240"
    assert tags["twitter:card"] == "player"
    assert tags["twitter:player"] == f"{base}/s/{made['token']}/embed"
    # The card's links work, without a login.
    for url in (tags["og:image"], tags["og:video"]):
        assert (await client.get(url.removeprefix(base))).status == 200
    # Viewing the page is not a view; opening the link (info) is.
    assert (await (await client.get(path_of(made) + "/info")).json())["title"] == title

    resp = await client.get(path_of(made) + "/embed")
    assert resp.status == 200
    embed = await resp.text()
    assert '<body class="share-page embed">' in embed
    assert metas(embed)["og:title"] == title
    for answer in (resp, await client.get(path_of(made))):
        policy = answer.headers["Content-Security-Policy"]
        assert "frame-ancestors *" in policy and "script-src 'self'" in policy
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert "X-Frame-Options" not in answer.headers

    # The owner gets the embed URL and the <iframe> to copy.
    assert made["embed_url"] == f"{base}/s/{made['token']}/embed"
    assert made["embed_html"].startswith(f'<iframe src="{made["embed_url"]}"')
    assert "allowfullscreen" in made["embed_html"]


async def test_password_link_says_nothing_about_the_video(
    client: Client,
    user: User,
    video: Any,  # noqa: F811
) -> None:
    await client.patch(
        f"/api/v1/videos/{video['id']}", json={"title": "Secret plans"}, headers=user.headers
    )
    made = await share(client, user, video, password="open sesame")
    page = await (await client.get(path_of(made))).text()
    assert "Secret plans" not in page
    tags = metas(page)
    assert tags["og:title"] == "A protected video" and "og:image" not in tags
    assert "og:video" not in tags and tags["twitter:card"] == "summary"


async def test_revoked_expired_unknown_and_deleted_pages_are_one_404(
    client: Client,
    user: User,
    video: Any,  # noqa: F811
) -> None:
    revoked = await share(client, user, video)
    expired = await share(client, user, video, expires_in_seconds=3600)
    deleted_later = await share(client, user, video)
    resp = await client.delete(
        f"/api/v1/videos/{video['id']}/shares/{revoked['id']}", headers=user.headers
    )
    assert resp.status == 204
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE shares SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
            expired["id"],
        )
    paths = [path_of(revoked), path_of(expired), "/s/" + "A" * 32, "/s/short"]
    answers = []
    for path in paths + [p + "/embed" for p in paths]:
        resp = await client.get(path)
        answers.append((resp.status, await resp.text()))
    await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
    for path in (path_of(deleted_later), path_of(deleted_later) + "/embed"):
        resp = await client.get(path)
        answers.append((resp.status, await resp.text()))
    assert {a for a in answers} == {answers[0]} and answers[0][0] == 404
    assert "og:" not in answers[0][1]
