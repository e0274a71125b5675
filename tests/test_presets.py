"""Presets over HTTP: saved, listed, replaced and deleted; checked against the operations'
param schemas; used at upload (PUT, multipart, tus) with the preset's params."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from config.settings import Settings
from tests.clips import make_image
from tests.conftest import User, register_and_login

Client = TestClient[Any, Any]
TUS = {"Tus-Resumable": "1.0.0"}
STEPS = [
    {"operation": "thumbnail", "params": {"width": 160}},
    {"operation": "frames", "params": {"fps": 2}},
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(workers_enabled=False, presets_per_user=3)


async def save(client: Client, user: User, name: str, steps: Any, status: int = 201) -> Any:
    resp = await client.post(
        "/api/v1/presets", json={"name": name, "operations": steps}, headers=user.headers
    )
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_crud_and_validation(client: Client, user: User) -> None:
    saved = await save(client, user, "previews", STEPS)
    assert saved["name"] == "previews" and saved["operations"] == STEPS
    await save(client, user, "previews", STEPS, 409)  # one name per user
    other = await register_and_login(client)
    await save(client, other, "previews", STEPS)  # another user's namespace

    # Checked against the declared params: unknown names, types, bounds, operations.
    for steps, field in (
        ([{"operation": "thumbnail", "params": {"nope": 1}}], "operations[0].params.nope"),
        ([STEPS[0], {"operation": "frames", "params": {"fps": "2"}}], "operations[1].params.fps"),
        (
            [{"operation": "thumbnail", "params": {"sprite_columns": 500}}],
            "operations[0].params.sprite_columns",
        ),
        ([{"operation": "resize-all"}], "operations[0].operation"),
    ):
        error = (await save(client, user, "bad", steps, 400))["error"]
        assert error["field"] == field, error
    error = (await save(client, user, "no spaces", STEPS, 400))["error"]
    assert error["code"] == "invalid_field" and error["field"] == "name"
    await save(client, user, "empty", [], 400)

    resp = await client.get("/api/v1/presets", headers=user.headers)
    assert [p["name"] for p in (await resp.json())["items"]] == ["previews"]
    resp = await client.get("/api/v1/presets/previews", headers=user.headers)
    assert resp.status == 200 and (await resp.json())["operations"] == STEPS

    replaced = [{"operation": "thumbnail", "params": {"time": 0.5}}]
    resp = await client.put(
        "/api/v1/presets/previews",
        json={"name": "poster", "operations": replaced},
        headers=user.headers,
    )
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/v1/presets/previews", headers=user.headers)).status == 404
    resp = await client.get("/api/v1/presets/poster", headers=user.headers)
    assert (await resp.json())["operations"] == replaced

    await save(client, user, "two", STEPS)
    await save(client, user, "three", STEPS)
    error = (await save(client, user, "four", STEPS, 409))["error"]
    assert error["code"] == "too_many_presets"

    assert (await client.delete("/api/v1/presets/poster", headers=user.headers)).status == 204
    assert (await client.delete("/api/v1/presets/poster", headers=user.headers)).status == 404
    # Someone else's preset is not found.
    assert (await client.get("/api/v1/presets/two", headers=other.headers)).status == 404


async def _jobs_of(client: Client, user: User, body: Any) -> list[tuple[str, Any]]:
    return sorted((j["operation"], j["params"]) for j in body["jobs"])


async def test_preset_at_upload_put_multipart_and_tus(
    client: Client, user: User, sample_mp4: Path
) -> None:
    await save(client, user, "previews", STEPS)
    data = sample_mp4.read_bytes()

    resp = await client.put(
        "/api/v1/uploads/a.mp4?preset=previews&process=hls", data=data, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    jobs = await _jobs_of(client, user, await resp.json())
    assert [op for op, _ in jobs] == ["frames", "hls", "thumbnail"]
    assert dict(jobs)["thumbnail"]["width"] == 160 and dict(jobs)["frames"]["fps"] == 2

    form = aiohttp.FormData()
    form.add_field("preset", "previews")
    form.add_field("file", data, filename="b.mp4", content_type="video/mp4")
    resp = await client.post("/api/v1/uploads", data=form, headers=user.headers)
    assert resp.status == 201, await resp.text()
    assert [op for op, _ in await _jobs_of(client, user, await resp.json())] == [
        "frames",
        "thumbnail",
    ]

    # tus: the name in Upload-Metadata, checked at creation, used at completion.
    preset = base64.b64encode(b"previews").decode()
    name = base64.b64encode(b"c.mp4").decode()
    headers = {
        **user.headers,
        **TUS,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": f"filename {name},preset {preset}",
    }
    resp = await client.post("/api/v1/tus/", headers=headers)
    assert resp.status == 201, await resp.text()
    url = URL(resp.headers["Location"]).path
    resp = await client.patch(
        url,
        data=data,
        headers={
            **user.headers,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
    )
    assert resp.status == 204, await resp.text()
    resp = await client.get("/api/v1/jobs", params={"limit": "100"}, headers=user.headers)
    assert len((await resp.json())["items"]) == 3 + 2 + 2


async def test_a_bad_preset_at_upload_stores_nothing(
    client: Client, user: User, sample_mp4: Path, tmp_path: Path
) -> None:
    data = sample_mp4.read_bytes()
    resp = await client.put("/api/v1/uploads/a.mp4?preset=nope", data=data, headers=user.headers)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "preset_not_found" and error["field"] == "preset"

    # Valid when saved, too late for this 2 s clip: refused with the video, nothing kept.
    await save(client, user, "late", [{"operation": "thumbnail", "params": {"time": 5}}])
    resp = await client.put("/api/v1/uploads/a.mp4?preset=late", data=data, headers=user.headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["field"] == "preset"

    # An operation that does not apply to the upload's kind (frames of an image).
    await save(client, user, "frames", [{"operation": "frames"}])
    image = make_image(tmp_path / "still.png")
    resp = await client.put(
        "/api/v1/uploads/still.png?preset=frames", data=image.read_bytes(), headers=user.headers
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "operation_not_applicable"

    resp = await client.get("/api/v1/videos", headers=user.headers)
    assert (await resp.json())["items"] == []
