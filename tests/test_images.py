"""The image library end to end: limits on every upload path, de-duplication,
EXIF read and stripped, thumbnails (orientation, fit), listing and signed links.

Real images made here with Pillow; real PostgreSQL, real ffmpeg (the probe),
local disk and an S3-protocol server (moto).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from yarl import URL

from config.settings import Settings
from server import appkeys
from server.app import create_app
from tests import clips
from tests.conftest import User, leftovers, register_and_login, truncate_all

RED, BLUE = (220, 20, 20), (20, 20, 220)
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def photo(
    width: int,
    height: int,
    *,
    fmt: str = "JPEG",
    exif: Image.Exif | None = None,
    noise: bool = False,
    seed: int = 0,
) -> bytes:
    """An image whose left half is red and right half blue (or random noise)."""
    if noise:
        rng = random.Random(seed)
        img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    else:
        img = Image.new("RGB", (width, height), BLUE)
        img.paste(RED, (0, 0, width // 2, height))
        img.putpixel((seed % width, 0), (seed % 256, 0, 0))  # distinct bytes per seed
    out = io.BytesIO()
    extra: dict[str, Any] = {"exif": exif.tobytes()} if exif is not None else {}
    img.save(out, fmt, **extra)
    return out.getvalue()


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 5D Mark IV"
    exif[0x0112] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[0x9003] = "2024:05:01 12:30:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[1], gps[3] = "N", "W"
    gps[2] = (IFDRational(48), IFDRational(51), IFDRational(2964, 100))
    gps[4] = (IFDRational(2), IFDRational(17), IFDRational(4016, 100))
    gps[5], gps[6] = 0, IFDRational(35)
    return exif


def has_gps_or_camera(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        return bool(exif.get_ifd(ExifTags.IFD.GPSInfo)) or 0x010F in exif or 0x0110 in exif


async def used_bytes(client: TestClient[Any, Any], user: User) -> int:
    resp = await client.get("/api/v1/me", headers=user.headers)
    return int((await resp.json())["used_bytes"])


async def video_rows(client: TestClient[Any, Any]) -> int:
    async with client.app[appkeys.POOL].acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM videos"))


# --- the upload paths -------------------------------------------------------------


async def via_put(client: TestClient[Any, Any], user: User, data: bytes, name: str) -> Any:
    body = io.BytesIO(data)  # aiohttp warns about large raw bytes
    return await client.put(f"/api/v1/uploads/{name}", data=body, headers=user.headers)


async def via_chunked_put(client: TestClient[Any, Any], user: User, data: bytes, name: str) -> Any:
    async def body() -> Any:
        for i in range(0, len(data), 64 * 1024):
            yield data[i : i + 64 * 1024]

    return await client.put(f"/api/v1/uploads/{name}", data=body(), headers=user.headers)


async def via_multipart(client: TestClient[Any, Any], user: User, data: bytes, name: str) -> Any:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name)
    return await client.post("/api/v1/uploads", data=form, headers=user.headers)


async def via_tus(client: TestClient[Any, Any], user: User, data: bytes, name: str) -> Any:
    """Create and send in one PATCH; the answer of the last PATCH."""
    filename = base64.b64encode(name.encode()).decode()
    resp = await client.post(
        "/api/v1/tus/",
        headers={
            **user.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": f"filename {filename}",
        },
    )
    assert resp.status == 201, await resp.text()
    url = URL(resp.headers["Location"]).path
    headers = {
        **user.headers,
        **TUS,
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0",
    }
    return await client.patch(url, data=data, headers=headers)


async def via_direct(client: TestClient[Any, Any], user: User, data: bytes, name: str) -> Any:
    resp = await client.post("/api/v1/direct-uploads", json={}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    url = URL((await resp.json())["url"])
    return await client.put(url.path, params={"filename": name}, data=data)


PATHS: dict[str, Callable[..., Any]] = {
    "put": via_put,
    "chunked": via_chunked_put,
    "multipart": via_multipart,
    "tus": via_tus,
    "direct": via_direct,
}


async def error_code(resp: Any) -> str:
    body = await resp.json()
    return str(body["error"]["code"])


async def assert_nothing_kept(client: TestClient[Any, Any], user: User) -> None:
    assert await video_rows(client) == 0
    assert await used_bytes(client, user) == 0
    assert leftovers(client.app) == []


@pytest.fixture
async def images_client(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[..., Any],
    request: pytest.FixtureRequest,
) -> TestClient[Any, Any]:
    app = create_app(make_settings(**getattr(request, "param", {})))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    await truncate_all(app)
    return client


# --- limits ----------------------------------------------------------------------


@pytest.mark.parametrize("images_client", [{"image_max_bytes": 100_000}], indirect=True)
@pytest.mark.parametrize("path", list(PATHS))
async def test_an_image_over_the_size_limit_is_422_on_every_path(
    images_client: TestClient[Any, Any], path: str
) -> None:
    client = images_client
    user = await register_and_login(client)
    data = photo(400, 400, fmt="PNG", noise=True)  # ~480 KB of noise
    assert len(data) > 100_000
    resp = await PATHS[path](client, user, data, "big.png")
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == "image_too_large"
    assert "100000" in body["error"]["message"]
    await assert_nothing_kept(client, user)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(
    ("size", "code", "limit"),
    [((200, 300), "image_too_small", "256"), ((5000, 300), "image_dimensions", "4096")],
    ids=["too-small", "too-large"],
)
async def test_dimensions_out_of_range_are_422_naming_the_limit(
    client: TestClient[Any, Any],
    user: User,
    path: str,
    size: tuple[int, int],
    code: str,
    limit: str,
) -> None:
    data = clips.black_png(*size)
    resp = await PATHS[path](client, user, data, "odd.png")
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code
    assert limit in body["error"]["message"]
    await assert_nothing_kept(client, user)


async def test_a_decompression_bomb_is_refused_from_its_header(
    client: TestClient[Any, Any], user: User, settings: Settings
) -> None:
    bomb = clips.black_png(20000, 20000)  # ~1 MB of file, 1.2 GB of pixels
    assert len(bomb) < settings.image_max_bytes
    resp = await via_put(client, user, bomb, "bomb.png")
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "image_too_many_pixels"
    assert str(settings.image_max_pixels) in body["error"]["message"]
    await assert_nothing_kept(client, user)


async def test_an_image_at_the_limits_is_accepted(client: TestClient[Any, Any], user: User) -> None:
    resp = await via_put(client, user, clips.black_png(4096, 256), "edge.png")
    assert resp.status == 201, await resp.text()


# --- de-duplication ---------------------------------------------------------------


@pytest.mark.parametrize("second", ["put", "multipart", "tus", "direct"])
async def test_the_same_bytes_again_return_the_existing_image(
    client: TestClient[Any, Any], user: User, second: str
) -> None:
    data = photo(640, 480, exif=camera_exif())
    resp = await via_put(client, user, data, "first.jpg")
    assert resp.status == 201, await resp.text()
    first = await resp.json()
    used, kept = await used_bytes(client, user), sorted(leftovers(client.app))
    assert used == first["size"]

    resp = await PATHS[second](client, user, data, "again.jpg")
    if second == "tus":
        assert resp.status == 204, await resp.text()
        assert resp.headers["Frameflow-Video-Id"] == first["id"]
    else:
        assert resp.status == 200, await resp.text()
        again = await resp.json()
        assert again["id"] == first["id"]
        assert again["filename"] == "first.jpg"
        assert again["jobs"] == []
    assert await video_rows(client) == 1
    assert await used_bytes(client, user) == used
    assert sorted(leftovers(client.app)) == kept


async def test_identical_uploads_at_once_make_one_image(
    client: TestClient[Any, Any], user: User
) -> None:
    data = photo(512, 512, fmt="PNG", seed=7)
    answers = await asyncio.gather(*(via_put(client, user, data, f"{i}.png") for i in range(4)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200, 200, 200, 201], [await r.text() for r in answers]
    ids = {(await r.json())["id"] for r in answers}
    assert len(ids) == 1
    assert await video_rows(client) == 1
    assert await used_bytes(client, user) == len(data)
    assert len(leftovers(client.app)) == 2  # the image and its thumbnail


async def test_uploads_racing_to_insert_the_same_image_make_one(
    client: TestClient[Any, Any], user: User
) -> None:
    """Deterministic race: all three pass the early check and reach the insert's
    transaction while a lock holds the table; the first wins, the unique index
    sends the others to it."""
    data = photo(400, 400, fmt="PNG", seed=11)
    pool = client.app[appkeys.POOL]
    async with pool.acquire() as locker, pool.acquire() as watcher:
        lock = locker.transaction()
        await lock.start()
        # Reads go on (the early check); inserts wait.
        await locker.execute("LOCK TABLE videos IN EXCLUSIVE MODE")
        uploads = [asyncio.create_task(via_put(client, user, data, f"{i}.png")) for i in range(3)]
        async with asyncio.timeout(120):  # a hang guard only
            # One waits on the table, the others on the user's row (the quota) it holds.
            waiting = "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
            while await watcher.fetchval(waiting) < 3:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.05)
        await lock.rollback()
    answers = await asyncio.gather(*uploads)
    assert sorted(r.status for r in answers) == [200, 200, 201]
    assert len({(await r.json())["id"] for r in answers}) == 1
    assert await video_rows(client) == 1
    assert await used_bytes(client, user) == len(data)
    assert len(leftovers(client.app)) == 2


async def test_uploading_an_expired_image_again_keeps_it(
    client: TestClient[Any, Any], user: User
) -> None:
    data = photo(300, 300, fmt="PNG", seed=5)
    resp = await via_put(client, user, data, "a.png")
    image_id = (await resp.json())["id"]
    async with client.app[appkeys.POOL].acquire() as conn:
        # Expired, and not yet swept.
        await conn.execute(
            "UPDATE videos SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid",
            image_id,
        )
    resp = await via_put(client, user, data, "b.png")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["id"] == image_id
    async with client.app[appkeys.POOL].acquire() as conn:
        left = await conn.fetchval(
            "SELECT expires_at - now() FROM videos WHERE id = $1::uuid", image_id
        )
    ttl = client.app[appkeys.SETTINGS].video_ttl_seconds
    assert left.total_seconds() > ttl - 60


async def test_another_user_uploading_the_same_bytes_gets_their_own(
    client: TestClient[Any, Any], user: User
) -> None:
    data = photo(300, 300, fmt="PNG", seed=3)
    other = await register_and_login(client)
    first = await via_put(client, user, data, "a.png")
    second = await via_put(client, other, data, "a.png")
    assert (first.status, second.status) == (201, 201)
    assert (await first.json())["id"] != (await second.json())["id"]


# --- EXIF, thumbnails --------------------------------------------------------------


async def image_of(client: TestClient[Any, Any], user: User, image_id: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/images/{image_id}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def thumbnail_bytes(client: TestClient[Any, Any], image: dict[str, Any]) -> bytes:
    """Through the signed URL, with no credentials at all."""
    url = URL(image["thumbnail"]["url"])
    resp = await client.get(url.path_qs)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"] == "image/jpeg"
    return await resp.read()


@pytest.mark.parametrize(("fmt", "ext"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
async def test_exif_is_read_and_stripped_from_original_and_thumbnail(
    client: TestClient[Any, Any], user: User, fmt: str, ext: str
) -> None:
    data = photo(800, 600, fmt=fmt, exif=camera_exif())
    assert has_gps_or_camera(data)
    resp = await via_put(client, user, data, f"holiday.{ext}")
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    exif = video["metadata"]["exif"]
    assert exif["camera_make"] == "Canon"
    assert exif["camera_model"] == "EOS 5D Mark IV"
    assert exif["captured_at"] == "2024-05-01T12:30:00"
    assert exif["orientation"] == 1
    assert exif["gps"]["latitude"] == pytest.approx(48.85823, abs=1e-4)
    assert exif["gps"]["longitude"] == pytest.approx(-2.29449, abs=1e-4)
    assert exif["gps"]["altitude"] == pytest.approx(35)
    assert video["metadata"]["image"]["exif_stripped"] is True
    assert video["sha256"] == hashlib.sha256(data).hexdigest()  # what was uploaded

    resp = await client.get(f"/api/v1/videos/{video['id']}/content", headers=user.headers)
    original = await resp.read()
    assert len(original) == video["size"]
    assert not has_gps_or_camera(original)
    with Image.open(io.BytesIO(original)) as img:
        assert img.size == (800, 600)
        assert "comment" not in img.info and "xmp" not in img.info
    thumb = await thumbnail_bytes(client, await image_of(client, user, video["id"]))
    with Image.open(io.BytesIO(thumb)) as img:
        assert dict(img.getexif()) == {}
        assert "exif" not in img.info
    assert await used_bytes(client, user) == video["size"]
    # The upload as sent is gone; the stripped copy and the thumbnail stay.
    assert sorted(k.rsplit("/", 1)[1] for k in leftovers(client.app)) == [
        f"image.{ext}",
        "thumbnail.jpg",
    ]


@pytest.mark.parametrize("images_client", [{"image_strip_exif": False}], indirect=True)
async def test_the_original_keeps_its_exif_when_the_setting_says_so(
    images_client: TestClient[Any, Any],
) -> None:
    client = images_client
    user = await register_and_login(client)
    data = photo(800, 600, exif=camera_exif())
    resp = await via_put(client, user, data, "raw.jpg")
    assert resp.status == 201, await resp.text()
    video = await resp.json()
    assert video["metadata"]["image"]["exif_stripped"] is False
    resp = await client.get(f"/api/v1/videos/{video['id']}/content", headers=user.headers)
    assert await resp.read() == data
    thumb = await thumbnail_bytes(client, await image_of(client, user, video["id"]))
    assert not has_gps_or_camera(thumb)


async def test_the_thumbnail_is_turned_upright_by_the_orientation(
    client: TestClient[Any, Any], user: User
) -> None:
    # Stored 600x300, red left and blue right; orientation 6 means "turn 90° clockwise
    # to show": upright it is 300x600 with red on top.
    data = photo(600, 300, exif=camera_exif(orientation=6))
    resp = await via_put(client, user, data, "phone.jpg")
    assert resp.status == 201, await resp.text()
    image = await image_of(client, user, (await resp.json())["id"])
    assert (image["thumbnail"]["width"], image["thumbnail"]["height"]) == (256, 512)
    with Image.open(io.BytesIO(await thumbnail_bytes(client, image))) as img:
        assert img.size == (256, 512)
        rgb = img.convert("RGB")
        top, bottom = rgb.getpixel((128, 100)), rgb.getpixel((128, 412))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 150 and top[2] < 100, top  # red
    assert bottom[2] > 150 and bottom[0] < 100, bottom  # blue
    # The stored original keeps only the orientation, so viewers turn it too.
    resp = await client.get(f"/api/v1/videos/{image['id']}/content", headers=user.headers)
    with Image.open(io.BytesIO(await resp.read())) as img:
        assert dict(img.getexif()) == {0x0112: 6}


@pytest.mark.parametrize(
    ("size", "expected"),
    [((2000, 500), (512, 128)), ((400, 1600), (128, 512)), ((300, 300), (300, 300))],
    ids=["wide", "tall", "small-not-enlarged"],
)
async def test_the_thumbnail_fits_in_512_keeping_the_aspect(
    client: TestClient[Any, Any],
    user: User,
    size: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    resp = await via_put(client, user, photo(*size, fmt="PNG"), "pic.png")
    assert resp.status == 201, await resp.text()
    image = await image_of(client, user, (await resp.json())["id"])
    with Image.open(io.BytesIO(await thumbnail_bytes(client, image))) as img:
        assert img.size == expected
    assert (image["thumbnail"]["width"], image["thumbnail"]["height"]) == expected


# --- the library --------------------------------------------------------------------


async def test_images_are_listed_apart_from_videos(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    resp = await via_put(client, user, sample_mp4.read_bytes(), "clip.mp4")
    assert resp.status == 201
    video_id = (await resp.json())["id"]
    ids = []
    for seed in range(3):
        resp = await via_put(client, user, photo(320, 320, fmt="PNG", seed=seed), f"{seed}.png")
        assert resp.status == 201, await resp.text()
        ids.append((await resp.json())["id"])

    resp = await client.get("/api/v1/images", params={"limit": "2"}, headers=user.headers)
    assert resp.status == 200
    page = await resp.json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2]
    assert all(i["kind"] == "image" and i["thumbnail"]["url"] for i in page["items"])
    resp = await client.get(
        "/api/v1/images", params={"limit": "2", "cursor": page["next_cursor"]}, headers=user.headers
    )
    rest = await resp.json()
    assert [i["id"] for i in rest["items"]] == [ids[0]] and rest["next_cursor"] is None

    resp = await client.get("/api/v1/videos", params={"kind": "image"}, headers=user.headers)
    assert sorted(i["id"] for i in (await resp.json())["items"]) == sorted(ids)
    resp = await client.get("/api/v1/videos", params={"kind": "video"}, headers=user.headers)
    assert [i["id"] for i in (await resp.json())["items"]] == [video_id]

    resp = await client.get(f"/api/v1/images/{video_id}", headers=user.headers)
    assert resp.status == 404 and await error_code(resp) == "image_not_found"
    other = await register_and_login(client)
    resp = await client.get(f"/api/v1/images/{ids[0]}", headers=other.headers)
    assert resp.status == 404
    resp = await client.get("/api/v1/images", headers=other.headers)
    assert (await resp.json())["items"] == []


async def test_thumbnail_links_are_signed(client: TestClient[Any, Any], user: User) -> None:
    resp = await via_put(client, user, photo(400, 300, fmt="PNG"), "x.png")
    image = await image_of(client, user, (await resp.json())["id"])
    url = URL(image["thumbnail"]["url"])
    assert image["thumbnail"]["path"] == url.path
    tampered = url.update_query(signature="A" * 43)
    resp = await client.get(tampered.path_qs)
    assert resp.status == 404 and await error_code(resp) == "invalid_signature"
    resp = await client.get(url.path)  # neither signature nor credentials
    assert resp.status == 401
    resp = await client.get(url.path, headers=user.headers)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
    resp = await client.get(url.path_qs, headers={"Range": "bytes=0-9"})
    assert resp.status == 206 and len(await resp.read()) == 10


async def test_deleting_an_image_deletes_its_thumbnail(
    client: TestClient[Any, Any], user: User
) -> None:
    resp = await via_put(client, user, photo(800, 600, exif=camera_exif()), "x.jpg")
    image_id = (await resp.json())["id"]
    resp = await client.delete(f"/api/v1/videos/{image_id}", headers=user.headers)
    assert resp.status == 204
    await assert_nothing_kept(client, user)
