"""`GET /api/v1/openapi.json` (the contract) and `GET /api/docs` (Swagger UI, served locally)."""

from __future__ import annotations

from aiohttp import web

from server.http import external_url
from server.openapi.document import build_document
from server.openapi.spec import (
    ANY_OBJECT,
    STRING,
    Answer,
    RouteSpec,
    deprecation_headers,
    described,
    spec_of,
)
from server.static_files import STATIC_DIR

DOCS_PAGE = STATIC_DIR / "api-docs.html"
# Swagger UI sets inline style attributes; scripts stay same-origin only.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


@described(
    RouteSpec(
        summary="This document: the API's OpenAPI 3.1 contract",
        tag="meta",
        ok={200: Answer("The document", ANY_OBJECT)},
    )
)
async def openapi_json(request: web.Request) -> web.Response:
    document = build_document(request.app, server_url=external_url(request, "/"))
    return web.json_response(document, headers={"Cache-Control": "no-cache"})


@described(
    RouteSpec(
        summary="Interactive API documentation (Swagger UI)",
        tag="meta",
        ok={200: Answer("HTML", STRING, "text/html")},
    )
)
async def docs(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        DOCS_PAGE,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": DOCS_CSP,
            "X-Content-Type-Options": "nosniff",
        },
    )


async def announce_deprecation(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer of a deprecated operation says so, errors too."""
    spec = spec_of(request.match_info.handler)
    if spec is not None and spec.deprecation is not None:
        response.headers.update(deprecation_headers(spec.deprecation))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json, name="openapi")
    app.router.add_get("/api/docs", docs, name="api_docs")
    app.on_response_prepare.append(announce_deprecation)
