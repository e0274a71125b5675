"""Tracing: upload → job → output fetch is one connected trace (in-memory exporter).

The app is real (PostgreSQL, ffmpeg, local disk or moto's S3); the client is
the test client, traced by the official aiohttp client instrumentation, so
each of its requests carries the `traceparent` of one client-side root span,
as an instrumented client of Frameflow would send it. The job is queued by
the upload request and runs later on the runner, which continues the trace
from the `traceparent` stored with the job.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config.settings import Settings
from server import tracing
from server.app import create_app
from tests.conftest import User
from tests.test_jobs_e2e import output, wait_for_job

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    assert tracing.configure_tracing({}, exporters=[spans], batch=False)
    yield spans
    tracing.shutdown_tracing()
    # OpenTelemetry sets its global provider once per process; put it back to the
    # API's default (as opentelemetry-test-utils does) so later tests run untraced.
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(settings: Settings, exporter: InMemorySpanExporter) -> web.Application:
    exporter.clear()
    return create_app(settings)  # after configure_tracing: instrumented


def _tree(spans: tuple[ReadableSpan, ...], trace_id: int) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans if s.context.trace_id == trace_id}


def _complete(by_id: dict[int, ReadableSpan]) -> bool:
    has_attempt = any(s.name == "job.attempt" for s in by_id.values())
    return has_attempt and all(
        s.parent is None or s.parent.span_id in by_id for s in by_id.values()
    )


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None:
        assert span.parent.span_id in by_id, f"{span.name}: its parent is not in the trace"
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def test_upload_job_and_output_fetch_are_one_trace(
    client: TestClient[Any, Any],
    user: User,
    sample_mp4: Path,
    exporter: InMemorySpanExporter,
    backend: str,
) -> None:
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("user flow") as root:
        trace_id = root.get_span_context().trace_id
        resp = await client.put(
            f"/api/v1/uploads/{sample_mp4.name}?process=thumbnail",
            data=sample_mp4.read_bytes(),
            headers=user.headers,
        )
        assert resp.status == 201, await resp.text()
        # Tracing on: the request id is the trace id, and traceresponse names the span.
        assert resp.headers["X-Request-ID"] == trace.format_trace_id(trace_id)
        assert resp.headers["traceresponse"].split("-")[1] == trace.format_trace_id(trace_id)
        (job,) = (await resp.json())["jobs"]
        job = await wait_for_job(client, user, job["id"])
        assert job["status"] == "succeeded", job["error"]
        name = job["outputs"][0]["name"]
        resp = await client.get(f"/api/v1/jobs/{job['id']}/outputs/{name}", headers=user.headers)
        assert resp.status == 200
        assert len(await resp.read()) == output(job, name)["size"]

    # A span ends a moment after what the client sees: the attempt's after its status
    # is visible (events, clean-up), a server span's after the last byte is written.
    async with asyncio.timeout(30):
        while True:
            if _complete(by_id := _tree(exporter.get_finished_spans(), trace_id)):
                break
            await asyncio.sleep(0.05)
    spans = list(by_id.values())
    for span in spans:  # every span leads up to the client's root: one connected trace
        assert _ancestors(span, by_id)[-1:] in ([], [by_id[root.get_span_context().span_id]])

    def named(prefix: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [s for s in spans if s.name.startswith(prefix) and (kind is None or s.kind == kind)]

    (upload_span,) = named("PUT", SpanKind.SERVER)
    (attempt,) = named("job.attempt")
    assert attempt.parent is not None and attempt.parent.span_id == upload_span.context.span_id
    assert attempt.attributes is not None
    assert attempt.attributes["frameflow.job.id"] == job["id"]
    assert attempt.attributes["frameflow.job.outcome"] == "succeeded"
    ffmpeg_runs = named("ffmpeg")
    assert ffmpeg_runs, "the thumbnail's ffmpeg run is traced"
    for run in ffmpeg_runs:
        assert attempt in _ancestors(run, by_id) or upload_span in _ancestors(run, by_id)
    assert any(attempt in _ancestors(run, by_id) for run in ffmpeg_runs)
    puts = named("storage.put") + named("storage.multipart")
    assert any(upload_span in _ancestors(p, by_id) for p in puts), "the upload is stored"
    assert any(attempt in _ancestors(p, by_id) for p in puts), "the output is stored"
    (fetch,) = [s for s in named("GET", SpanKind.SERVER) if "outputs" in s.name]
    queries = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    for parent in (upload_span, attempt, fetch):
        assert any(parent in _ancestors(q, by_id) for q in queries), parent.name
    if backend == "s3":
        # Served from S3: the read, and its HTTP request (to a presigned URL) under it.
        (get,) = [s for s in named("storage.get") if fetch in _ancestors(s, by_id)]
        reads = [c for c in named("", SpanKind.CLIENT) if get in _ancestors(c, by_id)]
        assert reads
        for read in reads:  # the URL is recorded without its signature
            assert "X-Amz-Signature=[redacted]" in str(read.attributes), read.attributes
    # Background polling (claims, heartbeats, senders) is left out of traces altogether.
    polled = [
        s
        for s in exporter.get_finished_spans()
        if "SKIP LOCKED" in str((s.attributes or {}).get("db.statement", ""))
    ]
    assert polled == []
    # Requests of the instrumented client are CLIENT spans whose SERVER span is a child.
    assert upload_span.parent is not None
    assert by_id[upload_span.parent.span_id].kind == SpanKind.CLIENT


async def test_a_request_of_its_own_is_a_trace_of_its_own(
    client: TestClient[Any, Any], user: User
) -> None:
    headers = {**user.headers, "X-Request-ID": "mine-123"}
    resp = await client.get("/api/v1/videos", headers=headers)
    assert resp.status == 200
    assert resp.headers["X-Request-ID"] == "mine-123"  # the client's id is kept…
    version, trace_id, _span_id, flags = resp.headers["traceresponse"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert len(trace_id) == 32 and int(trace_id, 16)  # …and the trace named alongside


def test_log_lines_carry_the_trace_id(exporter: InMemorySpanExporter) -> None:
    event: dict[str, Any] = {"event": "x"}
    tracing.add_trace_ids(None, "info", event)
    assert "trace_id" not in event  # no span, no id
    with trace.get_tracer("tests").start_as_current_span("s") as span:
        tracing.add_trace_ids(None, "info", event)
    assert event["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert event["span_id"] == trace.format_span_id(span.get_span_context().span_id)


def test_off_by_default_loads_no_sdk() -> None:
    """Without OTEL_TRACES_EXPORTER the SDK is never imported: no overhead but no-op spans."""
    code = (
        "import sys\n"
        "from server import tracing\n"
        "assert not tracing.configure_tracing({'OTEL_SERVICE_NAME': 'x'})\n"
        "assert not tracing.configure_tracing({'OTEL_TRACES_EXPORTER': 'none'})\n"
        "assert not tracing.configure_tracing("
        "{'OTEL_TRACES_EXPORTER': 'console', 'OTEL_SDK_DISABLED': 'true'})\n"
        "import server.app\n"
        "with tracing.span('x') as s:\n"
        "    assert not s.is_recording()\n"
        "assert tracing.current_traceparent() is None\n"
        # (redis-py imports the SDK's metrics part on its own when it is installed.)
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace',"
        " 'opentelemetry.instrumentation'))]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_exporters_come_from_otel_variables() -> None:
    """`console` and `otlp` (http/protobuf) are found by name; a missing one is a clear error."""
    code = (
        "from server import tracing\n"
        "for name in ('otlp', 'console'):\n"
        "    assert type(tracing._load_exporter(name, {})).__name__ in "
        "('OTLPSpanExporter', 'ConsoleSpanExporter')\n"
        "try:\n"
        "    tracing._load_exporter('otlp', {'OTEL_EXPORTER_OTLP_PROTOCOL': 'grpc'})\n"
        "except tracing.TracingConfigError as exc:\n"
        "    assert 'grpc' in str(exc)\n"
        "import os\n"
        "os.environ['OTEL_SERVICE_NAME'] = 'ff-test'\n"
        "assert tracing.configure_tracing({'OTEL_TRACES_EXPORTER': 'console', **os.environ})\n"
        "from opentelemetry import trace\n"
        "assert trace.get_tracer_provider().resource.attributes['service.name'] == 'ff-test'\n"
        "tracing.shutdown_tracing()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
