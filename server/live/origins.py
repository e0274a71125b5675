"""Which browser origins may open a WebSocket (checked before the upgrade).

Browsers send `Origin` with every WebSocket handshake and let any page try
one: without this check a site the user visits could follow their jobs.
Clients that send no `Origin` (scripts, curl) are not browsers and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from config.settings import Settings


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]`, lower-cased, default ports dropped."""
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    default = {"http": 80, "https": 443}.get(scheme)
    try:
        port = parts.port
    except ValueError:
        return ""
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{scheme}://{host}{suffix}"


def allowed_origins(settings: Settings, request: web.Request) -> set[str]:
    configured = {normalize_origin(o) for o in settings.allowed_origins.split(",") if o.strip()}
    if configured:
        return configured
    same = {normalize_origin(f"{request.scheme}://{request.host}")}
    if settings.public_url:  # behind a proxy, the browser's origin is the public one
        same.add(normalize_origin(settings.public_url))
    return same


def origin_allowed(settings: Settings, request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    normalized = normalize_origin(origin)
    return bool(normalized) and normalized in allowed_origins(settings, request)
