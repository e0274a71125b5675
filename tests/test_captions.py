"""Captions: SRT converted to WebVTT and sanitised (pure, table-driven), the API (add, list,
signed WebVTT with CORS, delete, limits), and the HLS master's SUBTITLES group — under a
job's token and a share link — read back by a real ffmpeg."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import imageio_ffmpeg
import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from server.captions.vtt import CaptionError, read_captions, sanitize_cue_text, write_vtt
from tests.clips import make_clip
from tests.conftest import User, register_and_login
from tests.test_jobs_e2e import output, start_job, upload, wait_for_job

Client = TestClient[Any, Any]

SRT = """1
00:00:00,200 --> 00:00:01,500
<font color="red">Hello</font> <i>there</i>

2
00:00:01,600 --> 00:00:03,000
Second line & more
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<b>bold</b> <i>it</i> <u>u</u>", "<b>bold</b> <i>it</i> <u>u</u>"),
        ('<font color="red">red</font>', "red"),
        ("<script>alert(1)</script>", "alert(1)"),
        ('<a href="javascript:x">link</a>', "link"),
        ("<v Mary Ann>Hi</v>", "<v Mary Ann>Hi</v>"),
        ("<c.yellow.big>note</c>", "<c.yellow.big>note</c>"),
        ("<00:00:01.500>now", "<00:00:01.500>now"),
        ("{\\an8}top", "top"),
        ("a < b > c & d", "a &lt; b &gt; c &amp; d"),
        ("x --> y", "x --&gt; y"),
        ("&amp; &lt; &nbsp; &bogus;", "&amp; &lt; &nbsp; &amp;bogus;"),
        ('<img src=x onerror="alert(1)">', ""),
    ],
)
def test_cue_text_keeps_only_webvtt_markup(text: str, expected: str) -> None:
    assert sanitize_cue_text(text) == expected


def test_srt_becomes_webvtt() -> None:
    cues, fmt = read_captions(("\ufeff" + SRT.replace("\n", "\r\n")).encode())
    assert fmt == "srt"
    assert write_vtt(cues) == (
        "WEBVTT\n\n"
        "00:00:00.200 --> 00:00:01.500\nHello <i>there</i>\n\n"
        "00:00:01.600 --> 00:00:03.000\nSecond line &amp; more\n"
    )


def test_webvtt_is_rewritten_without_style_or_unknown_settings() -> None:
    vtt = (
        "WEBVTT - a title\n\nSTYLE\n::cue { background: url(https://example.com/x) }\n\n"
        "NOTE a comment\n\nintro\n01:02.500 --> 01:03.000 align:center evil:1 line:10%\n"
        "<v Bob>Hi</v>\n"
    )
    cues, fmt = read_captions(vtt.encode())
    assert fmt == "vtt"
    assert write_vtt(cues) == (
        "WEBVTT\n\nintro\n00:01:02.500 --> 00:01:03.000 align:center line:10%\n<v Bob>Hi</v>\n"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"1\n00:00:02,000 --> 00:00:01,000\nbackwards\n", "cue 1: ends before it starts"),
        (b"1\n00:00:xx,000 --> 00:00:01,000\nx\n", "cue 1"),
        (b"just some text\n", "cue 1"),
        (b"", "no cues"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"WEBVTT\n\n00:01.000 --> nope\nx\n", "cue 1"),
    ],
)
def test_invalid_files_are_refused_naming_the_cue(data: bytes, message: str) -> None:
    with pytest.raises(CaptionError, match=message):
        read_captions(data)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(caption_max_bytes=2048, job_poll_seconds=0.2)


async def add(client: Client, user: User, video_id: str, body: bytes, **query: str) -> Any:
    return await client.post(
        f"/api/v1/videos/{video_id}/captions", params=query, data=body, headers=user.headers
    )


async def test_add_list_serve_and_delete(client: Client, user: User, sample_mp4: Path) -> None:
    video = await upload(client, user, sample_mp4)
    resp = await add(client, user, video["id"], SRT.encode(), language="en", label="English")
    assert resp.status == 201, await resp.text()
    added = await resp.json()
    assert added["source_format"] == "srt" and added["cue_count"] == 2
    assert added["label"] == "English"

    # The signed URL needs no headers and may be read from any origin (<track src>).
    url = urlsplit(added["url"])
    resp = await client.get(f"{url.path}?{url.query}", headers={"Origin": "https://elsewhere"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/vtt")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    text = await resp.text()
    assert text.startswith("WEBVTT") and "<font" not in text and "Hello <i>there</i>" in text
    resp = await client.get(f"{url.path}?{url.query[:-2]}xx")
    assert resp.status == 404

    vtt = b"WEBVTT\n\n00:00.000 --> 00:01.000\nOla\n"
    assert (await add(client, user, video["id"], vtt, language="pt-BR")).status == 201
    resp = await client.get(f"/api/v1/videos/{video['id']}/captions", headers=user.headers)
    items = (await resp.json())["items"]
    assert [(c["language"], c["label"]) for c in items] == [("en", "English"), ("pt-BR", "pt-BR")]

    # Same language again: replaced.
    assert (await add(client, user, video["id"], vtt, language="en")).status == 201
    resp = await client.get(f"/api/v1/videos/{video['id']}/captions/en", headers=user.headers)
    assert "Ola" in await resp.text()

    for body, query, status in (
        (b"not captions at all", {"language": "en"}, 422),
        (SRT.encode(), {"language": "english!"}, 400),
        (SRT.encode(), {}, 400),
        (SRT.encode() * 20, {"language": "en"}, 413),  # over the 2 KiB set above
    ):
        resp = await add(client, user, video["id"], body, **query)
        assert resp.status == status, await resp.text()

    other = await register_and_login(client)
    assert (await add(client, other, video["id"], SRT.encode(), language="en")).status == 404
    resp = await client.get(f"/api/v1/videos/{video['id']}/captions/en", headers=other.headers)
    assert resp.status == 404

    path = f"/api/v1/videos/{video['id']}/captions/en"
    assert (await client.delete(path, headers=user.headers)).status == 204
    assert (await client.delete(path, headers=user.headers)).status == 404
    resp = await client.get(f"{url.path}?{url.query}")
    assert resp.status == 404  # the signed URL of a deleted track


async def _ffmpeg_subtitles(url: str) -> str:
    """What a real ffmpeg reads from an HLS subtitle playlist (as WebVTT)."""
    ffmpeg = shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()
    proc = await asyncio.create_subprocess_exec(
        ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url,
        "-f", "webvtt", "-",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_hls_master_lists_the_subtitles_group(
    client: Client, user: User, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "film.mp4", seconds=4, fps=10)
    video = await upload(client, user, clip)
    job = await start_job(client, user, video["id"], "hls", segment_seconds=2, preset="ultrafast")
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    resp = await add(client, user, video["id"], SRT.encode(), language="en", label="English")
    assert resp.status == 201

    master_url = output(job, "hls/master.m3u8")["url"]
    resp = await client.get(urlsplit(master_url).path)
    master = await resp.text()
    assert '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en"' in master
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert variants and all(line.endswith('SUBTITLES="subs"') for line in variants)
    # Its URI is under a fresh playback token, like every other URI of the master.
    uri = master.split('URI="', 1)[1].split('"', 1)[0]
    assert uri.endswith("/hls/captions/en.m3u8") and uri.startswith("../")
    subtitles_url = urljoin(master_url, uri)
    resp = await client.get(urlsplit(subtitles_url).path)
    assert resp.status == 200 and "en.vtt" in await resp.text()

    # A real HLS client reads the rendition the master names. (ffmpeg's HLS demuxer
    # delivers no subtitle packets through a master playlist, not even for HLS that
    # ffmpeg itself wrote; hls.js reads it through the master: test_browser_captions.)
    read = await _ffmpeg_subtitles(subtitles_url)
    assert "Hello <i>there</i>" in read and "Second line" in read, read

    # The same through a share link showing HLS.
    resp = await client.post(
        f"/api/v1/videos/{video['id']}/shares", json={"exposes": ["hls"]}, headers=user.headers
    )
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]
    info = await (await client.get(f"/s/{token}/info")).json()
    assert [c["language"] for c in info["captions"]] == ["en"]
    resp = await client.get(info["captions"][0]["url"])
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
    shared_master = str(client.make_url(info["media"]["hls"]))
    text = await (await client.get(info["media"]["hls"])).text()
    assert 'URI="captions/en.m3u8"' in text and 'SUBTITLES="subs"' in text
    assert "Second line" in await _ffmpeg_subtitles(urljoin(shared_master, "captions/en.m3u8"))
