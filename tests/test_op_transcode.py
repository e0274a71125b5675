"""`transcode` with real ffmpeg on generated clips, on local disk and on S3 (moto)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from server.errors import BadRequest
from server.jobs.model import OutputFile
from server.jobs.operations import transcode
from server.media.probe import MediaInfo
from tests.clips import _tag_rotation, ffmpeg_exe, make_clip, run
from tests.op_harness import OpHarness, media_info, progress_ok

FAST = {"preset": "ultrafast"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transcode-clips")


def top_level_atoms(data: bytes) -> list[str]:
    """The types of an MP4's top-level boxes, in file order."""
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # 64-bit size follows the type
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        elif size == 0:  # to the end of the file
            size = len(data) - offset
        assert size >= 8, f"corrupt box at {offset}"
        atoms.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(data)
    return atoms


async def probe_outputs(h: OpHarness, outputs: list[OutputFile]) -> dict[str, MediaInfo]:
    infos: dict[str, MediaInfo] = {}
    for output in outputs:
        assert output.content_type == "video/mp4"
        data = await h.read(output)
        atoms = top_level_atoms(data)
        assert atoms.index("moov") < atoms.index("mdat"), atoms  # +faststart
        path = await h.fetch(output)
        info, frames = media_info(path)
        assert frames > 0
        infos[output.name] = info
    return infos


async def test_landscape_with_audio_gets_every_rung_up_to_its_height(
    clips: Path, tmp_path: Path
) -> None:
    clip = make_clip(clips / "720p.mp4", width=1280, height=720, fps=10, seconds=2)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(transcode.OPERATION, FAST)
        infos = await probe_outputs(h, outputs)
        assert progress_ok(h.progress), h.progress
    assert [o.name for o in outputs] == ["480p.mp4", "720p.mp4"]
    assert {n: (i.width, i.height) for n, i in infos.items()} == {
        "480p.mp4": (854, 480),
        "720p.mp4": (1280, 720),
    }
    for info in infos.values():
        assert info.video_codec == "h264" and info.pixel_format == "yuv420p"
        assert info.audio_codec == "aac"
        assert info.rotation == 0
        assert info.duration is not None and abs(info.duration - 2) < 0.3
        assert info.fps == 10


async def test_480p_source_without_audio_gets_480p_only_on_s3(
    clips: Path, tmp_path: Path, s3_endpoint: str
) -> None:
    clip = make_clip(clips / "480p.mp4", width=854, height=480, fps=10, audio=False)
    async with OpHarness.open(clip, tmp_path, s3_endpoint=s3_endpoint) as h:
        assert h.storage.name == "s3"
        with pytest.raises(BadRequest) as caught:
            h.parse(transcode.OPERATION, {"renditions": ["480p", "720p"]})
        assert caught.value.details["field"] == "params.renditions"
        outputs = await h.run(transcode.OPERATION, FAST)
        infos = await probe_outputs(h, outputs)
        assert progress_ok(h.progress)
    assert list(infos) == ["480p.mp4"]
    info = infos["480p.mp4"]
    assert (info.width, info.height, info.audio_codec) == (854, 480, None)


async def test_source_below_the_ladder_gets_one_rendition_at_its_height(
    clips: Path, tmp_path: Path
) -> None:
    clip = make_clip(clips / "360p.mp4", width=640, height=360, fps=10, container="mkv")
    async with OpHarness.open(clip, tmp_path) as h:
        assert h.parse(transcode.OPERATION, {})["renditions"] == ["360p"]
        outputs = await h.run(transcode.OPERATION, FAST)
        infos = await probe_outputs(h, outputs)
    assert [(n, i.width, i.height) for n, i in infos.items()] == [("360p.mp4", 640, 360)]


def half_black_clip(path: Path, *, width: int, height: int, rotate: int) -> Path:
    """Left half black, right half white, tagged with a clockwise display rotation."""
    plain = path.with_name(path.stem + ".plain.mp4")
    run(
        [
            "-f", "lavfi", "-i", f"color=c=white:s={width}x{height}:r=10:d=1",
            "-vf", f"drawbox=x=0:y=0:w={width // 2}:h={height}:color=black:t=fill",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-f", "mp4", str(plain),
        ]
    )  # fmt: skip
    _tag_rotation(plain, path, rotate, "mp4")
    return path


def first_frame_gray(path: Path, width: int, height: int) -> bytes:
    argv = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1"]
    argv += ["-f", "rawvideo", "-pix_fmt", "gray", "-"]
    proc = subprocess.run(
        argv,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert len(proc.stdout) == width * height
    return proc.stdout


async def test_portrait_phone_clip_gives_portrait_outputs_turned_the_right_way(
    clips: Path, tmp_path: Path
) -> None:
    # Stored 854x480, shown 480x854 after a clockwise quarter turn: the
    # black left half of the stored picture becomes the top half.
    clip = half_black_clip(clips / "portrait.mp4", width=854, height=480, rotate=90)
    async with OpHarness.open(clip, tmp_path) as h:
        assert (h.info.width, h.info.height, h.info.rotation) == (854, 480, 90)
        outputs = await h.run(transcode.OPERATION, FAST)
        infos = await probe_outputs(h, outputs)
        paths = {o.name: await h.fetch(o) for o in outputs}
    assert {n: (i.width, i.height, i.rotation) for n, i in infos.items()} == {
        "480p.mp4": (270, 480, 0),
        "720p.mp4": (404, 720, 0),
    }
    width, height = 270, 480
    gray = first_frame_gray(paths["480p.mp4"], width, height)
    top = sum(gray[: width * height // 2]) / (width * height // 2)
    bottom = sum(gray[width * height // 2 :]) / (width * height // 2)
    assert top < 40 and bottom > 200, (top, bottom)


async def test_frame_rate_is_capped_at_the_output_limit(clips: Path, tmp_path: Path) -> None:
    clip = make_clip(clips / "30fps.mp4", width=320, height=240, fps=30, seconds=1)
    async with OpHarness.open(clip, tmp_path, max_output_fps=10) as h:
        outputs = await h.run(transcode.OPERATION, FAST)
        info, frames = media_info(await h.fetch(outputs[0]))
    assert (outputs[0].name, info.fps) == ("240p.mp4", 10)
    assert 9 <= frames <= 11


async def test_all_renditions_come_from_one_ffmpeg_run(
    clips: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real = transcode.run_ffmpeg_with_progress

    async def spy(ctx, args, **kw):  # type: ignore[no-untyped-def]
        calls.append(args)
        return await real(ctx, args, **kw)

    monkeypatch.setattr(transcode, "run_ffmpeg_with_progress", spy)
    clip = make_clip(clips / "720p-b.mp4", width=1280, height=720, fps=5, seconds=1, audio=False)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(transcode.OPERATION, {**FAST, "renditions": ["720p", "480p"]})
    assert [o.name for o in outputs] == ["480p.mp4", "720p.mp4"]
    assert len(calls) == 1
    argv = calls[0]
    assert argv[argv.index("-protocol_whitelist") + 1] == "file,pipe"
    assert argv[argv.index("-f") + 1] == "mov"  # demuxer pinned
