"""A share link's player renews its media links (POST /s/{token}/renew): the access
matrix (open, password required / wrong / expired / right, expired, revoked, unknown,
deleted video), no view counted, and HLS under a renewed grant past the first one's
lifetime: a playlist fetched under a grant names its variants and segments under it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from tests.test_shares import info, path_of, run_job, share, video  # noqa: F401 - fixture

Client = TestClient[Any, Any]
TTL = 5  # seconds the server's links live here (a grant: the video's 2 s more)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(signed_url_ttl_seconds=TTL, job_poll_seconds=0.2)


async def renew(client: Client, made: Any, **body: Any) -> tuple[int, Any]:
    resp = await client.post(path_of(made) + "/renew", json=body)
    return resp.status, await resp.json()


def grant_of(url: str) -> str:
    return url.split("/")[4]  # /s/{token}/m/{grant}/...


def minted(client: Client, made: Any, expires_at: int) -> str:
    """A grant of the link as the server mints one when its password is given."""
    path = "/s/{}/grant".format(made["token"])
    return f"{expires_at}.{client.app[appkeys.SIGNER].sign(path, expires_at)}"


async def views(client: Client, user: Any, video: Any) -> dict[str, int]:  # noqa: F811
    listed = await client.get(f"/api/v1/videos/{video['id']}/shares", headers=user.headers)
    return {i["id"]: i["view_count"] for i in (await listed.json())["items"]}


async def test_open_link_renews_without_a_grant_and_counts_no_view(
    client: Client,
    user: Any,
    video: Any,  # noqa: F811 - the fixture
) -> None:
    made = await share(client, user, video)
    shown = await info(client, made)
    assert shown["grant"] == "open" and shown["media_expires_in"] is None
    status, renewed = await renew(client, made)
    assert status == 200
    assert renewed["media"] == shown["media"] and renewed["media_expires_in"] is None
    assert (await renew(client, made, grant="open"))[0] == 200
    assert (await views(client, user, video))[made["id"]] == 1


async def test_password_link_renews_only_with_an_unexpired_grant_of_its_own(
    client: Client,
    user: Any,
    video: Any,  # noqa: F811 - the fixture
) -> None:
    made = await share(client, user, video, password="open sesame")
    other = await share(client, user, video, password="another one")
    resp = await client.post(path_of(made) + "/unlock", json={"password": "open sesame"})
    assert resp.status == 200
    unlocked = await resp.json()
    assert unlocked["grant"] == grant_of(unlocked["media"]["video"])
    assert 0 < unlocked["media_expires_in"] <= TTL + 2

    # Right: fresh links that play; a grant, not the password, is what renews.
    status, renewed = await renew(client, made, grant=unlocked["grant"])
    assert status == 200, renewed
    assert renewed["password_required"] is False and renewed["title"] == "holiday.mp4"
    assert renewed["media_expires_at"] >= unlocked["media_expires_at"]
    resp = await client.get(renewed["media"]["video"], headers={"Range": "bytes=0-9"})
    assert resp.status == 206

    # Required / wrong / expired / another link's / forged: the password is asked again.
    expired = minted(client, made, int(time.time()) - 1)
    forged = unlocked["grant"][:-2] + ("AA" if not unlocked["grant"].endswith("AA") else "BB")
    for body in (
        {},
        {"grant": None},
        {"grant": "open"},
        {"grant": "not a grant"},
        {"grant": expired},
        {"grant": forged},
        {"grant": minted(client, other, int(time.time()) + 60)},
    ):
        assert await renew(client, made, **body) == (200, {"password_required": True}), body
    assert (await client.get(f"{path_of(made)}/m/{expired}/video")).status == 404
    # A body that is not one: 400 naming the field.
    resp = await client.post(path_of(made) + "/renew", json={"grant": 5})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "grant"

    # Only the unlock was a view; renewals are not.
    assert (await views(client, user, video))[made["id"]] == 1


async def test_dead_links_renew_to_the_one_404(
    client: Client,
    user: Any,
    video: Any,  # noqa: F811 - the fixture
) -> None:
    revoked = await share(client, user, video, password="open sesame")
    resp = await client.post(path_of(revoked) + "/unlock", json={"password": "open sesame"})
    grant = (await resp.json())["grant"]
    assert (await renew(client, revoked, grant=grant))[0] == 200
    resp = await client.delete(
        f"/api/v1/videos/{video['id']}/shares/{revoked['id']}", headers=user.headers
    )
    assert resp.status == 204
    expiring = await share(client, user, video, expires_in_seconds=3600)
    kept = await share(client, user, video)
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute(
            "UPDATE shares SET expires_at = now() - interval '1 second' WHERE id = $1",
            expiring["id"],
        )
    unknown = {"token": "A" * 32}
    malformed = {"token": "short"}
    answers = [
        await renew(client, revoked, grant=grant),  # revoked, with a valid grant
        await renew(client, expiring),
        await renew(client, unknown),
        await renew(client, malformed, grant="open"),
    ]
    assert answers[0][0] == 404
    assert answers[0][1]["error"]["code"] == "share_not_found"
    assert all(answer == answers[0] for answer in answers)
    # The same 404 as the link's /info.
    resp = await client.get(path_of(revoked) + "/info")
    assert (resp.status, await resp.json()) == answers[0]
    # A deleted video takes its links with it.
    assert (await renew(client, kept))[0] == 200
    await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
    assert await renew(client, kept) == answers[0]


async def test_hls_plays_under_a_renewed_grant_after_the_first_expired(
    client: Client,
    user: Any,
    video: Any,  # noqa: F811 - the fixture
) -> None:
    await run_job(client, user, video, "hls")
    made = await share(client, user, video, password="open sesame", exposes=["hls"])
    # The player's first grant, about to expire (as unlock makes them, shorter-lived).
    first_expires = int(time.time()) + 2
    first = minted(client, made, first_expires)
    status, renewed = await renew(client, made, grant=first)
    assert status == 200, renewed
    master = renewed["media"]["hls"]
    assert grant_of(master) == renewed["grant"] != first

    async def get(url: str) -> tuple[int, str]:
        resp = await client.get(url)
        return resp.status, await resp.text()

    await asyncio.sleep(first_expires - time.time() + 0.5)  # past the first grant's life
    assert (await get(master.replace(renewed["grant"], first)))[0] == 404
    assert await renew(client, made, grant=first) == (200, {"password_required": True})

    # Every playlist and segment under the renewed grant still loads; the same paths
    # under the first grant do not.
    status, text = await get(master)
    assert status == 200
    variant = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert not variant.startswith("/")  # relative: it keeps the grant it was fetched under
    variant_url = master.rsplit("/", 1)[0] + "/" + variant
    status, text = await get(variant_url)
    assert status == 200
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert segments
    segment_url = variant_url.rsplit("/", 1)[0] + "/" + segments[-1]
    resp = await client.get(segment_url)
    assert resp.status == 200 and len(await resp.read()) > 0
    assert (await client.get(segment_url.replace(renewed["grant"], first))).status == 404
    assert (await client.get(variant_url.replace(renewed["grant"], first))).status == 404
