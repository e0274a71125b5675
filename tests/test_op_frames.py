"""`frames` with real ffmpeg on generated clips, and the streaming ZIP writer it uses."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from server.jobs.operations import frames
from server.jobs.operations.protocol import OperationFailed
from server.jobs.operations.zipstream import (
    Member,
    ZipStream,
    ZipStreamError,
    central_header,
    end_records,
    local_header,
)
from tests.clips import make_clip, run
from tests.op_harness import OpHarness, fake_video, image_size, progress_ok

OP = frames.OPERATION


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s, 320x240, 25 fps: 50 frames."""
    return make_clip(tmp_path_factory.mktemp("frames") / "clip.mp4", seconds=2)


def open_zip(data: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None  # every CRC checks out
    return archive


@pytest.mark.parametrize(
    ("params", "count"),
    [({}, 2), ({"fps": 2}, 4), ({"every_n_frames": 10}, 5), ({"every_n_frames": 1}, 50)],
)
async def test_frame_count(clip: Path, tmp_path: Path, params: dict[str, int], count: int) -> None:
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(OP, params)
        assert (output.name, output.content_type) == ("frames.zip", "application/zip")
        archive = open_zip(await h.read(output))
    names = archive.namelist()
    assert names == [f"frame_{i:06d}.jpg" for i in range(1, count + 1)]
    for info in archive.infolist():
        assert info.compress_type == zipfile.ZIP_STORED  # JPEG is not deflated again
    assert image_size(archive.read(names[0]), tmp_path) == (320, 240)
    assert archive.read(names[0])[:3] == b"\xff\xd8\xff"
    assert progress_ok(h.progress)
    # Zipping reports its own share after extraction's 0-90.
    assert any(90 < p < 100 for p in h.progress)
    # Each frame left the scratch directory once it was in the ZIP.
    assert not list(tmp_path.glob("work-*/frames/*"))


async def test_png_with_width_and_span(clip: Path, tmp_path: Path) -> None:
    async with OpHarness.open(clip, tmp_path) as h:
        [output] = await h.run(
            OP, {"format": "png", "width": 160, "start": 0.5, "end": 1.5, "fps": 4}
        )
        archive = open_zip(await h.read(output))
    names = archive.namelist()
    assert names == [f"frame_{i:06d}.png" for i in range(1, 5)]
    for name in (names[0], names[-1]):
        data = archive.read(name)
        assert data.startswith(b"\x89PNG")
        assert image_size(data, tmp_path) == (160, 120)
    assert progress_ok(h.progress)


async def test_frames_are_upright_for_a_rotated_phone_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "portrait.mp4", seconds=1, rotate=90, audio=False)
    async with OpHarness.open(clip, tmp_path) as h:
        assert (h.info.width, h.info.height, h.info.rotation) == (320, 240, 90)
        [output] = await h.run(OP, {"width": 120})
        archive = open_zip(await h.read(output))
    # Shown as 240x320; 120 wide keeps that aspect.
    assert image_size(archive.read(archive.namelist()[0]), tmp_path) == (120, 160)


async def test_a_span_without_video_frames_fails_clearly(tmp_path: Path) -> None:
    # 1 s of video, 2 s of audio: the container says 2 s, so 1.5-2 s passes
    # validation but holds no video frame.
    clip = tmp_path / "short-video.mp4"
    run(
        [
            *("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=1"),
            *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"),
            *("-f", "mp4", str(clip)),
        ]
    )
    async with OpHarness.open(clip, tmp_path) as h:
        assert h.info.duration is not None and h.info.duration >= 1.9
        with pytest.raises(OperationFailed, match="no frames were extracted"):
            await h.run(OP, {"start": 1.5})
    stored = [p for p in (tmp_path / "data" / "objects").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == ["source"]  # no partial frames.zip


async def test_limit_is_also_enforced_by_ffmpeg(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the estimate ever undercount, -frames:v still caps the ZIP."""
    monkeypatch.setattr(frames, "expected_frames", lambda *args: 1)
    async with OpHarness.open(clip, tmp_path, max_frames_per_zip=3) as h:
        [output] = await h.run(OP, {"every_n_frames": 1})
        assert len(open_zip(await h.read(output)).namelist()) == 3


@pytest.mark.s3
async def test_frames_on_s3(clip: Path, tmp_path: Path, s3_endpoint: str) -> None:
    async with OpHarness.open(clip, tmp_path, s3_endpoint=s3_endpoint) as h:
        assert h.storage.name == "s3"
        [output] = await h.run(OP, {"fps": 2, "width": 64})
        archive = open_zip(await h.read(output))
    assert len(archive.namelist()) == 4
    assert image_size(archive.read("frame_000004.jpg"), tmp_path) == (64, 48)
    assert progress_ok(h.progress)
    # The scratch copy of the S3 source is gone.
    assert not list((tmp_path / "data" / "tmp").rglob("*.*"))


def test_argv_is_pinned_and_takes_only_validated_numbers(tmp_path: Path, clip: Path) -> None:
    video = fake_video()
    params = {
        "fps": None,
        "every_n_frames": 7,
        "format": "jpg",
        "width": 160,
        "start": 0.25,
        "end": 1.5,
    }
    argv = frames.frames_argv(params, video, Path("/src/object"), tmp_path, max_frames=100)
    i = argv.index("-i")
    assert argv[:2] == ["-ss", "0.25"]  # before -i: fast seek
    assert argv[i - 4 : i] == ["-protocol_whitelist", "file,pipe", "-f", "mov"]
    assert argv[i + 1] == "file:/src/object"
    assert argv[argv.index("-t") + 1] == "1.25"
    assert argv[argv.index("-vf") + 1] == "select=not(mod(n\\,7)),scale=160:120"
    assert argv[argv.index("-fps_mode") + 1] == "vfr"
    assert argv[argv.index("-frames:v") + 1] == "100"
    assert argv[-1] == "file:" + str(tmp_path / "frame_%06d.jpg")

    params.update(fps=0.5, every_n_frames=None, width=None, start=0.0, format="png")
    argv = frames.frames_argv(params, video, Path("/src/object"), tmp_path, max_frames=100)
    assert "-ss" not in argv
    assert argv[argv.index("-vf") + 1] == "fps=0.5"
    assert argv[argv.index("-c:v") + 1] == "png"


# --- the streaming ZIP writer ----------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.largest = 0

    async def __call__(self, chunk: bytes) -> None:
        self.largest = max(self.largest, len(chunk))
        self.buffer.write(chunk)


@pytest.mark.parametrize("force_zip64", [False, True])
async def test_zip_stream_round_trip(tmp_path: Path, force_zip64: bool) -> None:
    files = {
        "frame_000001.jpg": os.urandom(1000),
        "frame_000002.jpg": b"",
        "frame_000003.jpg": os.urandom(9 * 1024 * 1024 + 7),  # read twice, streamed
        "dir/frame_é.png": os.urandom(10),
    }
    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
    sink = Sink()
    archive = ZipStream(sink, force_zip64=force_zip64)
    seen = 0

    def count(n: int) -> None:
        nonlocal seen
        seen += n

    for name in files:
        await archive.add_file(name, tmp_path / name.replace("/", "_"), on_bytes=count)
    size = await archive.finish()
    data = sink.buffer.getvalue()
    assert size == len(data) == archive.bytes_written
    assert seen == sum(len(v) for v in files.values())
    # Streamed: never more than about a megabyte handed over at once.
    assert sink.largest <= 1024 * 1024 + 64

    with open_zip(data) as zf:
        assert zf.namelist() == list(files)
        for name, content in files.items():
            assert zf.read(name) == content
    assert (b"PK\x06\x06" in data[-200:]) == force_zip64  # the ZIP64 end record
    # Every local header carries its sizes: no data descriptors (flag bit 3).
    flags = struct.unpack("<H", data[6:8])[0]
    assert flags & 0x08 == 0

    path = tmp_path / "out.zip"
    path.write_bytes(data)
    unzip = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
    if unzip.returncode != 127:  # unzip is optional on the machine
        assert unzip.returncode == 0, unzip.stdout + unzip.stderr


def test_zip64_fields_appear_exactly_when_a_value_overflows() -> None:
    small = Member(b"a.jpg", 0, 0x1234, 10, 0, 0, 0)
    assert len(local_header(small)) == 30 + 5
    assert len(central_header(small)) == 46 + 5
    assert len(end_records(1, 100, 51)) == 22

    far = Member(b"a.jpg", 0, 0x1234, 10, 5 * 2**30, 0, 0)  # starts past 4 GiB
    header = central_header(far)
    extra = header[46 + 5 :]
    assert struct.unpack("<HHQ", extra) == (0x0001, 8, 5 * 2**30)
    assert struct.unpack("<I", header[42:46])[0] == 0xFFFFFFFF
    assert len(local_header(far)) == 35  # the local header has no offset

    huge = Member(b"a.jpg", 0, 0x1234, 5 * 2**30, 0, 0, 0)  # 5 GiB member
    extra = local_header(huge)[30 + 5 :]
    assert struct.unpack("<HHQQ", extra) == (0x0001, 16, 5 * 2**30, 5 * 2**30)
    extra = central_header(huge)[46 + 5 :]
    assert struct.unpack("<HHQQ", extra) == (0x0001, 16, 5 * 2**30, 5 * 2**30)

    many = end_records(70_000, 100, 51)
    assert many.startswith(b"PK\x06\x06") and len(many) == 56 + 20 + 22
    assert struct.unpack("<HH", many[-22 + 8 : -22 + 12]) == (0xFFFF, 0xFFFF)


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x.jpg", "a/../../x", "a\\b"])
async def test_zip_stream_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ZipStreamError):
        await ZipStream(Sink()).add_file(name, path)
