"""The `RateLimiter`: how many hits a key may make in a window, as GCRA.

GCRA (the generic cell rate algorithm) keeps one number per key, the
"theoretical arrival time" (TAT): each allowed hit pushes it one emission
interval (window / limit) further; a hit is refused while the TAT is more than
one window ahead of now. That is a sliding window with a burst of `limit`,
without storing every hit, and the refusal tells exactly how long to wait.

- `InMemoryRateLimiter`: one process; keys whose TAT has passed are forgotten,
  and the table never holds more than `max_keys` entries.
- `RedisRateLimiter`: the same algorithm in one Lua script, so every instance
  shares the counters and a hit is atomic. Redis's clock is the only clock, so
  instances with skewed clocks still agree. When Redis is unreachable the hit
  is allowed (and logged): a limiter outage must not lock every user out.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.settings import Settings
from server.logs import get_logger

log = get_logger("frameflow.limits")

DEFAULT_PREFIX = "frameflow:rl:"
DEFAULT_MAX_KEYS = 100_000
# Float slack: `now + window - now` may come out a hair above `window`, and
# the last hit of a full burst must not be refused for that.
_EPSILON = 1e-6


class RateLimiter:
    """`hit` counts one request against `key`: None when allowed, else the seconds to wait."""

    async def hit(self, key: str, limit: int, window_seconds: float) -> float | None:
        raise NotImplementedError

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class InMemoryRateLimiter(RateLimiter):
    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_keys = max_keys
        self._clock = clock
        # Insertion order = order of last allowed hit, so the oldest come first.
        self._tat: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tat)

    async def hit(self, key: str, limit: int, window_seconds: float) -> float | None:
        now = self._clock()
        interval = window_seconds / limit
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + interval
        ahead = new_tat - now
        if ahead > window_seconds + _EPSILON:
            return ahead - window_seconds
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        self._bound(now)
        return None

    def _bound(self, now: float) -> None:
        if len(self._tat) <= self._max_keys:
            return
        # A passed TAT means the key is back to a full burst: same as absent.
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        # Still full (a flood of distinct keys): forget the least recent ones.
        # That can only let a forgotten key through early, never refuse wrongly.
        while len(self._tat) > self._max_keys:
            self._tat.popitem(last=False)


# KEYS[1]: the counter; ARGV[1]: window in ms; ARGV[2]: limit.
# Returns 0 when allowed, else the milliseconds to wait (at least 1).
# Times are milliseconds as doubles (exact far beyond 2^40 ms), written with
# %.3f: Lua's tostring would round them to 14 digits.
_GCRA = """
local window = tonumber(ARGV[1])
local interval = window / tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > window + 0.001 then
  return math.max(1, math.ceil(ahead - window))
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(ahead) + 1)
return 0
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._redis = aioredis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        self._script = self._redis.register_script(_GCRA)

    async def start(self) -> None:
        # Loud at start-up: a wrong REDIS_URL should stop the server, not fail quietly.
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def hit(self, key: str, limit: int, window_seconds: float) -> float | None:
        window_ms = max(1, math.ceil(window_seconds * 1000))
        try:
            wait_ms = int(await self._script(keys=[self.prefix + key], args=[window_ms, limit]))
        except (RedisError, OSError) as exc:
            log.warning("rate_limit_unavailable", error=str(exc) or type(exc).__name__)
            return None
        return wait_ms / 1000 if wait_ms > 0 else None


@contextlib.asynccontextmanager
async def open_rate_limiter(settings: Settings) -> AsyncIterator[RateLimiter]:
    limiter: RateLimiter = (
        RedisRateLimiter(settings.redis_url) if settings.redis_url else InMemoryRateLimiter()
    )
    try:
        await limiter.start()
        yield limiter
    finally:
        await limiter.close()
