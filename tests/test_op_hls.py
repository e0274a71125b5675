"""`hls` with real ffmpeg: the tree it stores, and ffmpeg playing it back over HTTP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.jobs.model import OutputFile
from server.jobs.operations import hls
from server.media.probe import decoded_frames
from tests.clips import ffmpeg_exe, make_clip
from tests.op_harness import OpHarness, media_info, progress_ok

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
PARAMS = {"preset": "ultrafast", "segment_seconds": 2}
STREAM_INF = re.compile(r"^#EXT-X-STREAM-INF:(?P<attrs>.*)$")
ATTRIBUTE = re.compile(r'([A-Z-]+)=("[^"]*"|[^,]*)')


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hls-clips")


def parse_master(text: str) -> list[tuple[dict[str, str], str]]:
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    variants = []
    for i, line in enumerate(lines):
        match = STREAM_INF.match(line)
        if match:
            attrs = {k: v.strip('"') for k, v in ATTRIBUTE.findall(match["attrs"])}
            variants.append((attrs, lines[i + 1]))
    return variants


def uri_lines(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def serve(
    h: OpHarness, outputs: list[OutputFile], aiohttp_server: ServerFactory, hits: list[str]
) -> str:
    """A tiny static server for the stored tree (read back from storage); its base URL."""
    by_name = {o.name: o for o in outputs}

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hits.append(name)
        output = by_name.get(name)
        if output is None:
            raise web.HTTPNotFound()
        return web.Response(body=await h.read(output), content_type=output.content_type)

    app = web.Application()
    app.router.add_get("/{name:.+}", handler)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/"


async def play(url: str, *seek: str) -> int:
    """Decode the whole stream at `url` with ffmpeg; the number of video frames."""
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        # Only for this test: the player must follow HTTP URIs.
        "-protocol_whitelist",
        "http,tcp,file,crypto",
        *seek,
        "-i",
        url,
        "-map",
        "0:v:0",
        "-f",
        "null",
        "-",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    text = stderr.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    frames = decoded_frames(text)
    assert frames is not None, text[-3000:]
    return frames


async def check_tree(
    h: OpHarness, outputs: list[OutputFile], expected: dict[str, tuple[int, int]], codecs: str
) -> dict[str, list[str]]:
    """Master, variants and segments consistent, with relative URIs; segment URIs per variant."""
    by_name = {o.name: o for o in outputs}
    master = (await h.read(by_name["hls/master.m3u8"])).decode()
    variants = parse_master(master)
    assert [uri for _, uri in variants] == [f"{name}/index.m3u8" for name in expected]
    segments: dict[str, list[str]] = {}
    for attrs, uri in variants:
        name = uri.split("/")[0]
        assert attrs["RESOLUTION"] == "{}x{}".format(*expected[name])
        assert int(attrs["BANDWIDTH"]) >= int(attrs["AVERAGE-BANDWIDTH"]) > 10_000
        assert re.fullmatch(codecs, attrs["CODECS"]), attrs["CODECS"]
        playlist = (await h.read(by_name[f"hls/{uri}"])).decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and "#EXT-X-ENDLIST" in playlist
        uris = uri_lines(playlist)
        assert uris and all(re.fullmatch(r"segment_\d{5}\.ts", u) for u in uris), uris
        assert uris[0] == "segment_00001.ts"
        segments[name] = uris
        for segment in uris:
            assert by_name[f"hls/{name}/{segment}"].size > 0
    # Nothing stored that no playlist names, and the right content types.
    listed = {"hls/master.m3u8"} | {
        f"hls/{n}/{u}" for n, us in segments.items() for u in [*us, "index.m3u8"]
    }
    assert set(by_name) == listed
    for output in outputs:
        expected_type = "video/mp2t" if output.name.endswith(".ts") else None
        assert output.content_type == (expected_type or "application/vnd.apple.mpegurl")
    # Every URI relative and inside the tree; no server path anywhere.
    for output in outputs:
        if output.name.endswith(".m3u8"):
            text = (await h.read(output)).decode()
            for uri in uri_lines(text):
                assert not uri.startswith("/") and ":" not in uri and ".." not in uri, uri
            assert str(h.root) not in text and "file:" not in text
    return segments


async def test_hls_ladder_with_audio_plays_over_http(
    clips: Path, tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    clip = make_clip(clips / "720p.mp4", width=1280, height=720, fps=10, seconds=3)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(hls.OPERATION, PARAMS)
        assert progress_ok(h.progress), h.progress
        segments = await check_tree(
            h,
            outputs,
            {"480p": (854, 480), "720p": (1280, 720)},
            codecs=r"avc1\.[0-9a-f]{6},mp4a\.40\.2",
        )
        # Keyframes at every 2 s: the renditions are cut at the same instants.
        playlists = [
            (await h.read(next(o for o in outputs if o.name == f"hls/{n}/index.m3u8"))).decode()
            for n in segments
        ]
        extinfs = [[ln for ln in p.splitlines() if ln.startswith("#EXTINF")] for p in playlists]
        assert extinfs[0] == extinfs[1] and len(extinfs[0]) == 2
        assert extinfs[0][0].startswith("#EXTINF:2.0")

        # Each variant alone: the size promised, with its audio.
        variant = next(o for o in outputs if o.name == "hls/480p/segment_00001.ts")
        info, _ = media_info(await h.fetch(variant))
        assert (info.width, info.height, info.audio_codec) == (854, 480, "aac")

        hits: list[str] = []
        base = await serve(h, outputs, aiohttp_server, hits)
        assert await play(base + "hls/master.m3u8") == 30  # 3 s at 10 fps
        assert "hls/master.m3u8" in hits and "hls/720p/segment_00002.ts" in hits
        seeked = await play(base + "hls/master.m3u8", "-ss", "1")
        assert 15 <= seeked <= 25, seeked


async def test_hls_without_audio_on_s3(
    clips: Path, tmp_path: Path, aiohttp_server: ServerFactory, s3_endpoint: str
) -> None:
    clip = make_clip(clips / "silent.mp4", width=854, height=480, fps=10, seconds=2, audio=False)
    async with OpHarness.open(clip, tmp_path, s3_endpoint=s3_endpoint) as h:
        outputs = await h.run(hls.OPERATION, PARAMS)
        assert progress_ok(h.progress)
        await check_tree(h, outputs, {"480p": (854, 480)}, codecs=r"avc1\.[0-9a-f]{6}")
        hits: list[str] = []
        base = await serve(h, outputs, aiohttp_server, hits)
        assert await play(base + "hls/master.m3u8") == 20
        assert "hls/480p/segment_00001.ts" in hits


async def test_hls_portrait_source_below_the_ladder(
    clips: Path, tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    # 320x240 turned a quarter: 240x320 shown, below the ladder: one 320p variant.
    clip = make_clip(clips / "small.mp4", width=320, height=240, fps=10, seconds=2, rotate=270)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(hls.OPERATION, {"preset": "ultrafast"})
        master = await check_tree(h, outputs, {"320p": (240, 320)}, codecs=r"avc1\..+,mp4a\..+")
        assert master["320p"] == ["segment_00001.ts"]  # 2 s in 4 s segments
        hits: list[str] = []
        base = await serve(h, outputs, aiohttp_server, hits)
        assert await play(base + "hls/master.m3u8") == 20


async def test_codecs_come_from_the_stream_and_follow_the_profile_cap(
    clips: Path, tmp_path: Path
) -> None:
    # The default preset (veryfast) uses High features where allowed; the
    # 480p rung is capped at Main. CODECS says what x264 actually wrote.
    clip = make_clip(clips / "720p-v.mp4", width=1280, height=720, fps=5, seconds=1, audio=False)
    async with OpHarness.open(clip, tmp_path) as h:
        outputs = await h.run(hls.OPERATION, {"segment_seconds": 2})
        master = (await h.read(next(o for o in outputs if o.name == "hls/master.m3u8"))).decode()
    codecs = {uri: attrs["CODECS"] for attrs, uri in parse_master(master)}
    assert codecs["480p/index.m3u8"].startswith("avc1.4d")  # Main
    assert codecs["720p/index.m3u8"].startswith("avc1.64")  # High
