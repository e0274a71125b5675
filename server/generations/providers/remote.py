"""The remote providers this server knows (keys and base URLs from settings)."""

from __future__ import annotations

from config.settings import Settings
from server.generations.providers.base import RemoteProvider
from server.generations.providers.kling import KlingProvider
from server.generations.providers.sora import SoraProvider
from server.generations.providers.veo import VeoProvider


def build_remote_providers(settings: Settings) -> dict[str, RemoteProvider]:
    """Every remote adapter, configured or not (one without keys is listed, never chosen)."""
    timeout = settings.generation_request_timeout_seconds
    return {
        "sora": SoraProvider(
            api_key=settings.sora_api_key,
            base_url=settings.sora_base_url,
            price_per_second=settings.sora_price_per_second,
            timeout_seconds=timeout,
        ),
        "veo": VeoProvider(
            api_key=settings.veo_api_key,
            base_url=settings.veo_base_url,
            price_per_second=settings.veo_price_per_second,
            timeout_seconds=timeout,
        ),
        "kling": KlingProvider(
            access_key=settings.kling_access_key,
            secret_key=settings.kling_secret_key,
            base_url=settings.kling_base_url,
            price_per_second=settings.kling_price_per_second,
            timeout_seconds=timeout,
        ),
    }
