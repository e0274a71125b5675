"""Prometheus metrics, one registry per application instance.

A registry per app (not the process-global default) keeps two apps in one
test process from colliding and makes `/metrics` show only Frameflow's own
series — plus the standard `process_*` and `python_*` ones, which the default
registry would have had and a custom one must add itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import asyncpg
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


def _indicator(read: Callable[[], str], value: str) -> Callable[[], float]:
    return lambda: 1.0 if read() == value else 0.0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds…,
        # python_info and python_gc_*: the process-wide collectors, shared, read-only.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.requests = Counter(
            "frameflow_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._request_counters: dict[tuple[str, str, int], Counter] = {}
        self._latency_histograms: dict[tuple[str, str], Histogram] = {}
        self.latency = Histogram(
            "frameflow_http_request_duration_seconds",
            "Time to answer an HTTP request (until the handler returns), by route.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.connections_dropped = Counter(
            "frameflow_connections_dropped",
            "Connections closed by the listener's guard, by reason (header_timeout: a request "
            "head too slow; too_many_connections: over the per-address cap).",
            ["reason"],
            registry=self.registry,
        )
        self.bytes_uploaded = Counter(
            "frameflow_upload_bytes",
            "Bytes received in uploads that were stored.",
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "frameflow_uploads_in_flight",
            "Uploads being streamed into storage right now.",
            registry=self.registry,
        )
        # retry: a finished resumable upload kept after a server error, to complete later.
        self.uploads = Counter(
            "frameflow_uploads",
            "Finished uploads by outcome (stored, duplicate, rejected, aborted, retry).",
            ["outcome"],
            registry=self.registry,
        )
        # Cleanup sweep: what it freed, and how each run ended (ok, skipped, error).
        self.cleanup_runs = Counter(
            "frameflow_cleanup_runs",
            "Cleanup sweeps by outcome (ok, skipped: another instance sweeps, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.cleanup_videos_deleted = Counter(
            "frameflow_cleanup_videos_deleted",
            "Expired videos deleted by the cleanup sweep.",
            registry=self.registry,
        )
        self.cleanup_bytes_freed = Counter(
            "frameflow_cleanup_bytes_freed",
            "Bytes of expired videos and their outputs deleted by the cleanup sweep.",
            registry=self.registry,
        )
        self.cleanup_uploads_aborted = Counter(
            "frameflow_cleanup_uploads_aborted",
            "Stale unfinished uploads (multipart uploads, temp files) the sweep removed.",
            registry=self.registry,
        )
        self.cleanup_temp_removed = Counter(
            "frameflow_cleanup_temp_files_removed",
            "Stale scratch files and directories the sweep removed.",
            registry=self.registry,
        )
        self.cleanup_tokens_deleted = Counter(
            "frameflow_cleanup_tokens_deleted",
            "Expired tokens the sweep deleted, by kind (account: verification and reset "
            "links, a week after they expired; refresh).",
            ["kind"],
            registry=self.registry,
        )

        # What an operator watches (and alerts on): the queue, the work, the
        # sockets, the pool. The gauges read their values at scrape time.
        self.jobs = Gauge(
            "frameflow_jobs",
            "Queued and running jobs in the whole queue (any instance reports the same), "
            "by status and operation; read from the database at each scrape.",
            ["status", "operation"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "frameflow_job_duration_seconds",
            "Wall-clock time of job attempts run by this instance, by operation and outcome "
            "(succeeded, failed, canceled, shutdown).",
            ["operation", "outcome"],
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600),
            registry=self.registry,
        )
        self.ffmpeg_processes = Gauge(
            "frameflow_ffmpeg_processes",
            "ffmpeg processes this instance is running (jobs and probes).",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "frameflow_websocket_connections",
            "Open WebSocket connections on this instance.",
            registry=self.registry,
        )
        self.db_pool = Gauge(
            "frameflow_db_pool_connections",
            "Connections of this instance's database pool, by state (in_use, idle).",
            ["state"],
            registry=self.registry,
        )
        self.db_pool_max = Gauge(
            "frameflow_db_pool_max_connections",
            "Most connections this instance's database pool may open.",
            registry=self.registry,
        )
        self.generation_circuit = Gauge(
            "frameflow_generation_circuit",
            "Circuit breaker of each generation provider in this instance: 1 for its "
            "current state (closed, open, half_open), 0 for the others.",
            ["provider", "state"],
            registry=self.registry,
        )

    def watch_circuits(self, states: Mapping[str, Callable[[], str]]) -> None:
        """One series per provider and breaker state, 1 for the state it is in now."""
        for provider, state_of in states.items():
            for state in ("closed", "open", "half_open"):
                self.generation_circuit.labels(provider, state).set_function(
                    _indicator(state_of, state)
                )

        # Mail and webhooks, by kind (the event: job.succeeded, direct_upload.completed…).
        # A retried attempt counts as retried; failed means given up for good.
        self.emails = Counter(
            "frameflow_emails",
            "Email notifications by kind and outcome (sent; not_sent: no SMTP configured, "
            "written to the log; retried: a failed attempt that will be retried; failed: "
            "given up after the last attempt).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "frameflow_webhook_deliveries",
            "Webhook delivery attempts by kind and outcome (sent: a 2xx; retried: a failed "
            "attempt that will be retried; failed: given up after the last attempt).",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency.

        The labelled children are looked up once per (route, method, status):
        `labels()` on every request cost more than the increments themselves.
        """
        counter = self._request_counters.get((route, method, status))
        if counter is None:
            counter = self.requests.labels(route, method, str(status))
            self._request_counters[(route, method, status)] = counter
        counter.inc()
        histogram = self._latency_histograms.get((route, method))
        if histogram is None:
            histogram = self.latency.labels(route, method)
            self._latency_histograms[(route, method)] = histogram
        histogram.observe(seconds)

    def set_open_jobs(self, counts: Iterable[tuple[str, str, int]]) -> None:
        """Replace the job gauges: a status or operation that has no jobs left disappears."""
        self.jobs.clear()
        for status, operation, count in counts:
            self.jobs.labels(status, operation).set(count)

    def watch_pool(self, pool: asyncpg.Pool) -> None:
        size = pool.get_size
        idle = pool.get_idle_size
        self.db_pool.labels("idle").set_function(idle)
        self.db_pool.labels("in_use").set_function(lambda: size() - idle())
        self.db_pool_max.set_function(pool.get_max_size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
