"""Health, metrics, request ids, JSON errors and log hygiene."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from server import appkeys
from server.logs import configure_logging
from tests.conftest import PASSWORD, User


async def test_live_and_ready(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/health/live")
    assert resp.status == 200
    resp = await client.get("/health/ready")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"database": "ok", "storage": "ok"}


async def test_ready_names_the_failing_part(client: TestClient[Any, Any]) -> None:
    storage = client.app[appkeys.STORAGE]

    async def broken() -> None:
        raise RuntimeError("disk gone")

    storage.check = broken  # type: ignore[method-assign]
    resp = await client.get("/health/ready")
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["failing"] == ["storage"]
    assert body["checks"]["database"] == "ok"


async def test_metrics_count_requests_and_uploads(
    client: TestClient[Any, Any], user: User, sample_mp4: Path
) -> None:
    resp = await client.put(
        "/api/v1/uploads/m.mp4", data=sample_mp4.read_bytes(), headers=user.headers
    )
    assert resp.status == 201
    await client.get("/api/v1/videos/00000000-0000-0000-0000-000000000000", headers=user.headers)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert (
        'frameflow_http_requests_total{method="GET",route="/api/v1/videos/{id}",status="404"} 1.0'
        in text
    )
    assert f"frameflow_upload_bytes_total {float(sample_mp4.stat().st_size)}" in text
    assert "frameflow_uploads_in_flight 0.0" in text
    assert "frameflow_http_request_duration_seconds_bucket" in text


async def test_request_id_is_echoed_or_made(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith junk"})
    assert resp.headers["X-Request-ID"] != "bad id\twith junk"
    assert len(resp.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("PATCH", "/health/live", 405, "method_not_allowed"),
        ("GET", "/api/v1/me", 401, "unauthorized"),
    ],
)
async def test_errors_are_json(
    client: TestClient[Any, Any], method: str, path: str, status: int, code: str
) -> None:
    resp = await client.request(method, path)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


async def test_malformed_json_and_oversized_bodies(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/api/v1/auth/login", data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_logs_are_json_with_request_id_and_no_secrets(
    client: TestClient[Any, Any], user: User, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("info", "json")
    try:
        resp = await client.post(
            "/api/v1/auth/login",
            json={"email": user.email, "password": PASSWORD},
            headers={"X-Request-ID": "req-42"},
        )
        tokens = await resp.json()
        await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        await client.get("/api/v1/videos/x/content?expires=1&signature=SECRETSIG")
    finally:
        # configure_logging bound capsys's stdout; later tests must not write to it.
        structlog.reset_defaults()
        root.handlers[:], level = saved
        root.setLevel(level)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    login = [e for e in lines if e.get("path") == "/api/v1/auth/login"]
    assert login and login[0]["request_id"] == "req-42" and login[0]["status"] == 200
    for secret in (PASSWORD, tokens["access_token"], tokens["refresh_token"], "SECRETSIG"):
        assert secret not in out
