"""`thumbnail` with real ffmpeg: the frame at the asked time, sizes, sprite and storyboard."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from server.jobs.operations import thumbnail
from server.jobs.operations.thumbnail import SpriteLayout, sprite_layout, storyboard_vtt, vtt_time
from tests.clips import ffmpeg_exe, make_clip, make_image, run
from tests.op_harness import OpHarness, fake_video, image_size, progress_ok

OP = thumbnail.OPERATION
RED, BLUE = (255, 0, 0), (0, 0, 255)
RAW_RGB = ("-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")


@pytest.fixture(scope="module")
def red_then_blue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 25 fps, 320x240: red for the first second, blue for the second."""
    path = tmp_path_factory.mktemp("thumb") / "red-blue.mp4"
    red = "color=c=red:size=320x240:rate=25:duration=1"
    blue = "color=c=blue:size=320x240:rate=25:duration=1"
    run(
        [
            *("-f", "lavfi", "-i", red, "-f", "lavfi", "-i", blue),
            *("-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25"),
            *("-f", "mp4", str(path)),
        ]
    )
    return path


def color_of(data: bytes) -> tuple[int, int, int]:
    """The average colour of an encoded image (scaled to one pixel by ffmpeg)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", "pipe:0", "-vf", "scale=1:1", *RAW_RGB],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    r, g, b = proc.stdout[:3]
    return r, g, b


def near(color: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(color, expected, strict=True))


@pytest.mark.parametrize(
    ("params", "color"),
    [
        ({}, RED),  # default 10 % in: 0.2 s
        ({"time": 0.9}, RED),
        ({"time": 1.1}, BLUE),
        # After the last frame's timestamp (1.96 s): nothing decodes at or
        # after 1.99 s, so the last frame — on screen at that time — is used.
        ({"time": 1.99}, BLUE),
    ],
)
async def test_thumbnail_is_the_frame_at_the_time(
    red_then_blue: Path, tmp_path: Path, params: dict[str, float], color: tuple[int, int, int]
) -> None:
    async with OpHarness.open(red_then_blue, tmp_path) as h:
        [output] = await h.run(OP, params)
        data = await h.read(output)
    assert (output.name, output.content_type) == ("thumbnail.jpg", "image/jpeg")
    assert data[:3] == b"\xff\xd8\xff"
    assert image_size(data, tmp_path) == (320, 240)
    assert near(color_of(data), color)
    assert progress_ok(h.progress)


async def test_thumbnail_width_keeps_the_aspect(red_then_blue: Path, tmp_path: Path) -> None:
    async with OpHarness.open(red_then_blue, tmp_path) as h:
        [output] = await h.run(OP, {"width": 100, "time": 0.5})
        assert image_size(await h.read(output), tmp_path) == (100, 76)  # 75 rounded to even


async def test_sprite_and_storyboard(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2, audio=False)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(
            OP, {"sprite": True, "sprite_interval": 0.5, "sprite_columns": 3, "sprite_width": 80}
        )
        by_name = {o.name: o for o in outputs}
        assert list(by_name) == ["thumbnail.jpg", "sprite.jpg", "storyboard.vtt"]
        assert by_name["storyboard.vtt"].content_type == "text/vtt"
        sprite = await h.read(by_name["sprite.jpg"])
        vtt = (await h.read(by_name["storyboard.vtt"])).decode()
    # 2 s every 0.5 s: 4 tiles of 80x60, 3 per row -> a 240x120 sheet.
    assert image_size(sprite, tmp_path) == (240, 120)
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\S+) --> (\S+)\n(\S+)\n", vtt)
    assert cues == [
        ("00:00:00.000", "00:00:00.500", "sprite.jpg#xywh=0,0,80,60"),
        ("00:00:00.500", "00:00:01.000", "sprite.jpg#xywh=80,0,80,60"),
        ("00:00:01.000", "00:00:01.500", "sprite.jpg#xywh=160,0,80,60"),
        ("00:00:01.500", "00:00:02.000", "sprite.jpg#xywh=0,60,80,60"),
    ]
    assert progress_ok(h.progress)
    assert len(set(h.progress)) >= 3  # thumbnail, tiles, sheet, storing


async def test_sprite_tiles_show_their_time(red_then_blue: Path, tmp_path: Path) -> None:
    async with OpHarness.open(red_then_blue, tmp_path) as h:
        outputs = await h.run(OP, {"sprite": True, "sprite_interval": 1, "sprite_width": 32})
        sprite = await h.read(outputs[1])
    # Two 32x24 tiles side by side: red (0-1 s), then blue (1-2 s).
    path = tmp_path / "sprite.jpg"
    path.write_bytes(sprite)
    halves: list[tuple[int, int, int]] = []
    for x in (0, 32):
        proc = subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-i",
                str(path),
                "-vf",
                f"crop=32:24:{x}:0,scale=1:1",
                *RAW_RGB,
            ],
            capture_output=True,
            timeout=30,
            check=True,
        )
        r, g, b = proc.stdout[:3]
        halves.append((r, g, b))
    assert near(halves[0], RED) and near(halves[1], BLUE)


async def test_image_thumbnail(tmp_path: Path) -> None:
    image = make_image(tmp_path / "still.png", "png", width=300, height=200)
    async with OpHarness.open(image, tmp_path) as h:
        assert h.video.kind == "image"
        [output] = await h.run(OP, {"width": 100})
        data = await h.read(output)
        assert data[:3] == b"\xff\xd8\xff"
        assert image_size(data, tmp_path) == (100, 67)
        [output] = await h.run(OP, {})
        assert image_size(await h.read(output), tmp_path) == (300, 200)
    assert progress_ok(h.progress)


@pytest.mark.s3
async def test_thumbnail_and_sprite_on_s3(tmp_path: Path, s3_endpoint: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=1, audio=False)
    async with OpHarness.open(clip, tmp_path, s3_endpoint=s3_endpoint) as h:
        outputs = await h.run(OP, {"sprite": True, "sprite_interval": 0.25, "width": 160})
        assert [o.name for o in outputs] == ["thumbnail.jpg", "sprite.jpg", "storyboard.vtt"]
        assert image_size(await h.read(outputs[0]), tmp_path) == (160, 120)
        assert image_size(await h.read(outputs[1]), tmp_path) == (640, 120)  # 4 tiles 160x120
        assert (await h.read(outputs[2])).decode().count("sprite.jpg#xywh=") == 4
    assert progress_ok(h.progress)


# --- pure parts ----------------------------------------------------------------


def test_vtt_time() -> None:
    assert vtt_time(0) == "00:00:00.000"
    assert vtt_time(5) == "00:00:05.000"
    assert vtt_time(61.2345) == "00:01:01.234"
    assert vtt_time(3 * 3600 + 59.9996) == "03:01:00.000"


def test_layout_and_storyboard_of_a_long_video() -> None:
    video = fake_video(width=1920, height=1080, duration=95.0)
    layout = sprite_layout(video, 95.0, 10.0, 4, 160)
    assert layout == SpriteLayout(10.0, 10, 4, 3, 160, 90)
    assert layout.size == (640, 270)
    vtt = storyboard_vtt(layout, 95.0)
    lines = vtt.splitlines()
    assert lines[2:4] == ["00:00:00.000 --> 00:00:10.000", "sprite.jpg#xywh=0,0,160,90"]
    assert lines[-2:] == ["00:01:30.000 --> 00:01:35.000", "sprite.jpg#xywh=160,180,160,90"]
    # Fewer tiles than columns: one row, no blank cells.
    assert sprite_layout(video, 95.0, 50.0, 10, 160).size == (320, 90)


def test_argv_seeks_before_the_input_and_pins_it(tmp_path: Path) -> None:
    video = fake_video()
    params = {"time": 1.25, "width": 100}
    argv = thumbnail.thumbnail_argv(params, video, Path("/src/object"), tmp_path / "t.jpg")
    i = argv.index("-i")
    assert argv[:2] == ["-ss", "1.25"]
    assert argv[i - 4 : i + 2] == [
        *("-protocol_whitelist", "file,pipe", "-f", "mov", "-i", "file:/src/object")
    ]
    assert argv[argv.index("-vf") + 1] == "scale=100:76"
    assert argv[argv.index("-frames:v") + 1] == "1"
    assert argv[-1] == "file:" + str(tmp_path / "t.jpg")
    last = thumbnail.thumbnail_argv(
        params, video, Path("/src/object"), tmp_path / "t.jpg", last_frame=True
    )
    assert last[:2] == ["-sseof", "-3"] and "-frames:v" not in last

    layout = sprite_layout(video, 2.0, 0.3, 10, 160)
    tiles = thumbnail.tiles_argv(video, Path("/src/object"), tmp_path, layout)
    assert tiles[tiles.index("-vf") + 1] == "fps=1/0.3,scale=160:120"
    assert tiles[tiles.index("-frames:v") + 1] == "7"
    sheet = thumbnail.sprite_argv(tmp_path, tmp_path / "s.jpg", layout)
    assert sheet[:4] == ["-protocol_whitelist", "file", "-f", "image2"]
    assert sheet[sheet.index("-vf") + 1] == "tile=7x1"
