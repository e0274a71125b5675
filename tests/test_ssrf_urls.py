"""Malformed webhook URLs are refused as 400s before any DNS lookup, never a 500."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.webhooks.ssrf import UnsafeURL, check_url
from tests.conftest import User

# (URL, why it is refused): each used to crash in urlsplit, in the resolver's
# IDNA encoder, or would have sent a malformed name to DNS.
MALFORMED = [
    ("http://a..b/", "empty label"),
    ("http://.../", "only dots"),
    ("http://.a.com/", "leading empty label"),
    ("http://a.com../", "two trailing dots"),
    ("http://" + "a" * 64 + ".com/", "64-character label"),
    ("http://" + ("a" * 60 + ".") * 5 + "com/", "longer than 253 characters"),
    ("http://[::1/", "unclosed IPv6 bracket"),
    ("http://[zz]/", "not an address in brackets"),
    ("http://[2606:4700::1111]x/", "junk after the brackets"),
    ("http://%65xample.com/", "percent-encoded host"),
    ("http://-a.com/", "label starts with a hyphen"),
    ("http://a-.com/", "label ends with a hyphen"),
    ("http://xn--/", "empty punycode"),
    ("http://ex\u00e4mple..com/", "non-ASCII with an empty label"),
    ("http://\ufffd.com/", "replacement character"),
    ("http://a!b.com/", "punctuation"),
    ("http://example.com:99999/", "port out of range"),
]

# Well-formed names: they go on to the (fake) resolver.
WELL_FORMED = [
    "http://example.com/hook",
    "http://example.com./",
    "https://hooks.example.com:8443/x?y=1",
    "http://m\u00fcnchen.de/",
    "http://xn--mnchen-3ya.de/",
    "http://web_1.internal/",
]


class Lookups:
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def getaddrinfo(self, host: str, port: Any, **kwargs: Any) -> Any:
        # What the real resolver does first, so the old crash is reproduced
        # here without ever reaching DNS.
        host.encode("idna")
        self.hosts.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "no DNS in tests")


@pytest.fixture
async def lookups(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lookups]:
    fake = Lookups()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake.getaddrinfo)
    yield fake


@pytest.mark.parametrize(("url", "why"), MALFORMED)
async def test_malformed_urls_are_refused_without_a_lookup(
    lookups: Lookups, url: str, why: str
) -> None:
    with pytest.raises(UnsafeURL):
        await check_url(url, frozenset())
    assert lookups.hosts == [], why


@pytest.mark.parametrize("url", WELL_FORMED)
async def test_well_formed_names_are_looked_up(lookups: Lookups, url: str) -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        await check_url(url, frozenset())
    assert len(lookups.hosts) == 1


async def test_registration_answers_400_for_each(
    client: TestClient[Any, Any], user: User, lookups: Lookups
) -> None:
    for url, why in MALFORMED:
        resp = await client.post(
            "/api/v1/webhooks",
            json={"url": url, "events": ["job.succeeded"]},
            headers=user.headers,
        )
        assert resp.status == 400, (why, await resp.text())
        assert (await resp.json())["error"]["field"] == "url", why
    assert lookups.hosts == []
