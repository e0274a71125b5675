"""WebSocket fan-out: N subscribers following one job, delivery latency and server cost.

    python bench/ws_bench.py                          # 1,000 subscribers, a ~8 s job, 3 rounds
    python bench/ws_bench.py --subscribers 200 --job-seconds 4 --repeat 1

Starts `python run.py` as a subprocess (one worker slot, local storage),
registers ONE user, uploads a generated 480p H.264/AAC clip and opens N
aiohttp WebSocket clients (no `Origin` header, as a script) in one child
process of this file (`--clients`), in batches, each authenticating with
the protocol's first message and reading `ready` and `snapshot`. Then one
`transcode` job (480p, x264 ultrafast) is POSTed and every client records,
for every event it receives, the delivery latency: its receive time minus
the event's `at`, which the server stamps when the event is published on
its bus (`server/live/events.py`); both are this machine's wall clock. The
clip's duration is picked from ffmpeg's measured speed here so that the
transcode takes about `--job-seconds`.

Rows: the same job followed by ONE socket (what the job itself costs the
server; the latency floor), by N sockets, and the baseline: a bare aiohttp
WebSocket server (below, started from this same file) that replays the very
events the N clients received (same count, sizes and timing, `at` re-stamped)
to N fresh clients, serialising each message once and writing it to every
socket in a loop, while the job's own ffmpeg command runs alongside, so that
both servers share the 2 cores with the same ffmpeg load. Frameflow and bare
rounds alternate `--repeat` times (both servers stay up; the idle one costs
nothing) and the deliveries of all rounds are pooled.

The clients share the 2 cores with the server and ffmpeg (each in a session,
so a CPU-share group, of its own; see FFMPEG_OWN_SESSION): a receive time is
taken when a client's task runs, so part of every latency is the clients'
own queueing. The bare baseline pays exactly the same client cost; compare
the ratio between commits, not the absolute milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from _common import (
    LOOPBACK,
    BenchError,
    MiB,
    RssSampler,
    Table,
    api,
    background_process,
    cpu_seconds,
    default_database_server,
    ensure_tool,
    environment,
    frameflow_server,
    free_port,
    log,
    median,
    register_and_login,
    server_env,
    write_results,
)
from aiohttp import WSMsgType, web
from jobs_bench import SERVER_ENV, Case, direct_argv, local_video, make_clip, upload

from config.settings import Settings
from server.media.binary import resolve_ffmpeg

# 480p: the lowest rung of the ladder, so the job is a real transcode whose
# ffmpeg leaves the most of the 2 cores to the sockets; ultrafast for the same reason.
CLIP_WIDTH, CLIP_HEIGHT = 854, 480
CASE = Case(
    "transcode 480p ultrafast", "transcode", {"renditions": ["480p"], "preset": "ultrafast"}
)
CALIBRATION_SECONDS = 10
# Clip durations on offer: few, so that the cached clips get reused.
CLIP_DURATIONS = (20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 600)
WARMUP_SECONDS = 2
STATE_EVENTS = ("job.queued", "job.started", "job.succeeded")
TERMINAL = tuple(f'"type": "{t}"' for t in ("job.succeeded", "job.failed", "job.canceled"))
CONNECT_TIMEOUT = 30.0
CLOSE_TIMEOUT = 30.0
# Frameflow starts ffmpeg in a session of its own (server/media/process.py). With
# the kernel's autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled)
# a session is a CPU-share group, so an ffmpeg started inside this script's
# session would share one group with the server under test, and ran about half
# as fast as the server's on a busy machine: the baseline's ffmpeg gets its own.
FFMPEG_OWN_SESSION = True


# --- the baseline: a bare aiohttp WebSocket server that broadcasts --------------------


def bare_app() -> web.Application:
    """`/ws`: any first message, then ready + snapshot; POST `/broadcast` replays events.

    No auth, no database, no bus, no per-socket queue: each event is
    serialised once and written to every socket in a plain loop.
    """
    sockets: set[web.WebSocketResponse] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # deflate only if offered; these clients never offer it
        await ws.prepare(request)
        await ws.receive(timeout=10)  # the auth message, not checked
        await ws.send_json({"type": "ready", "user_id": "bare"})
        await ws.send_json({"type": "snapshot", "jobs": []})
        sockets.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            sockets.discard(ws)
        return ws

    async def replay(events: list[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for item in events:
            delay = start + float(item["offset"]) - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            data = json.dumps(item["event"] | {"at": datetime.now(UTC).isoformat()})
            for ws in list(sockets):
                with contextlib.suppress(ConnectionError):
                    await ws.send_str(data)

    async def broadcast(request: web.Request) -> web.Response:
        events = (await request.json())["events"]
        task = asyncio.create_task(replay(events))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.json_response({"sockets": len(sockets)}, status=202)

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/health/live", live)
    return app


@contextlib.contextmanager
def bare_server(work_dir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    with background_process(
        [sys.executable, __file__, "--serve-bare", "--port", str(port)],
        ready_url=base + "/health/live",
        log_file=work_dir / "bare-ws.log",
        env=server_env({}),
        timeout=30,
    ) as proc:
        yield base, proc.pid


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU.

    The second field of /proc/PID/task/TID/schedstat (Linux, nanoseconds):
    high while the server's CPU time is low means the cores were taken
    (ffmpeg, the clients), not that the server was slow.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


# --- the clients: their own process -------------------------------------------------------
#
# The N clients run in a child process (`--clients`) started in a session of
# its own: with autogroup scheduling it then gets its own CPU share, as remote
# clients would, instead of splitting one share with the server under test
# (which runs in this script's session). The child talks JSON lines on stdout
# and takes commands on stdin: connected -> "go" -> done -> "close" -> results file.


@dataclass
class Subscriber:
    ws: aiohttp.ClientWebSocketResponse
    # (time.time() when the client's task got it, raw text); parsed after the run
    # so that the receive loop does as little as possible.
    received: list[tuple[float, str]] = field(default_factory=list)
    close_code: int | None = None  # set if the socket closed before the job ended
    finished: bool = False


class Fleet:
    """N WebSocket clients, all following the same user's events."""

    def __init__(self, session: aiohttp.ClientSession, ws_url: str, token: str) -> None:
        self.session = session
        self.ws_url = ws_url
        self.token = token
        self.subscribers: list[Subscriber] = []
        self.errors: Counter[str] = Counter()
        self._readers: list[asyncio.Task[None]] = []
        self._pending = 0
        self._all_done = asyncio.Event()
        self.last_terminal = 0.0

    async def _open(self) -> Subscriber | None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                # No `origin=`: aiohttp then sends no Origin header, as a script.
                ws = await self.session.ws_connect(self.ws_url, autoping=True, heartbeat=None)
                await ws.send_json({"type": "auth", "token": self.token})
                kinds = [json.loads((await ws.receive()).data)["type"] for _ in range(2)]
            if kinds != ["ready", "snapshot"]:
                await ws.close()
                raise BenchError(f"expected ready, snapshot; got {kinds}")
            return Subscriber(ws)
        except (aiohttp.ClientError, OSError, TimeoutError, BenchError, ValueError) as exc:
            self.errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
            return None

    async def connect(self, n: int, batch: int) -> float:
        started = time.perf_counter()
        for first in range(0, n, batch):
            opened = await asyncio.gather(*(self._open() for _ in range(min(batch, n - first))))
            self.subscribers += [s for s in opened if s is not None]
        self._pending = len(self.subscribers)
        self._readers = [asyncio.create_task(self._read(s)) for s in self.subscribers]
        return time.perf_counter() - started

    def _done(self, sub: Subscriber) -> None:
        if not sub.finished:
            sub.finished = True
            self._pending -= 1
            if self._pending == 0:
                self._all_done.set()

    async def _read(self, sub: Subscriber) -> None:
        ws, append, clock = sub.ws, sub.received.append, time.time
        while True:
            msg = await ws.receive()
            now = clock()
            if msg.type is WSMsgType.TEXT:
                append((now, msg.data))
                if any(t in msg.data for t in TERMINAL):
                    self.last_terminal = max(self.last_terminal, now)
                    self._done(sub)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                if not sub.finished:
                    sub.close_code = ws.close_code
                    self._done(sub)
                return
            elif msg.type is WSMsgType.ERROR:
                sub.close_code = -1
                self._done(sub)
                return

    async def wait(self, seconds: float) -> int:
        """Until every socket has its final event (or closed); the number still waiting."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._all_done.wait()
        return self._pending

    async def close(self, batch: int) -> None:
        for first in range(0, len(self.subscribers), batch):
            chunk = self.subscribers[first : first + batch]
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.gather(*(s.ws.close() for s in chunk), return_exceptions=True)
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def results(self) -> dict[str, Any]:
        """Each delivery as (receive time, type, at, progress); each distinct event once."""
        deliveries: list[list[tuple[float, str, str, float | None]]] = []
        events: dict[str, dict[str, Any]] = {}
        for sub in self.subscribers:
            mine = []
            for got, raw in sub.received:
                event = json.loads(raw)
                if "at" not in event:
                    continue  # not an event (pong, error)
                mine.append((got, event["type"], event["at"], event.get("progress")))
                events.setdefault(f"{event['type']}|{event['at']}", event)
            deliveries.append(mine)
        return {
            "deliveries": deliveries,
            "events": events,
            "close_codes": [s.close_code for s in self.subscribers if s.close_code is not None],
        }


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def _command(expected: str) -> None:
    line = (await asyncio.to_thread(sys.stdin.readline)).strip()
    if line != expected:
        raise BenchError(f"clients: expected {expected!r} on stdin, got {line!r}")


async def clients_main(ws_url: str, n: int, batch: int, wait_seconds: float, out: Path) -> None:
    """The child: connect, report, record from "go" until done, close, write the results."""
    token = os.environ["WS_BENCH_TOKEN"]
    me = psutil.Process()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        fleet = Fleet(session, ws_url, token)
        connect_seconds = await fleet.connect(n, batch)
        _say(
            {
                "connected": len(fleet.subscribers),
                "connect_seconds": connect_seconds,
                "errors": dict(fleet.errors),
            }
        )
        await _command("go")
        cpu, wait = me.cpu_times(), run_queue_wait(os.getpid())
        pending = await fleet.wait(wait_seconds)
        cpu_after, wait_after = me.cpu_times(), run_queue_wait(os.getpid())
        _say(
            {
                "done": True,
                "pending": pending,
                "last_terminal": fleet.last_terminal,
                "cpu_seconds": (cpu_after.user + cpu_after.system) - (cpu.user + cpu.system),
                "wait_seconds": wait_after - wait,
            }
        )
        await _command("close")
        await fleet.close(batch)
    out.write_text(json.dumps(fleet.results()))


class ClientProcess:
    """The parent's handle on the `--clients` child."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def message(self, key: str, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"clients: no {key!r} within {timeout:.0f} s") from None
        if line is None:
            raise BenchError(f"clients exited with {self.proc.wait(10)} before {key!r}")
        message = dict(json.loads(line))
        if key not in message:
            raise BenchError(f"clients: expected {key!r}, got {message}")
        return message

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()


@contextlib.contextmanager
def client_process(
    ws_url: str, token: str, n: int, batch: int, wait_seconds: float, out: Path
) -> Iterator[ClientProcess]:
    argv = [sys.executable, __file__, "--clients", ws_url, "--subscribers", str(n)]
    argv += ["--batch", str(batch), "--wait-seconds", str(wait_seconds), "--out", str(out)]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=server_env({"WS_BENCH_TOKEN": token}),  # not on the command line
        start_new_session=True,
    )
    try:
        yield ClientProcess(proc)
        proc.wait(CLOSE_TIMEOUT * 2)
        if proc.returncode != 0:
            raise BenchError(f"clients exited with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class Capture:
    """What one run recorded: deliveries and the server's resources."""

    target: str
    wanted: int
    connected: int
    connect_errors: dict[str, int]
    connect_seconds: float
    seconds: float  # trigger to the last socket's final event
    server_cpu_seconds: float
    server_wait_seconds: float  # runnable, waiting for a CPU (schedstat)
    client_cpu_seconds: float
    client_wait_seconds: float  # the clients' process: runnable, waiting for a CPU
    rss_before_connect: int
    rss_connected: int
    rss_peak: int
    deliveries: list[list[tuple[float, str, str, float | None]]]  # per socket
    events: dict[str, dict[str, Any]]  # "type|at" -> the event as received
    close_codes: list[int]  # sockets closed before their final event
    rounds: int = 1


def merge(caps: list[Capture]) -> Capture:
    """Rounds pooled: every delivery of every round, resources summed (RSS: round 1, peak)."""
    first = caps[0]
    return Capture(
        target=first.target,
        wanted=first.wanted,
        connected=min(c.connected for c in caps),
        connect_errors=dict(sum((Counter(c.connect_errors) for c in caps), Counter())),
        connect_seconds=median([c.connect_seconds for c in caps]),
        seconds=sum(c.seconds for c in caps),
        server_cpu_seconds=sum(c.server_cpu_seconds for c in caps),
        server_wait_seconds=sum(c.server_wait_seconds for c in caps),
        client_cpu_seconds=sum(c.client_cpu_seconds for c in caps),
        client_wait_seconds=sum(c.client_wait_seconds for c in caps),
        rss_before_connect=first.rss_before_connect,
        rss_connected=first.rss_connected,
        rss_peak=max(c.rss_peak for c in caps),
        deliveries=[d for c in caps for d in c.deliveries],
        events={k: v for c in caps for k, v in c.events.items()},
        close_codes=[code for c in caps for code in c.close_codes],
        rounds=len(caps),
    )


def capture(
    target: str,
    ws_url: str,
    token: str,
    n: int,
    batch: int,
    pid: int,
    trigger: Callable[[], Any],
    wait_seconds: float,
    work_dir: Path,
) -> tuple[Capture, Any]:
    """Connect N sockets, run `trigger` (the job, or the replay), record until all are done."""
    server = psutil.Process(pid)
    out = work_dir / f"clients-{target}-{time.monotonic_ns()}.json"
    rss_before = int(server.memory_info().rss)
    with client_process(ws_url, token, n, batch, wait_seconds, out) as clients:
        hello = clients.message("connected", CONNECT_TIMEOUT * (1 + n // batch))
        if not hello["connected"]:
            raise BenchError(f"no WebSocket could connect: {hello['errors']}")
        if hello["errors"]:
            log(f"  {sum(hello['errors'].values())} connection(s) failed: {hello['errors']}")
        time.sleep(1.0)  # let the server settle (access logs, GC) before measuring
        rss_connected = int(server.memory_info().rss)
        cpu_before, wait_before = cpu_seconds(pid), run_queue_wait(pid)
        with RssSampler(pid) as rss:
            clients.send("go")
            started = time.time()
            result = trigger()
            done = clients.message("done", wait_seconds + 30)
            server_cpu = cpu_seconds(pid) - cpu_before
            server_wait = run_queue_wait(pid) - wait_before
        if done["pending"]:
            log(f"  {done['pending']} socket(s) without a final event after {wait_seconds:.0f} s")
        clients.send("close")
    recorded = json.loads(out.read_text())
    out.unlink()
    end = done["last_terminal"] or time.time()
    return (
        Capture(
            target=target,
            wanted=n,
            connected=hello["connected"],
            connect_errors=hello["errors"],
            connect_seconds=hello["connect_seconds"],
            seconds=end - started,
            server_cpu_seconds=server_cpu,
            server_wait_seconds=server_wait,
            client_cpu_seconds=done["cpu_seconds"],
            client_wait_seconds=done["wait_seconds"],
            rss_before_connect=rss_before,
            rss_connected=rss_connected,
            rss_peak=rss.peak,
            deliveries=[[tuple(d) for d in mine] for mine in recorded["deliveries"]],
            events=recorded["events"],
            close_codes=recorded["close_codes"],
        ),
        result,
    )


# --- analysis --------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Stats:
    target: str
    subscribers: int
    connected: int  # per round (the fewest, if rounds differ)
    rounds: int
    sockets_total: int  # over all rounds
    events_per_socket: tuple[int, float, int]  # min, median, max
    deliveries: int
    latency_ms: dict[str, float]  # p50 p95 p99 max
    latency_ms_by_type: dict[str, dict[str, float]]
    fanout_ms: dict[str, float]  # per event: last receive - first receive (median, max)
    events_published: int  # distinct events seen by any socket
    state_missed: dict[str, int]  # state-change type -> sockets that never got it
    out_of_order: int  # sockets whose events were not queued, started, progress.., succeeded
    closed_early: dict[str, int]  # close code -> sockets
    seconds: float  # per round (mean), as are the two below
    server_cpu_seconds: float
    server_cpu_percent: float
    server_wait_seconds: float
    client_cpu_percent: float
    client_wait_seconds: float  # per round
    connect_seconds: float
    rss_before_connect: int
    rss_connected: int
    rss_peak: int
    timeline: list[dict[str, Any]]  # one entry per distinct event, for the replay
    # Latency of each event at its first, median and last socket; offset_s counts
    # from the first event of round 1.
    per_event: list[dict[str, Any]]

    @property
    def state_missed_total(self) -> int:
        return sum(self.state_missed.values())


def analyse(cap: Capture) -> Stats:
    latencies: list[float] = []
    by_type: dict[str, list[float]] = defaultdict(list)
    receive_times: dict[tuple[str, str], list[float]] = defaultdict(list)
    events = {tuple(key.split("|", 1)): event for key, event in cap.events.items()}
    stamps: dict[str, float] = {}
    counts: list[int] = []
    missed: Counter[str] = Counter()
    out_of_order = 0
    for received in cap.deliveries:
        kinds: list[str] = []
        progress: list[float] = []
        for got, kind, at, value in received:
            if at not in stamps:
                stamps[at] = datetime.fromisoformat(at).timestamp()
            latency = got - stamps[at]
            latencies.append(latency)
            by_type[kind].append(latency)
            receive_times[(kind, at)].append(got)
            kinds.append(kind)
            if kind == "job.progress":
                progress.append(float(value or 0))
        counts.append(len(kinds))
        for state in STATE_EVENTS:
            if state not in kinds:
                missed[state] += 1
        states = [k for k in kinds if k != "job.progress"]
        inner = kinds[kinds.index("job.started") + 1 : -1] if "job.started" in kinds else []
        if (
            states != list(STATE_EVENTS)
            or kinds[-1:] != ["job.succeeded"]
            or any(k != "job.progress" for k in inner)
            or progress != sorted(progress)
        ):
            out_of_order += 1
    latencies.sort()
    spreads = sorted(max(t) - min(t) for t in receive_times.values())
    ordered = sorted(events.items(), key=lambda kv: kv[0][1])
    first_at = datetime.fromisoformat(ordered[0][0][1]).timestamp() if ordered else 0.0
    timeline = [
        {"offset": datetime.fromisoformat(at).timestamp() - first_at, "event": event}
        for (_kind, at), event in ordered
    ]
    ms = 1000.0
    per_event = []
    for (kind, at), times in sorted(receive_times.items(), key=lambda kv: kv[0][1]):
        stamped = datetime.fromisoformat(at).timestamp()
        lat = sorted(t - stamped for t in times)
        per_event.append(
            {
                "type": kind,
                "progress": events[(kind, at)].get("progress"),
                "offset_s": round(stamped - first_at, 3),
                "sockets": len(lat),
                "first_ms": round(lat[0] * ms, 1),
                "p50_ms": round(percentile(lat, 50) * ms, 1),
                "last_ms": round(lat[-1] * ms, 1),
            }
        )

    def summary(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        return {
            "p50": percentile(values, 50) * ms,
            "p95": percentile(values, 95) * ms,
            "p99": percentile(values, 99) * ms,
            "max": (values[-1] if values else float("nan")) * ms,
            "n": len(values),
        }

    return Stats(
        target=cap.target,
        subscribers=cap.wanted,
        connected=cap.connected,
        rounds=cap.rounds,
        sockets_total=len(cap.deliveries),
        events_per_socket=(min(counts), median(counts), max(counts)),
        deliveries=len(latencies),
        latency_ms=summary(latencies),
        latency_ms_by_type={k: summary(v) for k, v in sorted(by_type.items())},
        fanout_ms={
            "median": percentile(spreads, 50) * ms,
            "max": (spreads[-1] if spreads else float("nan")) * ms,
        },
        events_published=len(events),
        state_missed={s: missed[s] for s in STATE_EVENTS},
        out_of_order=out_of_order,
        closed_early={str(c): n for c, n in Counter(cap.close_codes).items()},
        seconds=cap.seconds / cap.rounds,
        server_cpu_seconds=cap.server_cpu_seconds / cap.rounds,
        server_cpu_percent=100 * cap.server_cpu_seconds / cap.seconds if cap.seconds else 0.0,
        server_wait_seconds=cap.server_wait_seconds / cap.rounds,
        client_cpu_percent=100 * cap.client_cpu_seconds / cap.seconds if cap.seconds else 0.0,
        client_wait_seconds=cap.client_wait_seconds / cap.rounds,
        connect_seconds=cap.connect_seconds,
        rss_before_connect=cap.rss_before_connect,
        rss_connected=cap.rss_connected,
        rss_peak=cap.rss_peak,
        timeline=timeline,
        per_event=per_event,
    )


# --- the runs ----------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Both ends of N sockets: ours here, the server's in the child (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"need {needed} open files, the hard limit is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    log(f"open-file limit raised from {soft} to {needed}")


def calibrate(ffmpeg: str, work_dir: Path, job_seconds: float) -> tuple[int, float]:
    """A clip duration for which the job's ffmpeg alone takes about `job_seconds` here."""
    clip = make_clip(ffmpeg, CLIP_WIDTH, CLIP_HEIGHT, CALIBRATION_SECONDS)
    wall = run_ffmpeg(ffmpeg, clip, work_dir)
    speed = CALIBRATION_SECONDS / wall
    wanted = job_seconds * speed
    seconds = min(CLIP_DURATIONS, key=lambda d: abs(d - wanted))  # a few sizes, cached
    log(f"ffmpeg transcodes this clip at {speed:.1f}x real time: a {seconds} s clip")
    return seconds, speed


def argv_for(ffmpeg: str, clip: Path, out_dir: Path) -> list[str]:
    settings = Settings.from_env(SERVER_ENV)
    return direct_argv(ffmpeg, CASE, local_video(ffmpeg, clip), clip, out_dir, settings)


def run_ffmpeg(ffmpeg: str, clip: Path, work_dir: Path) -> float:
    out_dir = Path(tempfile.mkdtemp(prefix="direct-", dir=work_dir))
    try:
        argv = argv_for(ffmpeg, clip, out_dir)
        started = time.perf_counter()
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=600,
            check=False,
            start_new_session=FFMPEG_OWN_SESSION,
        )
        if proc.returncode != 0:
            raise BenchError(f"ffmpeg exited {proc.returncode}: {proc.stderr[-1000:]!r}")
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def follow_job(
    base_url: str,
    token: str,
    video_id: str,
    n: int,
    batch: int,
    pid: int,
    timeout: float,
    work_dir: Path,
) -> tuple[Capture, dict[str, Any]]:
    def post_job() -> dict[str, Any]:
        return dict(
            api(
                "POST",
                f"{base_url}/api/v1/videos/{video_id}/jobs",
                token=token,
                body={"operation": CASE.operation, "params": CASE.params},
                expect=202,
            )
        )

    ws_url = base_url.replace("http://", "ws://") + "/api/v1/ws"
    cap, job = capture("frameflow", ws_url, token, n, batch, pid, post_job, timeout, work_dir)
    final = dict(api("GET", f"{base_url}/api/v1/jobs/{job['id']}", token=token))
    if final["status"] != "succeeded" or final["attempts"] != 1:
        raise BenchError(f"job ended {final['status']} after {final['attempts']} attempt(s)")
    return cap, final


def replay_bare(
    base_url: str,
    pid: int,
    timeline: list[dict[str, Any]],
    ffmpeg_argv: list[str],
    n: int,
    batch: int,
    timeout: float,
    work_dir: Path,
) -> tuple[Capture, float]:
    """The replay to N bare sockets, with the job's ffmpeg running alongside; and its seconds."""
    procs: list[subprocess.Popen[bytes]] = []
    lifetime: list[float] = []

    def watch(proc: subprocess.Popen[bytes], started: float) -> None:
        proc.wait()
        lifetime.append(time.perf_counter() - started)

    def start() -> None:
        # Frameflow starts its ffmpeg right after job.started; here with the replay.
        started = time.perf_counter()
        proc = subprocess.Popen(
            ffmpeg_argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=FFMPEG_OWN_SESSION,
        )
        procs.append(proc)
        threading.Thread(target=watch, args=(proc, started), daemon=True).start()
        api("POST", f"{base_url}/broadcast", body={"events": timeline}, expect=202)

    ws_url = base_url.replace("http://", "ws://") + "/ws"
    try:
        cap, _ = capture("bare", ws_url, "-", n, batch, pid, start, timeout, work_dir)
        procs[0].wait(timeout=timeout)
        if procs[0].returncode != 0:
            raise BenchError(f"the baseline's ffmpeg exited {procs[0].returncode}")
        deadline = time.monotonic() + 5
        while not lifetime and time.monotonic() < deadline:
            time.sleep(0.01)
        return cap, lifetime[0] if lifetime else float("nan")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def warnings_in(log_file: Path) -> list[str]:
    """The server's log lines at warning level or above (JSON lines; others skipped)."""
    found = []
    for line in log_file.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(line).get("level") in ("warning", "error", "critical"):
                found.append(line)
    return found


# --- report --------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render(rows: list[Stats]) -> Table:
    table = Table(
        [
            "run",
            "sockets",
            "events/socket",
            "deliveries",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "fan-out ms",
            "state missed",
            "server CPU s",
            "server CPU %",
            "server waited s",
            "clients CPU %",
            "server RSS",
        ]
    )
    for s in rows:
        lo, mid, hi = s.events_per_socket
        per_socket = f"{mid:g}" if lo == hi else f"{mid:g} ({lo}-{hi})"
        table.add(
            s.target,
            f"{s.connected}/{s.subscribers}" + (f" x{s.rounds}" if s.rounds > 1 else ""),
            per_socket,
            s.deliveries,
            fmt_ms(s.latency_ms["p50"]),
            fmt_ms(s.latency_ms["p95"]),
            fmt_ms(s.latency_ms["p99"]),
            fmt_ms(s.latency_ms["max"]),
            fmt_ms(s.fanout_ms["median"]),
            f"{s.state_missed_total}/{len(STATE_EVENTS) * s.sockets_total}",
            f"{s.server_cpu_seconds:.2f}",
            f"{s.server_cpu_percent:.0f}",
            f"{s.server_wait_seconds:.2f}",
            f"{s.client_cpu_percent:.0f}",
            f"{s.rss_peak / MiB:.0f} MiB (+{(s.rss_connected - s.rss_before_connect) / MiB:.1f})",
        )
    return table


def ratio_row(table: Table, ff: Stats, bare: Stats) -> None:
    def r(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    table.add(
        "frameflow/bare",
        "",
        "",
        "",
        r(ff.latency_ms["p50"], bare.latency_ms["p50"]),
        r(ff.latency_ms["p95"], bare.latency_ms["p95"]),
        r(ff.latency_ms["p99"], bare.latency_ms["p99"]),
        r(ff.latency_ms["max"], bare.latency_ms["max"]),
        r(ff.fanout_ms["median"], bare.fanout_ms["median"]),
        "",
        r(ff.server_cpu_seconds, bare.server_cpu_seconds),
        "",
        "",
        "",
        "",
    )


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000, help="WebSockets (default 1000)")
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=8.0,
        help="about how long the job's ffmpeg alone runs (default 8); sets the clip's duration",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of (frameflow, bare), interleaved; deliveries are pooled (default 3)",
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="sockets connected concurrently (default 100)"
    )
    parser.add_argument(
        "--database-url",
        default=default_database_server(),
        help="PostgreSQL server to create a scratch database on (default: "
        "BENCH_DATABASE_URL or TEST_DATABASE_URL, else the embedded one)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", metavar="WS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--wait-seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        web.run_app(bare_app(), host=LOOPBACK, port=args.port, access_log=None, print=None)
        return
    if args.clients:
        asyncio.run(
            clients_main(args.clients, args.subscribers, args.batch, args.wait_seconds, args.out)
        )
        return
    if min(args.subscribers, args.batch, args.repeat) < 1 or args.job_seconds <= 0:
        parser.error("--subscribers, --repeat, --batch and --job-seconds must be positive")

    bench_started = time.perf_counter()
    load_before = os.getloadavg()
    ensure_tool("curl")
    raise_fd_limit(2 * args.subscribers + 512)
    ffmpeg = resolve_ffmpeg(os.environ.get("FRAMEFLOW_FFMPEG_PATH", ""))
    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-ws-bench-", dir=args.work_dir))
    timeout = 60 + 10 * args.job_seconds
    ff_caps: list[Capture] = []
    bare_caps: list[Capture] = []
    bare_ffmpeg: list[float] = []
    try:
        clip_seconds, speed = calibrate(ffmpeg, work_dir, args.job_seconds)
        clip = make_clip(ffmpeg, CLIP_WIDTH, CLIP_HEIGHT, clip_seconds)
        warmup = make_clip(ffmpeg, CLIP_WIDTH, CLIP_HEIGHT, WARMUP_SECONDS)
        out_dir = work_dir / "bare-ffmpeg"
        out_dir.mkdir()
        bare_ffmpeg_argv = argv_for(ffmpeg, clip, out_dir)
        with (
            frameflow_server(
                work_dir,
                database_server=args.database_url,
                max_upload_bytes=clip.stat().st_size + 64 * MiB,
                extra_env=SERVER_ENV
                | {
                    "FRAMEFLOW_FFMPEG_PATH": ffmpeg,
                    # All N sockets are one user's: lift the per-user cap for them
                    # (twice: a round's sockets may still be closing as the next connects).
                    "FRAMEFLOW_WS_MAX_SOCKETS_PER_USER": str(2 * args.subscribers),
                    # ... and the per-address connection cap: they all come from loopback.
                    "FRAMEFLOW_MAX_CONNECTIONS_PER_IP": "0",
                },
            ) as server,
            bare_server(work_dir) as (bare_url, bare_pid),
        ):
            pid = server.proc.pid
            token = register_and_login(server.base_url)
            video_id = upload(server.base_url, token, clip)
            warmup_id = upload(server.base_url, token, warmup)
            # Unmeasured: the first job pays imports and the encoder list.
            follow_job(server.base_url, token, warmup_id, 1, 1, pid, timeout, work_dir)
            log("frameflow: the job followed by 1 socket")
            one, _ = follow_job(server.base_url, token, video_id, 1, 1, pid, timeout, work_dir)
            jobs = []
            for i in range(args.repeat):
                log(f"#{i + 1} frameflow: the job followed by {args.subscribers} sockets")
                cap, job = follow_job(
                    server.base_url,
                    token,
                    video_id,
                    args.subscribers,
                    args.batch,
                    pid,
                    timeout,
                    work_dir,
                )
                ff_caps.append(cap)
                jobs.append(job)
                timeline = analyse(cap).timeline
                log(f"#{i + 1} bare aiohttp: its {len(timeline)} events replayed, ffmpeg alongside")
                cap, seconds = replay_bare(
                    bare_url,
                    bare_pid,
                    timeline,
                    bare_ffmpeg_argv,
                    args.subscribers,
                    args.batch,
                    timeout,
                    work_dir,
                )
                bare_caps.append(cap)
                bare_ffmpeg.append(seconds)
                shutil.rmtree(out_dir, ignore_errors=True)
                out_dir.mkdir()
            server_log_warnings = warnings_in(server.log_file)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    stats_one, stats_many, stats_bare = (
        analyse(one),
        analyse(merge(ff_caps)),
        analyse(merge(bare_caps)),
    )
    rows = [stats_one, stats_many, stats_bare]
    stats_one.target = "frameflow, 1 socket"
    stats_many.target = f"frameflow, {args.subscribers} sockets"
    stats_bare.target = f"bare aiohttp, {args.subscribers} sockets"
    table = render(rows)
    ratio_row(table, stats_many, stats_bare)
    print(table.render())
    fanout_cpu = stats_many.server_cpu_seconds - stats_one.server_cpu_seconds
    extra_deliveries = stats_many.deliveries / stats_many.rounds - stats_one.deliveries
    bare_per_delivery = stats_bare.server_cpu_seconds * stats_bare.rounds / stats_bare.deliveries
    per_socket_rss = (stats_many.rss_connected - stats_many.rss_before_connect) / max(
        1, ff_caps[0].connected
    )
    load_after = os.getloadavg()
    notes = [
        f"job: {CASE.name} of a {clip_seconds} s {CLIP_WIDTH}x{CLIP_HEIGHT} clip (its "
        f"ffmpeg alone ~{clip_seconds / speed:.1f} s, from the calibration run); "
        f"POST to the last final event "
        f"{stats_one.seconds:.1f} s with 1 socket, "
        + ", ".join(f"{c.seconds:.1f}" for c in ff_caps)
        + f" s with {args.subscribers}; bare replays "
        + ", ".join(f"{c.seconds:.1f}" for c in bare_caps)
        + " s (their ffmpeg "
        + ", ".join(f"{s:.1f}" for s in bare_ffmpeg)
        + " s)",
        f"connect + auth + ready + snapshot of {args.subscribers} sockets (batches of "
        f"{args.batch}): frameflow "
        + ", ".join(f"{c.connect_seconds:.1f}" for c in ff_caps)
        + " s, bare "
        + ", ".join(f"{c.connect_seconds:.1f}" for c in bare_caps)
        + " s",
        f"fan-out cost: {fanout_cpu:.2f} server CPU s per job for {extra_deliveries:.0f} more "
        f"deliveries = {1e6 * fanout_cpu / max(1, extra_deliveries):.0f} us each (bare: "
        f"{1e6 * bare_per_delivery:.0f} us); "
        f"server RSS +{per_socket_rss / 1024:.0f} KiB per authenticated socket",
        f"sockets closed before the final event: frameflow {stats_many.closed_early or 0}, "
        f"bare {stats_bare.closed_early or 0}; out of order: frameflow "
        f"{stats_many.out_of_order}, bare {stats_bare.out_of_order}; connect failures: "
        f"frameflow {sum(sum(c.connect_errors.values()) for c in ff_caps)}, "
        f"bare {sum(sum(c.connect_errors.values()) for c in bare_caps)}",
        f"the clients' process waited for a CPU {stats_many.client_wait_seconds:.2f} s per "
        f"round with frameflow, {stats_bare.client_wait_seconds:.2f} s with bare",
        f"server warnings/errors in its log: {len(server_log_warnings)}",
        f"machine load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"total bench time {time.perf_counter() - bench_started:.0f} s",
    ]
    print("\n" + "\n".join(notes))
    for line in server_log_warnings[:5]:
        print("  " + line[:300])
    summary = [
        {k: v for k, v in vars(s).items() if k != "timeline"} | {"row": s.target} for s in rows
    ]
    path = write_results(
        "ws",
        {
            "environment": environment() | {"ffmpeg": ffmpeg},
            "database": "server" if args.database_url else "embedded",
            "args": {k: str(v) for k, v in vars(args).items()},
            "case": {"operation": CASE.operation, "params": CASE.params},
            "clip": {"seconds": clip_seconds, "width": CLIP_WIDTH, "height": CLIP_HEIGHT},
            "ffmpeg_speed_x": speed,
            "load_average": {"before": load_before, "after": load_after},
            "jobs": jobs,
            "summary": summary,
            "notes": notes,
            "server_log_warnings": server_log_warnings[:50],
            "timeline": analyse(ff_caps[0]).timeline,
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
