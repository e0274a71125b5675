"""Playback outlives its signed link. HLS playlists served under a valid token name
their URIs with a fresh playback token, bounded by the link's expiry plus the media's
duration and the TTL; a source's content URL lasts its duration plus the TTL. Real app,
runner, ffmpeg and storage; a short link TTL. (The page renewing its link: test_page.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from config.settings import Settings
from server import appkeys
from server.jobs.links import (
    OutputToken,
    make_token,
    read_token,
    renewed_token,
    token_prefix,
)
from server.jobs.playlists import UriRewriter, rewrite_lines
from server.serving.signing import UrlSigner, playback_seconds
from tests.clips import make_clip
from tests.conftest import User
from tests.test_jobs_e2e import output, start_job, upload, wait_for_job
from tests.test_ws import until

TTL = 3  # seconds a link lives here
CLIP_SECONDS = 6  # three 2 s segments


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("hls-links") / "film.mp4", seconds=CLIP_SECONDS, fps=10
    )


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(signed_url_ttl_seconds=TTL, job_poll_seconds=0.2)


def uri_lines(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def token_of(url: str, job_id: str) -> str:
    path = urlsplit(url).path
    prefix = token_prefix(job_id)
    assert path.startswith(prefix), path
    return path[len(prefix) :].split("/", 1)[0]


async def hls_job(client: TestClient[Any, Any], user: User, clip: Path) -> tuple[str, str]:
    """A finished HLS job of `clip`: its id and the master playlist's signed URL."""
    video = await upload(client, user, clip)
    job = await start_job(client, user, video["id"], "hls", segment_seconds=2, preset="ultrafast")
    job = await wait_for_job(client, user, job["id"])
    assert job["status"] == "succeeded", job["error"]
    # Asked for now, after the encode: the link's TTL starts here.
    resp = await client.get(f"/api/v1/jobs/{job['id']}", headers=user.headers)
    return job["id"], output(await resp.json(), "hls/master.m3u8")["url"]


async def fetch(client: TestClient[Any, Any], url: str) -> tuple[int, bytes]:
    resp = await client.session.get(url)  # no headers: the URL is the authority
    return resp.status, await resp.read()


async def test_segments_load_after_the_link_expired(
    client: TestClient[Any, Any], user: User, clip: Path
) -> None:
    job_id, master_url = await hls_job(client, user, clip)
    link_expires = int(token_of(master_url, job_id).split(".")[0])

    status, master = await fetch(client, master_url)
    assert status == 200
    variant_url = urljoin(master_url, uri_lines(master.decode())[0])
    status, variant = await fetch(client, variant_url)
    assert status == 200
    segments = [urljoin(variant_url, uri) for uri in uri_lines(variant.decode())]
    assert len(segments) >= 3
    status, first = await fetch(client, segments[0])
    assert status == 200 and first[:1] == b"G"  # an MPEG-TS sync byte

    await asyncio.sleep(max(link_expires - time.time(), 0) + 1.2)
    assert (await fetch(client, master_url))[0] == 404  # the link itself is over
    for url in segments[1:]:
        status, body = await fetch(client, url)
        assert status == 200, url
        assert body[:1] == b"G" and len(body) > 1000
    # A player that reloads the variant (or switches to another) still can: the
    # master named it with a playback token, and it names its segments afresh.
    status, again = await fetch(client, variant_url)
    assert status == 200
    for uri in uri_lines(again.decode())[1:]:
        assert (await fetch(client, urljoin(variant_url, uri)))[0] == 200


async def test_playback_tokens_are_bounded_by_the_link(
    client: TestClient[Any, Any], user: User, clip: Path
) -> None:
    job_id, master_url = await hls_job(client, user, clip)
    signer = client.server.app[appkeys.SIGNER]
    link = read_token(signer, job_id, token_of(master_url, job_id))
    assert link is not None and link.link_expires_at == link.expires_at

    resp = await client.session.get(master_url)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    text = await resp.text()
    [variant] = uri_lines(text)
    # Relative, back up to ".../t/", then the fresh token and the variant's name.
    assert variant.startswith("../../") and variant.endswith("/hls/240p/index.m3u8"), variant
    variant_url = urljoin(master_url, variant)
    fresh = read_token(signer, job_id, token_of(variant_url, job_id))
    assert fresh is not None
    assert fresh.link_expires_at == link.expires_at
    # The media's duration plus the TTL, counted from the link's expiry at the latest.
    assert link.expires_at < fresh.expires_at <= link.expires_at + CLIP_SECONDS + 1 + TTL

    # Ranges on a playlist are ignored (its bytes change with each token); HEAD has none.
    ranged = await client.session.get(master_url, headers={"Range": "bytes=0-3"})
    assert ranged.status == 200 and (await ranged.text()).startswith("#EXTM3U")
    head = await client.session.head(master_url)
    assert head.status == 200 and await head.read() == b""

    # Tampering with the link's expiry inside a playback token breaks it.
    expires, _, rest = token_of(variant_url, job_id).partition(".")
    forged = f"{expires}.{int(rest.split('.')[0]) + 3600}.{rest.split('.', 1)[1]}"
    assert read_token(signer, job_id, forged) is None
    forged_url = variant_url.replace(token_of(variant_url, job_id), forged)
    assert (await client.session.get(forged_url)).status == 404
    # A playback token is bound to its job like a link token.
    other_job = "00000000-0000-0000-0000-000000000000"
    assert read_token(signer, other_job, token_of(variant_url, job_id)) is None


async def test_access_log_lines_carry_no_output_token(
    client: TestClient[Any, Any], user: User, clip: Path
) -> None:
    job_id, master_url = await hls_job(client, user, clip)
    token = token_of(master_url, job_id)
    with capture_logs() as logs:
        assert (await client.session.get(master_url)).status == 200
        # Written once the handler has returned, which can be after the client has it all.
        await until(lambda: any(e["event"] == "request" for e in logs))
    [line] = [e for e in logs if e["event"] == "request"]
    assert line["path"] == f"/api/v1/jobs/{job_id}/t/[redacted]/hls/master.m3u8"
    assert token not in repr(logs)


async def test_a_content_url_lasts_the_videos_duration_plus_the_ttl(
    client: TestClient[Any, Any], user: User, clip: Path
) -> None:
    video = await upload(client, user, clip)
    before = time.time()
    resp = await client.get(f"/api/v1/videos/{video['id']}/content-url", headers=user.headers)
    body = await resp.json()
    expires = int(parse_qs(urlsplit(body["url"]).query)["expires"][0])
    assert int(before) + CLIP_SECONDS + TTL <= expires <= time.time() + CLIP_SECONDS + TTL + 1
    assert datetime.fromisoformat(body["expires_at"]).timestamp() == expires
    assert body["expires_in"] in {CLIP_SECONDS + TTL, CLIP_SECONDS + TTL + 1}  # duration rounded up
    # Still plays after the bare TTL: a film longer than the TTL does not stop halfway.
    await asyncio.sleep(max(before + TTL - time.time(), 0) + 0.5)
    resp = await client.session.get(body["url"], headers={"Range": "bytes=0-99"})
    assert resp.status == 206


# --- the pure parts ------------------------------------------------------------------

REWRITER = UriRewriter(base_dir="hls/480p", up="../../../", token="T")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("segment_00001.ts", "../../../T/hls/480p/segment_00001.ts"),
        ("  segment_00001.ts  ", "../../../T/hls/480p/segment_00001.ts"),
        ("../720p/index.m3u8", "../../../T/hls/720p/index.m3u8"),
        ("./a/b.ts?x=1#f", "../../../T/hls/480p/a/b.ts?x=1#f"),
        (
            '#EXT-X-MAP:URI="init.mp4",BYTERANGE="5@0"',
            '#EXT-X-MAP:URI="../../../T/hls/480p/init.mp4",BYTERANGE="5@0"',
        ),
        (
            '#EXT-X-MEDIA:TYPE=AUDIO,URI="../a/x.m3u8",NAME="en"',
            '#EXT-X-MEDIA:TYPE=AUDIO,URI="../../../T/hls/a/x.m3u8",NAME="en"',
        ),
        # Left alone: tags and comments, absolute URLs, paths outside the tree.
        ("#EXTINF:2.000000,", "#EXTINF:2.000000,"),
        ('# a comment URI="x"', '# a comment URI="x"'),
        ("", ""),
        ("https://cdn.example/x.ts", "https://cdn.example/x.ts"),
        ("//cdn.example/x.ts", "//cdn.example/x.ts"),
        ("/api/v1/jobs/x.ts", "/api/v1/jobs/x.ts"),
        ("../../../etc/passwd", "../../../etc/passwd"),
        ("../..", "../.."),
        (
            '#EXT-X-KEY:METHOD=AES-128,URI="data:text/plain,k"',
            '#EXT-X-KEY:METHOD=AES-128,URI="data:text/plain,k"',
        ),
    ],
)
def test_playlist_lines_are_rewritten(line: str, expected: str) -> None:
    assert REWRITER.line(line) == expected


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 4096])
async def test_rewrite_streams_line_by_line(chunk_size: int) -> None:
    text = b"#EXTM3U\r\n#EXTINF:2.0,\r\nsegment_00001.ts\r\n#EXTINF:2.0,\nsegment_00002.ts"
    expected = (
        b"#EXTM3U\r\n#EXTINF:2.0,\r\n../../../T/hls/480p/segment_00001.ts\r\n"
        b"#EXTINF:2.0,\n../../../T/hls/480p/segment_00002.ts"
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(text), chunk_size):
            yield text[i : i + chunk_size]

    parts = [p async for p in rewrite_lines(chunks(), REWRITER.line)]
    assert b"".join(parts) == expected


async def test_an_overlong_or_undecodable_line_passes_through_and_stays_bounded() -> None:
    long_line = b"x" * 100_000
    text = b"a.ts\n" + long_line + b"\n\xff\xfe.ts\nb.ts\n"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(text), 1000):
            yield text[i : i + 1000]

    parts = [p async for p in rewrite_lines(chunks(), REWRITER.line, max_line_bytes=4096)]
    assert max(len(p) for p in parts) < 4096 + 2000  # never the whole line at once
    assert b"".join(parts) == (
        b"../../../T/hls/480p/a.ts\n" + long_line + b"\n\xff\xfe.ts\n../../../T/hls/480p/b.ts\n"
    )


def test_renewed_tokens_never_reach_past_the_link_plus_the_lifetime() -> None:
    signer = UrlSigner(b"a secret for these tests only")
    job = "11111111-1111-1111-1111-111111111111"
    link = read_token(signer, job, make_token(signer, job, 1_000), now=900)
    assert link == OutputToken(expires_at=1_000, link_expires_at=1_000)
    # Fetched in time: now + lifetime.
    fresh = read_token(signer, job, renewed_token(signer, job, link, 60, now=950), now=950)
    assert fresh == OutputToken(expires_at=1_010, link_expires_at=1_000)
    # Re-fetched with the playback token after the link expired: no further than link + lifetime.
    again = renewed_token(signer, job, fresh, 60, now=1_005)
    assert read_token(signer, job, again, now=1_005) == OutputToken(1_060, 1_000)
    assert read_token(signer, job, again, now=1_060) is None
    for bad in ("", "1.2.3.4", "x.sig", "1000", ".", "1000.", "99999999999999.sig"):
        assert read_token(signer, job, bad, now=900) is None


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        (None, 60),
        ("12", 60),
        (True, 60),
        (float("nan"), 60),
        (-5, 60),
        (12.2, 73),
        (10**9, 60 + 86_400),
    ],
)
def test_playback_seconds(duration: object, seconds: int) -> None:
    assert playback_seconds(60, duration) == seconds
