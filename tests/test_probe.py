"""Probing: the pure stderr parser, the safe ffmpeg runner, and real ffmpeg on real clips.

Parser samples were captured from the ffmpeg 9.0.2 bundled with imageio-ffmpeg
and from Debian's ffmpeg 5.1.9 running the exact probe command line (paths
rewritten); the ffmpeg 4.x one is written by hand after that release's format.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from config.settings import Settings
from server.media import binary
from server.media.binary import FfmpegNotFoundError, resolve_ffmpeg
from server.media.probe import (
    MediaInfo,
    ProbeError,
    decoded_frames,
    error_reason,
    parse_probe_output,
    probe,
    probe_argv,
)
from server.media.process import FfmpegResult, FfmpegTimeout, StderrCollector, run_ffmpeg
from server.media.sniff import SNIFF_BYTES, sniff
from tests import clips

# The server's default limit, which the upload path passes to every probe.
MAX_PIXELS = Settings().max_pixels

FF9_MP4 = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/var/lib/frameflow/tmp/a.mp4':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf63.1.102
  Duration: 00:00:01.00, start: 0.000000, bitrate: 245 kb/s
  Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 162 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
    Metadata:
      handler_name    : VideoHandler
      encoder         : Lavc63.1.102 libx264
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 65 kb/s (default)
    Metadata:
      handler_name    : SoundHandler
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf63.1.102
  Stream #0:0(und): Video: wrapped_avframe, yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 200 kb/s, 25 fps, 25 tbn (default)
    Metadata:
      encoder         : Lavc63.1.102 wrapped_avframe
      handler_name    : VideoHandler
[out#0/null @ 0x5607f9f8a340] video:0KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: unknown
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=1.62x elapsed=0:00:00.02
"""  # noqa: E501

FF9_WEBM = """\
Input #0, matroska,webm, from 'file:/var/lib/frameflow/tmp/a.webm':
  Metadata:
    ENCODER         : Lavf63.1.102
  Duration: 00:00:01.01, start: 0.000000, bitrate: 245 kb/s
  Stream #0:0: Video: vp9 (Profile 0), yuv420p(tv, progressive), 320x240, SAR 1:1 DAR 4:3, 25 fps, 25 tbr, 1k tbn
    Metadata:
      ENCODER         : Lavc63.1.102 libvpx-vp9
      DURATION        : 00:00:01.000000000
  Stream #0:1: Audio: opus, 48000 Hz, mono, fltp
    Metadata:
      ENCODER         : Lavc63.1.102 libopus
      DURATION        : 00:00:01.008000000
Stream mapping:
  Stream #0:0 -> #0:0 (vp9 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    encoder         : Lavf63.1.102
  Stream #0:0: Video: wrapped_avframe, yuv420p(tv, progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 200 kb/s, 25 fps, 25 tbn
    Metadata:
      encoder         : Lavc63.1.102 wrapped_avframe
      DURATION        : 00:00:01.000000000
[out#0/null @ 0x564c2b06fbc0] video:0KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: unknown
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=4.57x elapsed=0:00:00.00
"""  # noqa: E501

FF9_PHONE = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/var/lib/frameflow/tmp/phone.mp4':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf63.1.102
  Duration: 00:00:01.00, start: 0.000000, bitrate: 245 kb/s
  Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 162 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
    Metadata:
      handler_name    : VideoHandler
      encoder         : Lavc63.1.102 libx264
    Side data:
      Display Matrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 65 kb/s (default)
    Metadata:
      handler_name    : SoundHandler
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf63.1.102
  Stream #0:0(und): Video: wrapped_avframe, yuv420p(progressive), 240x320 [SAR 1:1 DAR 3:4], q=2-31, 200 kb/s, 25 fps, 25 tbn (default)
    Metadata:
      encoder         : Lavc63.1.102 wrapped_avframe
      handler_name    : VideoHandler
[out#0/null @ 0x5593b233a240] video:0KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: unknown
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=5.69x elapsed=0:00:00.00
"""  # noqa: E501

FF9_PNG = """\
Input #0, png_pipe, from 'file:/var/lib/frameflow/tmp/i.png':
  Duration: N/A, bitrate: N/A
  Stream #0:0: Video: png, rgb24(pc, gbr/unknown/unknown), 320x240 [SAR 1:1 DAR 4:3], 25 fps, 25 tbr, 25 tbn
Stream mapping:
  Stream #0:0 -> #0:0 (png (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    encoder         : Lavf63.1.102
  Stream #0:0: Video: wrapped_avframe, rgb24(pc, gbr/unknown/unknown, progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 200 kb/s, 25 fps, 25 tbn
    Metadata:
      encoder         : Lavc63.1.102 wrapped_avframe
[out#0/null @ 0x561112f3b300] video:0KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: unknown
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=29.7x elapsed=0:00:00.00
"""  # noqa: E501

FF9_TS = """\
Input #0, mpegts, from 'file:/var/lib/frameflow/tmp/a.ts':
  Duration: 00:00:01.02, start: 1.400000, bitrate: 293 kb/s
  Program 1
    Metadata:
      service_name    : Service01
      service_provider: FFmpeg
  Stream #0:0[0x100]: Video: h264 (Constrained Baseline) ([27][0][0][0] / 0x001B), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 25 fps, 25 tbr, 90k tbn, start 1.421333
  Stream #0:1[0x101]: Audio: aac (LC) ([15][0][0][0] / 0x000F), 48000 Hz, mono, fltp, 67 kb/s, start 1.400000
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    encoder         : Lavf63.1.102
  Stream #0:0: Video: wrapped_avframe, yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 200 kb/s, 25 fps, 25 tbn
    Metadata:
      encoder         : Lavc63.1.102 wrapped_avframe
[out#0/null @ 0x55e52f357140] video:0KiB audio:0KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing overhead: unknown
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=8.93x elapsed=0:00:00.00
"""  # noqa: E501

FF5_PHONE = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/var/lib/frameflow/tmp/phone.mp4':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf63.1.102
  Duration: 00:00:01.00, start: 0.000000, bitrate: 245 kb/s
  Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 162 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
    Metadata:
      handler_name    : VideoHandler
      vendor_id       : [0][0][0][0]
      encoder         : Lavc63.1.102 libx264
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 65 kb/s (default)
    Metadata:
      handler_name    : SoundHandler
      vendor_id       : [0][0][0][0]
Stream mapping:
  Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    encoder         : Lavf59.27.100
  Stream #0:0(und): Video: wrapped_avframe, yuv420p(progressive), 240x320 [SAR 1:1 DAR 3:4], q=2-31, 200 kb/s, 25 fps, 25 tbn (default)
    Metadata:
      handler_name    : VideoHandler
      vendor_id       : [0][0][0][0]
      encoder         : Lavc59.37.100 wrapped_avframe
    Side data:
      displaymatrix: rotation of -0.00 degrees
frame=    1 fps=0.0 q=-0.0 size=N/A time=00:00:00.04 bitrate=N/A speed=5.46x    \rframe=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=3.65x
video:0kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
"""  # noqa: E501

FF5_AVI = """\
Input #0, avi, from 'file:/var/lib/frameflow/tmp/a.avi':
  Metadata:
    software        : Lavf59.27.100
  Duration: 00:00:01.04, start: 0.000000, bitrate: 279 kb/s
  Stream #0:0: Video: mpeg4 (Simple Profile) (FMP4 / 0x34504D46), yuv420p, 320x240 [SAR 1:1 DAR 4:3], 25 fps, 25 tbr, 25 tbn
  Stream #0:1: Audio: mp3 (U[0][0][0] / 0x0055), 48000 Hz, mono, fltp, 64 kb/s
Stream mapping:
  Stream #0:0 -> #0:0 (mpeg4 (native) -> wrapped_avframe (native))
Output #0, null, to 'pipe:':
  Metadata:
    software        : Lavf59.27.100
    encoder         : Lavf59.27.100
  Stream #0:0: Video: wrapped_avframe, yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], q=2-31, 200 kb/s, 25 fps, 25 tbn
    Metadata:
      encoder         : Lavc59.37.100 wrapped_avframe
frame=    1 fps=0.0 q=-0.0 size=N/A time=00:00:00.04 bitrate=N/A speed=9.33x
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.04 bitrate=N/A speed=6.92x
video:0kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
"""  # noqa: E501


# ffmpeg 4.4 printed streams 4 spaces deep with their Metadata at the same
# depth, had no "[0x1]" stream ids for mp4, still printed "tbc", and exported
# the rotation twice: as a "rotate" tag and as display matrix side data.
FF4_IPHONE = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/var/lib/frameflow/tmp/IMG_0420.MOV':
  Metadata:
    major_brand     : qt
    minor_version   : 0
    compatible_brands: qt
    creation_time   : 2021-06-01T12:00:00.000000Z
    com.apple.quicktime.make: Apple
    com.apple.quicktime.model: iPhone 12
  Duration: 00:00:03.03, start: 0.000000, bitrate: 11305 kb/s
    Stream #0:0(und): Video: hevc (Main 10) (hvc1 / 0x31637668), yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67), 1920x1080, 11032 kb/s, 29.98 fps, 29.97 tbr, 600 tbn, 600 tbc (default)
    Metadata:
      rotate          : 90
      creation_time   : 2021-06-01T12:00:00.000000Z
      handler_name    : Core Media Video
      encoder         : HEVC
    Side data:
      DOVI configuration record: version: 1.0, profile: 8, level: 4, rpu flag: 1, el flag: 0, bl flag: 1, compatibility id: 4
      displaymatrix: rotation of -90.00 degrees
    Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 187 kb/s (default)
    Metadata:
      creation_time   : 2021-06-01T12:00:00.000000Z
      handler_name    : Core Media Audio
    Stream #0:2(und): Data: none (mebx / 0x7862656D), 0 kb/s (default)
    Metadata:
      creation_time   : 2021-06-01T12:00:00.000000Z
      handler_name    : Core Media Metadata
Stream mapping:
  Stream #0:0 -> #0:0 (hevc (native) -> wrapped_avframe (native))
Press [q] to stop, [?] for help
Output #0, null, to 'pipe:':
  Metadata:
    encoder         : Lavf58.76.100
    Stream #0:0(und): Video: wrapped_avframe, yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67), 1080x1920, q=2-31, 200 kb/s, 29.97 fps, 29.97 tbn (default)
    Metadata:
      encoder         : Lavc58.134.100 wrapped_avframe
frame=    1 fps=0.0 q=-0.0 Lsize=N/A time=00:00:00.03 bitrate=N/A speed=0.5x
video:1kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: unknown
"""  # noqa: E501

# Older files and ffmpeg builds carry only the tag.
FF4_TAG_ONLY = FF4_IPHONE.replace("      displaymatrix: rotation of -90.00 degrees\n", "").replace(
    "rotate          : 90", "rotate          : 270"
)

ATTACHED_PIC_FIRST = """\
Input #0, matroska,webm, from 'file:/x.mkv':
  Duration: 01:02:03.50, start: 0.000000, bitrate: 1500 kb/s
  Chapters:
    Chapter #0:0: start 0.000000, end 60.000000
      Metadata:
        title           : Opening
  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x600, 90k tbr, 90k tbn (attached pic)
    Metadata:
      filename        : cover.jpg
      mimetype        : image/jpeg
  Stream #0:1(eng): Audio: vorbis, 48000 Hz, stereo, fltp (default)
[matroska,webm @ 0x55d0c0a0b0c0] Could not find codec parameters for stream 2: unknown
  Stream #0:2(eng): Video: h264 (High), yuv420p(tv, bt709, progressive), 1280x720 [SAR 1:1 DAR 16:9], 23.98 fps, 23.98 tbr, 1k tbn (default)
    Side data:
      Display Matrix: rotation of 180.00 degrees
  Stream #0:3: Attachment: ttf
    Metadata:
      filename        : font.ttf
Stream mapping:
"""  # noqa: E501

VFR_NO_FPS = """\
Input #0, matroska,webm, from 'file:/x.webm':
  Duration: 00:00:10.00, start: 0.000000, bitrate: N/A
  Stream #0:0: Video: av1 (libdav1d) (Main), yuv420p10le(tv, bt709), 3840x2160, SAR 1:1 DAR 16:9, 59.94 tbr, 1k tbn
"""  # noqa: E501

AUDIO_ONLY = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/x.mp4':
  Duration: 00:00:01.00, start: 0.000000, bitrate: 80 kb/s
  Stream #0:0[0x1](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, mono, fltp, 70 kb/s (default)
Stream map '0:V:0' matches no streams.
"""  # noqa: E501

NO_SIZE = """\
Input #0, avi, from 'file:/x.avi':
  Duration: 00:00:01.00, start: 0.000000, bitrate: 80 kb/s
  Stream #0:0: Video: none (XVID / 0x44495658), none, 25 fps, 25 tbr, 25 tbn
"""


# --- parse_probe_output -------------------------------------------------------


def test_parse_ffmpeg9_mp4_h264_aac() -> None:
    info = parse_probe_output(FF9_MP4)
    assert info == MediaInfo(
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration=1.0,
        bitrate=245_000,
        width=320,
        height=240,
        fps=25.0,
        video_codec="h264",
        pixel_format="yuv420p",
        audio_codec="aac",
        rotation=0,
    )


def test_parse_ffmpeg9_webm_vp9_opus() -> None:
    info = parse_probe_output(FF9_WEBM)
    assert info.container == "matroska,webm"
    assert (info.width, info.height, info.fps) == (320, 240, 25.0)
    assert (info.video_codec, info.audio_codec) == ("vp9", "opus")
    assert info.pixel_format == "yuv420p"
    assert info.duration == pytest.approx(1.01)
    assert info.bitrate == 245_000


def test_parse_ffmpeg9_rotated_phone_video_ignores_output_section() -> None:
    info = parse_probe_output(FF9_PHONE)
    # "Display Matrix: rotation of -90.00 degrees" is a clockwise quarter turn;
    # the Output section's already-rotated 240x320 is not the upload.
    assert info.rotation == 90
    assert (info.width, info.height) == (320, 240)


def test_parse_ffmpeg9_png_image() -> None:
    info = parse_probe_output(FF9_PNG)
    assert info.container == "png_pipe"
    assert info.duration is None
    assert info.bitrate is None
    assert (info.width, info.height) == (320, 240)
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("png", "rgb24", None)


def test_parse_ffmpeg9_mpegts_with_program_block() -> None:
    info = parse_probe_output(FF9_TS)
    assert info.container == "mpegts"
    assert info.duration == pytest.approx(1.02)
    assert (info.video_codec, info.audio_codec, info.fps) == ("h264", "aac", 25.0)


def test_parse_ffmpeg51_phone_video() -> None:
    info = parse_probe_output(FF5_PHONE)
    # 5.1 spells it "displaymatrix:", 9.x "Display Matrix:".
    assert info.rotation == 90
    assert (info.width, info.height, info.video_codec, info.audio_codec) == (
        320,
        240,
        "h264",
        "aac",
    )
    assert decoded_frames(FF5_PHONE) == 1


def test_parse_ffmpeg51_avi() -> None:
    info = parse_probe_output(FF5_AVI)
    assert info.container == "avi"
    assert (info.video_codec, info.audio_codec) == ("mpeg4", "mp3")
    assert info.pixel_format == "yuv420p"
    assert info.bitrate == 279_000


def test_parse_ffmpeg4_iphone_hevc() -> None:
    info = parse_probe_output(FF4_IPHONE)
    assert info.duration == pytest.approx(3.03)
    assert dataclasses.replace(info, duration=None) == MediaInfo(
        container="mov,mp4,m4a,3gp,3g2,mj2",
        duration=None,
        bitrate=11_305_000,
        width=1920,
        height=1080,
        fps=29.98,
        video_codec="hevc",
        pixel_format="yuv420p10le",
        audio_codec="aac",
        rotation=90,
    )


def test_parse_rotate_tag_without_side_data() -> None:
    assert parse_probe_output(FF4_TAG_ONLY).rotation == 270


def test_parse_skips_attached_pictures_and_warnings() -> None:
    info = parse_probe_output(ATTACHED_PIC_FIRST)
    assert (info.width, info.height, info.video_codec) == (1280, 720, "h264")
    assert info.fps == pytest.approx(23.98)
    assert info.audio_codec == "vorbis"
    assert info.rotation == 180
    assert info.duration == pytest.approx(3723.5)


def test_parse_falls_back_to_tbr_without_fps() -> None:
    info = parse_probe_output(VFR_NO_FPS)
    assert info.fps == pytest.approx(59.94)
    assert info.bitrate is None
    assert (info.width, info.height, info.pixel_format) == (3840, 2160, "yuv420p10le")


@pytest.mark.parametrize(
    ("degrees", "expected"),
    [("-90.00", 90), ("90.00", 270), ("180.00", 180), ("-180.00", 180), ("-0.00", 0)],
)
def test_parse_normalises_rotation(degrees: str, expected: int) -> None:
    text = FF9_PHONE.replace("rotation of -90.00 degrees", f"rotation of {degrees} degrees")
    assert parse_probe_output(text).rotation == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no readable media"),
        ("[in#0 @ 0x1] moov atom not found\n", "no readable media"),
        (AUDIO_ONLY, "no video stream"),
        (NO_SIZE, "no dimensions"),
        # Only the Output section has a video stream: still no video input.
        (AUDIO_ONLY + FF9_MP4[FF9_MP4.index("Output #0") :], "no video stream"),
    ],
)
def test_parse_rejects(text: str, reason: str) -> None:
    with pytest.raises(ProbeError, match=reason):
        parse_probe_output(text)


def test_media_info_to_json() -> None:
    data = parse_probe_output(FF9_MP4).to_json()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "container",
        "duration",
        "bitrate",
        "width",
        "height",
        "fps",
        "video_codec",
        "pixel_format",
        "audio_codec",
        "rotation",
    }


def test_decoded_frames() -> None:
    assert decoded_frames(FF9_MP4) == 1
    assert decoded_frames("frame=    0 fps=0.0 q=0.0 Lsize=       0KiB time=N/A") == 0
    assert decoded_frames("frame=  1 fps=0\rframe=   12 fps=0\n") == 12
    assert decoded_frames("no stats at all") is None


def test_error_reason_hides_paths_and_noise() -> None:
    path = "/var/lib/frameflow/tmp/secret-upload-1234.mp4"
    ffmpeg9 = (
        "[in#0 @ 0x56556150a200] moov atom not found\n"
        "[in#0 @ 0x565561509e80] Error opening input: Invalid data found when processing input\n"
        f"Error opening input file file:{path}.\n"
        "Error opening input files: Invalid data found when processing input\n"
    )
    reason = error_reason(ffmpeg9, hide=(path, "file:" + path))
    assert "secret-upload" not in reason and "/var/lib" not in reason
    assert "0x5655" not in reason
    assert reason.startswith("moov atom not found; ")

    ffmpeg51 = f"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5630] moov atom not found\n{path}: Invalid data\n"
    assert error_reason(ffmpeg51, hide=(path,)) == "moov atom not found; <input>: Invalid data"

    assert error_reason("") == "unknown error"
    assert len(error_reason("x" * 5000)) <= 300


# --- StderrCollector ----------------------------------------------------------


def test_stderr_collector_keeps_head_and_tail() -> None:
    c = StderrCollector(head_cap=10, tail_cap=4)
    for chunk in (b"0123", b"45678", b"9abcdef", b"", b"g"):
        c.feed(chunk)
    assert c.head_text() == "0123456789"
    assert c.tail_text() == "defg"
    assert c.total == 17


def test_stderr_collector_short_stream_and_zero_tail() -> None:
    c = StderrCollector(head_cap=100, tail_cap=0)
    c.feed(b"abc")
    assert (c.head_text(), c.tail_text(), c.total) == ("abc", "", 3)
    with pytest.raises(ValueError):
        StderrCollector(head_cap=-1, tail_cap=0)


def test_stderr_collector_tolerates_split_utf8() -> None:
    c = StderrCollector(head_cap=3, tail_cap=3)
    c.feed("ééé".encode())
    assert c.head_text().startswith("é")


# --- run_ffmpeg ---------------------------------------------------------------


class ChildWatch:
    """Records the processes this test process starts while it is active."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.before = {p.pid for p in self.me.children(recursive=True)}
        self.seen: set[int] = set()  # children and their descendants
        self.direct: set[int] = set()  # children: ours to reap
        self.started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        while True:
            self.direct |= {p.pid for p in self.me.children()} - self.before
            self.seen |= {p.pid for p in self.me.children(recursive=True)} - self.before
            if self.seen:
                self.started.set()
            await asyncio.sleep(0.005)

    def __enter__(self) -> ChildWatch:
        self._task = asyncio.get_running_loop().create_task(self._poll())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def assert_all_gone(self) -> None:
        assert self.direct, "the watch saw no child process at all"
        # psutil says a zombie still exists: our children must be killed *and*
        # reaped by the time run_ffmpeg returns.
        assert [pid for pid in self.direct if psutil.pid_exists(pid)] == []
        # Orphaned grandchildren are reaped by init, a moment later.
        deadline = time.monotonic() + 5
        while alive := [pid for pid in self.seen - self.direct if _running(pid)]:
            assert time.monotonic() < deadline, f"still running: {alive}"
            time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def python_child(code: str) -> list[str]:
    """run_ffmpeg is generic: a Python child can misbehave on purpose."""
    return [sys.executable, "-c", code]


@pytest.fixture
def no_leaks() -> Iterator[None]:
    yield
    # An unclosed subprocess transport warns when collected; warnings are errors.
    gc.collect()


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return clips.ffmpeg_exe()


async def test_run_ffmpeg_success(ffmpeg: str, no_leaks: None) -> None:
    result = await run_ffmpeg(
        [ffmpeg, "-hide_banner", "-f", "lavfi", "-i", "testsrc=duration=0.2", "-f", "null", "-"],
        timeout=30,
    )
    assert isinstance(result, FfmpegResult)
    assert result.ok and result.returncode == 0
    assert "Input #0, lavfi" in result.stderr_head
    assert "frame=" in result.stderr_tail
    assert result.stderr_bytes == len(result.stderr_head.encode())


async def test_run_ffmpeg_failure_is_returned(ffmpeg: str, no_leaks: None) -> None:
    result = await run_ffmpeg([ffmpeg, "-hide_banner", "-no-such-option"], timeout=30)
    assert result.returncode != 0 and not result.ok
    assert "no-such-option" in result.stderr_tail


async def test_run_ffmpeg_caps_stderr(no_leaks: None) -> None:
    code = (
        "import sys; w = sys.stderr.write; w('FIRST\\n')\n"
        "for i in range(20000): w('x' * 99 + '\\n')\n"
        "w('LAST\\n')"
    )
    result = await run_ffmpeg(python_child(code), timeout=30, stderr_cap=4096, stderr_tail_cap=1024)
    assert result.returncode == 0
    assert result.stderr_bytes == 6 + 20000 * 100 + 5
    assert len(result.stderr_head) == 4096 and result.stderr_head.startswith("FIRST\n")
    assert len(result.stderr_tail) == 1024 and result.stderr_tail.endswith("x\nLAST\n")


async def test_run_ffmpeg_stdout_callback_gets_progress(ffmpeg: str, no_leaks: None) -> None:
    chunks: list[bytes] = []
    result = await run_ffmpeg(
        [
            ffmpeg,
            "-hide_banner",
            "-nostats",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=0.5:rate=10",
            "-progress",
            "pipe:1",
            "-f",
            "null",
            "-",
        ],
        timeout=30,
        on_stdout=chunks.append,
    )
    assert result.returncode == 0
    text = b"".join(chunks).decode()
    assert "out_time=" in text and text.rstrip().endswith("progress=end")


async def test_run_ffmpeg_stdout_to_file(ffmpeg: str, tmp_path: Path, no_leaks: None) -> None:
    target = tmp_path / "frame.png"
    with target.open("wb") as out:
        argv = [ffmpeg, "-f", "lavfi", "-i", "testsrc", "-frames:v", "1", "-c:v", "png"]
        result = await run_ffmpeg(
            [*argv, "-f", "image2pipe", "pipe:1"],
            timeout=30,
            stdout=out,
        )
    assert result.returncode == 0
    assert sniff(target.read_bytes()[:SNIFF_BYTES]) is not None


async def test_run_ffmpeg_refuses_undrained_pipe() -> None:
    with pytest.raises(ValueError):
        await run_ffmpeg(["true"], timeout=1, stdout=asyncio.subprocess.PIPE)
    with pytest.raises(ValueError):
        await run_ffmpeg(["true"], timeout=1, stdout=2, on_stdout=lambda _b: None)
    with pytest.raises(ValueError):
        await run_ffmpeg([], timeout=1)


async def test_run_ffmpeg_timeout_stops_and_reaps(ffmpeg: str, no_leaks: None) -> None:
    # -re: read the endless test source in real time, so it never finishes.
    argv = [ffmpeg, "-hide_banner", "-re", "-f", "lavfi", "-i", "testsrc", "-f", "null", "-"]
    with ChildWatch() as watch:
        started = time.monotonic()
        with pytest.raises(FfmpegTimeout) as caught:
            await run_ffmpeg(argv, timeout=0.5, kill_grace=60)
        elapsed = time.monotonic() - started
    # ffmpeg honours SIGTERM at once: no need to wait out the (long) grace period.
    assert 0.5 <= elapsed < 30
    assert caught.value.timeout == 0.5
    assert "frame=" in caught.value.stderr_tail
    watch.assert_all_gone()


async def test_run_ffmpeg_kills_group_that_ignores_sigterm(no_leaks: None) -> None:
    # A child that ignores SIGTERM and has a grandchild (which inherits that):
    # both must die with the SIGKILL to the group after the grace period.
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(g.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    out: list[bytes] = []
    with ChildWatch() as watch:
        started = time.monotonic()
        with pytest.raises(FfmpegTimeout):
            await run_ffmpeg(python_child(code), timeout=1.0, kill_grace=0.3, on_stdout=out.append)
        elapsed = time.monotonic() - started
    assert elapsed < 30  # hang guard: the children sleep for 60 s
    grandchild = int(b"".join(out))
    assert grandchild in watch.seen
    watch.assert_all_gone()


async def test_run_ffmpeg_cancel_stops_and_reaps(ffmpeg: str, no_leaks: None) -> None:
    argv = [ffmpeg, "-hide_banner", "-re", "-f", "lavfi", "-i", "testsrc", "-f", "null", "-"]
    with ChildWatch() as watch:
        task = asyncio.create_task(run_ffmpeg(argv, timeout=60))
        await watch.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    watch.assert_all_gone()


async def test_run_ffmpeg_cancel_during_cleanup_still_reaps(no_leaks: None) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    with ChildWatch() as watch:
        task = asyncio.create_task(run_ffmpeg(python_child(code), timeout=60, kill_grace=0.5))
        await watch.started.wait()
        await asyncio.sleep(0.2)  # let Python install its SIGTERM handler
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()  # again, while it waits out the grace period
        with pytest.raises(asyncio.CancelledError):
            await task
    watch.assert_all_gone()


async def test_run_ffmpeg_stdout_callback_error_stops_process(ffmpeg: str, no_leaks: None) -> None:
    def explode(_chunk: bytes) -> None:
        raise RuntimeError("consumer broke")

    argv = [ffmpeg, "-hide_banner", "-re", "-f", "lavfi", "-i", "testsrc"]
    argv += ["-progress", "pipe:1", "-f", "null", "-"]
    with ChildWatch() as watch, pytest.raises(RuntimeError, match="consumer broke"):
        await run_ffmpeg(argv, timeout=30, on_stdout=explode)
    watch.assert_all_gone()


# --- resolve_ffmpeg -----------------------------------------------------------


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_resolve_configured_path(tmp_path: Path) -> None:
    exe = _executable(tmp_path / "my-ffmpeg")
    assert resolve_ffmpeg(str(exe)) == str(exe)


@pytest.mark.parametrize("what", ["missing", "not executable", "directory"])
def test_resolve_configured_path_errors(tmp_path: Path, what: str) -> None:
    target = tmp_path / "ffmpeg"
    if what == "not executable":
        target.write_text("not a program")
    elif what == "directory":
        target.mkdir()
    with pytest.raises(FfmpegNotFoundError, match="FRAMEFLOW_FFMPEG_PATH"):
        resolve_ffmpeg(str(target))


def test_resolve_bare_name_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = _executable(tmp_path / "ffmpeg-7")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_ffmpeg("ffmpeg-7") == str(exe)
    with pytest.raises(FfmpegNotFoundError, match="no such command"):
        resolve_ffmpeg("ffmpeg-8")


def test_resolve_prefers_path_then_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_ffmpeg("") == imageio_ffmpeg.get_ffmpeg_exe()
    exe = _executable(tmp_path / "ffmpeg")
    assert resolve_ffmpeg("") == str(exe)


def test_resolve_reports_missing_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import imageio_ffmpeg

    def no_binary() -> str:
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    with pytest.raises(FfmpegNotFoundError, match="FRAMEFLOW_FFMPEG_PATH"):
        binary.resolve_ffmpeg("")


# --- probe() on real clips ----------------------------------------------------

# (container, width, height, fps, content type, demuxer, video codec, audio codec);
# sizes and rates differ so that each value is seen to come from the file.
VIDEO_CASES = [
    ("mp4", 320, 240, 25, "video/mp4", "mov", "h264", "aac"),
    ("mov", 256, 144, 30, "video/quicktime", "mov", "h264", "aac"),
    ("mkv", 240, 160, 24, "video/x-matroska", "matroska", "h264", "aac"),
    ("webm", 320, 180, 30, "video/webm", "matroska", "vp9", "opus"),
    ("avi", 176, 144, 15, "video/x-msvideo", "avi", "mpeg4", "mp3"),
    ("ts", 320, 240, 25, "video/mp2t", "mpegts", "h264", "aac"),
]


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe-clips")


@pytest.mark.parametrize(
    ("container", "width", "height", "fps", "content_type", "demuxer", "vcodec", "acodec"),
    VIDEO_CASES,
    ids=[c[0] for c in VIDEO_CASES],
)
async def test_probe_video(
    ffmpeg: str,
    tmp_path: Path,
    container: str,
    width: int,
    height: int,
    fps: int,
    content_type: str,
    demuxer: str,
    vcodec: str,
    acodec: str,
) -> None:
    path = clips.make_clip(
        tmp_path / f"upload.{container}",
        seconds=1,
        width=width,
        height=height,
        fps=fps,
        container=container,
    )
    sniffed = sniff(path.read_bytes()[:SNIFF_BYTES])
    assert sniffed is not None
    assert (sniffed.content_type, sniffed.demuxer, sniffed.kind) == (content_type, demuxer, "video")

    info = await probe(ffmpeg, path, sniffed.demuxer, timeout=30, max_pixels=MAX_PIXELS)
    assert (info.width, info.height) == (width, height)
    assert info.fps == pytest.approx(fps)
    assert (info.video_codec, info.audio_codec) == (vcodec, acodec)
    assert info.pixel_format == "yuv420p"
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.bitrate is not None and info.bitrate > 0
    assert info.rotation == 0


@pytest.mark.parametrize(
    ("fmt", "content_type", "codec"),
    [("jpeg", "image/jpeg", "mjpeg"), ("png", "image/png", "png"), ("webp", "image/webp", "webp")],
)
async def test_probe_image(
    ffmpeg: str, tmp_path: Path, fmt: str, content_type: str, codec: str
) -> None:
    path = clips.make_image(tmp_path / "upload.bin", fmt, width=200, height=100)
    sniffed = sniff(path.read_bytes()[:SNIFF_BYTES])
    assert sniffed is not None
    assert (sniffed.content_type, sniffed.kind) == (content_type, "image")
    info = await probe(ffmpeg, path, sniffed.demuxer, timeout=30, max_pixels=MAX_PIXELS)
    assert (info.width, info.height, info.video_codec) == (200, 100, codec)
    assert info.duration is None
    assert info.audio_codec is None
    assert info.container == sniffed.demuxer


@pytest.mark.parametrize("rotate", [90, 180, 270])
async def test_probe_rotated_phone_video(ffmpeg: str, tmp_path: Path, rotate: int) -> None:
    path = clips.make_clip(tmp_path / "phone.mp4", seconds=1, rotate=rotate)
    info = await probe(ffmpeg, path, "mov", timeout=30, max_pixels=MAX_PIXELS)
    assert info.rotation == rotate
    assert (info.width, info.height) == (320, 240)


async def test_probe_video_without_audio(ffmpeg: str, tmp_path: Path) -> None:
    path = clips.make_clip(tmp_path / "silent.mov", seconds=1, container="mov", audio=False)
    info = await probe(ffmpeg, path, "mov", timeout=30, max_pixels=MAX_PIXELS)
    assert info.audio_codec is None
    assert info.video_codec == "h264"


@pytest.fixture(scope="session")
def real_mp4(clip_dir: Path) -> bytes:
    return clips.make_clip(clip_dir / "real.mp4", seconds=1).read_bytes()


async def test_probe_rejects_truncated_mp4(ffmpeg: str, tmp_path: Path, real_mp4: bytes) -> None:
    secret_dir = tmp_path / "srv-objects-7f3a"
    secret_dir.mkdir()
    path = secret_dir / "upload-9c1d.mp4"
    path.write_bytes(real_mp4[:3072])
    assert sniff(path.read_bytes()) is not None  # it looks like an mp4 ...
    with pytest.raises(ProbeError) as caught:
        await probe(ffmpeg, path, "mov", timeout=30, max_pixels=MAX_PIXELS)  # ... but is not one
    assert caught.value.reason
    # The server's paths never reach the uploader.
    assert "srv-objects" not in str(caught.value) and "upload-9c1d" not in str(caught.value)


async def test_probe_rejects_random_bytes_behind_ftyp(
    ffmpeg: str, tmp_path: Path, real_mp4: bytes
) -> None:
    path = tmp_path / "random.mp4"
    path.write_bytes(real_mp4[:32] + os.urandom(20_000))
    assert sniff(path.read_bytes()[:SNIFF_BYTES]) is not None
    with pytest.raises(ProbeError):
        await probe(ffmpeg, path, "mov", timeout=30, max_pixels=MAX_PIXELS)


async def test_probe_rejects_audio_only(ffmpeg: str, tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    clips.run(["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-f", "mp4", str(path)])
    with pytest.raises(ProbeError, match="no video stream"):
        await probe(ffmpeg, path, "mov", timeout=30, max_pixels=MAX_PIXELS)


async def test_probe_ignores_cover_art(ffmpeg: str, tmp_path: Path) -> None:
    # An audio file with a cover picture has a "video" stream that is not video.
    cover = clips.make_image(tmp_path / "cover.png", "png")
    path = tmp_path / "song.mkv"
    audio = ["-f", "lavfi", "-i", "sine=duration=1", "-c:a", "libopus"]
    attachment = ["-attach", str(cover), "-metadata:s:t", "mimetype=image/png"]
    clips.run([*audio, *attachment, "-f", "matroska", str(path)])
    with pytest.raises(ProbeError, match="no video stream"):
        await probe(ffmpeg, path, "matroska", timeout=30, max_pixels=MAX_PIXELS)


async def test_playlists_and_concat_lists_are_never_media(
    ffmpeg: str, tmp_path: Path, clip_dir: Path
) -> None:
    # A playlist or concat list pointing at a real local file: ffmpeg's own
    # probing would open it and read that file.
    segment = clips.make_clip(clip_dir / "segment.ts", seconds=1, container="ts")
    playlist = tmp_path / "holiday.mp4"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{segment}\n#EXT-X-ENDLIST\n"
    )
    concat = tmp_path / "birthday.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile '{segment}'\n")

    for path in (playlist, concat):
        assert sniff(path.read_bytes()[:SNIFF_BYTES]) is None
        # Even if one got past sniffing, a pinned demuxer does not follow it.
        for demuxer in ("mov", "mpegts"):
            with pytest.raises(ProbeError):
                await probe(ffmpeg, path, demuxer, timeout=30, max_pixels=MAX_PIXELS)


def test_probe_argv_pins_an_allowed_demuxer(tmp_path: Path) -> None:
    argv = probe_argv("/usr/bin/ffmpeg", tmp_path / "x.mp4", "mov", max_pixels=MAX_PIXELS)
    assert argv[argv.index("-f") + 1] == "mov"
    assert argv[argv.index("-protocol_whitelist") + 1] == "file,pipe"
    # The decoder's limit follows the setting (with headroom for its padding only).
    assert MAX_PIXELS <= int(argv[argv.index("-max_pixels") + 1]) < 2 * MAX_PIXELS
    assert argv[argv.index("-i") + 1] == f"file:{tmp_path / 'x.mp4'}"
    for demuxer in ("hls", "concat", "image2", "lavfi", ""):
        with pytest.raises(ValueError):
            probe_argv("/usr/bin/ffmpeg", tmp_path / "x.mp4", demuxer, max_pixels=MAX_PIXELS)


async def test_probe_relative_and_odd_paths(ffmpeg: str, tmp_path: Path, real_mp4: bytes) -> None:
    # "file:" + absolute path: a leading dash or a colon is just part of the name.
    odd = tmp_path / "-i:weird name.mp4"
    odd.write_bytes(real_mp4)
    info = await probe(ffmpeg, odd, "mov", timeout=30, max_pixels=MAX_PIXELS)
    assert (info.width, info.height) == (320, 240)


@pytest.mark.parametrize("kind", ["png", "mp4"])
async def test_probe_refuses_oversized_pictures(ffmpeg: str, tmp_path: Path, kind: str) -> None:
    # A small file can declare a huge picture; decoding it would allocate it all.
    if kind == "png":
        path = clips.make_image(tmp_path / "big.png", "png", width=1000, height=1000)
        demuxer = "png_pipe"
    else:
        path = clips.make_clip(tmp_path / "big.mp4", seconds=1, width=1000, height=1000)
        demuxer = "mov"
    # Over the limit by a little: our check of the declared size refuses it.
    with pytest.raises(ProbeError, match=r"picture is 1000x1000, more than the 900000 pixels"):
        await probe(ffmpeg, path, demuxer, timeout=30, max_pixels=900_000)
    # Far over: ffmpeg itself refuses to allocate the frame.
    with pytest.raises(ProbeError, match=r"picture is \d+x\d+, more than the 100000 pixels"):
        await probe(ffmpeg, path, demuxer, timeout=30, max_pixels=100_000)
    # Exactly at the limit is fine, whatever padding the decoder adds.
    info = await probe(ffmpeg, path, demuxer, timeout=30, max_pixels=1_000_000)
    assert (info.width, info.height) == (1000, 1000)


async def test_probe_timeout(ffmpeg: str, tmp_path: Path) -> None:
    # A FIFO nobody writes to: ffmpeg blocks opening it, so the probe cannot
    # finish before its timeout however loaded the machine is (a tiny timeout
    # on a real file lost that race when the event loop was starved).
    path = tmp_path / "never.mp4"
    os.mkfifo(path)
    with ChildWatch() as watch, pytest.raises(FfmpegTimeout):
        await probe(ffmpeg, path, "mov", timeout=0.3, max_pixels=MAX_PIXELS)
    watch.assert_all_gone()
    gc.collect()
