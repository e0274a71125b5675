"""Rate limits: the GCRA limiters themselves, then 429 + Retry-After on every limited
route, with the in-memory limiter and with Redis (shared by two app instances)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from config.settings import Settings, SettingsError
from server import appkeys
from server.app import create_app
from server.auth.devices import DEVICE_COOKIE
from server.limits.ratelimit import (
    DEFAULT_PREFIX,
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from tests.conftest import PASSWORD, register_and_login, truncate_all

Client = TestClient[Any, Any]
MakeClient = Callable[[web.Application], Awaitable[Client]]
LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
# Every limit off unless a test turns one on: the setup's own sign-ups must not count.
OFF = {
    "rate_limit_login_per_minute": 0,
    "rate_limit_register_per_hour": 0,
    "rate_limit_refresh_per_minute": 0,
    "rate_limit_uploads_per_hour": 0,
    "rate_limit_jobs_per_minute": 0,
}


async def _clear_redis_limits(url: str) -> None:
    r = aioredis.from_url(url)
    try:
        async for key in r.scan_iter(match=DEFAULT_PREFIX + "*"):
            await r.delete(key)
    finally:
        await r.aclose()


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    # Counters live in Redis beyond one run: start and leave it clean.
    await _clear_redis_limits(url)
    yield url
    await _clear_redis_limits(url)


@pytest.fixture(params=["memory", "redis"])
def limiter_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
def limited(
    make_settings: Callable[..., Settings],
    aiohttp_client: MakeClient,
    limiter_backend: dict[str, Any],
) -> Callable[..., Awaitable[Client]]:
    """A client of an app with every limit off but those given, on the backend under test."""

    async def make(**limits: Any) -> Client:
        # Loopback is a trusted proxy here, so X-Forwarded-For stands for other clients.
        settings = make_settings(
            **{**OFF, "trusted_proxies": "127.0.0.1,::1", **limiter_backend, **limits}
        )
        client = await aiohttp_client(create_app(settings))
        await truncate_all(client.app)
        return client

    return make


def _from(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def _login(client: Client, email: str, ip: str, password: str = "wrong") -> int:  # noqa: S107
    resp = await client.post(LOGIN, json={"email": email, "password": password}, headers=_from(ip))
    return resp.status


async def assert_429(resp: Any) -> None:
    assert resp.status == 429, await resp.text()
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    error = (await resp.json())["error"]
    assert error["code"] == "rate_limited"
    assert f"{retry_after} s" in error["message"]


# --- the limiters ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_in_memory_allows_a_burst_then_one_per_interval() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock)
    assert [await limiter.hit("k", 3, 60) for _ in range(3)] == [None, None, None]
    wait = await limiter.hit("k", 3, 60)
    assert wait == pytest.approx(20.0)  # one emission interval: 60 s / 3
    assert await limiter.hit("other", 3, 60) is None  # keys are independent
    clock.now += 19.9
    assert await limiter.hit("k", 3, 60) is not None
    clock.now += 0.2
    assert await limiter.hit("k", 3, 60) is None  # one more after one interval
    assert await limiter.hit("k", 3, 60) is not None


async def test_in_memory_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(max_keys=100, clock=clock)
    for i in range(1000):
        await limiter.hit(f"k{i}", 5, 60)
    assert len(limiter) <= 100
    # Expired keys go first: after a window, a new key sweeps them all.
    clock.now += 61
    await limiter.hit("fresh", 5, 60)
    assert len(limiter) == 1


async def _shared_hits(one: RateLimiter, two: RateLimiter) -> list[float | None]:
    key = uuid.uuid4().hex
    return [await limiter.hit(key, 2, 60) for limiter in (one, two, one, two)]


async def test_redis_limiter_is_shared_and_atomic(redis_url: str) -> None:
    one, two = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)
    await one.start()
    await two.start()
    try:
        hits = await _shared_hits(one, two)
        assert hits[:2] == [None, None]
        assert hits[2] == pytest.approx(30.0, abs=0.5) and hits[3] is not None
        # Concurrent hits on one key: exactly `limit` get through.
        import asyncio

        key = uuid.uuid4().hex
        results = await asyncio.gather(*(one.hit(key, 5, 60) for _ in range(20)))
        assert sum(r is None for r in results) == 5
    finally:
        await one.close()
        await two.close()


async def test_redis_limiter_fails_open_when_redis_is_away() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        assert await limiter.hit("k", 1, 60) is None
        assert await limiter.hit("k", 1, 60) is None
    finally:
        await limiter.close()


def test_settings_validate_limits() -> None:
    with pytest.raises(SettingsError, match="FRAMEFLOW_RATE_LIMIT_JOBS_PER_MINUTE"):
        Settings(rate_limit_jobs_per_minute=-1)
    with pytest.raises(SettingsError, match="FRAMEFLOW_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.1, not-an-ip")
    assert Settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies


# --- the routes ----------------------------------------------------------------------


async def test_login_is_limited_per_ip(limited: Callable[..., Awaitable[Client]]) -> None:
    client = await limited(rate_limit_login_per_minute=2)
    assert await _login(client, "a@example.com", "10.0.0.1") == 401
    assert await _login(client, "b@example.com", "10.0.0.1") == 401
    resp = await client.post(
        LOGIN, json={"email": "c@example.com", "password": "x"}, headers=_from("10.0.0.1")
    )
    await assert_429(resp)
    # Another address is not affected.
    assert await _login(client, "d@example.com", "10.0.0.2") == 401


async def test_login_is_limited_per_account(limited: Callable[..., Awaitable[Client]]) -> None:
    client = await limited(rate_limit_login_per_minute=2)
    user = await register_and_login(client)  # not from a listed IP, and limits count it
    client.session.cookie_jar.clear()  # from here on, clients that never logged in
    # The account already had one login; one more from elsewhere, then refused.
    assert await _login(client, user.email, "10.0.1.1") == 401
    resp = await client.post(
        LOGIN,
        json={"email": user.email.upper(), "password": PASSWORD},  # any case: one account
        headers=_from("10.0.1.2"),
    )
    await assert_429(resp)
    other = await register_and_login(client)  # another account: unaffected
    assert await _login(client, other.email, "10.0.1.3", PASSWORD) == 200


@pytest.mark.parametrize(
    ("path", "limit"),
    [(LOGIN, "rate_limit_login_per_minute"), (REFRESH, "rate_limit_refresh_per_minute")],
)
async def test_malformed_bodies_count_against_the_limit(
    limited: Callable[..., Awaitable[Client]], path: str, limit: str
) -> None:
    # Issue 9 #1: the body used to be parsed first, so 14 hostile bodies gave
    # 14 errors and no 429. The address is counted before the body is read.
    client = await limited(**{limit: 10})
    headers = {**_from("10.0.6.1"), "Content-Type": "application/json"}
    statuses = [
        (await client.post(path, data=b'{"email": ', headers=headers)).status for _ in range(14)
    ]
    assert statuses == [400] * 10 + [429] * 4
    await assert_429(await client.post(path, data=b"[" * 1000, headers=headers))


def _cookie(device: str | None) -> dict[str, str]:
    return {"Cookie": f"{DEVICE_COOKIE}={device}"} if device else {}


async def _login_with(
    client: Client, email: str, ip: str, password: str, device: str | None = None
) -> int:
    resp = await client.post(
        LOGIN, json={"email": email, "password": password}, headers={**_from(ip), **_cookie(device)}
    )
    return resp.status


async def test_strangers_cannot_lock_the_owner_out(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    # Issue 9 #18: 10 wrong guesses from 10 addresses used to lock the owner out.
    client = await limited(rate_limit_login_per_minute=10)
    owner, other = await register_and_login(client), await register_and_login(client)
    resp = await client.post(
        LOGIN, json={"email": owner.email, "password": PASSWORD}, headers=_from("10.0.7.100")
    )
    assert resp.status == 200
    morsel = resp.cookies.get(DEVICE_COOKIE)
    device = morsel.value if morsel is not None else None
    client.session.cookie_jar.clear()  # the strangers below never logged in

    guesses = [await _login(client, owner.email, f"10.0.7.{i}") for i in range(1, 11)]
    assert set(guesses) <= {401, 429} and guesses[-1] == 429
    # The account is closed to unknown clients, even with the right password...
    assert await _login_with(client, owner.email, "10.0.7.20", PASSWORD) == 429
    # ...but the owner's own client logs in...
    assert await _login_with(client, owner.email, "10.0.7.100", PASSWORD, device) == 200
    client.session.cookie_jar.clear()
    # ...and a device cookie of another account, or a forged one, does not.
    other_resp = await client.post(
        LOGIN, json={"email": other.email, "password": PASSWORD}, headers=_from("10.0.7.21")
    )
    assert other_resp.status == 200
    other_device = other_resp.cookies[DEVICE_COOKIE].value
    client.session.cookie_jar.clear()
    assert await _login_with(client, owner.email, "10.0.7.22", PASSWORD, other_device) == 429
    assert await _login_with(client, owner.email, "10.0.7.23", PASSWORD, "forged") == 429


async def test_a_known_device_is_still_limited(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    client = await limited(rate_limit_login_per_minute=3)
    owner = await register_and_login(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url(LOGIN))[DEVICE_COOKIE]
    client.session.cookie_jar.clear()
    # A stolen device cookie buys its own allowance, no more, from any address.
    statuses = [
        await _login_with(client, owner.email, f"10.0.9.{i}", "wrong", cookie.value)
        for i in range(1, 5)
    ]
    assert statuses == [401, 401, 401, 429]
    # Guessing from one address stays limited whatever the account.
    statuses = [
        await _login_with(client, f"x{i}@example.com", "10.0.9.50", "wrong") for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


async def test_the_device_cookie_is_set_on_success_only(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    client = await limited()
    user = await register_and_login(client)
    client.session.cookie_jar.clear()
    resp = await client.post(LOGIN, json={"email": user.email, "password": "wrong"})
    assert resp.status == 401 and DEVICE_COOKIE not in resp.cookies
    resp = await client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert resp.status == 200
    morsel = resp.cookies[DEVICE_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/v1/auth/login"
    assert not morsel["secure"]  # plain HTTP here; set behind https (public URL or TLS)
    assert int(morsel["max-age"]) > 0


async def test_register_is_limited_per_ip(limited: Callable[..., Awaitable[Client]]) -> None:
    client = await limited(rate_limit_register_per_hour=1)

    async def register(ip: str) -> Any:
        email = f"r-{uuid.uuid4().hex[:8]}@example.com"
        return await client.post(
            REGISTER, json={"email": email, "password": PASSWORD}, headers=_from(ip)
        )

    assert (await register("10.0.2.1")).status == 202
    await assert_429(await register("10.0.2.1"))
    assert (await register("10.0.2.2")).status == 202


async def test_refresh_is_limited_per_ip_and_per_account(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    client = await limited(rate_limit_refresh_per_minute=2)
    user = await register_and_login(client)
    other = await register_and_login(client)
    token = user.refresh_token
    for ip in ("10.0.3.1", "10.0.3.2"):
        resp = await client.post(REFRESH, json={"refresh_token": token}, headers=_from(ip))
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["refresh_token"]
    # Third refresh of this account, from a fresh address: the account limit.
    resp = await client.post(REFRESH, json={"refresh_token": token}, headers=_from("10.0.3.3"))
    await assert_429(resp)
    # Garbage tokens from one address: the IP limit.
    for _ in range(2):
        resp = await client.post(REFRESH, json={"refresh_token": "x"}, headers=_from("10.0.3.4"))
        assert resp.status == 401
    resp = await client.post(
        REFRESH, json={"refresh_token": other.refresh_token}, headers=_from("10.0.3.4")
    )
    await assert_429(resp)
    # The other account from another address is fine.
    resp = await client.post(
        REFRESH, json={"refresh_token": other.refresh_token}, headers=_from("10.0.3.5")
    )
    assert resp.status == 200


async def test_uploads_are_limited_per_user(limited: Callable[..., Awaitable[Client]]) -> None:
    client = await limited(rate_limit_uploads_per_hour=1)
    user, other = await register_and_login(client), await register_and_login(client)
    # Attempts count whatever their outcome (this one is not a video: 415).
    resp = await client.put("/api/v1/uploads/a.mp4", data=b"not a video", headers=user.headers)
    assert resp.status == 415
    await assert_429(
        await client.put("/api/v1/uploads/b.mp4", data=b"not a video", headers=user.headers)
    )
    form_headers = {**user.headers, "Content-Type": "multipart/form-data; boundary=x"}
    await assert_429(await client.post("/api/v1/uploads", data=b"--x--", headers=form_headers))
    resp = await client.put("/api/v1/uploads/c.mp4", data=b"not a video", headers=other.headers)
    assert resp.status == 415


async def test_direct_upload_urls_count_as_uploads(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    client = await limited(rate_limit_uploads_per_hour=1)
    user, other = await register_and_login(client), await register_and_login(client)
    resp = await client.post("/api/v1/direct-uploads", json={}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    await assert_429(await client.post("/api/v1/direct-uploads", json={}, headers=user.headers))
    # The same budget as the caller's own uploads.
    await assert_429(
        await client.put("/api/v1/uploads/a.mp4", data=b"not a video", headers=user.headers)
    )
    resp = await client.post("/api/v1/direct-uploads", json={}, headers=other.headers)
    assert resp.status == 201


async def test_job_creation_is_limited_per_user(
    limited: Callable[..., Awaitable[Client]],
) -> None:
    client = await limited(rate_limit_jobs_per_minute=1)
    user, other = await register_and_login(client), await register_and_login(client)
    url = f"/api/v1/videos/{uuid.uuid4()}/jobs"
    body = {"operation": "thumbnail"}
    assert (await client.post(url, json=body, headers=user.headers)).status == 404
    await assert_429(await client.post(url, json=body, headers=user.headers))
    assert (await client.post(url, json=body, headers=other.headers)).status == 404


async def test_forwarded_for_is_ignored_from_untrusted_peers(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(
        create_app(make_settings(**{**OFF, "rate_limit_login_per_minute": 1}))
    )
    await truncate_all(client.app)
    assert await _login(client, "a@example.com", "10.0.4.1") == 401
    # A made-up address does not buy a fresh limit: the peer is 127.0.0.1 both times.
    await assert_429(
        await client.post(
            LOGIN, json={"email": "b@example.com", "password": "x"}, headers=_from("10.0.4.2")
        )
    )


async def test_redis_limits_are_shared_by_two_instances(
    make_settings: Callable[..., Settings], aiohttp_client: MakeClient, redis_url: str
) -> None:
    settings = make_settings(**{**OFF, "redis_url": redis_url, "rate_limit_login_per_minute": 2})
    a = await aiohttp_client(create_app(settings))
    b = await aiohttp_client(create_app(settings))
    await truncate_all(a.app)
    assert isinstance(a.app[appkeys.RATE_LIMITER], RedisRateLimiter)
    assert await _login(a, "a@example.com", "ignored") == 401
    assert await _login(b, "b@example.com", "ignored") == 401
    await assert_429(
        await a.post(LOGIN, json={"email": "c@example.com", "password": "x"}),
    )
    await assert_429(
        await b.post(LOGIN, json={"email": "d@example.com", "password": "x"}),
    )


async def test_zero_turns_a_limit_off(limited: Callable[..., Awaitable[Client]]) -> None:
    client = await limited()  # everything 0
    for _ in range(30):
        assert await _login(client, "a@example.com", "10.0.5.1") == 401
