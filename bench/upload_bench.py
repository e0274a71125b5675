"""Upload throughput and memory: `curl -T` and multipart into the real server.

    python bench/upload_bench.py                   # 1 GiB local, 256 MiB s3, 3 runs each
    python bench/upload_bench.py --size-mb 256 --repeat 1 --backends local

Starts `python run.py` as a subprocess (embedded PostgreSQL, or a fresh
database on TEST_DATABASE_URL / BENCH_DATABASE_URL when set), registers a
user through the API and uploads a real MP4 padded to the requested size with
curl, which is what users do. The baseline is a bare aiohttp server (below,
started from this same file) that writes the request body to disk and does
nothing else: the ratio says what sniffing, hashing, storage, probing and
the database cost on top of aiohttp itself. The same server run with fsync,
and with fsync and SHA-256, does the work no upload can skip; the ratio to
that says what Frameflow costs beyond it. Beside each Frameflow `curl -T`
(local storage), `dd conv=fsync` copies the same file into the same directory:
the disk's own pace in that moment, which a raw upload should keep.

The S3 backend talks to moto's S3 server on loopback, which keeps objects in
memory and is itself slow (~50 MB/s), so its numbers measure moto as much as
Frameflow; it uses a smaller file by default.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from _common import (
    LOOPBACK,
    SMOKE_SIZE,
    BenchError,
    CurlResult,
    MiB,
    RssSampler,
    Table,
    background_process,
    default_database_server,
    delete_video,
    ensure_tool,
    environment,
    frameflow_server,
    free_port,
    log,
    make_video,
    median,
    moto_s3_server,
    register_and_login,
    server_env,
    timeout_for,
    upload,
    write_results,
)
from aiohttp import BodyPartReader, web

CHUNK = 1024 * 1024  # the same read size as Frameflow's default upload_chunk_bytes
METHODS = ("put", "multipart")
# The baselines: the body to disk; also fsynced; also fsynced and hashed (SHA-256).
BARE_TARGETS = (
    ("bare", ""),
    ("bare+fsync", "?fsync=1"),
    ("bare+fsync+sha256", "?fsync=1&sha256=1"),
)


# --- the baseline: a bare aiohttp server that writes the body to disk ---------------


def bare_app(upload_dir: Path) -> web.Application:
    """Same URLs as Frameflow, no auth, no checks: body to a file, 201.

    `?fsync=1` also fsyncs the file before answering, as Frameflow's local
    storage does before it commits an object: that is the price of an upload
    that survives a power cut, so it gets a baseline of its own. `&sha256=1`
    also hashes the body as it goes, as Frameflow does for every upload (the
    video's `sha256` and ETag): with both, the bare server does the same
    essential work, and what is left between the two is Frameflow's own cost.
    """

    def target() -> Path:
        return upload_dir / f"{uuid.uuid4().hex}.bin"

    def hasher(request: web.Request) -> Any:
        return hashlib.sha256() if request.query.get("sha256") == "1" else None

    def finish(request: web.Request, out: BinaryIO) -> None:
        if request.query.get("fsync") == "1":
            out.flush()
            os.fsync(out.fileno())

    async def put(request: web.Request) -> web.Response:
        size = 0
        digest = hasher(request)
        # Blocking writes into the page cache: the cheapest way to get the
        # bytes onto disk, which is what makes this an upper bound.
        with target().open("wb") as out:
            async for chunk in request.content.iter_chunked(CHUNK):
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            finish(request, out)
        return web.json_response({"size": size}, status=201)

    async def post(request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            raise web.HTTPBadRequest(text="expected a file part")
        size = 0
        digest = hasher(request)
        with target().open("wb") as out:
            while chunk := await part.read_chunk(CHUNK):
                if digest is not None:
                    digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
            finish(request, out)
        return web.json_response({"size": size}, status=201)

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_put("/api/v1/uploads/{filename}", put)
    app.router.add_post("/api/v1/uploads", post)
    app.router.add_get("/health/live", live)
    return app


def serve_bare(port: int, upload_dir: Path) -> None:
    web.run_app(bare_app(upload_dir), host=LOOPBACK, port=port, access_log=None, print=None)


@dataclass
class BareServer:
    base_url: str
    pid: int
    upload_dir: Path


@contextmanager
def bare_server(work_dir: Path) -> Iterator[BareServer]:
    port = free_port()
    upload_dir = work_dir / f"bare-uploads-{port}"
    upload_dir.mkdir()
    base = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, __file__, "--serve-bare", str(upload_dir), "--port", str(port)]
    with background_process(
        argv,
        ready_url=base + "/health/live",
        log_file=work_dir / f"bare-upload-{port}.log",
        env=server_env({}),
        timeout=30,
    ) as proc:
        yield BareServer(base, proc.pid, upload_dir)


# --- one upload -------------------------------------------------------------------------


@dataclass
class Run:
    target: str  # frameflow or bare
    backend: str  # local, s3, or disk for the bare server
    method: str
    size: int
    seconds: float
    rss_baseline: int
    rss_peak: int

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds


def measured_upload(
    target: str,
    backend: str,
    base_url: str,
    pid: int,
    method: str,
    path: Path,
    token: str,
    query: str = "",
) -> tuple[Run, CurlResult]:
    size = path.stat().st_size
    # Flush dirty pages left by earlier runs (and by generating the file), so
    # each run starts from the same page-cache state instead of paying for
    # the previous run's writeback.
    os.sync()
    with RssSampler(pid) as rss:
        result = upload(base_url, method, path, token, timeout_for(size), query)
    if result.status != 201:
        raise BenchError(f"{target}/{backend} {method}: HTTP {result.status}: {result.body[:500]}")
    stored = result.json()["size"]
    if stored != size:
        raise BenchError(f"{target} stored {stored} bytes of {size}")
    run = Run(target, backend, method, size, result.seconds, rss.baseline, rss.peak)
    log(
        f"  {target:9} {backend:5} {method:9} {run.mib_per_s:7.1f} MiB/s  "
        f"RSS +{run.rss_peak - run.rss_baseline} B"
    )
    return run, result


def bench_bare(work_dir: Path, path: Path, repeat: int) -> list[Run]:
    runs: list[Run] = []
    with bare_server(work_dir) as bare:
        # Unmeasured warm-up, as Frameflow gets with its smoke uploads.
        for method in METHODS:
            upload(bare.base_url, method, path, "", timeout_for(path.stat().st_size))
        for _ in range(repeat):
            for target, query in BARE_TARGETS:
                for method in METHODS:
                    run, _ = measured_upload(
                        target, "disk", bare.base_url, bare.pid, method, path, "", query
                    )
                    runs.append(run)
                    for stored in bare.upload_dir.iterdir():
                        stored.unlink()
    return runs


def measured_dd(work_dir: Path, path: Path) -> Run:
    """`dd conv=fsync` of the same file into the same directory: the disk's own pace,
    measured just before a Frameflow upload so both meet the same disk."""
    out = work_dir / "dd.out"
    os.sync()
    started = time.perf_counter()
    subprocess.run(
        ["dd", f"if={path}", f"of={out}", "bs=1M", "conv=fsync", "status=none"], check=True
    )
    seconds = time.perf_counter() - started
    out.unlink()
    run = Run("dd", "disk", "put", path.stat().st_size, seconds, 0, 0)
    log(f"  dd conv=fsync        {run.mib_per_s:7.1f} MiB/s")
    return run


def bench_frameflow(
    work_dir: Path,
    backend: str,
    path: Path,
    smoke: Path,
    repeat: int,
    database_server: str,
    s3_endpoint: str = "",
) -> list[Run]:
    runs: list[Run] = []
    size = path.stat().st_size
    with frameflow_server(
        work_dir,
        database_server=database_server,
        storage=backend,
        s3_endpoint=s3_endpoint,
        max_upload_bytes=size + 64 * MiB,
    ) as server:
        token = register_and_login(server.base_url)
        for method in METHODS:
            # The padded file must pass sniffing and probing before timing means anything.
            result = upload(server.base_url, method, smoke, token, timeout_for(SMOKE_SIZE))
            if result.status != 201:
                raise BenchError(
                    f"smoke upload ({method}) got {result.status}: {result.body[:500]}"
                )
            delete_video(server.base_url, token, result.json()["id"])
        for _ in range(repeat):
            for method in METHODS:
                if backend == "local" and method == "put":
                    runs.append(measured_dd(work_dir, path))
                run, result = measured_upload(
                    "frameflow", backend, server.base_url, server.proc.pid, method, path, token
                )
                runs.append(run)
                # Keeps disk, quota and moto's memory flat across runs.
                delete_video(server.base_url, token, result.json()["id"])
    return runs


# --- report ---------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> tuple[Table, list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.target, run.backend, run.method, run.size), []).append(run)
    # Baselines by (server, method, size): plain, and with fsync.
    bare_speed = {
        (target, method, size): median([r.mib_per_s for r in group])
        for (target, _, method, size), group in groups.items()
        if target.startswith("bare")
    }
    table = Table(
        [
            "server",
            "storage",
            "upload",
            "size",
            "MiB/s (median)",
            "vs bare",
            "vs bare+fsync",
            "vs bare+fsync+sha256",
            "RSS before",
            "RSS peak growth",
        ]
    )
    summary: list[dict[str, Any]] = []
    # Largest file first; at each size the baselines, then Frameflow.
    order = {"bare": 0, "bare+fsync": 1, "bare+fsync+sha256": 2, "dd": 3, "frameflow": 4}
    keys = sorted(groups, key=lambda k: (-k[3], order.get(k[0], 9), k[1], METHODS.index(k[2])))
    for target, backend, method, size in keys:
        group = groups[(target, backend, method, size)]
        speed = median([r.mib_per_s for r in group])
        bare = bare_speed.get(("bare", method, size))
        ratio = speed / bare if bare else float("nan")
        synced = bare_speed.get(("bare+fsync", method, size))
        ratio_synced = speed / synced if synced else float("nan")
        hashed = bare_speed.get(("bare+fsync+sha256", method, size))
        ratio_hashed = speed / hashed if hashed else float("nan")
        baseline = min(r.rss_baseline for r in group)
        growth = max(r.rss_peak - r.rss_baseline for r in group)
        table.add(
            "dd conv=fsync" if target == "dd" else target,
            backend,
            "" if target == "dd" else "curl -T" if method == "put" else "curl -F (multipart)",
            f"{size // MiB} MiB",
            f"{speed:.0f}",
            f"{ratio:.2f}",
            f"{ratio_synced:.2f}",
            f"{ratio_hashed:.2f}",
            f"{baseline / MiB:.0f} MiB",
            f"{growth / MiB:.1f} MiB",
        )
        summary.append(
            {
                "server": target,
                "storage": backend,
                "method": method,
                "size": size,
                "runs": len(group),
                "mib_per_s_median": speed,
                "ratio_vs_bare": ratio,
                "ratio_vs_bare_fsync": ratio_synced,
                "ratio_vs_bare_fsync_sha256": ratio_hashed,
                "rss_baseline_bytes": baseline,
                "rss_peak_growth_bytes": growth,
            }
        )
    return table, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="local upload size (MiB)")
    parser.add_argument(
        "--s3-size-mb", type=int, default=256, help="S3 upload size (MiB); moto is slow"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--backends", default="local,s3", help="comma list of local, s3")
    parser.add_argument(
        "--database-url",
        default=default_database_server(),
        help="PostgreSQL server to create a scratch database on (default: "
        "BENCH_DATABASE_URL or TEST_DATABASE_URL, else the embedded one)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.port, args.serve_bare)
        return

    ensure_tool("curl")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - {"local", "s3"}:
        parser.error(f"unknown backends: {sorted(unknown)}")
    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-upload-bench-", dir=args.work_dir))
    try:
        log(f"generating files in {work_dir}")
        smoke = make_video(work_dir / "smoke.mp4", SMOKE_SIZE)
        files = {"local": make_video(work_dir / "upload.mp4", args.size_mb * MiB)}
        if "s3" in backends:
            files["s3"] = (
                files["local"]
                if args.s3_size_mb == args.size_mb
                else make_video(work_dir / "upload-s3.mp4", args.s3_size_mb * MiB)
            )
        database = args.database_url or "embedded"
        log(f"database: {database.split('@')[-1]}")
        runs: list[Run] = []
        # A baseline at each size measured, so every ratio compares like with like.
        for path in sorted(set(files.values())):
            log(f"bare aiohttp, {path.stat().st_size // MiB} MiB")
            runs += bench_bare(work_dir, path, args.repeat)
        if "local" in backends:
            log("frameflow, local storage")
            runs += bench_frameflow(
                work_dir, "local", files["local"], smoke, args.repeat, args.database_url
            )
        if "s3" in backends:
            log("frameflow, s3 storage (moto)")
            with moto_s3_server(work_dir) as endpoint:
                runs += bench_frameflow(
                    work_dir, "s3", files["s3"], smoke, args.repeat, args.database_url, endpoint
                )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    table, summary = summarize(runs)
    print(table.render())
    # The multipart goal (issue 15): a form upload at >= 0.9x a raw PUT of the same
    # file. Each multipart run is compared with the PUT just before it: one upload
    # lasts a second or two, so a stall of the machine moves a median of each a lot.
    for backend in sorted({r.backend for r in runs if r.target == "frameflow"}):
        mine = [r for r in runs if (r.target, r.backend) == ("frameflow", backend)]
        if backend == "local":
            # The other local goal: a raw upload at the disk's pace.
            disk = [r for r in runs if r.target == "dd"]
            puts = [r for r in mine if r.method == "put"]
            paced = [put.mib_per_s / dd.mib_per_s for dd, put in zip(disk, puts, strict=True)]
            print(
                "frameflow local: curl -T / the dd conv=fsync just before it: "
                + ", ".join(f"{ratio:.2f}" for ratio in paced)
                + f" (median {median(paced):.2f})"
            )
        pairs = [
            multipart.mib_per_s / put.mib_per_s
            for put, multipart in itertools.pairwise(mine)
            if (put.method, multipart.method) == ("put", "multipart")
        ]
        print(
            f"frameflow {backend}: curl -F / the curl -T before it: "
            + ", ".join(f"{ratio:.2f}" for ratio in pairs)
            + f" (median {median(pairs):.2f})"
        )
    path = write_results(
        "upload",
        {
            "environment": environment(),
            "database": "server" if args.database_url else "embedded",
            "summary": summary,
            "runs": [asdict(r) | {"mib_per_s": r.mib_per_s} for r in runs],
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
