"""One trace across processes, configured by `OTEL_*` alone, exported over OTLP.

An `api` process takes the upload and queues the job; a separate `worker`
process (`python run.py --role ...`, sharing PostgreSQL and moto's S3) runs
it. Both export with the real OTLP/HTTP exporter to a collector on loopback
that decodes the protobuf requests. The job's attempt, in the worker, must
be a child of the upload's request span, in the api.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from config.settings import env_name
from tests.cluster import Node, stop_all, wait_for
from tests.conftest import PASSWORD, _admin, _with_database
from tests.s3_server import s3_settings


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


@dataclass
class Collector:
    """An OTLP/HTTP trace receiver: POST /v1/traces with a protobuf body."""

    spans: list[Span] = field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    self.spans.append(
                        Span(
                            resource["service.name"],
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            attributes,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def own_database(server_url: str) -> Iterator[str]:
    name = f"frameflow_tracing_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    spans = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", spans.receive)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield spans, f"http://127.0.0.1:{server.port}"
    await server.close()


async def test_the_worker_continues_the_trace_of_the_request_that_queued_the_job(
    own_database: str,
    s3_endpoint: str,
    collector: tuple[Collector, str],
    sample_mp4: Path,
    tmp_path: Path,
) -> None:
    spans, endpoint = collector
    env = {env_name(k): str(v) for k, v in s3_settings(s3_endpoint).items()}
    env |= {
        "FRAMEFLOW_DATABASE_URL": own_database,
        "FRAMEFLOW_JWT_SECRET": "tracing-test-" + secrets.token_hex(24),
        "FRAMEFLOW_BCRYPT_ROUNDS": "4",
        "FRAMEFLOW_JOB_POLL_SECONDS": "0.5",
        "FRAMEFLOW_WORKER_CONCURRENCY": "1",
        "FRAMEFLOW_SHUTDOWN_GRACE_SECONDS": "2",
        # Nothing but the standard variables turns tracing on.
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    for name in list(os.environ):
        if name.startswith("OTEL_") and name not in env:
            env[name] = ""  # an OTEL_* of the caller's must not change the test
    api = Node.start("api", "api", env | {"OTEL_SERVICE_NAME": "ff-api"}, tmp_path)
    worker = Node.start("worker", "worker", env | {"OTEL_SERVICE_NAME": "ff-worker"}, tmp_path)
    try:
        for node in (api, worker):
            await asyncio.to_thread(wait_for, node.ready, 60, node.name)
        trace_id = secrets.token_hex(16)
        # The caller's own span (not exported): every request is a child of it.
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        async with aiohttp.ClientSession(api.url, headers=headers) as http:
            credentials = {"email": f"t-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
            assert (await http.post("/api/v1/auth/register", json=credentials)).status == 202
            login = await (await http.post("/api/v1/auth/login", json=credentials)).json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}
            resp = await http.put(
                "/api/v1/uploads/clip.mp4?process=thumbnail",
                data=sample_mp4.read_bytes(),
                headers=auth,
            )
            assert resp.status == 201, await resp.text()
            assert resp.headers["X-Request-ID"] == trace_id
            (job,) = (await resp.json())["jobs"]
            async with asyncio.timeout(90):
                while job["status"] not in ("succeeded", "failed", "canceled"):
                    await asyncio.sleep(0.3)
                    job = await (await http.get(f"/api/v1/jobs/{job['id']}", headers=auth)).json()
            assert job["status"] == "succeeded", job["error"]
            name = job["outputs"][0]["name"]
            resp = await http.get(f"/api/v1/jobs/{job['id']}/outputs/{name}", headers=auth)
            assert resp.status == 200 and len(await resp.read()) == job["outputs"][0]["size"]

        def ours() -> dict[str, Span]:
            return {s.span_id: s for s in spans.spans if s.trace_id == trace_id}

        async with asyncio.timeout(30):  # batches go out every 200 ms
            while True:
                traced = ours()
                names = {s.name for s in traced.values()}
                fetched = any("outputs" in n and n.startswith("GET") for n in names)
                if "job.attempt" in names and "storage.get" in names and fetched:
                    break
                await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stop_all, [api, worker])

    traced = ours()
    (upload,) = [s for s in traced.values() if s.name.startswith("PUT /api/v1/uploads")]
    (attempt,) = [s for s in traced.values() if s.name == "job.attempt"]
    assert (upload.service, attempt.service) == ("ff-api", "ff-worker")
    assert attempt.parent_id == upload.span_id
    assert attempt.attributes["frameflow.job.id"] == job["id"]

    def under(span: Span, ancestor: Span) -> bool:
        while span.parent_id in traced:
            span = traced[span.parent_id]
            if span is ancestor:
                return True
        return False

    in_worker = [s for s in traced.values() if under(s, attempt)]
    assert {s.service for s in in_worker} == {"ff-worker"}
    assert any(s.name == "ffmpeg" for s in in_worker)
    put = next(s for s in in_worker if s.name == "storage.put")
    # S3 through aiobotocore: the aiohttp client instrumentation's spans under the put.
    assert any(under(s, put) and "http.request.method" in s.attributes for s in in_worker) or any(
        under(s, put) and "http.method" in s.attributes for s in in_worker
    )
    assert any("db.system" in s.attributes for s in in_worker)
    # Log lines the worker wrote inside the attempt carry the trace id.
    assert any(
        line.get("event") == "job_succeeded" and line.get("trace_id") == trace_id
        for line in worker.log_lines()
    )
