"""`ProviderRegistry`: the providers this server knows, their health, and routing.

`auto` routing takes the cheapest configured provider whose circuit is not
open and that supports the request (model, resolution, duration, aspect
ratio, a reference image); ties go by name, so the choice is stable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from config.settings import Settings
from server.errors import BadRequest, Unprocessable
from server.generations.health import CircuitState, ProviderHealth
from server.generations.providers.base import GenerationSpec, ProviderInfo, RemoteProvider
from server.generations.providers.local import LocalProvider

AUTO = "auto"
Provider = LocalProvider | RemoteProvider
# Stands for "an image" while a request is checked (the file is fetched by the worker).
PLACEHOLDER_IMAGE = Path("reference-image")


@dataclasses.dataclass(frozen=True)
class ProviderListing:
    info: ProviderInfo
    circuit: CircuitState


def _state_reader(health: ProviderHealth) -> Callable[[], str]:
    return lambda: health.breaker.state


class ProviderRegistry:
    def __init__(
        self,
        *,
        settings: Settings,
        local: LocalProvider,
        remote: Mapping[str, RemoteProvider],
    ) -> None:
        self.local = local
        self._providers: dict[str, Provider] = {local.name: local, **remote}
        self.health = {
            name: ProviderHealth(
                name,
                threshold=settings.generation_breaker_threshold,
                cooldown=settings.generation_breaker_cooldown_seconds,
                concurrency=settings.generation_provider_concurrency,
                retries=settings.generation_retries,
                backoff=settings.generation_backoff_seconds,
                max_backoff=settings.generation_max_backoff_seconds,
            )
            for name in self._providers
        }

    def circuit_states(self) -> dict[str, Callable[[], str]]:
        """Each provider's breaker state, read when asked (for /metrics)."""
        return {name: _state_reader(h) for name, h in self.health.items()}

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def listing(self) -> list[ProviderListing]:
        return [
            ProviderListing(p.info(), self.health[name].breaker.state)
            for name, p in sorted(self._providers.items())
        ]

    def choose(
        self, requested: str, model: str | None, spec: GenerationSpec
    ) -> tuple[Provider, GenerationSpec]:
        """The provider for a request and the spec with its model filled in;
        400 naming the field for an unknown provider, 422 for one that cannot."""
        if requested != AUTO:
            provider = self._providers.get(requested)
            if provider is None:
                known = ", ".join([AUTO, *sorted(self._providers)])
                raise BadRequest(
                    f"Unknown provider; expected one of: {known}",
                    code="invalid_field",
                    field="provider",
                )
            info = provider.info()
            if not info.configured:
                raise Unprocessable(
                    f"The provider {requested!r} is not configured on this server",
                    code="provider_not_configured",
                    field="provider",
                )
            full = dataclasses.replace(spec, model=model or provider.default_model())
            unsupported = info.supports(full)
            if unsupported is not None:
                raise Unprocessable(
                    f"{requested} does not support this {unsupported.replace('_', ' ')}",
                    code="invalid_input",
                    field=unsupported,
                )
            return provider, full
        candidates: list[tuple[int, str, Provider, GenerationSpec]] = []
        for name, provider in self._providers.items():
            info = provider.info()
            if not info.configured or self.health[name].breaker.state == "open":
                continue
            full = dataclasses.replace(spec, model=model or provider.default_model())
            if info.supports(full) is None:
                candidates.append((provider.estimate(full), name, provider, full))
        if not candidates:
            raise Unprocessable(
                "No configured and available provider supports this request",
                code="no_provider",
                field="provider",
            )
        _cost, _name, provider, full = min(candidates, key=lambda c: (c[0], c[1]))
        return provider, full
