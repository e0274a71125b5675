"""The rendition ladder and the pure argv/playlist builders of `transcode` and `hls`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from server.errors import BadRequest
from server.jobs.operations import hls, renditions, transcode
from server.jobs.operations.protocol import OperationFailed
from server.jobs.operations.renditions import (
    Rendition,
    Source,
    available_rungs,
    encoder_args,
    filter_graph,
    output_fps,
    parse_renditions,
    plan,
    small_rung,
)
from server.videos.model import Video
from tests.clips import ffmpeg_exe

SETTINGS = Settings(data_dir=Path("/nonexistent"))
INPUTS = ["-protocol_whitelist", "file,pipe", "-f", "mov", "-i", "file:/w/src.mp4"]


def video(
    width: int = 1920,
    height: int = 1080,
    *,
    rotation: int = 0,
    duration: float | None = 10.0,
    fps: float | None = 30.0,
    audio: bool = True,
) -> Video:
    return Video(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        filename="clip.mp4",
        storage_key="videos/x/source",
        size=1,
        sha256="0" * 64,
        content_type="video/mp4",
        kind="video",
        status="ready",
        metadata={
            "duration": duration,
            "width": width,
            "height": height,
            "fps": fps,
            "video_codec": "h264",
            "audio_codec": "aac" if audio else None,
            "rotation": rotation,
        },
        created_at=datetime.now(UTC),
    )


def sizes(width: int, height: int, rotation: int = 0) -> dict[str, tuple[int, int]]:
    source = Source.of(video(width, height, rotation=rotation))
    names = parse_renditions(None, source)
    return {r.name: (r.width, r.height) for r in plan(source, names)}


# --- the ladder ---------------------------------------------------------------


def test_landscape_sources_get_every_rung_up_to_their_height() -> None:
    assert sizes(3840, 2160) == {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
    assert sizes(1920, 1080) == {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}
    assert sizes(1280, 720) == {"480p": (854, 480), "720p": (1280, 720)}
    assert sizes(854, 480) == {"480p": (854, 480)}
    # Between two rungs: the one above is never made.
    assert sizes(1000, 600) == {"480p": (800, 480)}


def test_portrait_sizes_follow_the_display_height() -> None:
    # A phone clip stored 1920x1080 with a quarter turn is shown 1080x1920.
    expected = {"480p": (270, 480), "720p": (406, 720), "1080p": (608, 1080)}
    assert sizes(1920, 1080, rotation=90) == expected
    assert sizes(1920, 1080, rotation=270) == expected
    # Stored upright already: the same.
    assert sizes(1080, 1920) == expected
    # Half a turn changes nothing about the shape.
    assert sizes(1280, 720, rotation=180) == sizes(1280, 720)
    # 854x480 turned: display height 854 allows 480p and 720p.
    assert sizes(854, 480, rotation=90) == {"480p": (270, 480), "720p": (404, 720)}


def test_odd_and_unusual_sizes_come_out_even() -> None:
    for width, height in [(853, 479), (641, 361), (1279, 719), (1919, 1081), (3, 1001)]:
        for w, h in sizes(width, height).values():
            assert w % 2 == 0 and h % 2 == 0 and w >= 2, (width, height, w, h)
    assert sizes(1919, 1081) == {"480p": (852, 480), "720p": (1278, 720), "1080p": (1918, 1080)}
    # Wider than 16:9 keeps its shape.
    assert sizes(2560, 1080)["1080p"] == (2560, 1080)
    assert sizes(1440, 1080)["480p"] == (640, 480)


def test_sources_below_the_ladder_get_one_rendition_at_their_own_height() -> None:
    assert sizes(640, 360) == {"360p": (640, 360)}
    assert sizes(320, 240) == {"240p": (320, 240)}
    assert sizes(641, 361) == {"360p": (640, 360)}
    assert sizes(853, 479) == {"478p": (852, 478)}
    # Portrait below the ladder: display height is the stored width.
    assert sizes(360, 240, rotation=90) == {"360p": (240, 360)}
    assert sizes(16, 2) == {"2p": (16, 2)}


def test_small_rungs_have_scaled_down_caps() -> None:
    rung = small_rung(360)
    assert rung.name == "360p" and rung.height == 360
    assert 200 <= rung.maxrate_kbps < 1400
    assert rung.bufsize_kbps == rung.maxrate_kbps * 3 // 2
    assert small_rung(20).maxrate_kbps == 200  # a floor
    rungs = available_rungs(Source.of(video()))
    # Caps grow with the rung; buffers are 1.5x the cap.
    assert [r.maxrate_kbps for r in rungs] == sorted(r.maxrate_kbps for r in rungs)
    assert all(r.bufsize_kbps * 2 == r.maxrate_kbps * 3 for r in rungs)


def test_output_fps_only_caps() -> None:
    assert output_fps(Source.of(video(fps=30)), 60) is None
    assert output_fps(Source.of(video(fps=120)), 60) == 60
    assert output_fps(Source.of(video(fps=None)), 60) is None


# --- params -------------------------------------------------------------------


def parse(op: Any, raw: Any, v: Video | None = None, **settings: Any) -> dict[str, Any]:
    s = Settings(data_dir=Path("/nonexistent"), **settings) if settings else SETTINGS
    result: dict[str, Any] = op.parse_params(raw, v or video(), s)
    return result


def field_of(op: Any, raw: Any, v: Video | None = None, **settings: Any) -> str:
    with pytest.raises(BadRequest) as caught:
        parse(op, raw, v, **settings)
    field: str = caught.value.details["field"]
    return field


@pytest.mark.parametrize("op", [transcode.OPERATION, hls.OPERATION])
def test_defaults_are_filled_and_parse_again_to_themselves(op: Any) -> None:
    for v in [video(), video(640, 360), video(1920, 1080, rotation=90), video(853, 479)]:
        params = parse(op, {}, v)
        assert params["preset"] == "veryfast"
        assert params["renditions"] == parse_renditions(None, Source.of(v))
        assert parse(op, params, v) == params
    assert parse(op, None)["renditions"] == ["480p", "720p", "1080p"]


def test_hls_segment_seconds() -> None:
    assert parse(hls.OPERATION, {})["segment_seconds"] == 4
    assert parse(hls.OPERATION, {"segment_seconds": 2})["segment_seconds"] == 2
    assert parse(hls.OPERATION, {"segment_seconds": 10})["segment_seconds"] == 10
    for bad in [1, 11, 0, -4, "4", 4.5, True, [4]]:
        assert field_of(hls.OPERATION, {"segment_seconds": bad}) == "params.segment_seconds"
    # transcode has no segments.
    assert field_of(transcode.OPERATION, {"segment_seconds": 4}) == "params.segment_seconds"


@pytest.mark.parametrize("op", [transcode.OPERATION, hls.OPERATION])
def test_renditions_are_validated(op: Any) -> None:
    assert parse(op, {"renditions": ["720p", "480p"]})["renditions"] == ["480p", "720p"]
    assert parse(op, {"renditions": ["1080p"]})["renditions"] == ["1080p"]
    for bad in [[], "720p", ["720"], ["2160p"], ["480p", "480p"], [480], [None], {"a": 1}]:
        assert field_of(op, {"renditions": bad}) == "params.renditions", bad


@pytest.mark.parametrize("op", [transcode.OPERATION, hls.OPERATION])
def test_asking_for_an_upscale_is_a_400_naming_renditions(op: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(op, {"renditions": ["480p", "720p"]}, video(854, 480))
    assert caught.value.details["field"] == "params.renditions"
    assert "never upscaled" in caught.value.message
    # A portrait 854x480 is 854 tall: 720p is fine, 1080p is not.
    assert parse(op, {"renditions": ["720p"]}, video(854, 480, rotation=90))["renditions"] == [
        "720p"
    ]
    assert field_of(op, {"renditions": ["1080p"]}, video(854, 480, rotation=90)).endswith(
        "renditions"
    )
    # Below the ladder only the source's own height is available.
    assert parse(op, {"renditions": ["360p"]}, video(640, 360))["renditions"] == ["360p"]
    assert field_of(op, {"renditions": ["480p"]}, video(640, 360)) == "params.renditions"
    assert field_of(op, {"renditions": ["360p"]}, video(1280, 720)) == "params.renditions"


@pytest.mark.parametrize("op", [transcode.OPERATION, hls.OPERATION])
def test_other_params_and_limits(op: Any) -> None:
    assert parse(op, {"preset": "ultrafast"})["preset"] == "ultrafast"
    for bad in ["placebo", "veryslow", "ULTRAFAST", 3, "-preset"]:
        assert field_of(op, {"preset": bad}) == "params.preset"
    assert field_of(op, {"crf": 18}) == "params.crf"
    assert field_of(op, "renditions") == "params"
    # Limits on the input apply before any work.
    assert field_of(op, {}, video(duration=7200.0), max_input_duration_seconds=3600) == "video"
    assert field_of(op, {}, video(duration=None)) == "video"
    assert field_of(op, {}, video(3840, 2160), max_pixels=1920 * 1080) == "video"


async def test_a_build_without_libx264_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    async def only(ffmpeg: str) -> frozenset[str]:
        return frozenset({"aac", "libvpx"})

    monkeypatch.setattr(renditions, "load_encoders", only)
    with pytest.raises(OperationFailed, match="no libx264 encoder"):
        await renditions.require_encoders("/usr/bin/ffmpeg", audio=True)
    monkeypatch.undo()
    # The build the tests run has both.
    await renditions.require_encoders(ffmpeg_exe(), audio=True)


def test_plan_refuses_what_parse_would_refuse() -> None:
    with pytest.raises(ValueError, match="not available"):
        plan(Source.of(video(854, 480)), ["720p"])


# --- argv -----------------------------------------------------------------------


R480 = Rendition("480p", 854, 480, 1400, 2100, 96, "main")
R720 = Rendition("720p", 1280, 720, 2800, 4200, 128, "high")


def test_filter_graph_decodes_once_and_splits() -> None:
    assert filter_graph([R480], None) == "[0:V:0]scale=854:480,setsar=1,format=yuv420p[v0]"
    assert filter_graph([R480, R720], 60) == (
        "[0:V:0]fps=60,split=2[s0][s1];"
        "[s0]scale=854:480,setsar=1,format=yuv420p[v0];"
        "[s1]scale=1280:720,setsar=1,format=yuv420p[v1]"
    )
    assert filter_graph([R480], 29.97).startswith("[0:V:0]fps=29.97,scale=")


def test_encoder_args() -> None:
    args = encoder_args(1, R720, preset="fast", audio=True)
    assert args == [
        "-map", "[v1]", "-c:v", "libx264", "-preset", "fast", "-crf", "23",
        "-maxrate", "2800k", "-bufsize", "4200k", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        "-map_metadata", "-1", "-map_chapters", "-1",
    ]  # fmt: skip
    silent = encoder_args(0, R480, preset="ultrafast", audio=False, video_extra=["-g", "1"])
    assert "-c:a" not in silent and "0:a:0" not in silent
    assert silent[silent.index("-pix_fmt") + 2 : silent.index("-pix_fmt") + 4] == ["-g", "1"]
    with pytest.raises(ValueError, match="preset"):
        encoder_args(0, R480, preset="; rm -rf /", audio=False)


def test_transcode_args_one_run_many_outputs() -> None:
    args = transcode.transcode_args(
        INPUTS, [R480, R720], preset="veryfast", audio=True, fps=None, out_dir=Path("/w/out")
    )
    assert args[: len(INPUTS)] == INPUTS
    assert args.count("-i") == 1  # decoded once
    assert args.count("-filter_complex") == 1
    assert args.count("+faststart") == 2
    assert args[-1] == "file:/w/out/720p.mp4"
    first = args.index("file:/w/out/480p.mp4")
    assert args[first - 4 : first] == ["-movflags", "+faststart", "-f", "mp4"]
    assert args[first + 1 : first + 3] == ["-map", "[v1]"]
    # Every value in argv is ours: no user-given string can get in.
    assert all(isinstance(a, str) and not a.startswith("http") for a in args)


def test_hls_args() -> None:
    args = hls.hls_args(
        INPUTS,
        [R480, R720],
        preset="ultrafast",
        audio=False,
        fps=None,
        segment_seconds=6,
        out_dir=Path("/w/hls"),
    )
    assert args[: len(INPUTS)] == INPUTS and args.count("-i") == 1
    assert args.count("-f") == 1 + 2  # the input's, then one hls muxer per rendition
    assert args.count("expr:gte(t,n_forced*6)") == 2
    assert args.count("-sc_threshold") == 2
    assert args[-3:] == [
        "-hls_segment_filename",
        "file:/w/hls/720p/segment_%05d.ts",
        "file:/w/hls/720p/index.m3u8",
    ]
    i = args.index("file:/w/hls/480p/index.m3u8")
    tail = args[args.index("[v0]") : i]
    for option, value in [
        ("-hls_time", "6"),
        ("-hls_playlist_type", "vod"),
        ("-start_number", "1"),
        ("-hls_segment_type", "mpegts"),
    ]:
        assert tail[tail.index(option) + 1] == value
    assert "-c:a" not in args
    with pytest.raises(OperationFailed, match="%"):
        hls.hls_args(
            INPUTS,
            [R480],
            preset="ultrafast",
            audio=False,
            fps=None,
            segment_seconds=4,
            out_dir=Path("/w/100%/hls"),
        )


# --- playlists ------------------------------------------------------------------

VARIANT = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:4.000000,
segment_00001.ts
#EXTINF:4.000000,
segment_00002.ts
#EXTINF:2.000000,
segment_00003.ts
#EXT-X-ENDLIST
"""


def test_parse_media_playlist() -> None:
    segments = hls.parse_media_playlist(VARIANT)
    assert [(s.uri, s.duration) for s in segments] == [
        ("segment_00001.ts", 4.0),
        ("segment_00002.ts", 4.0),
        ("segment_00003.ts", 2.0),
    ]
    for bad in [
        VARIANT.replace("segment_00002.ts", "/abs/segment_00002.ts"),
        VARIANT.replace("segment_00002.ts", "http://x/segment_00002.ts"),
        VARIANT.replace("segment_00002.ts", "../segment_00002.ts"),
        "#EXTM3U\n#EXT-X-ENDLIST\n",
    ]:
        with pytest.raises(OperationFailed):
            hls.parse_media_playlist(bad)


def test_bandwidth_is_the_peak_segment_rate() -> None:
    # 1 MB in 4 s = 2 Mbit/s peak; 1.5 MB over 8 s average.
    assert hls.bandwidth([(4.0, 1_000_000), (4.0, 500_000)], 4) == (2_000_000, 1_500_000)
    # A tiny tail is measured with its predecessor, not as a 40 Mbit/s spike.
    peak, average = hls.bandwidth([(4.0, 500_000), (0.1, 500_000)], 4)
    assert peak == average == round(8_000_000 / 4.1)
    # A tail of at least half the target counts on its own.
    assert hls.bandwidth([(4.0, 500_000), (2.0, 500_000)], 4)[0] == 2_000_000
    assert hls.bandwidth([(0.5, 1000)], 4) == (16_000, 16_000)


def test_avc_codec_reads_the_sps() -> None:
    aud = b"\x00\x00\x00\x01\x09\xf0"
    sps = b"\x00\x00\x00\x01\x67\x64\x00\x1f\xac\xd9"
    assert hls.avc_codec(b"\x47\x40" + aud + sps + b"\x00\x00\x01\x68") == "avc1.64001f"
    assert hls.avc_codec(b"\x00\x00\x01\x27\x4d\x40\x1e") == "avc1.4d401e"
    assert hls.avc_codec(aud + b"\x00\x00\x01\x67\x64") is None  # truncated
    assert hls.avc_codec(b"") is None


def test_master_playlist() -> None:
    text = hls.master_playlist(
        [
            hls.Variant("720p/index.m3u8", 1280, 720, 3_000_000, 2_000_000, "avc1.64001f", 30),
            hls.Variant(
                "480p/index.m3u8", 854, 480, 1_500_000, 900_000, "avc1.4d401e,mp4a.40.2", None
            ),
        ]
    )
    assert text == (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1500000,AVERAGE-BANDWIDTH=900000,CODECS="avc1.4d401e,'
        'mp4a.40.2",RESOLUTION=854x480\n480p/index.m3u8\n'
        '#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2000000,CODECS="avc1.64001f",'
        "RESOLUTION=1280x720,FRAME-RATE=30.000\n720p/index.m3u8\n"
    )
