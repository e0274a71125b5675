"""Prometheus metrics, one registry per application instance.

A registry per app (not the process-global default) keeps two apps in one
test process from colliding and makes `/metrics` show only Frameflow's own
series.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "frameflow_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
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
            "Finished uploads by outcome (stored, rejected, aborted, retry).",
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
