"""The browser page: `static/` served as-is (no build step), `/` → index.html.

Every page file is sent with `Cache-Control: no-cache`: the modules are
fetched by their plain names (no hashed file names without a build step), so
a browser must revalidate (cheap: ETag/Last-Modified, a 304) or it could run
yesterday's `app.js` against today's API. The page carries a Content Security
Policy that allows only its own scripts and styles, so that an injected file
name could not run code even if some code path forgot to escape it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from server import appkeys
from server.openapi.spec import STRING, Answer, RouteSpec, described

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_PREFIX = "/static/"


def content_security_policy(public_url: str) -> str:
    # Signed media and output URLs point at FRAMEFLOW_PUBLIC_URL when it is
    # set; it may differ from the origin the page was loaded from.
    extra = f" {public_url.rstrip('/')}" if public_url else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            f"media-src 'self' blob:{extra}",
            f"connect-src 'self' ws: wss:{extra}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


# index.html names the page's settings in <meta> tags, filled in when it is served.
TUS_THRESHOLD_PLACEHOLDER = "__TUS_THRESHOLD__"


@described(
    RouteSpec(summary="The browser page", tag="page", ok={200: Answer("HTML", STRING, "text/html")})
)
async def index(request: web.Request) -> web.Response:
    settings = request.app[appkeys.SETTINGS]
    html = await asyncio.to_thread((STATIC_DIR / "index.html").read_text, "utf-8")
    html = html.replace(TUS_THRESHOLD_PLACEHOLDER, str(settings.page_tus_threshold_bytes))
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": content_security_policy(settings.public_url),
            # Signed URLs must not leak to other sites through Referer.
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


def share_page_template() -> str:
    """static/share.html, which `/s/{token}` and its embed page fill in (cards, class)."""
    return (STATIC_DIR / "share.html").read_text("utf-8")


def share_page(request: web.Request, html: str) -> web.Response:
    """The public player of a share link (`/s/{token}`): no login, embeddable anywhere."""
    policy = content_security_policy(request.app[appkeys.SETTINGS].public_url).replace(
        "frame-ancestors 'none'", "frame-ancestors *"
    )
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": policy,
            # The link is the credential: it must not leak to other sites.
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(STATIC_PREFIX) and response.status in (200, 304):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, follow_symlinks=False)
    app.on_response_prepare.append(_static_headers)
