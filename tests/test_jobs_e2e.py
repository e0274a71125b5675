"""Jobs end to end through the HTTP API: real app, runner, PostgreSQL, ffmpeg, storage."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.clips import ffmpeg_exe, make_image
from tests.conftest import User

FINISHED = {"succeeded", "failed", "canceled"}


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def upload(client: TestClient[Any, Any], user: User, path: Path, query: str = "") -> Any:
    resp = await client.put(
        f"/api/v1/uploads/{path.name}{query}", data=path.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def start_job(
    client: TestClient[Any, Any], user: User, video_id: str, operation: str, **params: Any
) -> Any:
    resp = await client.post(
        f"/api/v1/videos/{video_id}/jobs",
        json={"operation": operation, "params": params},
        headers=user.headers,
    )
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def wait_for_job(client: TestClient[Any, Any], user: User, job_id: str) -> Any:
    async with asyncio.timeout(90):
        while True:
            resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
            job = await resp.json()
            if job["status"] in FINISHED:
                return job
            await asyncio.sleep(0.2)


def output(job: Any, name: str) -> Any:
    return next(o for o in job["outputs"] if o["name"] == name)


async def test_frames_job_zip_downloads_through_signed_url(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4)
    job = await start_job(client, user, video["id"], "frames", fps=2, width=160)
    assert job["status"] in {"queued", "running"}
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == 100
    zip_out = output(job, "frames.zip")
    assert zip_out["content_type"] == "application/zip"
    resp = await client.session.get(zip_out["url"])  # no headers: the URL is the authority
    assert resp.status == 200
    body = await resp.read()
    assert len(body) == zip_out["size"]
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert names[0] == "frame_000001.jpg"
    assert len(names) == 4  # 2 s at 2 fps
    # Ranges work on outputs too.
    resp = await client.session.get(zip_out["url"], headers={"Range": "bytes=0-3"})
    assert resp.status == 206
    assert await resp.read() == b"PK\x03\x04"
    # The bearer route serves the same bytes.
    resp = await client.get(f"/api/v1/jobs/{job['id']}/outputs/frames.zip", headers=user.headers)
    assert await resp.read() == body


async def test_hls_master_playlist_plays_over_http(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4)
    job = await start_job(client, user, video["id"], "hls", segment_seconds=2)
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    master = output(job, "hls/master.m3u8")
    assert master["content_type"] == "application/vnd.apple.mpegurl"
    assert job["output_count"] >= 3  # master, variant playlist, segments
    # ffmpeg follows the master playlist's relative URIs under the same token.
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-protocol_whitelist",
        "http,tcp,file,crypto",
        "-ss",
        "1",
        "-i",
        master["url"],
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]


async def test_upload_with_process_queues_jobs(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4, "?process=frames,thumbnail")
    ops = sorted(j["operation"] for j in video["jobs"])
    assert ops == ["frames", "thumbnail"]
    for job in video["jobs"]:
        done = await wait_for_job(client, user, job["id"])
        assert done["status"] == "succeeded", done["error"]
    resp = await client.get(f"/api/v1/jobs?video_id={video['id']}", headers=user.headers)
    assert len((await resp.json())["items"]) == 2


async def test_upload_with_unknown_process_is_400_and_stores_nothing(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    resp = await client.put(
        "/api/v1/uploads/x.mp4?process=frames,explode",
        data=sample_mp4.read_bytes(),
        headers=user.headers,
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "process"
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert (await resp.json())["items"] == []


async def test_image_thumbnail_and_convert(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "pic.png", "png", width=640, height=480)
    video = await upload(client, user, image)
    assert video["kind"] == "image"
    job = await start_job(client, user, video["id"], "convert", width=320, format="webp")
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert output(job, "converted.webp")["content_type"] == "image/webp"
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/jobs", json={"operation": "frames"}, headers=user.headers
    )
    assert resp.status == 400  # frames needs a video


async def test_job_validation_and_ownership(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    from tests.conftest import register_and_login

    video = await upload(client, user, sample_mp4)
    for body, field in [
        ({"operation": "explode"}, "operation"),
        ({"operation": "frames", "params": {"fps": 1000}}, "params.fps"),
        ({"operation": "frames", "params": {"bogus": 1}}, "params.bogus"),
        ({"operation": "frames", "params": "x"}, "params"),
    ]:
        resp = await client.post(
            f"/api/v1/videos/{video['id']}/jobs", json=body, headers=user.headers
        )
        assert resp.status == 400, body
        assert (await resp.json())["error"]["field"] == field
    job = await start_job(client, user, video["id"], "thumbnail")
    mallory = await register_and_login(client)
    for path in (
        f"/api/v1/jobs/{job['id']}",
        f"/api/v1/jobs/{job['id']}/events",
        f"/api/v1/jobs/{job['id']}/outputs/thumbnail.jpg",
    ):
        resp = await client.get(path, headers=mallory.headers)
        assert resp.status == 404, path
    resp = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=mallory.headers)
    assert resp.status == 404
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/jobs",
        json={"operation": "thumbnail"},
        headers=mallory.headers,
    )
    assert resp.status == 404
    done = await wait_for_job(client, user, job["id"])
    assert done["status"] == "succeeded"
    resp = await client.get(f"/api/v1/jobs/{job['id']}/events", headers=user.headers)
    events = (await resp.json())["items"]
    assert events[0]["outcome"] == "succeeded" and events[0]["attempt"] == 1


async def test_expired_or_forged_output_token_is_404(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    video = await upload(client, user, sample_mp4)
    job = await wait_for_job(
        client, user, (await start_job(client, user, video["id"], "thumbnail"))["id"]
    )
    url = output(job, "thumbnail.jpg")["url"]
    forged = url.replace("/t/", "/t/1")
    resp = await client.session.get(forged)
    assert resp.status == 404
    other = await start_job(client, user, video["id"], "thumbnail")
    resp = await client.session.get(url.replace(job["id"], other["id"]))
    assert resp.status == 404


async def test_multipart_process_field_and_kind_mismatch(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, tmp_path: Path
) -> None:
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("process", "thumbnail")
    form.add_field("file", sample_mp4.read_bytes(), filename="f.mp4")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 201, await resp.text()
    assert [j["operation"] for j in (await resp.json())["jobs"]] == ["thumbnail"]

    image = make_image(tmp_path / "still.jpg", "jpeg")
    resp = await client.put(
        "/api/v1/uploads/still.jpg?process=frames", data=image.read_bytes(), headers=user.headers
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == "operation_not_applicable"
    assert body["error"]["field"] == "process"
    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert len((await resp.json())["items"]) == 1
