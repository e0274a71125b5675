"""parse_params of frames, thumbnail and convert: defaults, limits, and a 400 naming
the field for every kind of bad input — all before any work starts.

No ffmpeg runs here except `-encoders` (convert asks which encoders exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from server.errors import BadRequest
from server.jobs.operations import convert, frames, thumbnail
from server.jobs.operations.argv import decimal
from server.jobs.operations.frames import FramesParams
from server.jobs.operations.geometry import display_size, fit_size
from server.jobs.operations.params import read_params
from server.jobs.operations.protocol import Operation
from server.media.binary import resolve_ffmpeg
from server.media.encoders import available_encoders
from server.videos.model import Video
from tests.op_harness import fake_video as make_video


@pytest.fixture
def settings(tmp_path: Path) -> Settings:  # overrides conftest's: no database here
    return Settings(data_dir=tmp_path)


def limits(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)


def field_of(op: Operation, params: Any, video: Video, settings: Settings) -> str:
    with pytest.raises(BadRequest) as caught:
        op.parse_params(params, video, settings)
    error = caught.value
    assert error.status == 400
    assert error.details["field"] in error.message
    return str(error.details["field"])


F, T, C = frames.OPERATION, thumbnail.OPERATION, convert.OPERATION

# (operation, kind, params, extra metadata, settings overrides, the field named)
BAD: list[tuple[Operation, str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    # --- frames -------------------------------------------------------------
    (F, "video", {"bogus": 1}, {}, {}, "bogus"),
    (F, "video", {"fps": "1"}, {}, {}, "fps"),
    (F, "video", {"fps": True}, {}, {}, "fps"),
    (F, "video", {"fps": 0}, {}, {}, "fps"),
    (F, "video", {"fps": -1}, {}, {}, "fps"),
    (F, "video", {"fps": 30.5}, {}, {}, "fps"),
    (F, "video", {"fps": float("nan")}, {}, {}, "fps"),
    (F, "video", {"fps": float("inf")}, {}, {}, "fps"),
    (F, "video", {"fps": 20}, {}, {"max_output_fps": 10.0}, "fps"),
    (F, "video", {"every_n_frames": 1.5}, {}, {}, "every_n_frames"),
    (F, "video", {"every_n_frames": 0}, {}, {}, "every_n_frames"),
    (F, "video", {"every_n_frames": True}, {}, {}, "every_n_frames"),
    (F, "video", {"fps": 1, "every_n_frames": 2}, {}, {}, "every_n_frames"),
    (F, "video", {"format": "gif"}, {}, {}, "format"),
    (F, "video", {"format": 1}, {}, {}, "format"),
    (F, "video", {"width": 161}, {}, {}, "width"),
    (F, "video", {"width": 8}, {}, {}, "width"),
    (F, "video", {"width": 640}, {}, {}, "width"),  # no upscaling
    (F, "video", {"width": "160"}, {}, {}, "width"),
    (F, "video", {"start": -1}, {}, {}, "start"),
    (F, "video", {"start": 2}, {}, {}, "start"),
    (F, "video", {"end": 3}, {}, {}, "end"),
    (F, "video", {"start": 1, "end": 1}, {}, {}, "end"),
    (F, "video", {"start": 1.5, "end": 0.5}, {}, {}, "end"),
    (F, "video", {"fps": 10}, {}, {"max_frames_per_zip": 10}, "fps"),
    (F, "video", {"every_n_frames": 1}, {}, {"max_frames_per_zip": 10}, "every_n_frames"),
    # unknown source rate: estimated at max_output_fps (60/s x 2 s = 120 frames)
    (
        F,
        "video",
        {"every_n_frames": 10},
        {"fps": None},
        {"max_frames_per_zip": 11},
        "every_n_frames",
    ),
    (F, "video", {"width": 160}, {}, {"max_pixels": 5000}, "width"),
    (F, "video", {}, {}, {"max_input_duration_seconds": 1.0}, "video"),
    (F, "video", {}, {"duration": None}, {}, "video"),
    # --- thumbnail ----------------------------------------------------------
    (T, "video", {"time": 2}, {}, {}, "time"),
    (T, "video", {"time": -0.1}, {}, {}, "time"),
    (T, "video", {"time": "1"}, {}, {}, "time"),
    (T, "video", {"width": 322}, {}, {}, "width"),
    (T, "video", {"width": 99}, {}, {}, "width"),
    (T, "video", {"sprite": 1}, {}, {}, "sprite"),
    (T, "video", {"sprite": "true"}, {}, {}, "sprite"),
    (T, "video", {"sprite_interval": 1}, {}, {}, "sprite_interval"),
    (T, "video", {"sprite": False, "sprite_columns": 3}, {}, {}, "sprite_columns"),
    (T, "video", {"sprite": True, "sprite_interval": 0.01}, {}, {}, "sprite_interval"),
    (T, "video", {"sprite": True, "sprite_interval": 3}, {}, {}, "sprite_interval"),
    (T, "video", {"sprite": True, "sprite_columns": 0}, {}, {}, "sprite_columns"),
    (T, "video", {"sprite": True, "sprite_columns": 51}, {}, {}, "sprite_columns"),
    (T, "video", {"sprite": True, "sprite_width": 14}, {}, {}, "sprite_width"),
    (T, "video", {"sprite": True, "sprite_width": 642}, {}, {}, "sprite_width"),
    (T, "video", {"sprite": True, "sprite_width": 161}, {}, {}, "sprite_width"),
    # 1000 s every 0.2 s: 5000 tiles
    (
        T,
        "video",
        {"sprite": True, "sprite_interval": 0.2},
        {"duration": 1000.0},
        {},
        "sprite_interval",
    ),
    # 2000 tiles in one column: 240,000 px tall
    (
        T,
        "video",
        {"sprite": True, "sprite_interval": 1, "sprite_columns": 1},
        {"duration": 2000.0},
        {},
        "sprite_interval",
    ),
    (T, "video", {"sprite": True, "width": 16}, {}, {"max_pixels": 5000}, "sprite_width"),
    (T, "image", {"time": 1}, {}, {}, "time"),
    (T, "image", {"sprite": True}, {}, {}, "sprite"),
    (T, "image", {"width": 301}, {}, {}, "width"),
    (T, "image", {"width": 0}, {}, {}, "width"),
    (T, "image", {"bogus": 1}, {}, {}, "bogus"),
    # --- convert ------------------------------------------------------------
    (C, "video", {"container": "avi"}, {}, {}, "container"),
    (C, "video", {"container": ["mp4"]}, {}, {}, "container"),
    (C, "video", {"container": "webm", "video_codec": "h264"}, {}, {}, "video_codec"),
    (C, "video", {"container": "mov", "video_codec": "vp9"}, {}, {}, "video_codec"),
    (C, "video", {"video_codec": "hevc"}, {}, {}, "video_codec"),
    (C, "video", {"container": "gif", "video_codec": "h264"}, {}, {}, "video_codec"),
    (C, "video", {"container": "gif", "crf": 20}, {}, {}, "crf"),
    (C, "video", {"container": "gif", "bitrate": "1M"}, {}, {}, "bitrate"),
    (C, "video", {"container": "gif", "audio": True}, {}, {}, "audio"),
    (C, "video", {"container": "gif", "fps": 31}, {}, {}, "fps"),
    # a 1000 s GIF at 15 fps would hold 15,000 frames in the palette graph
    (C, "video", {"container": "gif"}, {"duration": 1000.0}, {}, "end"),
    (C, "video", {"crf": 52}, {}, {}, "crf"),
    (C, "video", {"crf": -1}, {}, {}, "crf"),
    (C, "video", {"crf": 20.5}, {}, {}, "crf"),
    (C, "video", {"video_codec": "vp9", "crf": 64}, {}, {}, "crf"),
    (C, "video", {"video_codec": "av1", "crf": 0}, {}, {}, "crf"),
    (C, "video", {"crf": 20, "bitrate": "2M"}, {}, {}, "crf"),
    (C, "video", {"bitrate": "fast"}, {}, {}, "bitrate"),
    (C, "video", {"bitrate": "2 Mbps"}, {}, {}, "bitrate"),
    (C, "video", {"bitrate": 10}, {}, {}, "bitrate"),
    (C, "video", {"bitrate": "200M"}, {}, {}, "bitrate"),
    (C, "video", {"bitrate": True}, {}, {}, "bitrate"),
    (C, "video", {"bitrate": 1.5}, {}, {}, "bitrate"),
    (C, "video", {"audio": 1}, {}, {}, "audio"),
    (C, "video", {"audio": "no"}, {}, {}, "audio"),
    (C, "video", {"width": 321}, {}, {}, "width"),
    (C, "video", {"width": 8}, {}, {}, "width"),
    (C, "video", {"height": 10000}, {}, {}, "height"),
    (C, "video", {"width": 320}, {}, {"max_pixels": 5000}, "width"),
    (C, "video", {"height": 240}, {}, {"max_pixels": 5000}, "height"),
    (C, "video", {"fps": 0.5}, {}, {}, "fps"),
    (C, "video", {"fps": 61}, {}, {}, "fps"),
    (C, "video", {"fps": "30"}, {}, {}, "fps"),
    (C, "video", {"start": 3}, {}, {}, "start"),
    (C, "video", {"end": 5}, {}, {}, "end"),
    (C, "video", {"format": "png"}, {}, {}, "format"),
    (C, "video", {"bogus": None}, {}, {}, "bogus"),
    (C, "video", {}, {}, {"max_input_duration_seconds": 1.5}, "video"),
    (C, "image", {"container": "mp4"}, {}, {}, "container"),
    (C, "image", {"start": 0}, {}, {}, "start"),
    (C, "image", {"format": "gif"}, {}, {}, "format"),
    (C, "image", {"width": 0}, {}, {}, "width"),
    (C, "image", {"width": 20000}, {}, {}, "width"),
    (C, "image", {"height": 4000}, {}, {"max_pixels": 5000}, "height"),
]


@pytest.mark.parametrize(
    ("op", "kind", "params", "meta", "overrides", "field"),
    BAD,
    ids=[f"{b[0].name}-{b[1]}-{b[2]}-{b[4]}"[:90] for b in BAD],
)
def test_bad_params_are_400_naming_the_field(
    tmp_path: Path,
    op: Operation,
    kind: str,
    params: dict[str, Any],
    meta: dict[str, Any],
    overrides: dict[str, Any],
    field: str,
) -> None:
    video = make_video(kind, **meta)
    named = field_of(op, params, video, limits(tmp_path, **overrides))
    expected = field if field == "video" else f"params.{field}"
    assert named == expected


HUGE = 10**400  # JSON allows it; a float cannot hold it (issue 9 #2)

# Every numeric param, with what else it needs to be read at all.
NUMERIC: list[tuple[Operation, str, str, dict[str, Any]]] = [
    (F, "video", "fps", {}),
    (F, "video", "every_n_frames", {}),
    (F, "video", "width", {}),
    (F, "video", "start", {}),
    (F, "video", "end", {}),
    (T, "video", "time", {}),
    (T, "video", "width", {}),
    (T, "video", "sprite_interval", {"sprite": True}),
    (T, "video", "sprite_columns", {"sprite": True}),
    (T, "video", "sprite_width", {"sprite": True}),
    (T, "image", "width", {}),
    (C, "video", "width", {}),
    (C, "video", "height", {}),
    (C, "video", "crf", {}),
    (C, "video", "bitrate", {}),
    (C, "video", "fps", {}),
    (C, "video", "start", {}),
    (C, "video", "end", {}),
    (C, "image", "width", {}),
    (C, "image", "height", {}),
]


@pytest.mark.parametrize(
    "value",
    [HUGE, -HUGE, float("nan"), float("inf"), -float("inf"), True],
    ids=["huge", "-huge", "nan", "inf", "-inf", "true"],
)
@pytest.mark.parametrize(
    ("op", "kind", "name", "extra"), NUMERIC, ids=[f"{n[0].name}-{n[1]}-{n[2]}" for n in NUMERIC]
)
def test_numbers_out_of_any_range_are_400_naming_the_field(
    settings: Settings, op: Operation, kind: str, name: str, extra: dict[str, Any], value: Any
) -> None:
    """Huge integers, NaN, infinities and booleans: a 400 on the field, never a 500."""
    assert field_of(op, {**extra, name: value}, make_video(kind), settings) == f"params.{name}"


@pytest.mark.parametrize("op", [F, T, C])
@pytest.mark.parametrize("raw", [[1], "fps=1", 3])
def test_params_must_be_an_object(settings: Settings, op: Operation, raw: Any) -> None:
    assert field_of(op, raw, make_video(), settings) == "params"


def test_unknown_param_message_lists_the_known_ones(settings: Settings) -> None:
    with pytest.raises(BadRequest) as caught:
        F.parse_params({"fsp": 1}, make_video(), settings)
    assert caught.value.details == {"field": "params.fsp"}
    assert "every_n_frames" in caught.value.message and "fps" in caught.value.message
    # A huge unknown name is not echoed whole.
    with pytest.raises(BadRequest) as caught:
        F.parse_params({"x" * 10_000: 1}, make_video(), settings)
    assert len(caught.value.message) < 300


def test_av1_is_refused_naming_the_field_when_the_build_has_no_encoder(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_av1 = frozenset({"libx264", "libvpx-vp9", "aac", "libopus", "mjpeg", "png", "gif"})
    monkeypatch.setattr(convert, "_encoders", lambda _settings: no_av1)
    with pytest.raises(BadRequest) as caught:
        C.parse_params({"video_codec": "av1"}, make_video(), settings)
    assert caught.value.details["field"] == "params.video_codec"
    assert "av1" in caught.value.message
    # ... and webm without any of its audio encoders refuses `audio`, unless it is off.
    monkeypatch.setattr(convert, "_encoders", lambda _settings: frozenset({"libvpx-vp9"}))
    assert field_of(C, {"container": "webm"}, make_video(), settings) == "params.audio"
    assert C.parse_params({"container": "webm", "audio": False}, make_video(), settings)
    # A silent source needs no audio encoder.
    assert C.parse_params({"container": "webm"}, make_video(audio_codec=None), settings)
    assert field_of(C, {"format": "webp"}, make_video("image"), settings) == "params.format"


# --- defaults --------------------------------------------------------------


def test_defaults_are_filled(settings: Settings) -> None:
    video = make_video()
    assert F.parse_params({}, video, settings) == {
        "fps": 1.0,
        "every_n_frames": None,
        "format": "jpg",
        "width": None,
        "start": 0.0,
        "end": 2.0,
    }
    assert T.parse_params({}, video, settings) == {
        "time": pytest.approx(0.2),
        "width": None,
        "sprite": False,
        "sprite_interval": None,
        "sprite_columns": None,
        "sprite_width": None,
    }
    assert T.parse_params({"sprite": True}, video, settings) == {
        "time": pytest.approx(0.2),
        "width": None,
        "sprite": True,
        "sprite_interval": 1.0,  # max(1, duration / 100)
        "sprite_columns": 10,
        "sprite_width": 160,
    }
    long_video = make_video(duration=600.0)
    assert T.parse_params({"sprite": True}, long_video, settings)["sprite_interval"] == 6.0
    assert C.parse_params({}, video, settings) == {
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
    assert T.parse_params({}, make_video("image"), settings) == {"width": None}
    # An image keeps its own format unless told otherwise.
    assert C.parse_params({}, make_video("image"), settings) == {
        "width": None,
        "height": None,
        "format": "png",
    }


def test_convert_defaults_per_container(settings: Settings) -> None:
    video = make_video()
    webm = C.parse_params({"container": "webm"}, video, settings)
    assert (webm["video_codec"], webm["crf"]) == ("vp9", 32)
    gif = C.parse_params({"container": "gif"}, video, settings)
    assert gif["video_codec"] is None and gif["crf"] is None and gif["audio"] is False
    assert gif["fps"] == 15.0 and gif["width"] == 320  # source narrower than the 480 default
    wide = make_video(width=1920, height=1080, fps=10.0)
    gif = C.parse_params({"container": "gif"}, wide, settings)
    assert gif["width"] == 480 and gif["fps"] == 10.0  # never above the source rate
    mkv = C.parse_params({"container": "mkv", "bitrate": "1.5M"}, video, settings)
    assert (mkv["video_codec"], mkv["crf"], mkv["bitrate"]) == ("h264", None, 1500)
    assert C.parse_params({"bitrate": "500k"}, video, settings)["bitrate"] == 500
    assert C.parse_params({"bitrate": 800}, video, settings)["bitrate"] == 800
    # A source above the frame-rate limit is capped even when fps is not asked for.
    fast = make_video(fps=120.0)
    assert C.parse_params({}, fast, settings)["fps"] == settings.max_output_fps


@pytest.mark.parametrize(
    ("op", "kind", "params"),
    [
        (F, "video", {}),
        (F, "video", {"every_n_frames": 5, "width": 160, "format": "png", "start": 0.5}),
        (F, "video", {"fps": 2.5, "end": 1.25}),
        (T, "video", {}),
        (T, "video", {"time": 1, "width": 100, "sprite": True, "sprite_interval": 0.5}),
        (T, "image", {"width": 10}),
        (C, "video", {}),
        (C, "video", {"container": "gif", "start": 1}),
        (C, "video", {"container": "webm", "bitrate": "1M", "audio": False, "fps": 12}),
        (C, "video", {"height": 120}),
        (C, "image", {"format": "webp", "width": 50}),
    ],
)
@pytest.mark.parametrize(
    "meta",
    [{}, {"duration": 0.5, "fps": 0.5}, {"duration": 60.0, "fps": 120.0, "rotation": 270}],
    ids=["2s", "short-slow", "long-fast-rotated"],
)
def test_parsed_params_parse_to_themselves(
    settings: Settings, op: Operation, kind: str, params: dict[str, Any], meta: dict[str, Any]
) -> None:
    """The runner may validate the stored, already-parsed params again at run time."""
    video = make_video(kind, **(meta if kind == "video" else {}))
    if kind == "video":
        params = {k: v for k, v in params.items() if k not in ("start", "end", "time")}
    parsed = op.parse_params(params, video, settings)
    assert op.parse_params(parsed, video, settings) == parsed
    assert op.parse_params(params, video, settings) == parsed


def test_limits_are_inclusive(tmp_path: Path, settings: Settings) -> None:
    video = make_video()
    few = limits(tmp_path, max_frames_per_zip=4)
    assert F.parse_params({"fps": 2}, video, few)["fps"] == 2.0
    assert F.parse_params({"every_n_frames": 13}, video, few)["every_n_frames"] == 13
    small = limits(tmp_path, max_pixels=160 * 120)
    assert F.parse_params({"width": 160}, video, small)["width"] == 160
    assert C.parse_params({"width": 160}, video, small)["width"] == 160
    assert F.parse_params({"fps": 30}, video, settings)["fps"] == 30.0
    assert F.parse_params({"end": 2.0}, video, settings)["end"] == 2.0
    assert T.parse_params({"time": 1.999}, video, settings)["time"] == 1.999
    short = limits(tmp_path, max_input_duration_seconds=2.0)
    assert F.parse_params({}, video, short)["end"] == 2.0


def test_rotation_swaps_the_bounds_of_width(settings: Settings) -> None:
    portrait = make_video(rotation=90)  # stored 320x240, shown 240x320
    assert display_size(portrait) == (240, 320)
    assert F.parse_params({"width": 240}, portrait, settings)["width"] == 240
    assert field_of(F, {"width": 242}, portrait, settings) == "params.width"


# --- the shared helpers ------------------------------------------------------


def test_fit_size_keeps_the_aspect_like_ffmpeg_scale() -> None:
    assert fit_size((320, 240), 160, None, even=True) == (160, 120)
    assert fit_size((320, 240), None, 120, even=True) == (160, 120)
    assert fit_size((1920, 1080), 640, None, even=True) == (640, 360)
    # 854 * 1080 / 1920 = 480.4 -> 480; 100 * 200 / 300 = 66.7 -> 67 (odd allowed)
    assert fit_size((1920, 1080), 854, None, even=True) == (854, 480)
    assert fit_size((300, 200), 100, None, even=False) == (100, 67)
    assert fit_size((300, 200), 100, None, even=True) == (100, 66)
    assert fit_size((320, 240), 100, 50, even=True) == (100, 50)
    assert fit_size((320, 240), None, None, even=True) == (320, 240)
    assert fit_size((4000, 10), 16, None, even=True) == (16, 2)  # never 0


def test_decimal_is_plain() -> None:
    assert decimal(1.0) == "1"
    assert decimal(0.5) == "0.5"
    assert decimal(0.001) == "0.001"
    assert decimal(1 / 3) == "0.333333"
    assert decimal(3600.25) == "3600.25"
    assert decimal(0.0) == "0"
    assert decimal(-3.0) == "-3"


def test_read_params_treats_null_as_absent(settings: Settings) -> None:
    params = read_params(FramesParams, {"format": None, "width": 160}, settings)
    assert params.model_fields_set == {"width"}
    assert params.format == "jpg"
    assert read_params(FramesParams, None, settings) == FramesParams()


def test_the_build_lists_its_encoders() -> None:
    encoders = available_encoders(resolve_ffmpeg(""))
    assert {"mjpeg", "png", "gif", "aac"} <= encoders
