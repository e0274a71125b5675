"""The remote providers this server is configured for (keys and base URLs from settings)."""

from __future__ import annotations

from config.settings import Settings
from server.generations.providers.base import RemoteProvider


def build_remote_providers(settings: Settings) -> dict[str, RemoteProvider]:
    """Every remote adapter, configured or not (an unconfigured one is listed, never chosen)."""
    return {}
