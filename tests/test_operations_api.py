"""`GET /api/v1/operations`: every operation, its params and the server's limits, from
the declarations the server validates with; and numbers no float can hold, over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.app import create_app
from server.jobs.operations import registry
from server.jobs.operations.params import read_params
from server.jobs.operations.protocol import param_models
from tests.conftest import User, register_and_login, truncate_all
from tests.op_harness import fake_video


async def get_catalog(client: TestClient[Any, Any], user: User) -> Any:
    resp = await client.get("/api/v1/operations", headers=user.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_needs_authentication(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/operations")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_every_operation_is_listed_with_its_kinds_and_params(
    client: TestClient[Any, Any], user: User
) -> None:
    body = await get_catalog(client, user)
    listed = {op["name"]: op for op in body["operations"]}
    assert list(listed) == list(registry())
    for name, op in registry().items():
        entry = listed[name]
        assert set(entry["kinds"]) == op.kinds
        assert entry["summary"]
        models = param_models(op)
        assert set(entry["params"]) == op.kinds == set(models)
        for kind, params in entry["params"].items():
            assert [p["name"] for p in params] == list(models[kind].model_fields)
            for param in params:
                assert param["help"], (name, kind, param["name"])
                assert param["type"] in ("number", "integer", "boolean", "string", "array") or (
                    param["type"] == ["integer", "string"]
                )


async def test_listed_defaults_are_the_ones_the_validator_applies(
    client: TestClient[Any, Any], user: User, settings: Settings
) -> None:
    body = await get_catalog(client, user)
    for entry in body["operations"]:
        models = param_models(registry()[entry["name"]])
        for kind, params in entry["params"].items():
            applied = read_params(models[kind], {}, settings)
            for param in params:
                assert param["default"] == getattr(applied, param["name"]), (
                    entry["name"],
                    kind,
                    param["name"],
                )
    # And through an operation's own parse_params, where the default is used as is.
    frames = {p["name"]: p for p in _params(body, "frames", "video")}
    parsed = registry()["frames"].parse_params({}, fake_video(), settings)
    assert parsed["fps"] == frames["fps"]["default"] == 1.0
    assert parsed["format"] == frames["format"]["default"] == "jpg"
    hls = {p["name"]: p for p in _params(body, "hls", "video")}
    parsed = registry()["hls"].parse_params({}, fake_video(), settings)
    assert parsed["segment_seconds"] == hls["segment_seconds"]["default"]
    assert parsed["preset"] == hls["preset"]["default"]


async def test_bounds_and_limits_follow_the_settings(
    make_settings: Callable[..., Settings],
    aiohttp_client: Callable[..., Any],
) -> None:
    settings = make_settings(max_output_fps=0.5, max_pixels=640 * 480, max_frames_per_zip=7)
    app = create_app(settings)
    client = await aiohttp_client(app)
    await truncate_all(app)
    user = await register_and_login(client)
    body = await get_catalog(client, user)
    assert body["limits"] == {
        "max_upload_bytes": settings.max_upload_bytes,
        "max_input_duration_seconds": settings.max_input_duration_seconds,
        "max_pixels": 640 * 480,
        "max_output_fps": 0.5,
        "max_frames_per_zip": 7,
    }
    fps = {p["name"]: p for p in _params(body, "frames", "video")}["fps"]
    # The declared 1 fps and 30 fps maximum, lowered to the setting: as validated.
    assert (fps["default"], fps["maximum"]) == (0.5, 0.5)
    video = fake_video()
    assert registry()["frames"].parse_params({}, video, settings)["fps"] == 0.5
    convert_fps = {p["name"]: p for p in _params(body, "convert", "video")}["fps"]
    assert convert_fps["maximum"] == 0.5 and convert_fps["minimum"] == 1.0


async def test_choices_and_bounds_are_listed(client: TestClient[Any, Any], user: User) -> None:
    body = await get_catalog(client, user)
    convert = {p["name"]: p for p in _params(body, "convert", "video")}
    assert convert["container"]["choices"] == ["mp4", "mov", "mkv", "webm", "gif"]
    assert convert["container"]["default"] == "mp4"
    assert (convert["width"]["minimum"], convert["width"]["maximum"]) == (16, 8192)
    assert convert["bitrate"]["type"] == ["integer", "string"]
    image = {p["name"]: p for p in _params(body, "convert", "image")}
    assert set(image) == {"width", "height", "format"}
    assert image["format"]["choices"] == ["jpg", "png", "webp"]
    frames = {p["name"]: p for p in _params(body, "frames", "video")}
    assert frames["width"]["multiple_of"] == 2
    assert frames["end"]["exclusive_minimum"] == 0
    transcode = {p["name"]: p for p in _params(body, "transcode", "video")}
    assert transcode["renditions"]["choices"] == ["480p", "720p", "1080p"]


def test_the_declarations_emit_json_schema() -> None:
    for op in registry().values():
        for model in param_models(op).values():
            schema = model.model_json_schema()
            assert schema["type"] == "object"
            assert schema["additionalProperties"] is False
            assert set(schema["properties"]) == set(model.model_fields)


def _params(body: Any, name: str, kind: str) -> list[dict[str, Any]]:
    [entry] = [op for op in body["operations"] if op["name"] == name]
    params: list[dict[str, Any]] = entry["params"][kind]
    return params


# --- issue 9 #2 over HTTP: numbers past the float range are a 400 on their field --


HUGE = 10**400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operation": "frames", "params": {"fps": HUGE}}, "params.fps"),
        ({"operation": "frames", "params": {"start": HUGE}}, "params.start"),
        ({"operation": "frames", "params": {"end": -HUGE}}, "params.end"),
        ({"operation": "thumbnail", "params": {"time": HUGE}}, "params.time"),
        ({"operation": "convert", "params": {"fps": HUGE}}, "params.fps"),
        ({"operation": "convert", "params": {"crf": HUGE}}, "params.crf"),
        ({"operation": "hls", "params": {"segment_seconds": HUGE}}, "params.segment_seconds"),
        ({"operation": "frames", "priority": HUGE}, "priority"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_huge_numbers_in_a_job_are_a_400_naming_the_field(
    client: TestClient[Any, Any], user: User, sample_mp4: Path, body: Any, field: str
) -> None:
    resp = await client.put(
        f"/api/v1/uploads/{sample_mp4.name}", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    video_id = (await resp.json())["id"]
    resp = await client.post(f"/api/v1/videos/{video_id}/jobs", json=body, headers=user.headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["error"]["field"] == field
