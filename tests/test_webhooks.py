"""Webhooks: registration (secret shown once, SSRF refused naming `url`,
ownership), signed deliveries to a receiver on loopback admitted through
FRAMEFLOW_WEBHOOK_ALLOWED_HOSTS, retries, redirects not followed, and the
resolved address checked again at delivery."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config.settings import Settings
from server import appkeys
from server.auth.model import AuthUser
from server.errors import Unauthorized
from server.webhooks.ssrf import address_problem
from tests.conftest import User, register_and_login
from tests.notify_helpers import FAST_JOBS, app_with_fake_runner, eventually, run_job, upload

Client = TestClient[Any, Any]
HOOKS = "/api/v1/webhooks"


@dataclass
class Receiver:
    """An aiohttp app on 127.0.0.1 that verifies signatures like a real receiver."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)  # statuses to give, then 200
    received: list[dict[str, Any]] = field(default_factory=list)
    redirected_to_hits: int = 0
    server: TestServer | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        app.router.add_post("/redirect", self.redirect)
        app.router.add_post("/elsewhere", self.elsewhere)
        return app

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers["X-Frameflow-Timestamp"]
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        given = request.headers["X-Frameflow-Signature"].removeprefix("sha256=")
        self.received.append(
            {
                "valid": hmac.compare_digest(expected, given),
                "fresh": abs(time.time() - int(timestamp)) < 300,
                "event": request.headers["X-Frameflow-Event"],
                "delivery": request.headers["X-Frameflow-Delivery"],
                "body": json.loads(body),
            }
        )
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected_to_hits += 1
        return web.Response()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        assert self.server is not None
        return f"http://{host}:{self.server.port}{path}"


@pytest.fixture
async def receiver(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Receiver:
    r = Receiver()
    r.server = await aiohttp_server(r.app(), host="127.0.0.1")
    return r


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allowed_hosts="127.0.0.1", **FAST_JOBS)


@pytest.fixture
def app(settings: Settings, database_url: str) -> web.Application:
    return app_with_fake_runner(settings, database_url)


@pytest.fixture
async def video_id(client: Client, user: User, sample_mp4: Path) -> str:
    sender = client.server.app[appkeys.WEBHOOK_SENDER]
    sender.poll_seconds = 0.05
    sender.retry_base_seconds = 0.2
    return await upload(client, user, sample_mp4)


async def register(
    client: Client, user: User, url: str, events: list[str] | None = None
) -> dict[str, Any]:
    body = {"url": url, "events": events or ["job.succeeded", "job.failed"]}
    resp = await client.post(HOOKS, json=body, headers=user.headers)
    assert resp.status == 201, await resp.text()
    hook: dict[str, Any] = await resp.json()
    return hook


async def deliveries(client: Client, user: User, hook_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{HOOKS}/{hook_id}/deliveries", headers=user.headers)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def delivery_with(
    client: Client, user: User, hook_id: str, **expected: Any
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        for d in await deliveries(client, user, hook_id):
            if all(d[k] == v for k, v in expected.items()):
                return d
        return None

    return await eventually(probe)


async def test_a_finished_job_is_delivered_signed_and_the_secret_is_shown_once(
    client: Client, user: User, video_id: str, receiver: Receiver
) -> None:
    hook = await register(client, user, receiver.url())
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    receiver.secret = hook["secret"]
    listed = (await (await client.get(HOOKS, headers=user.headers)).json())["items"]
    assert listed == [{k: v for k, v in hook.items() if k != "secret"}]

    job = await run_job(client, user, video_id, "ramp")
    delivery = await delivery_with(client, user, hook["id"], status="delivered")
    assert (delivery["attempts"], delivery["response_status"]) == (1, 200)
    assert delivery["event"] == "job.succeeded" and delivery["error"] is None

    [got] = receiver.received
    assert got["valid"] and got["fresh"]
    assert got["event"] == "job.succeeded" and got["delivery"] == delivery["id"]
    assert got["body"]["id"] == delivery["id"] and got["body"]["type"] == "job.succeeded"
    # The same serializer as the API's: the job as GET /api/v1/jobs/{id} shows it.
    shown = await (await client.get(f"/api/v1/jobs/{job['id']}", headers=user.headers)).json()
    api_job = {k: v for k, v in shown.items() if k not in {"outputs", "output_count"}}
    assert got["body"]["data"]["job"] == api_job
    assert got["body"]["data"]["job"]["status"] == "succeeded"


async def test_a_500_is_retried_with_backoff_until_a_200(
    client: Client, user: User, video_id: str, receiver: Receiver
) -> None:
    hook = await register(client, user, receiver.url(), ["job.failed"])
    receiver.secret = hook["secret"]
    receiver.answers = [500]
    await run_job(client, user, video_id, "ramp")  # succeeded: not subscribed
    await run_job(client, user, video_id, "fail")
    first = await delivery_with(client, user, hook["id"], status="retry")
    assert (first["attempts"], first["response_status"]) == (1, 500)
    assert "500" in first["error"] and first["next_attempt_at"] is not None
    done = await delivery_with(client, user, hook["id"], status="delivered")
    assert (done["attempts"], done["response_status"], done["error"]) == (2, 200, None)
    assert len(receiver.received) == 2 and all(r["valid"] for r in receiver.received)
    # A retry is the same delivery: same id, same body; receivers dedupe on it.
    assert receiver.received[0]["body"] == receiver.received[1]["body"]
    assert {r["event"] for r in receiver.received} == {"job.failed"}
    assert webhook_counts(client, "job.failed") == {"retried": 1, "sent": 1}


def webhook_counts(client: Client, kind: str) -> dict[str, float]:
    """frameflow_webhook_deliveries_total for `kind`, by outcome (zeros left out)."""
    registry = client.server.app[appkeys.METRICS].registry
    counts = {
        outcome: registry.get_sample_value(
            "frameflow_webhook_deliveries_total", {"kind": kind, "outcome": outcome}
        )
        for outcome in ("sent", "retried", "failed")
    }
    return {outcome: n for outcome, n in counts.items() if n}


async def test_a_receiver_that_keeps_failing_is_given_up_and_counted(
    client: Client, user: User, video_id: str, receiver: Receiver
) -> None:
    sender = client.server.app[appkeys.WEBHOOK_SENDER]
    sender.settings = dataclasses.replace(sender.settings, notify_max_attempts=2)
    hook = await register(client, user, receiver.url(), ["job.succeeded"])
    receiver.secret = hook["secret"]
    receiver.answers = [503, 503, 503]
    await run_job(client, user, video_id, "ramp")
    given_up = await delivery_with(client, user, hook["id"], status="failed")
    assert (given_up["attempts"], given_up["response_status"]) == (2, 503)
    assert webhook_counts(client, "job.succeeded") == {"retried": 1, "failed": 1}


async def test_a_redirect_is_not_followed(
    client: Client, user: User, video_id: str, receiver: Receiver
) -> None:
    hook = await register(client, user, receiver.url("/redirect"))
    await run_job(client, user, video_id, "ramp")
    d = await delivery_with(client, user, hook["id"], status="retry")
    assert d["response_status"] == 302
    assert "redirect" in d["error"] and "not followed" in d["error"]
    assert receiver.redirected_to_hits == 0


REFUSED = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[fd00::1]/",
    "http://[fd00:ec2::254]/",
    "http://0.0.0.0/",
    "http://100.64.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "ftp://example.com/",
    "file:///etc/passwd",
    "http://user:pass@example.com/",
    "http:///nohost",
]


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST_JOBS)


@pytest.mark.parametrize("url", REFUSED)
async def test_internal_and_malformed_urls_are_refused_at_registration(
    aiohttp_client: Callable[..., Awaitable[Client]],
    strict_settings: Settings,
    database_url: str,
    url: str,
) -> None:
    client = await aiohttp_client(app_with_fake_runner(strict_settings, database_url))
    user = await register_and_login(client)
    resp = await client.post(
        HOOKS, json={"url": url, "events": ["job.succeeded"]}, headers=user.headers
    )
    assert resp.status == 400, (url, await resp.text())
    error = (await resp.json())["error"]
    assert error["field"] == "url", error


def test_address_table() -> None:
    refused = [
        "127.0.0.1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
        "::1", "fd00::1", "fe80::1", "0.0.0.0", "::", "100.64.0.1", "100.127.255.254",  # noqa: S104
        "224.0.0.1", "ff02::1", "240.0.0.1", "255.255.255.255", "fd00:ec2::254",
        "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:7f00:1::",
    ]  # fmt: skip
    for address in refused:
        assert address_problem(ipaddress.ip_address(address)) is not None, address
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert address_problem(ipaddress.ip_address(address)) is None, address
    assert "metadata" in str(address_problem(ipaddress.ip_address("169.254.169.254")))


async def test_events_are_checked(client: Client, user: User, receiver: Receiver) -> None:
    for events in ([], ["job.progress"], "job.failed", [1]):
        resp = await client.post(
            HOOKS, json={"url": receiver.url(), "events": events}, headers=user.headers
        )
        assert resp.status == 400
        # The list itself, or the item that is wrong ("events.0").
        assert (await resp.json())["error"]["field"].split(".")[0] == "events"


async def test_the_resolved_address_is_checked_again_at_delivery(
    aiohttp_client: Callable[..., Awaitable[Client]],
    strict_settings: Settings,
    database_url: str,
    sample_mp4: Path,
    receiver: Receiver,
) -> None:
    """Rows as if registered while the name pointed elsewhere (or before the
    allow-list lost the host): `localhost` now resolves to loopback, and a
    literal loopback address; neither receives anything."""
    client = await aiohttp_client(app_with_fake_runner(strict_settings, database_url))
    sender = client.server.app[appkeys.WEBHOOK_SENDER]
    sender.poll_seconds = 0.05
    user = await register_and_login(client)
    video_id = await upload(client, user, sample_mp4)
    hook_ids = []
    async with client.server.app[appkeys.POOL].acquire() as conn:
        for url in (receiver.url(host="localhost"), receiver.url()):
            hook_ids.append(
                await conn.fetchval(
                    "INSERT INTO webhooks (user_id, url, events, secret)"
                    " VALUES ($1, $2, $3, 's') RETURNING id::text",
                    uuid.UUID(user.id),
                    url,
                    ["job.succeeded"],
                )
            )
    await run_job(client, user, video_id, "ramp")
    for hook_id in hook_ids:
        d = await delivery_with(client, user, hook_id, status="retry")
        assert d["error"].startswith("refused:"), d
        assert "loopback" in d["error"]
        assert d["response_status"] is None
    assert receiver.received == []


async def test_another_users_webhooks_are_404(
    client: Client, user: User, receiver: Receiver
) -> None:
    hook = await register(client, user, receiver.url())
    other = await register_and_login(client)
    assert (await (await client.get(HOOKS, headers=other.headers)).json())["items"] == []
    for method, path in (
        ("GET", f"{HOOKS}/{hook['id']}/deliveries"),
        ("DELETE", f"{HOOKS}/{hook['id']}"),
        ("DELETE", f"{HOOKS}/not-a-uuid"),
        ("GET", f"{HOOKS}/{uuid.uuid4()}/deliveries"),
    ):
        resp = await client.request(method, path, headers=other.headers)
        assert resp.status == 404, (method, path)
    assert (await client.get(HOOKS)).status == 401
    resp = await client.delete(f"{HOOKS}/{hook['id']}", headers=user.headers)
    assert resp.status == 204
    assert (await (await client.get(HOOKS, headers=user.headers)).json())["items"] == []


async def test_an_account_deleted_during_registration_is_401_not_500(
    client: Client, user: User, receiver: Receiver
) -> None:
    # The middleware refuses a deleted account's token; this is the race after it:
    # the account goes between that check and the insert (was a foreign-key 500).
    app = client.server.app
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user.id))
    with pytest.raises(Unauthorized) as info:
        await app[appkeys.WEBHOOK_SERVICE].create(
            AuthUser(id=uuid.UUID(user.id), role="user"), receiver.url(), ["job.succeeded"]
        )
    assert info.value.error_code == "invalid_token"


def test_the_published_events_are_the_events() -> None:
    import typing

    from server.webhooks.model import EVENTS
    from server.webhooks.schemas import Event

    assert set(typing.get_args(Event)) == set(EVENTS)
