"""The jobs API over HTTP: create, validate, list with filters and cursors, show with
signed output URLs, cancel, history; another user's job is 404 everywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server import appkeys
from server.app import create_app
from server.jobs.links import token_prefix, verify_token
from server.jobs.model import Job, OutputFile
from server.jobs.runner import JobRunner
from server.jobs.serializers import job_detail_json
from tests.clips import make_image
from tests.conftest import User, leftovers, register_and_login
from tests.fake_operations import fake_operations

FINISHED = {"succeeded", "failed", "canceled"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # The app's own runner stays idle; the one below (replacing it) runs fake operations.
    return make_settings(
        workers_enabled=False,
        worker_concurrency=1,
        job_lease_seconds=2.0,
        job_heartbeat_seconds=0.5,
        job_poll_seconds=0.5,
    )


@pytest.fixture
def published() -> list[tuple[str, str]]:
    """(event type, job id) of every job event the app publishes, in order."""
    return []


@pytest.fixture
def app(
    settings: Settings,
    database_url: str,
    published: list[tuple[str, str]],
) -> web.Application:
    app = create_app(settings)

    async def fake_runner(app: web.Application) -> AsyncIterator[None]:
        runner = JobRunner(
            pool=app[appkeys.POOL],
            storage=app[appkeys.STORAGE],
            settings=dataclasses.replace(settings, workers_enabled=True),
            ffmpeg=app[appkeys.FFMPEG],
            operations=app[appkeys.OPERATIONS],
            dsn=database_url,
            publish=app[appkeys.PUBLISHER].job,
        )
        app[appkeys.RUNNER] = runner
        bus = app[appkeys.BUS]
        bus_publish = bus.publish

        def record(event: dict[str, Any]) -> None:
            if event.get("job_id"):
                published.append((event["type"], event["job_id"]))
            bus_publish(event)

        bus.publish = record  # type: ignore[method-assign]
        await runner.start()
        yield
        await runner.stop()

    app[appkeys.OPERATIONS] = fake_operations()  # for the API and the runner alike
    app.cleanup_ctx.append(fake_runner)
    return app


async def upload(client: TestClient[Any, Any], user: User, path: Path) -> str:
    resp = await client.put(
        f"/api/v1/uploads/{path.name}", data=path.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


@pytest.fixture
async def video_id(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> str:
    return await upload(client, user, sample_mp4)


async def post_job(
    client: TestClient[Any, Any], user: User, video_id: str, body: Any, status: int = 202
) -> Any:
    resp = await client.post(f"/api/v1/videos/{video_id}/jobs", json=body, headers=user.headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def get_job(client: TestClient[Any, Any], user: User, job_id: str) -> Any:
    resp = await client.get(f"/api/v1/jobs/{job_id}", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def wait_job(
    client: TestClient[Any, Any], user: User, job_id: str, check: Callable[[Any], bool]
) -> Any:
    async with asyncio.timeout(15):
        while True:
            job = await get_job(client, user, job_id)
            if check(job):
                return job
            await asyncio.sleep(0.05)


async def test_create_run_and_show_a_job_with_signed_output_urls(
    client: TestClient[Any, Any],
    user: User,
    video_id: str,
    app: web.Application,
    published: list[tuple[str, str]],
) -> None:
    created = await post_job(
        client, user, video_id, {"operation": "sleep", "params": {"seconds": 0.5}}
    )
    assert created["status"] == "queued"
    assert created["video_id"] == video_id
    assert (created["operation"], created["params"]) == ("sleep", {"seconds": 0.5})
    assert (created["progress"], created["attempts"], created["error"]) == (0, 0, None)
    assert created["outputs"] == [] and created["output_count"] == 0
    assert ("job.queued", created["id"]) in published

    job = await wait_job(client, user, created["id"], lambda j: j["status"] in FINISHED)
    assert (job["status"], job["progress"], job["attempts"]) == ("succeeded", 100, 1)
    assert job["started_at"] and job["finished_at"]
    assert [o["name"] for o in job["outputs"]] == ["part-1.txt", "result.txt"]
    assert job["output_count"] == 2
    result = job["outputs"][1]
    assert (result["size"], result["content_type"]) == (len("slept 0.5"), "text/plain")
    url = urlsplit(result["url"])
    assert f"{url.scheme}://{url.netloc}" == str(client.make_url("")).rstrip("/")
    prefix = token_prefix(job["id"])
    assert url.path.startswith(prefix) and url.path.endswith("/result.txt")
    token = url.path[len(prefix) :].split("/", 1)[0]
    assert verify_token(app[appkeys.SIGNER], job["id"], token)
    expires = int(token.split(".", 1)[0])
    ttl = app[appkeys.SETTINGS].signed_url_ttl_seconds
    assert abs(expires - datetime.now(UTC).timestamp() - ttl) < 30

    resp = await client.get(f"/api/v1/jobs/{job['id']}/events", headers=user.headers)
    [event] = (await resp.json())["items"]
    assert (event["attempt"], event["outcome"], event["error"]) == (1, "succeeded", None)
    assert event["worker_id"] == app[appkeys.RUNNER].worker_id
    assert 0 < event["duration_seconds"] < 10
    assert event["started_at"] and event["ended_at"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"operation": "nope"}, "unknown_operation", "operation"),
        ({"params": {}}, "unknown_operation", "operation"),
        ({"operation": 7}, "unknown_operation", "operation"),
        ({"operation": "still"}, "operation_not_applicable", "operation"),
        ({"operation": "sleep", "params": []}, "invalid_params", "params"),
        ({"operation": "sleep", "params": {"seconds": "x"}}, "invalid_params", "params.seconds"),
        ({"operation": "sleep", "params": {"seconds": 99}}, "invalid_params", "params.seconds"),
        ({"operation": "sleep", "params": {"speed": 1}}, "invalid_params", "params.speed"),
        ({"operation": "sleep", "priority": "high"}, "invalid_field", "priority"),
        ({"operation": "sleep", "priority": 101}, "invalid_field", "priority"),
        ({"operation": "sleep", "priority": True}, "invalid_field", "priority"),
    ],
)
async def test_invalid_requests_name_the_field(
    client: TestClient[Any, Any], user: User, video_id: str, body: Any, code: str, field: str
) -> None:
    error = (await post_job(client, user, video_id, body, status=400))["error"]
    assert (error["code"], error["field"]) == (code, field)


async def test_operations_apply_to_their_kind_of_upload(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    image_id = await upload(client, user, make_image(tmp_path / "still.png"))
    assert (await post_job(client, user, image_id, {"operation": "still"}))["status"] == "queued"
    error = (await post_job(client, user, image_id, {"operation": "sleep"}, 400))["error"]
    assert error["code"] == "operation_not_applicable"


async def test_missing_or_foreign_video_is_404_and_login_is_required(
    client: TestClient[Any, Any], user: User, video_id: str
) -> None:
    other = await register_and_login(client)
    body = {"operation": "sleep"}
    for vid in (video_id, str(uuid.uuid4()), "not-a-uuid"):
        error = (await post_job(client, other, vid, body, status=404))["error"]
        assert error["code"] in {"video_not_found", "not_found"}
    resp = await client.post(f"/api/v1/videos/{video_id}/jobs", json=body)
    assert resp.status == 401
    resp = await client.get("/api/v1/jobs")
    assert resp.status == 401


async def test_list_filters_and_paginates_newest_first(
    client: TestClient[Any, Any], user: User, video_id: str, sample_mp4: Path
) -> None:
    other_video = await upload(client, user, sample_mp4)
    # Queued and never run: a 30 s job holds the only slot.
    blocker = await post_job(
        client, user, video_id, {"operation": "sleep", "params": {"seconds": 30}}
    )
    await wait_job(client, user, blocker["id"], lambda j: j["status"] == "running")
    ids = [
        (await post_job(client, user, vid, {"operation": "sleep"}))["id"]
        for vid in (video_id, other_video, video_id, other_video, video_id)
    ]
    stranger = await register_and_login(client)
    stranger_video = await upload(client, stranger, sample_mp4)
    await post_job(client, stranger, stranger_video, {"operation": "sleep"})

    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get("/api/v1/jobs" + query, headers=user.headers)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [*reversed(ids), blocker["id"]]  # newest first, nobody else's

    resp = await client.get(f"/api/v1/jobs?video_id={other_video}", headers=user.headers)
    assert [j["id"] for j in (await resp.json())["items"]] == [ids[3], ids[1]]
    resp = await client.get("/api/v1/jobs?status=running", headers=user.headers)
    assert [j["id"] for j in (await resp.json())["items"]] == [blocker["id"]]
    resp = await client.get(
        f"/api/v1/jobs?status=queued&video_id={video_id}&limit=1", headers=user.headers
    )
    assert [j["id"] for j in (await resp.json())["items"]] == [ids[4]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("video_id=123", "video_id"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=bm90LWpzb24", "cursor"),
    ],
)
async def test_bad_list_queries_name_the_field(
    client: TestClient[Any, Any], user: User, query: str, field: str
) -> None:
    resp = await client.get(f"/api/v1/jobs?{query}", headers=user.headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == field


async def test_cancel_queued_and_running_jobs(
    client: TestClient[Any, Any], user: User, video_id: str, published: list[tuple[str, str]]
) -> None:
    running = await post_job(
        client, user, video_id, {"operation": "sleep", "params": {"seconds": 30}}
    )
    await wait_job(client, user, running["id"], lambda j: j["progress"] > 0)
    queued = await post_job(client, user, video_id, {"operation": "sleep"})

    resp = await client.post(f"/api/v1/jobs/{queued['id']}/cancel", headers=user.headers)
    assert resp.status == 202
    canceled = await resp.json()
    assert (canceled["status"], canceled["finished_at"] is not None) == ("canceled", True)

    resp = await client.post(f"/api/v1/jobs/{running['id']}/cancel", headers=user.headers)
    assert resp.status == 202
    flagged = await resp.json()
    assert (flagged["status"], flagged["cancel_requested"]) == ("running", True)
    done = await wait_job(client, user, running["id"], lambda j: j["status"] in FINISHED)
    assert (done["status"], done["outputs"]) == ("canceled", [])

    resp = await client.post(f"/api/v1/jobs/{running['id']}/cancel", headers=user.headers)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "job_finished"
    resp = await client.get(f"/api/v1/jobs/{running['id']}/events", headers=user.headers)
    assert [e["outcome"] for e in (await resp.json())["items"]] == ["canceled"]
    events = [e for e, job_id in published if job_id in {queued["id"], running["id"]}]
    assert events.count("job.canceled") == 2


async def test_another_users_job_is_404_everywhere(
    client: TestClient[Any, Any], user: User, video_id: str
) -> None:
    job = await post_job(client, user, video_id, {"operation": "sleep", "params": {"seconds": 0.2}})
    other = await register_and_login(client)
    for method, path in [
        ("GET", f"/api/v1/jobs/{job['id']}"),
        ("GET", f"/api/v1/jobs/{job['id']}/events"),
        ("POST", f"/api/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/api/v1/jobs/{uuid.uuid4()}"),
        ("GET", "/api/v1/jobs/not-a-uuid"),
    ]:
        resp = await client.request(method, path, headers=other.headers)
        assert resp.status == 404, (method, path)
    resp = await client.get("/api/v1/jobs", headers=other.headers)
    assert (await resp.json())["items"] == []


def test_hls_outputs_are_listed_as_the_master_playlist() -> None:
    def out(name: str) -> OutputFile:
        return OutputFile(name, "k/" + name, 10, "x")

    names = ["hls/720p/index.m3u8", "hls/720p/seg_00001.ts", "hls/master.m3u8", "thumb.jpg"]
    now = datetime.now(UTC)
    job = Job(
        uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "hls", {}, "succeeded", 0, 100.0, 1, 3,
        None, "w", None, False, now, now, now,
    )  # fmt: skip
    body = job_detail_json(job, [out(n) for n in names], lambda name: "https://x/" + name)
    assert [o["name"] for o in body["outputs"]] == ["hls/master.m3u8", "thumb.jpg"]
    assert body["outputs"][0]["url"] == "https://x/hls/master.m3u8"
    assert body["output_count"] == 4


async def test_deleting_a_video_mid_job_leaves_no_outputs(
    client: TestClient[Any, Any], user: User, video_id: str
) -> None:
    job = await post_job(client, user, video_id, {"operation": "sleep", "params": {"seconds": 30}})
    # The operation has written its first output by the time progress moves.
    await wait_job(client, user, job["id"], lambda j: j["progress"] > 0)
    resp = await client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    # The runner's next heartbeat finds the job gone, stops it and removes its bytes.
    async with asyncio.timeout(20):
        while leftovers(client.app) or client.app[appkeys.RUNNER]._attempts:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    me = await (await client.get("/api/v1/me", headers=user.headers)).json()
    assert me["used_bytes"] == 0
