"""PATCH /api/v1/videos/{id}: title, description and tags, validated and normalised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.bodies import validate_body
from server.errors import BadRequest
from server.videos.metadata import MAX_TAGS, normalise_tags
from server.videos.schemas import MetadataBody
from tests.conftest import User, register_and_login


@pytest.fixture
async def video(client: TestClient[Any, Any], user: User, sample_mp4: Path) -> Any:
    resp = await client.put(
        "/api/v1/uploads/beach.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def patch(client: TestClient[Any, Any], user: User, video: Any, body: Any) -> Any:
    return await client.patch(f"/api/v1/videos/{video['id']}", json=body, headers=user.headers)


async def test_title_defaults_to_the_file_name(video: Any) -> None:
    assert video["title"] == "beach.mp4"
    assert video["description"] == ""
    assert video["tags"] == []


async def test_patch_sets_and_shows_the_fields(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    resp = await patch(
        client,
        user,
        video,
        {
            "title": "  Summer   at the beach ",
            "description": "Waves.",
            "tags": [" Sea", "sea", "SUN "],
        },
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["title"], body["description"], body["tags"]) == (
        "Summer at the beach",
        "Waves.",
        ["sea", "sun"],
    )
    # Absent fields are left alone; the list and the single view agree.
    resp = await patch(client, user, video, {"description": "Waves and sand."})
    assert (await resp.json())["title"] == "Summer at the beach"
    shown = await (await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)).json()
    listed = await (await client.get("/api/v1/videos", headers=user.headers)).json()
    # The list's cards also carry a signed `thumbnail` link (null until one is made).
    card = listed["items"][0]
    assert card.pop("thumbnail") is None
    assert shown == card
    assert shown["tags"] == ["sea", "sun"] and shown["description"] == "Waves and sand."


async def test_clearing_the_title_gives_the_file_name_back(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    await patch(client, user, video, {"title": "Named"})
    for cleared in (None, "   "):
        resp = await patch(client, user, video, {"title": cleared})
        assert (await resp.json())["title"] == "beach.mp4"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": 5}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "a\x02b"}, "title"),
        ({"description": ["no"]}, "description"),
        ({"description": "x" * 5001}, "description"),
        ({"tags": "sea"}, "tags"),
        ({"tags": ["ok", 3]}, "tags"),
        ({"tags": ["  "]}, "tags"),
        ({"tags": ["x" * 41]}, "tags"),
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags"),
        ({"filename": "other.mp4"}, "filename"),
        ({}, "title"),
        ({"description": None, "tags": None}, "title"),  # null is "leave it": nothing to do
    ],
)
async def test_invalid_fields_are_400_naming_the_field(
    client: TestClient[Any, Any], user: User, video: Any, body: Any, field: str
) -> None:
    resp = await patch(client, user, video, body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_field"
    assert error["field"] == field


async def test_null_leaves_description_and_tags(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    await patch(client, user, video, {"description": "Kept.", "tags": ["kept"]})
    resp = await patch(client, user, video, {"title": "New", "description": None, "tags": None})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert (body["title"], body["description"], body["tags"]) == ("New", "Kept.", ["kept"])


async def test_someone_elses_video_is_404(
    client: TestClient[Any, Any], user: User, video: Any
) -> None:
    other = await register_and_login(client)
    resp = await patch(client, other, video, {"title": "mine now"})
    assert resp.status == 404
    shown = await (await client.get(f"/api/v1/videos/{video['id']}", headers=user.headers)).json()
    assert shown["title"] == "beach.mp4"


def test_tags_normalised_in_order() -> None:
    assert normalise_tags(["B", " a ", "b", "New   York"]) == ("b", "a", "new york")
    # The count limit applies after de-duplication.
    assert len(normalise_tags(["x"] * (MAX_TAGS + 5))) == 1


def test_unknown_field_is_named() -> None:
    with pytest.raises(BadRequest) as caught:
        validate_body(MetadataBody, {"title": "ok", "size": 1})
    assert caught.value.details["field"] == "size"
