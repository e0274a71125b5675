"""OpenTelemetry tracing: off unless the standard `OTEL_*` variables turn it on.

`OTEL_TRACES_EXPORTER` names the exporters (`otlp`, `console`, or any
installed `opentelemetry_traces_exporter` entry point); unset or `none` — the
default — leaves tracing off: the SDK is not even imported, nothing is
instrumented, and our own spans are the API's no-op spans (a context-variable
read each). `OTEL_SDK_DISABLED=true` turns it off whatever else is set. All
other `OTEL_*` variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`,
`OTEL_PROPAGATORS`…) are read by the SDK and the exporters themselves.

When on, the official instrumentations trace the aiohttp server (every
request), the aiohttp client (webhooks, S3 through aiobotocore) and asyncpg
(every query); Frameflow adds spans for each job attempt, each ffmpeg run and
each storage call. A job keeps the `traceparent` of the request that queued
it, and its attempts are children of that context, so upload → job → output
fetch is one trace whichever instance runs each part.

Tracing is process-wide by nature (OpenTelemetry's provider and its
instrumentations are global), so this module keeps the one "is it on" flag
rather than an AppKey.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from server.serving.redact import redact_links

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "TRACER",
    "SpanKind",
    "TracingConfigError",
    "add_trace_ids",
    "configure_tracing",
    "context_from_traceparent",
    "current_trace_id",
    "current_traceparent",
    "mark_error",
    "shutdown_tracing",
    "span",
    "tracing_enabled",
    "untraced",
]

# A proxy: a no-op until a provider is installed, then the provider's tracer.
TRACER = trace.get_tracer("frameflow")

DEFAULT_SERVICE_NAME = "frameflow"
_OTLP_ENTRY_POINTS = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}


class TracingConfigError(Exception):
    """`OTEL_*` asks for something that cannot be set up (an exporter not installed)."""


class _State:
    provider: TracerProvider | None = None
    instrumentors: list[Any] = []


def tracing_enabled() -> bool:
    return _State.provider is not None


def requested_exporters(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Exporter names `OTEL_TRACES_EXPORTER` asks for; empty means tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "")
    return [
        name for name in (n.strip().lower() for n in raw.split(",")) if name not in ("", "none")
    ]


def _load_exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "otlp":
        protocol = environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ).strip()
        if protocol not in _OTLP_ENTRY_POINTS:
            raise TracingConfigError(f"unsupported OTLP protocol {protocol!r}")
        name = _OTLP_ENTRY_POINTS[protocol]
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        hint = " (pip install opentelemetry-exporter-otlp-proto-grpc)" if "grpc" in name else ""
        raise TracingConfigError(f"no trace exporter named {name!r} is installed{hint}")
    exporter: SpanExporter = next(iter(found)).load()()  # each reads its own OTEL_* variables
    return exporter


def configure_tracing(
    environ: Mapping[str, str] = os.environ,
    *,
    exporters: Sequence[SpanExporter] = (),
    batch: bool = True,
) -> bool:
    """Install the SDK and the instrumentations if `OTEL_*` asks for tracing (or
    `exporters` are given, as tests do). Call before `create_app`: the aiohttp
    server instrumentation adds its middleware to applications created after it.
    Returns whether tracing is on. Idempotent: a second call changes nothing.

    `environ` is where the exporter names, the OTLP protocol and the service name
    are looked up; the SDK and the exporters read the rest from `os.environ`."""
    if _State.provider is not None:
        return True
    names = requested_exporters(environ)
    if not names and not exporters:
        return False
    # Imported only now: with tracing off, the SDK never loads.
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    all_exporters = [*(_load_exporter(name, environ) for name in names), *exporters]
    attributes: dict[str, str] = {}
    named = bool(environ.get("OTEL_SERVICE_NAME")) or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in all_exporters:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _State.provider = provider
    # Client spans record URLs; S3 reads go to presigned ones (storage/s3_get.py).
    client_options: dict[str, Any] = {"url_filter": _client_url}
    for instrumentor, options in (
        (AioHttpServerInstrumentor(), {}),
        (AioHttpClientInstrumentor(), client_options),
        (AsyncPGInstrumentor(), {}),
    ):
        with warnings.catch_warnings():
            # The server one subclasses web.Application, which aiohttp discourages.
            warnings.simplefilter("ignore", DeprecationWarning)
            instrumentor.instrument(tracer_provider=provider, **options)
        _State.instrumentors.append(instrumentor)
    return True


def _client_url(url: Any) -> str:
    """A client request's URL as a span records it: signatures cut out."""
    return redact_links(str(url))


def shutdown_tracing() -> None:
    """Flush what is buffered and remove the instrumentations (tests; process exit)."""
    provider = _State.provider
    if provider is None:
        return
    for instrumentor in reversed(_State.instrumentors):
        instrumentor.uninstrument()
    _State.instrumentors.clear()
    provider.shutdown()
    _State.provider = None


@contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[trace.Span]:
    """A span of ours, current inside the block; an exception marks it as an error.
    Tracing off: the invalid span, without even the API's no-op machinery."""
    if _State.provider is None:
        yield trace.INVALID_SPAN
        return
    with TRACER.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


@contextmanager
def untraced() -> Iterator[None]:
    """Leave the instrumented calls of the block (SQL, HTTP) out of traces: for the
    background polling that would otherwise be a one-span trace every few seconds."""
    if _State.provider is None:
        yield
        return
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


def mark_error(current: trace.Span, description: str) -> None:
    current.set_status(Status(StatusCode.ERROR, description))


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to store with work queued now;
    None when there is no recording trace (tracing off)."""
    if _State.provider is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """The context to continue the trace a stored `traceparent` belongs to; without
    one an empty context (a new trace, not a child of whatever is current)."""
    if not traceparent:
        return otel_context.Context()
    return propagate.extract({"traceparent": traceparent}, context=otel_context.Context())


def current_trace_id() -> str | None:
    if _State.provider is None:
        return None
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


def add_trace_ids(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current trace and span ids on every line logged in a span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(context.trace_id))
        event.setdefault("span_id", trace.format_span_id(context.span_id))
    return event
