"""`PresignedGets` (S3 reads by presigned URL) against a scripted HTTP server:
the retries and re-signing that a healthy store never shows (test_storage.py
covers reads against moto and SeaweedFS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.storage import s3_get
from server.storage.s3_get import PresignedGets, S3Refused, S3Unreachable


def _error(status: int, code: str) -> web.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code></Error>"
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


class Store:
    """Answers each GET with the next scripted status (then 206 with the range)."""

    def __init__(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[str, str | None]] = []  # (query signature, Range)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.query.get("sig", ""), request.headers.get("Range")))
        if self.answers:
            return _error(*self.answers.pop(0))
        return web.Response(status=206, body=b"abc")


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instant(attempt: int) -> None:
        return None

    monkeypatch.setattr(s3_get, "_backoff", instant)


async def _gets(store: Store, attempts: int = 3) -> AsyncIterator[PresignedGets]:
    app = web.Application()
    app.router.add_get("/b/{key}", store.handle)
    server = TestServer(app)
    await server.start_server()
    signed = 0

    async def presign(key: str, seconds: int) -> str:
        nonlocal signed
        signed += 1
        return str(server.make_url(f"/b/{key}").with_query(sig=str(signed)))

    gets = PresignedGets(
        presign,
        str(server.make_url("/")),
        max_attempts=attempts,
        max_connections=4,
        connect_timeout=5,
        read_timeout=5,
    )
    try:
        yield gets
    finally:
        await gets.close()
        await server.close()


async def _read(gets: PresignedGets, key: str = "k") -> bytes:
    async with aclosing(gets.read(key, "bytes=0-2", 1024)) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def test_reuses_one_signature_and_sends_the_range() -> None:
    store = Store()
    async for gets in _gets(store):
        assert await _read(gets) == b"abc"
        assert await _read(gets) == b"abc"
    assert store.seen == [("1", "bytes=0-2"), ("1", "bytes=0-2")]


async def test_5xx_and_slowdown_are_retried_then_succeed() -> None:
    store = Store((503, "SlowDown"), (500, "InternalError"))
    async for gets in _gets(store, attempts=3):
        assert await _read(gets) == b"abc"
    assert len(store.seen) == 3


async def test_retries_stop_at_max_attempts() -> None:
    store = Store((503, "SlowDown"), (503, "SlowDown"), (503, "SlowDown"))
    async for gets in _gets(store, attempts=2):
        with pytest.raises(S3Refused) as refused:
            await _read(gets)
    assert (refused.value.status, refused.value.code) == (503, "SlowDown")
    assert len(store.seen) == 2


async def test_a_refused_signature_is_signed_again_once() -> None:
    store = Store((403, "SignatureDoesNotMatch"))
    async for gets in _gets(store):
        assert await _read(gets) == b"abc"
        assert await _read(gets) == b"abc"  # the new signature is the one kept
    assert [sig for sig, _ in store.seen] == ["1", "2", "2"]

    denied = Store((403, "AccessDenied"), (403, "AccessDenied"), (403, "AccessDenied"))
    async for gets in _gets(denied):
        with pytest.raises(S3Refused, match="AccessDenied"):
            await _read(gets)
    assert len(denied.seen) == 2  # not retried beyond one fresh signature


async def test_not_found_is_not_retried() -> None:
    store = Store((404, "NoSuchKey"))
    async for gets in _gets(store):
        with pytest.raises(S3Refused) as refused:
            await _read(gets)
    assert refused.value.code == "NoSuchKey"
    assert len(store.seen) == 1


async def test_unreachable_store() -> None:
    async def presign(key: str, seconds: int) -> str:
        return "http://127.0.0.1:1/b/k?sig=1"  # nothing listens on port 1

    gets = PresignedGets(
        presign,
        "http://127.0.0.1:1",
        max_attempts=2,
        max_connections=1,
        connect_timeout=5,
        read_timeout=5,
    )
    try:
        with pytest.raises(S3Unreachable) as unreachable:
            await _read(gets)
        assert "sig=" not in str(unreachable.value)
    finally:
        await gets.close()


def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "s3.internal")
    assert s3_get._proxy_for("https://s3.example.com") == "http://proxy.example:3128"
    assert s3_get._proxy_for("https://s3.internal") is None
    assert s3_get._proxy_for("http://s3.example.com") is None  # no http_proxy set
