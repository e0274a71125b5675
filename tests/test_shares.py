"""Share links: the owner's API and the public link's access matrix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from imageio_ffmpeg import get_ffmpeg_exe

from config.settings import Settings
from server import appkeys
from tests.conftest import User, register_and_login
from tests.test_admin import make_admin

FINISHED = {"succeeded", "failed", "canceled"}


@pytest.fixture
async def video(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> Any:
    resp = await client.put(
        "/api/v1/uploads/holiday.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def share(client: TestClient[Any, Any], user: User, video: Any, **body: Any) -> Any:
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares", json=body, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


def path_of(made: Any) -> str:
    return f"/s/{made['token']}"


async def info(client: TestClient[Any, Any], made: Any) -> Any:
    resp = await client.get(path_of(made) + "/info")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def run_job(client: TestClient[Any, Any], user: User, video: Any, operation: str) -> None:
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/jobs",
        json={"operation": operation, "params": {}},
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    async with asyncio.timeout(90):
        while True:
            job = await (await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)).json()
            if job["status"] in FINISHED:
                assert job["status"] == "succeeded", job["error"]
                return
            await asyncio.sleep(0.2)


async def test_a_link_plays_with_ranges_and_cors_and_counts_views(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    made = await share(client, user, video)
    assert len(made["token"]) == 32
    assert made["url"].endswith(path_of(made))
    assert (made["exposes"], made["download"], made["password_protected"]) == (
        ["video", "hls", "thumbnail"],
        False,
        False,
    )
    page = await client.get(path_of(made))
    assert page.status == 200
    assert "share.js" in await page.text()
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors *" in page.headers["Content-Security-Policy"]

    shown = await info(client, made)
    assert shown["title"] == "holiday.mp4"
    assert shown["media"]["hls"] is None and shown["media"]["thumbnail"] is None
    assert shown["media"]["download"] is None
    resp = await client.get(shown["media"]["video"], headers={"Range": "bytes=10-19"})
    assert resp.status == 206
    assert await resp.read() == sample_mp4.read_bytes()[10:20]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await client.options(
        shown["media"]["video"],
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 204

    await info(client, made)
    listed = await client.get(f"/api/v1/videos/{video['id']}/shares", headers=user.headers)
    [item] = (await listed.json())["items"]
    assert item["view_count"] == 2  # each opening counts, media requests do not


async def test_revoke_is_effective_at_once(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    made = await share(client, user, video)
    media = (await info(client, made))["media"]["video"]
    assert (await client.get(media, headers={"Range": "bytes=0-9"})).status == 206
    resp = await client.delete(
        f"/api/v1/videos/{video['id']}/shares/{made['id']}", headers=user.headers
    )
    assert resp.status == 204
    # The very next request of every kind: media, page, info.
    assert (await client.get(media, headers={"Range": "bytes=10-19"})).status == 404
    page = await client.get(path_of(made))
    assert page.status == 404 and "revoked" in await page.text()
    assert (await client.get(path_of(made) + "/info")).status == 404
    listed = await client.get(f"/api/v1/videos/{video['id']}/shares", headers=user.headers)
    assert (await listed.json())["items"][0]["revoked_at"] is not None


async def test_a_disabled_owners_links_look_revoked_until_enabled(
    client: TestClient[Any, Any], user: User, video: Any, settings: Settings
) -> None:
    admin = await make_admin(client, settings)
    made = await share(client, user, video)
    revoked = await share(client, user, video)
    revoke = f"/api/v1/videos/{video['id']}/shares/{revoked['id']}"
    assert (await client.delete(revoke, headers=user.headers)).status == 204
    shown = await info(client, made)
    media = shown["media"]["video"]
    assert (await client.get(media, headers={"Range": "bytes=0-9"})).status == 206

    async def answers(link: Any) -> list[tuple[int, str]]:
        """What every public path of `link` says (media under the first link's grant)."""
        found = []
        for method, path in (
            ("GET", path_of(link)),
            ("GET", path_of(link) + "/embed"),
            ("GET", path_of(link) + "/info"),
            ("POST", path_of(link) + "/unlock"),
            ("GET", media.replace(path_of(made), path_of(link))),
            ("HEAD", media.replace(path_of(made), path_of(link))),
        ):
            resp = await client.request(method, path, json={"password": "x"})
            found.append((resp.status, await resp.text()))
        return found

    disable = f"/api/v1/admin/users/{user.id}/disable"
    assert (await client.post(disable, headers=admin.headers)).status == 200
    gone = await answers(made)
    assert gone == await answers(revoked)  # the same 404s, byte for byte
    assert {status for status, _ in gone} == {404}

    enable = f"/api/v1/admin/users/{user.id}/enable"
    assert (await client.post(enable, headers=admin.headers)).status == 200
    assert (await client.get(media, headers={"Range": "bytes=0-9"})).status == 206
    assert (await info(client, made))["title"] == "holiday.mp4"


async def test_expired_unknown_and_deleted_look_the_same(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    expiring = await share(client, user, video, expires_in_seconds=3600)
    assert expiring["expires_at"] is not None
    media = (await info(client, expiring))["media"]["video"]
    async with client.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE shares SET expires_at = now() - interval '1 second'")
    kept = await share(client, user, video)
    answers = []
    for path in (path_of(expiring), "/s/" + "A" * 32, "/s/short"):
        resp = await client.get(path + "/info")
        answers.append((resp.status, await resp.json()))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 404
    assert (await client.get(media)).status == 404
    # A deleted video takes its links with it.
    await client.delete(f"/api/v1/videos/{video['id']}", headers=user.headers)
    resp = await client.get(path_of(kept) + "/info")
    assert (resp.status, await resp.json()) == answers[0]


async def test_password_gates_the_video_and_its_media(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    made = await share(client, user, video, password="open sesame")
    assert made["password_protected"] is True and "password" not in made
    locked = await info(client, made)
    assert locked == {"password_required": True}
    unlock = path_of(made) + "/unlock"
    for bad in ({}, {"password": 12345678}, {"password": "x" * 1025}):
        resp = await client.post(unlock, json=bad)
        assert resp.status == 400
        assert (await resp.json())["error"]["field"] == "password"
    assert (await client.post(unlock, json={"password": "wrong one"})).status == 403
    resp = await client.post(unlock, json={"password": "open sesame"})
    assert resp.status == 200
    media = (await resp.json())["media"]["video"]
    assert (await client.get(media, headers={"Range": "bytes=0-9"})).status == 206
    # Without the grant, with a forged one, or with another link's: nothing.
    open_media = media.replace(media.split("/")[4], "open")
    assert (await client.get(open_media)).status == 404
    forged = media.replace(media.split("/")[4], media.split("/")[4][:-2] + "xx")
    assert (await client.get(forged)).status == 404
    other = await share(client, user, video, password="another one")
    assert (await client.get(media.replace(made["token"], other["token"]))).status == 404
    # Views: only the successful unlock counted.
    listed = await client.get(f"/api/v1/videos/{video['id']}/shares", headers=user.headers)
    counts = {i["id"]: i["view_count"] for i in (await listed.json())["items"]}
    assert counts[made["id"]] == 1


async def test_exposure_rules(
    client: TestClient[Any, Any], user: User, video: Any, sample_mp4: Path
) -> None:
    await run_job(client, user, video, "thumbnail")
    await run_job(client, user, video, "hls")
    everything = await info(client, await share(client, user, video, download=True))
    media = everything["media"]
    assert media["thumbnail"] and media["hls"] and media["download"]
    thumb = await client.get(media["thumbnail"])
    assert thumb.status == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    download = await client.get(media["download"])
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert await download.read() == sample_mp4.read_bytes()
    # ffmpeg follows the master playlist's relative URIs under the same link.
    url = str(client.make_url(media["hls"]))
    proc = await asyncio.create_subprocess_exec(
        get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-protocol_whitelist",
        "http,tcp,file,crypto",
        "-i",
        url,
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]

    only_thumb = await share(client, user, video, exposes=["thumbnail"])
    shown = await info(client, only_thumb)
    assert shown["media"]["video"] is None and shown["media"]["hls"] is None
    # The paths it does not offer are closed, not just unlisted.
    prefix = shown["media"]["thumbnail"].rsplit("/", 1)[0]
    assert (await client.get(prefix + "/video")).status == 404
    assert (await client.get(prefix + "/hls/master.m3u8")).status == 404
    assert (await client.get(shown["media"]["thumbnail"])).status == 200

    no_download = await info(client, await share(client, user, video, exposes=["video"]))
    assert no_download["media"]["download"] is None
    assert (await client.get(no_download["media"]["video"] + "?download=1")).status == 404


async def test_only_the_owner_manages_links(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    made = await share(client, user, video)
    other = await register_and_login(client)
    base = f"/api/v1/videos/{video['id']}/shares"
    assert (await client.post(base, json={}, headers=other.headers)).status == 404
    assert (await client.get(base, headers=other.headers)).status == 404
    resp = await client.delete(f"{base}/{made['id']}", headers=other.headers)
    assert resp.status == 404
    assert (await client.get(path_of(made) + "/info")).status == 200
    assert (await client.post(base, json={})).status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"exposes": []}, "exposes"),
        ({"exposes": ["source"]}, "exposes"),
        ({"download": "yes"}, "download"),
        ({"password": "short"}, "password"),
        ({"password": 12345678}, "password"),
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
        ({"expires_in_seconds": True}, "expires_in_seconds"),
        ({"public": True}, "public"),
        ({"expires_in": 60}, "expires_in"),  # the old published name: not a field
    ],
)
async def test_invalid_bodies_are_400_naming_the_field(
    client: TestClient[Any, Any], user: User, video: Any, body: Any, field: str
) -> None:
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares", json=body, headers=user.headers
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == field


async def test_password_guessing_is_rate_limited(
    make_settings: Any, aiohttp_client: Any, sample_mp4: Path
) -> None:
    from server.app import create_app

    client = await aiohttp_client(create_app(make_settings(rate_limit_login_per_minute=2)))
    user = await register_and_login(client)
    resp = await client.put(
        "/api/v1/uploads/v.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    made = await share(client, user, await resp.json(), password="open sesame")
    unlock = path_of(made) + "/unlock"
    statuses = [
        (await client.post(unlock, json={"password": f"guess {i}xx"})).status for i in range(3)
    ]
    assert statuses == [403, 403, 429]
