"""A generation from an image with S3 storage (moto): the image is read from the
bucket, the result streamed into it by a multipart writer, then accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.clips import make_image
from tests.conftest import User
from tests.test_generations_local import wait_for_generation

pytestmark = pytest.mark.s3


@pytest.fixture
def backend() -> str:
    return "s3"


async def test_image_to_video_on_s3(
    client: TestClient[Any, Any], user: User, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "ref.webp", "webp", width=400, height=300)
    resp = await client.put(
        "/api/v1/uploads/ref.webp", data=image.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    resp = await client.post(
        "/api/v1/generations",
        json={"prompt": "over the bucket", "image_id": (await resp.json())["id"],
              "duration_seconds": 2, "resolution": "360p", "aspect_ratio": "4:3"},
        headers=user.headers,
    )  # fmt: skip
    assert resp.status == 202, await resp.text()
    done = await wait_for_generation(client, user, (await resp.json())["id"])
    assert done["status"] == "succeeded", done["error"]
    video = await (
        await client.get(f"/api/v1/videos/{done['video_id']}", headers=user.headers)
    ).json()
    assert (video["metadata"]["width"], video["metadata"]["height"]) == (480, 360)
    resp = await client.get(f"/api/v1/videos/{done['video_id']}/content", headers=user.headers)
    assert resp.status == 200 and (await resp.read())[4:8] == b"ftyp"
