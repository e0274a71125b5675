"""Frameflow as a cluster on one machine: two `api` and one, then two, `worker`
processes (`python run.py --role ...`) behind nginx running the shipped
deploy/nginx/frameflow.conf, sharing one PostgreSQL database (this module's
own), Redis and a real S3 server (SeaweedFS).

Through nginx: an upload enters by one api and its job runs on a worker while
two WebSockets, one on each api, see every event in order; a SIGKILLed worker's
job is finished by the other worker; a per-IP rate limit holds across the two
apis. Skipped without REDIS_URL (the cross-instance bus and limiter need it) or
without nginx (scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config.settings import env_name
from tests.cluster import Nginx, Node, free_port, nginx_binary, stop_all, wait_for
from tests.conftest import PASSWORD, _admin, _with_database
from tests.s3_server import s3_settings

pytestmark = [pytest.mark.cluster, pytest.mark.seaweedfs, pytest.mark.timeout(240)]

REGISTER_PER_HOUR = 4
FINISHED = {"job.succeeded", "job.failed", "job.canceled"}


@dataclass
class Cluster:
    nginx: Nginx
    apis: list[Node]
    workers: list[Node]
    env: dict[str, str]
    work_dir: Path
    started: list[Node] = field(default_factory=list)

    def add_worker(self) -> Node:
        node = Node.start(f"worker-{len(self.workers) + 1}", "worker", self.env, self.work_dir)
        self.workers.append(node)
        wait_for(node.ready, 60, node.name)
        return node

    def node_of(self, worker_id: str) -> Node:
        """The worker whose runner has this id (hostname-pid-random)."""
        pid = int(worker_id.rsplit("-", 2)[1])
        [node] = [n for n in self.workers if n.proc.pid == pid]
        return node


@pytest.fixture(scope="module")
def cluster_database(server_url: str) -> Iterator[str]:
    name = f"frameflow_cluster_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(server_url, name)
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def cluster(
    cluster_database: str, seaweedfs_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: instances share events and limits through Redis")
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (scripts/test installs Debian's nginx)")
    work_dir = tmp_path_factory.mktemp("cluster")
    env = {env_name(k): str(v) for k, v in s3_settings(seaweedfs_endpoint).items()}
    env.update(
        {
            "FRAMEFLOW_DATABASE_URL": cluster_database,
            "FRAMEFLOW_REDIS_URL": redis_url,
            # Shared by every instance: a token one api issues, the other accepts.
            "FRAMEFLOW_JWT_SECRET": "cluster-test-" + uuid.uuid4().hex * 2,
            "FRAMEFLOW_TRUSTED_PROXIES": "127.0.0.1",
            "FRAMEFLOW_BCRYPT_ROUNDS": "4",
            "FRAMEFLOW_RATE_LIMIT_REGISTER_PER_HOUR": str(REGISTER_PER_HOUR),
            # A killed worker's lease lapses in seconds, not the default 30.
            "FRAMEFLOW_JOB_LEASE_SECONDS": "3",
            "FRAMEFLOW_JOB_HEARTBEAT_SECONDS": "1",
            "FRAMEFLOW_JOB_POLL_SECONDS": "0.5",
            "FRAMEFLOW_WORKER_CONCURRENCY": "1",
            "FRAMEFLOW_SHUTDOWN_GRACE_SECONDS": "2",
        }
    )
    nodes = [Node.start(f"api-{i}", "api", env, work_dir) for i in (1, 2)]
    nodes.append(Node.start("worker-1", "worker", env, work_dir))
    nginx: Nginx | None = None
    cluster: Cluster | None = None
    try:
        for node in nodes:
            wait_for(node.ready, 60, node.name)
        nginx = Nginx(work_dir / "nginx", free_port(), [n.port for n in nodes[:2]])
        nginx.start()
        cluster = Cluster(nginx, nodes[:2], nodes[2:], env, work_dir)
        yield cluster
    finally:
        if nginx is not None:
            nginx.stop()
        stop_all(cluster.apis + cluster.workers if cluster else nodes)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """720p, 16 s: a medium-preset transcode to 480p and 720p runs for seconds."""
    from tests.clips import make_clip

    return make_clip(
        tmp_path_factory.mktemp("clips") / "long.mp4", seconds=16, width=1280, height=720
    )


def client_address() -> str:
    """A fresh address from 198.18.0.0/15 (benchmarking) per call: the limits are
    kept in a Redis other test runs share, so no run may reuse another's key."""
    return f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Api:
    """A client of the cluster that only ever talks to nginx."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.address = client_address()
        self.token = ""

    @property
    def headers(self) -> dict[str, str]:
        headers = {"X-Forwarded-For": self.address}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def call(self, method: str, path: str, status: int, **kw: Any) -> Any:
        async with self.session.request(
            method, self.base + path, headers=self.headers, **kw
        ) as resp:
            body = await resp.json()
            assert resp.status == status, body
            return body

    async def sign_up(self) -> None:
        email = f"cluster-{uuid.uuid4().hex[:8]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        await self.call("POST", "/api/v1/auth/register", 202, json=credentials)
        self.token = (await self.call("POST", "/api/v1/auth/login", 200, json=credentials))[
            "access_token"
        ]

    async def upload(self, path: Path) -> tuple[str, str]:
        """The video's id and the request id of the upload."""
        async with self.session.put(
            f"{self.base}/api/v1/uploads/{path.name}", data=path.read_bytes(), headers=self.headers
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            return str(body["id"]), resp.headers["X-Request-ID"]

    async def socket(self) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(self.base + "/api/v1/ws", headers=self.headers)
        await ws.send_json({"type": "auth", "token": self.token})
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        assert (await ws.receive_json(timeout=10))["type"] == "snapshot"
        return ws

    async def job_when(self, job_id: str, check: Any, within: float) -> Any:
        async with asyncio.timeout(within):
            while True:
                job = await self.call("GET", f"/api/v1/jobs/{job_id}", 200)
                if check(job):
                    return job
                await asyncio.sleep(0.1)

    async def attempts(self, job_id: str) -> list[Any]:
        items: list[Any] = (await self.call("GET", f"/api/v1/jobs/{job_id}/events", 200))["items"]
        return sorted(items, key=lambda e: e["attempt"])


async def events_of(ws: aiohttp.ClientWebSocketResponse, job_id: str) -> list[Any]:
    """This job's events as the socket got them, until the job's last one."""
    events: list[Any] = []
    async with asyncio.timeout(60):
        while not events or events[-1]["type"] not in FINISHED:
            event = await ws.receive_json()
            if event.get("job_id") == job_id:
                events.append(event)
    return events


async def test_an_upload_through_nginx_runs_on_a_worker_and_both_apis_stream_its_events(
    cluster: Cluster, sample_mp4: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, cluster.nginx.url)
        await api.sign_up()
        # Round robin: two sockets opened one after the other land on both apis.
        sockets = [await api.socket(), await api.socket()]
        video_id, upload_request = await api.upload(sample_mp4)
        job = await api.call(
            "POST", f"/api/v1/videos/{video_id}/jobs", 202, json={"operation": "thumbnail"}
        )
        seen = [await events_of(ws, job["id"]) for ws in sockets]
        for ws in sockets:
            await ws.close()
        done = await api.call("GET", f"/api/v1/jobs/{job['id']}", 200)
        [attempt] = await api.attempts(job["id"])

    assert done["status"] == "succeeded", done
    # One api took the upload; the worker (not an api) ran the job.
    assert [n.name for n in cluster.apis if n.served(upload_request)] in (["api-1"], ["api-2"])
    assert cluster.node_of(attempt["worker_id"]) is cluster.workers[0]
    # Every event, in order, on each socket, whichever api it is connected to.
    for events in seen:
        kinds = [e["type"] for e in events]
        assert kinds[0] == "job.started" or kinds[:2] == ["job.queued", "job.started"], kinds
        assert kinds[-1] == "job.succeeded" and set(kinds[1:-1]) <= {"job.started", "job.progress"}
        progress = [e["progress"] for e in events if e["type"] == "job.progress"]
        assert progress == sorted(progress)
    assert seen[0] == seen[1]
    await asyncio.sleep(0.5)  # a socket's request line is logged when it closes
    socket_logs = [
        n.name
        for n in cluster.apis
        for line in n.log_lines()
        if line.get("event") == "request" and line.get("path") == "/api/v1/ws"
    ]
    assert sorted(socket_logs) == ["api-1", "api-2"]


async def test_a_rate_limit_holds_across_the_apis(cluster: Cluster) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, cluster.nginx.url)
        statuses, request_ids = [], []
        for _ in range(REGISTER_PER_HOUR + 2):
            body = {"email": f"rl-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
            async with session.post(
                api.base + "/api/v1/auth/register", json=body, headers=api.headers
            ) as resp:
                statuses.append(resp.status)
                request_ids.append(resp.headers["X-Request-ID"])
    assert statuses == [202] * REGISTER_PER_HOUR + [429, 429]
    # Both apis counted against the one budget of this client address. Their access
    # lines are written by a log thread, a moment after the answer: look again until
    # both show up (a hang guard, not a timing check).
    served: set[str] = set()
    async with asyncio.timeout(30):
        while True:
            served = {n.name for n in cluster.apis for rid in request_ids if n.served(rid)}
            if served == {"api-1", "api-2"}:
                break
            await asyncio.sleep(0.2)


async def test_a_job_on_a_sigkilled_worker_is_finished_by_the_other(
    cluster: Cluster, long_clip: Path
) -> None:
    cluster.add_worker()
    async with aiohttp.ClientSession() as session:
        api = Api(session, cluster.nginx.url)
        await api.sign_up()
        video_id, _ = await api.upload(long_clip)
        job = await api.call(
            "POST",
            f"/api/v1/videos/{video_id}/jobs",
            202,
            json={"operation": "transcode", "params": {"preset": "medium"}},
        )
        await api.job_when(job["id"], lambda j: j["status"] == "running", within=30)
        [first] = await api.attempts(job["id"])
        victim = cluster.node_of(first["worker_id"])
        await asyncio.sleep(0.5)  # its ffmpeg is under way (the transcode takes seconds)
        victim.kill()  # mid-job, no goodbye: its lease lapses and the reaper re-queues
        done = await api.job_when(job["id"], lambda j: j["finished_at"] is not None, within=90)
        attempts = await api.attempts(job["id"])

    assert done["status"] == "succeeded", done
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["outcome"] != "succeeded"
    survivor = cluster.node_of(attempts[1]["worker_id"])
    assert survivor is not victim and survivor.proc.poll() is None
    assert attempts[1]["outcome"] == "succeeded"
