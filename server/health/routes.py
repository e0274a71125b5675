"""`/health/live`, `/health/ready` and `/metrics`: what operators and orchestrators poll."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from server import appkeys
from server.db.pool import ping
from server.logs import get_logger
from server.openapi.spec import ANY_OBJECT, STRING, Answer, RouteSpec, described, obj

log = get_logger("frameflow.health")

CHECK_TIMEOUT = 3.0


@described(
    RouteSpec(
        summary="Liveness",
        tag="health",
        ok={200: Answer("The process is up", obj(["status"], status=STRING))},
    )
)
async def live(request: web.Request) -> web.Response:
    """The process answers; nothing else is checked (for restarts, not routing)."""
    return web.json_response({"status": "ok"})


async def _check_database(app: web.Application) -> None:
    await ping(app[appkeys.POOL], acquire_timeout=CHECK_TIMEOUT)


async def _check_storage(app: web.Application) -> None:
    await app[appkeys.STORAGE].check()


@described(
    RouteSpec(
        summary="Readiness: database and storage answer",
        tag="health",
        ok={200: Answer("Ready", ANY_OBJECT), 503: Answer("Not ready", ANY_OBJECT)},
    )
)
async def ready(request: web.Request) -> web.Response:
    """Whether this instance can serve traffic: database and storage reachable."""
    checks = {"database": _check_database, "storage": _check_storage}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(request.app), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:
            results[name] = "unavailable"
            log.warning("readiness_check_failed", check=name, error=str(exc) or type(exc).__name__)
    failing = [name for name, state in results.items() if state != "ok"]
    if failing:
        return web.json_response(
            {
                "error": {
                    "code": "not_ready",
                    "message": "Unavailable: " + ", ".join(failing),
                    "failing": failing,
                },
                "checks": results,
            },
            status=503,
        )
    return web.json_response({"status": "ok", "checks": results})


@described(
    RouteSpec(
        summary="Prometheus metrics",
        tag="health",
        ok={200: Answer("Text exposition format", STRING, "text/plain")},
    )
)
async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[appkeys.METRICS]
    try:
        # The queue as the database has it; a scrape still answers without it.
        counts = await asyncio.wait_for(request.app[appkeys.JOBS].open_job_counts(), CHECK_TIMEOUT)
        metrics.set_open_jobs(counts)
    except Exception as exc:
        metrics.jobs.clear()  # no stale numbers: absent says "unknown"
        log.warning("metrics_jobs_unavailable", error=str(exc) or type(exc).__name__)
    body = metrics.render()
    # The library's value verbatim: its `version` parameter tells Prometheus
    # which text format this is, and rebuilding it once lost that.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics_handler)
