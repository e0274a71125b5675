"""`convert` with real ffmpeg: every output probed (codec, container, size, fps, audio,
duration), and the encoder list it relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.jobs.operations import convert
from server.media.encoders import (
    available_encoders,
    first_available,
    parse_encoders,
)
from tests.clips import ffmpeg_exe, make_clip, make_image
from tests.op_harness import OpHarness, fake_video, image_size, media_info, progress_ok

OP = convert.OPERATION
HAS_AV1 = first_available(available_encoders(ffmpeg_exe()), "libsvtav1", "libaom-av1") is not None


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s, 320x240, 25 fps, H.264 + AAC."""
    return make_clip(tmp_path_factory.mktemp("convert") / "clip.mp4", seconds=2)


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        (
            {},
            {"name": "converted.mp4", "type": "video/mp4", "codec": "h264", "audio": "aac"},
        ),
        (
            {"width": 160, "audio": False, "fps": 10},
            {"size": (160, 120), "fps": 10.0, "frames": 20, "audio": None},
        ),
        (
            {"height": 120, "start": 0.5, "end": 1.5, "container": "mov"},
            {"name": "converted.mov", "type": "video/quicktime", "size": (160, 120)}
            | {"duration": 1.0, "container": "mov"},
        ),
        (
            {"container": "webm"},
            {"name": "converted.webm", "type": "video/webm", "codec": "vp9", "audio": "opus"}
            | {"container": "webm"},
        ),
        (
            {"container": "mkv", "bitrate": "300k", "video_codec": "vp9"},
            {"name": "converted.mkv", "type": "video/x-matroska", "codec": "vp9"}
            | {"container": "matroska", "audio": "aac"},
        ),
        (
            {"container": "gif", "start": 1},
            {"name": "converted.gif", "type": "image/gif", "codec": "gif", "frames": 15}
            | {"audio": None, "size": (320, 240), "duration": 1.0, "container": "gif"},
        ),
    ],
    ids=["mp4-default", "resize-fps-mute", "mov-trim", "webm-vp9", "mkv-bitrate", "gif"],
)
async def test_convert_video(
    clip: Path, tmp_path: Path, params: dict[str, Any], expect: dict[str, Any]
) -> None:
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(OP, params)
        path = await h.fetch(output)
    info, frames = media_info(path)
    assert output.name == expect.get("name", "converted.mp4")
    assert output.content_type == expect.get("type", "video/mp4")
    assert info.video_codec == expect.get("codec", "h264")
    assert (info.width, info.height) == expect.get("size", (320, 240))
    assert info.audio_codec == expect.get("audio", "aac")
    assert info.duration == pytest.approx(expect.get("duration", 2.0), abs=0.1)
    assert expect.get("container", "mp4") in info.container
    if "fps" in expect:
        assert info.fps == pytest.approx(expect["fps"])
    if "frames" in expect:
        assert frames == expect["frames"]
    if info.video_codec != "gif":
        assert info.pixel_format == "yuv420p"
    assert progress_ok(h.progress)


async def test_mp4_is_faststart(clip: Path, tmp_path: Path) -> None:
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(OP, {"crf": 30})
        data = await h.read(output)
    # The index (moov) precedes the media (mdat): playback starts while downloading.
    assert 0 < data.index(b"moov") < data.index(b"mdat")


@pytest.mark.skipif(not HAS_AV1, reason="this ffmpeg build has no AV1 encoder")
@pytest.mark.parametrize("encoder", ["libsvtav1", "libaom-av1"])
async def test_av1(
    clip: Path, tmp_path: Path, encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = available_encoders(ffmpeg_exe())
    if encoder not in build:
        pytest.skip(f"this ffmpeg build has no {encoder}")
    others = {"libsvtav1", "libaom-av1"} - {encoder}

    async def only_this_av1(_ffmpeg: str) -> frozenset[str]:
        return build - others

    monkeypatch.setattr(convert, "load_encoders", only_this_av1)
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(OP, {"container": "webm", "video_codec": "av1", "width": 160})
        info, _ = media_info(await h.fetch(output))
    assert (info.video_codec, info.width, info.height) == ("av1", 160, 120)
    assert info.audio_codec == "opus"


async def test_rotated_clip_is_converted_upright(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "portrait.mp4", seconds=1, rotate=90, audio=False)
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(OP, {"width": 120})
        info, _ = media_info(await h.fetch(output))
    assert (info.width, info.height, info.rotation) == (120, 160, 0)


@pytest.mark.parametrize(
    ("source_fmt", "params", "name", "size"),
    [
        ("png", {"format": "webp", "width": 150}, "converted.webp", (150, 100)),
        ("jpeg", {"format": "png", "height": 50}, "converted.png", (75, 50)),
        ("png", {"width": 99}, "converted.png", (99, 66)),
        ("webp", {"format": "jpg", "width": 600, "height": 100}, "converted.jpg", (600, 100)),
    ],
)
async def test_convert_image(
    tmp_path: Path,
    source_fmt: str,
    params: dict[str, Any],
    name: str,
    size: tuple[int, int],
) -> None:
    image = make_image(tmp_path / f"still.{source_fmt}", source_fmt, width=300, height=200)
    async with OpHarness.open(image, tmp_path) as h:
        [output] = await h.run(OP, params)
        data = await h.read(output)
    magic = {"png": b"\x89PNG", "jpg": b"\xff\xd8\xff", "webp": b"RIFF"}
    ext = name.rsplit(".", 1)[1]
    assert (output.name, data[: len(magic[ext])]) == (name, magic[ext])
    assert (
        output.content_type == {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}[ext]
    )
    assert image_size(data, tmp_path) == size
    assert progress_ok(h.progress)


@pytest.mark.s3
async def test_convert_on_s3(clip: Path, tmp_path: Path, s3_endpoint: str) -> None:
    async with OpHarness.open(clip, tmp_path, s3_endpoint=s3_endpoint) as h:
        [output] = await h.run(OP, {"width": 160, "start": 1})
        info, _ = media_info(await h.fetch(output))
    assert (info.video_codec, info.width, info.height) == ("h264", 160, 120)
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert progress_ok(h.progress)


# --- pure parts ----------------------------------------------------------------

ALL = frozenset({"libx264", "libvpx-vp9", "libsvtav1", "libaom-av1", "aac", "libopus", "gif"})


def argv_for(params: dict[str, Any], encoders: frozenset[str] = ALL, **meta: Any) -> list[str]:
    video = fake_video(**meta)
    base = {
        "container": "mp4",
        "video_codec": "h264",
        "width": None,
        "height": None,
        "crf": 23,
        "bitrate": None,
        "fps": None,
        "audio": True,
        "start": 0.0,
        "end": 2.0,
    }
    return convert.video_argv({**base, **params}, video, Path("/src/o"), Path("/w/out"), encoders)


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_video_argv() -> None:
    argv = argv_for({})
    i = argv.index("-i")
    assert argv[i - 4 : i + 2] == [
        *("-protocol_whitelist", "file,pipe", "-f", "mov", "-i", "file:/src/o")
    ]
    assert "-ss" not in argv and "-vf" not in argv  # nothing to seek or scale
    assert (value(argv, "-c:v"), value(argv, "-preset"), value(argv, "-crf")) == (
        "libx264",
        "veryfast",
        "23",
    )
    assert (value(argv, "-c:a"), value(argv, "-movflags")) == ("aac", "+faststart")
    assert argv[-3:] == ["-f", "mp4", "file:/w/out"]

    argv = argv_for({"start": 0.5, "end": 1.25, "width": 160, "fps": 12.5, "audio": False})
    assert argv[:2] == ["-ss", "0.5"] and value(argv, "-t") == "0.75"
    assert value(argv, "-vf") == "fps=12.5,scale=160:120"
    assert "-an" in argv and "0:a:0" not in argv

    # A silent source maps no audio even when audio is on.
    assert "-an" in argv_for({}, audio_codec=None)
    # An odd-sized source is rounded down to even for 4:2:0.
    assert value(argv_for({}, width=321, height=241), "-vf") == "scale=320:240"


def test_codec_choices_follow_the_build() -> None:
    vp9 = argv_for({"container": "webm", "video_codec": "vp9", "crf": 32})
    assert value(vp9, "-c:v") == "libvpx-vp9" and value(vp9, "-deadline") == "realtime"
    assert value(vp9, "-b:v") == "0"  # constant quality
    assert value(vp9, "-c:a") == "libopus" and "-movflags" not in vp9
    vorbis = argv_for(
        {"container": "webm", "video_codec": "vp9"}, ALL - {"libopus"} | {"libvorbis"}
    )
    assert value(vorbis, "-c:a") == "libvorbis"

    svt = argv_for({"video_codec": "av1", "crf": 35})
    assert (value(svt, "-c:v"), value(svt, "-preset")) == ("libsvtav1", "10")
    aom = argv_for({"video_codec": "av1", "crf": 35}, ALL - {"libsvtav1"})
    assert (value(aom, "-c:v"), value(aom, "-usage")) == ("libaom-av1", "realtime")
    rate = argv_for({"crf": None, "bitrate": 1500})
    assert value(rate, "-b:v") == "1500k" and "-crf" not in rate

    with pytest.raises(convert.OperationFailed, match="av1"):
        argv_for({"video_codec": "av1"}, frozenset({"libx264", "aac"}))


def test_gif_argv_builds_a_palette_in_one_graph() -> None:
    argv = argv_for(
        {"container": "gif", "video_codec": None, "crf": None, "fps": 15.0, "audio": False}
        | {"width": 160}
    )
    assert value(argv, "-vf") == (
        "fps=15,scale=160:120:flags=lanczos,split[a][b];[a]palettegen[p];[b][p]paletteuse"
    )
    assert value(argv, "-c:v") == "gif" and "-an" in argv
    assert argv[-3:-1] == ["-f", "gif"]


def test_image_argv() -> None:
    video = fake_video("image")
    argv = convert.image_argv(
        {"format": "webp", "width": 150, "height": None}, video, Path("/s"), Path("/o")
    )
    assert argv[:6] == ["-protocol_whitelist", "file,pipe", "-f", "png_pipe", "-i", "file:/s"]
    assert value(argv, "-vf") == "scale=150:100"
    assert value(argv, "-c:v") == "libwebp"
    assert argv[-2:] == ["1", "file:/o"]


FFMPEG_5_ENCODERS = """Encoders:
 V..... = Video
 A..... = Audio
 S..... = Subtitle
 .F.... = Frame-level multithreading
 ..S... = Slice-level multithreading
 ...X.. = Codec is experimental
 ....B. = Supports draw_horiz_band
 .....D = Supports direct rendering method 1
 ------
 V....D a64multi             Multicolor charset for Commodore 64 (codec a64_multi)
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 VFS..D mjpeg                MJPEG (Motion JPEG)
 V..... libsvtav1            SVT-AV1(Scalable Video Technology for AV1) encoder (codec av1)
 A....D aac                  AAC (Advanced Audio Coding)
 A..X.D opus                 Opus
 S..... ass                  ASS (Advanced SubStation Alpha) subtitle
"""


def test_parse_encoders() -> None:
    names = parse_encoders(FFMPEG_5_ENCODERS)
    assert names == {"a64multi", "libx264", "mjpeg", "libsvtav1", "aac", "opus", "ass"}
    # The legend above the separator is not a list of encoders.
    assert "=" not in names and "Video" not in names
    assert parse_encoders("") == frozenset()
    assert first_available(names, "libvpx-vp9", "libsvtav1") == "libsvtav1"
    assert first_available(names, "libvpx-vp9") is None


def test_encoders_of_the_real_build_are_cached() -> None:
    first = available_encoders(ffmpeg_exe())
    assert {"libx264", "mjpeg", "png", "aac"} <= first
    assert available_encoders(ffmpeg_exe()) is first
