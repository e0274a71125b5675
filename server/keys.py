"""Every piece of application state, declared once as a typed `web.AppKey`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from config.settings import Settings

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
STORAGE = web.AppKey("storage", "Storage")
METRICS = web.AppKey("metrics", "Metrics")
TOKENS = web.AppKey("tokens", "TokenService")
SIGNER = web.AppKey("signer", "UrlSigner")
FFMPEG = web.AppKey("ffmpeg", str)
UPLOADS = web.AppKey("uploads", "UploadTracker")
