"""The published contract: valid OpenAPI 3.1, every route in it, and the live server keeps it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from server import appkeys
from server.app import create_app
from server.openapi.document import undocumented_routes
from tests.test_admin import make_admin
from tests.test_api_keys import create_key

Client = TestClient[Any, Any]
DOC = "/api/v1/openapi.json"


async def test_the_document_is_valid_openapi_31(client: Client) -> None:
    resp = await client.get(DOC)
    assert resp.status == 200
    document = await resp.json()
    assert document["openapi"].startswith("3.1")
    validate(document)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


async def test_every_route_has_a_spec_and_is_in_the_document(client: Client) -> None:
    assert undocumented_routes(client.app) == []
    document = await (await client.get(DOC)).json()
    published = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    missing = []
    for route in client.app.router.routes():
        resource = route.resource
        if route.method in {"HEAD", "OPTIONS"} or resource is None:
            continue
        if resource.canonical == "/static":
            continue
        if (route.method, resource.canonical) not in published:
            missing.append((route.method, resource.canonical))
    assert missing == []


async def test_bodies_come_from_the_validating_models(client: Client) -> None:
    document = await (await client.get(DOC)).json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    key_body = paths["/api/v1/api-keys"]["post"]["requestBody"]["content"]["application/json"]
    assert key_body["schema"] == {"$ref": "#/components/schemas/CreateApiKey"}
    assert schemas["CreateApiKey"]["additionalProperties"] is False
    # The job body's params are each operation's own pydantic declarations.
    job = paths["/api/v1/videos/{id}/jobs"]["post"]["requestBody"]["content"]["application/json"]
    variants = job["schema"]["properties"]["params"]["anyOf"]
    names = {v["$ref"].rsplit("/", 1)[-1] for v in variants}
    assert "ThumbnailVideoParams" in names and all(n in schemas for n in names)
    assert job["schema"]["properties"]["priority"]["maximum"] == 100
    # Bodies once hand-parsed beside a hand-written schema (which had drifted:
    # `expires_in` for the share's `expires_in_seconds`) are their models now.
    for path, method, model in (
        ("/api/v1/admin/users/{id}", "patch", "AccountChange"),
        ("/api/v1/videos/{id}/shares", "post", "CreateShare"),
        ("/s/{token}/unlock", "post", "UnlockBody"),
        ("/api/v1/videos/{id}", "patch", "MetadataBody"),
        ("/api/v1/direct-uploads", "post", "CreateDirectUpload"),
    ):
        body = paths[path][method]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    assert "expires_in_seconds" in schemas["CreateShare"]["properties"]
    upload = paths["/api/v1/uploads/{filename}"]["put"]["requestBody"]["content"]
    assert "application/octet-stream" in upload
    assert "multipart/form-data" in paths["/api/v1/uploads"]["post"]["requestBody"]["content"]
    # Every operation names its error body; scoped ones the scope.
    videos = paths["/api/v1/videos"]["get"]
    assert videos["x-required-scope"] == "videos:read"
    assert videos["responses"]["403"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert paths["/api/v1/api-keys"]["get"]["security"] == [{"bearerAuth": []}]


async def test_interactive_docs_are_served_locally(client: Client) -> None:
    resp = await client.get("/api/docs")
    assert resp.status == 200
    html = await resp.text()
    # Every script and stylesheet comes from Frameflow itself: no CDN.
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/api-docs.js"):
        assert asset in assets
    for asset in assets:
        assert (await client.get(asset)).status == 200, asset
    page = await (await client.get("/")).text()
    assert 'href="/api/docs"' in page


def _schemathesis() -> str:
    found = shutil.which("schemathesis") or shutil.which(
        "schemathesis", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("schemathesis is not installed (pip install '.[test]')")
    return found


@pytest.fixture
def app(settings: Any) -> Any:
    # Fuzzed POST /api/v1/generations really render with ffmpeg: keep each short.
    return create_app(dataclasses.replace(settings, generation_local_max_seconds=1))


# A hang guard: with the admin operations the run takes 3-5 min on a loaded machine.
@pytest.mark.timeout(540)
async def test_the_live_server_keeps_its_contract(
    client: Client, tmp_path: Path, sample_mp4: Path
) -> None:
    """schemathesis against the app on a loopback port, authenticated as an
    administrator, so that the admin operations answer with data too.

    Webhook registration is left out: the server would call the generated URL
    when a job ends, and tests send traffic to loopback only.
    """
    user = await make_admin(client, client.app[appkeys.SETTINGS])
    # Real data, so that lists answer with items the schemas must describe.
    resp = await client.put(
        "/api/v1/uploads/a.mp4?process=thumbnail",
        data=sample_mp4.read_bytes(),
        headers=user.headers,
    )
    assert resp.status == 201, await resp.text()
    await create_key(client, user, "videos:read")
    base = str(client.make_url("/")).rstrip("/")
    document = await (await client.get(DOC)).json()
    # The exclusion below must name the real operation, or webhooks would be fuzzed.
    assert document["paths"]["/api/v1/webhooks"]["post"]["operationId"] == "post_webhooks"
    argv = [
        _schemathesis(), "run", f"{base}{DOC}",
        "--header", f"Authorization: Bearer {user.access_token}",
        "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
        "--exclude-operation-id", "post_webhooks",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "20",  # ~100 operations: 20 each keeps the run near 3 min
        "--seed", "1",
        "--workers", "1",
        "--request-timeout", "20",
        "--no-color",
        "--generation-database", "none",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        # tus bodies (application/offset+octet-stream) serialize as raw bytes.
        "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=tmp_path,  # its crash cache stays out of the checkout
    )
    out, _ = await proc.communicate()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-8000:]


async def test_a_deprecated_operation_is_announced(settings: Any, aiohttp_client: Any) -> None:
    """The mechanism the versioning policy promises: document flag and headers."""
    from datetime import UTC, datetime

    from aiohttp import web

    from server.openapi.spec import Answer, Deprecation, RouteSpec, described

    @described(
        RouteSpec(
            summary="Old",
            tag="meta",
            ok={200: Answer("ok")},
            deprecation=Deprecation(
                announced=datetime(2026, 12, 1, tzinfo=UTC),
                sunset=datetime(2027, 6, 1, tzinfo=UTC),
                successor="/api/v2/old",
            ),
        )
    )
    async def old(request: web.Request) -> web.Response:
        return web.Response()

    app = create_app(settings)
    app.router.add_get("/api/v1/old", old)
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/old")
    assert resp.headers["Deprecation"] == "@1796083200"
    assert resp.headers["Sunset"] == "Tue, 01 Jun 2027 00:00:00 GMT"
    assert resp.headers["Link"] == '</api/v2/old>; rel="successor-version"'
    document = await (await client.get(DOC)).json()
    assert document["paths"]["/api/v1/old"]["get"]["deprecated"] is True
    validate(document)
    # Operations that are not deprecated carry no such header.
    assert "Deprecation" not in (await client.get("/health/live")).headers
