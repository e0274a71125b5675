"""The minimum FFmpeg release: the pure `-version` parser, and the start-up refusal."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from config.settings import Settings, SettingsError
from server.app import create_app
from server.media.version import (
    FfmpegVersion,
    FfmpegVersionError,
    parse_ffmpeg_version,
    parse_min_version,
    read_ffmpeg_version,
    version_problem,
)
from tests import clips


def version_output(first: str, lavc: str = "59. 37.100") -> str:
    return (
        f"ffmpeg version {first} Copyright (c) 2000-2026 the FFmpeg developers\n"
        "built with gcc 12 (Debian 12.2.0-14+deb12u1)\n"
        "configuration: --prefix=/usr --enable-gpl\n"
        "libavutil      57. 28.100 / 57. 28.100\n"
        f"libavcodec     {lavc} / {lavc}\n"
        "libavformat    59. 27.100 / 59. 27.100\n"
    )


@pytest.mark.parametrize(
    ("first", "lavc", "release", "effective"),
    [
        # Distribution packages.
        ("5.1.6-0+deb12u1", "59. 37.100", (5, 1, 6), (5, 1, 6)),
        ("4.4.2-0ubuntu0.22.04.1", "58.134.100", (4, 4, 2), (4, 4, 2)),
        ("6.1.1-3ubuntu5", "60. 31.102", (6, 1, 1), (6, 1, 1)),
        ("7.1", "61. 19.100", (7, 1), (7, 1)),
        # BtbN's builds (imageio-ffmpeg's), release branch and master.
        ("n9.0.2-17-g2a571b6068-20260930", "63.  1.102", (9, 0, 2), (9, 0, 2)),
        ("n7.1-1-g1234abcd", "61. 19.100", (7, 1), (7, 1)),
        ("N-118896-g9f0970ee35-20250316", "62.  3.100", None, (7, 1)),
        # Static builds.
        ("9.0.2-static", "63.  1.102", (9, 0, 2), (9, 0, 2)),
        ("6.0-static", "60.  3.100", (6, 0), (6, 0)),
        ("N-66595-gc5ad5c9e3-static", "59. 40.100", None, (5, 1)),
        ("N-12345-gabcdef0", "58. 20.100", None, (4, 0)),
        # Windows builds.
        ("7.0.2-full_build-www.gyan.dev", "61.  3.100", (7, 0, 2), (7, 0, 2)),
        ("2024-03-11-git-3d1860ec8d-essentials_build-www.gyan.dev", "61.  1.100", None, (6, 1)),
        # A git build older than anything in the table, or with nothing to go by.
        ("N-1-gdeadbeef", "57. 10.100", None, None),
        ("git-unknown", "", None, None),
    ],
)
def test_parse_ffmpeg_version(
    first: str, lavc: str, release: tuple[int, ...] | None, effective: tuple[int, ...] | None
) -> None:
    text = version_output(first, lavc) if lavc else f"ffmpeg version {first} Copyright\n"
    found = parse_ffmpeg_version(text)
    assert found.text == first
    assert found.release == release
    assert found.effective == effective


def test_parse_ffmpeg_version_of_garbage() -> None:
    found = parse_ffmpeg_version("sh: 1: ffmpeg: not found\n")
    assert found == FfmpegVersion(text="", release=None, libavcodec=None)
    assert found.effective is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5.1", (5, 1)),
        ("6", (6,)),
        ("6.0.1", (6, 0, 1)),
        ("0", None),
        ("", None),
        (" 7.1 ", (7, 1)),
    ],
)
def test_parse_min_version(value: str, expected: tuple[int, ...] | None) -> None:
    assert parse_min_version(value) == expected


@pytest.mark.parametrize("value", ["5.x", "v5.1", "5.1.2.3", "latest"])
def test_bad_min_version_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_min_version(value)
    with pytest.raises(SettingsError, match="FRAMEFLOW_FFMPEG_MIN_VERSION"):
        Settings(ffmpeg_min_version=value)


@pytest.mark.parametrize(
    ("first", "lavc", "minimum", "problem"),
    [
        ("5.1.6-0+deb12u1", "59. 37.100", (5, 1), None),
        ("5.1", "59. 37.100", (5, 1, 0), None),
        ("9.0.2-static", "63.  1.102", (5, 1), None),
        ("4.4.2-0ubuntu0.22.04.1", "58.134.100", (5, 1), "ffmpeg 4.4.2-0ubuntu0.22.04.1 is older"),
        ("5.0.1", "59. 18.100", (5, 1), "is older than 5.1"),
        ("N-12345-gabcdef0", "58. 20.100", (5, 1), r"\(libavcodec of 4.0\) is older than 5.1"),
        ("N-66595-gc5ad5c9e3-static", "59. 40.100", (5, 1), None),
        ("git-unknown", "", (5, 1), "cannot tell which release ffmpeg git-unknown is"),
        ("git-unknown", "", None, None),
        ("4.4", "58.134.100", None, None),
    ],
)
def test_version_problem(
    first: str, lavc: str, minimum: tuple[int, ...] | None, problem: str | None
) -> None:
    text = version_output(first, lavc) if lavc else f"ffmpeg version {first} Copyright\n"
    found = version_problem(parse_ffmpeg_version(text), minimum)
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found), found


async def test_reads_the_real_ffmpeg() -> None:
    found = await read_ffmpeg_version(clips.ffmpeg_exe())
    assert found.libavcodec is not None
    assert found.effective is not None and found.effective >= (5, 1)


def fake_ffmpeg(tmp_path: Path, version: str) -> Path:
    """An 'ffmpeg' that says it is `version` and otherwise is the real one."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-version" ]; then\n'
        f"  printf 'ffmpeg version {version} Copyright (c) 2000-2021\\n"
        "libavcodec     58.134.100 / 58.134.100\\n'\n"
        "  exit 0\n"
        "fi\n"
        f'exec "{clips.ffmpeg_exe()}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def start(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()  # runs every cleanup_ctx up to the one that fails
    return runner


async def test_refuses_to_start_with_an_old_ffmpeg(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    old = fake_ffmpeg(tmp_path, "4.4.2-0ubuntu0.22.04.1")
    runner = web.AppRunner(create_app(make_settings(ffmpeg_path=str(old))))
    try:
        with pytest.raises(FfmpegVersionError) as raised:
            await runner.setup()
    finally:
        await runner.cleanup()
    message = str(raised.value)
    # It names what it found, what it needs, and the way out.
    assert "4.4.2-0ubuntu0.22.04.1" in message
    assert "5.1" in message
    assert str(old) in message
    assert "FRAMEFLOW_FFMPEG_MIN_VERSION=0" in message


async def test_the_check_can_be_lowered_or_skipped(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    old = fake_ffmpeg(tmp_path, "4.4.2-0ubuntu0.22.04.1")
    for minimum in ("4.4", "0"):
        runner = await start(
            create_app(make_settings(ffmpeg_path=str(old), ffmpeg_min_version=minimum))
        )
        await runner.cleanup()
