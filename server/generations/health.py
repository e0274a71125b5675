"""Per-provider health: a circuit breaker, a concurrency limit, and retries with
backoff that honour `Retry-After`.

The breaker opens after `threshold` consecutive failures (transient provider
errors and timeouts; a refusal of the request itself is not the provider's
fault and counts as a success). While open, routing skips the provider and
calls to it fail at once with `provider_unavailable`; after `cooldown`
seconds one trial call is let through (half-open): its success closes the
breaker, its failure opens it for another cool-down. State lives in each
process (each instance learns a provider's health on its own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from server.generations.providers.base import ProviderError

T = TypeVar("T")
CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self, *, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open, only the one trial call may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_running or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._trial_running = False


class ProviderHealth:
    """The breaker and the concurrency limit of one provider, and its retry policy."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int,
        cooldown: float,
        concurrency: int,
        retries: int,
        backoff: float,
        max_backoff: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self.breaker = CircuitBreaker(threshold=threshold, cooldown=cooldown)
        self._slots = asyncio.Semaphore(concurrency)
        self._retries = retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """At most `concurrency` calls to the provider at once from this process."""
        async with self._slots:
            yield

    async def call(self, action: Callable[[], Awaitable[T]], touch: Callable[[], None]) -> T:
        """`action` through the breaker, retried on transient errors with backoff
        (the provider's Retry-After when it sends one). `touch` marks life while waiting."""
        attempt = 0
        while True:
            if not self.breaker.allow():
                raise ProviderError(
                    "provider_unavailable",
                    f"{self.name} is unavailable (too many recent failures); try again later",
                )
            try:
                async with self.slot():
                    result = await action()
            except ProviderError as exc:
                if not exc.provider_fault:
                    self.breaker.record_success()  # it answered: the request was at fault
                    raise
                self.breaker.record_failure()
                attempt += 1
                if not exc.retryable or attempt > self._retries:
                    raise
                delay = exc.retry_after
                if delay is None:
                    delay = self._backoff * 2 ** (attempt - 1)
                touch()
                await self._sleep(min(delay, self._max_backoff))
                touch()
                continue
            except TimeoutError:
                self.breaker.record_failure()
                raise ProviderError("provider_unavailable", f"{self.name} timed out") from None
            self.breaker.record_success()
            return result
