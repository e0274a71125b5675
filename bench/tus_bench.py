"""Resumable (tus) upload throughput and memory, against `curl -T` of the same file.

    python bench/tus_bench.py                      # 1 GiB local, 256 MiB s3, 3 runs each
    python bench/tus_bench.py --size-mb 256 --repeat 1 --backends local

Starts `python run.py` as a subprocess (as upload_bench.py does), registers a
user and uploads one real MP4 padded to the requested size three ways per
run: with tuspy (a real tus client: creation, then one `PATCH` per
`--chunk-mb`, 8 MiB by default, each on a new connection as tuspy does), with
the same protocol over one keep-alive connection (as browsers' tus-js-client
and Uppy do), and with `curl -T` (one streaming PUT), the baseline measured
in the same run. The ratio is tus / curl -T (goal >= 0.8).
Each video is deleted again through the API.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import (
    LOOPBACK,
    SMOKE_SIZE,
    BenchError,
    MiB,
    RssSampler,
    Table,
    api,
    default_database_server,
    delete_video,
    ensure_tool,
    environment,
    frameflow_server,
    log,
    make_video,
    median,
    moto_s3_server,
    register_and_login,
    sha256_of,
    timeout_for,
    upload,
    write_results,
)
from tusclient.client import TusClient


@dataclass
class Run:
    backend: str
    method: str  # "curl -T", "tus (tuspy)" or "tus (keep-alive)"
    size: int
    seconds: float
    rss_growth: int

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds


def keepalive_tus_upload(base_url: str, token: str, path: Path, chunk: int) -> tuple[str, float]:
    """The protocol by hand over one keep-alive connection (what tus-js-client and Uppy
    do in a browser): creation, then one PATCH per chunk. Returns the video id and the
    seconds it took."""
    url = urlsplit(base_url)
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    size = path.stat().st_size
    started = time.perf_counter()
    conn = http.client.HTTPConnection(url.hostname or LOOPBACK, url.port, timeout=600)
    try:
        name = base64.b64encode(path.name.encode()).decode()
        conn.request(
            "POST",
            "/api/v1/tus/",
            headers={**headers, "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"},
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise BenchError(f"tus creation: HTTP {resp.status}")
        location = urlsplit(resp.headers["Location"]).path
        offset = 0
        video_id = ""
        with path.open("rb") as stream:
            while offset < size:
                body = stream.read(chunk)
                conn.request(
                    "PATCH",
                    location,
                    body=body,
                    headers={
                        **headers,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                    },
                )
                resp = conn.getresponse()
                payload = resp.read()
                if resp.status != 204:
                    raise BenchError(f"PATCH at {offset}: HTTP {resp.status}: {payload[:300]!r}")
                offset = int(resp.headers["Upload-Offset"])
                video_id = resp.headers.get("Frameflow-Video-Id", "")
    finally:
        conn.close()
    if not video_id:
        raise BenchError("the last PATCH named no video")
    return video_id, time.perf_counter() - started


def tus_upload(base_url: str, token: str, path: Path, chunk: int) -> tuple[str, float]:
    """Upload `path` with tuspy; returns the video id and the seconds it took."""
    client = TusClient(base_url + "/api/v1/tus/", headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with path.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream, chunk_size=chunk, metadata={"filename": path.name}
        )
        uploader.upload()
    seconds = time.perf_counter() - started
    assert uploader.request is not None
    video_id = uploader.request.response_headers.get("frameflow-video-id")
    if not video_id:
        raise BenchError(f"the last PATCH named no video: {uploader.request.response_headers}")
    return str(video_id), seconds


def bench_backend(
    work_dir: Path,
    backend: str,
    path: Path,
    smoke: Path,
    repeat: int,
    chunk: int,
    database_server: str,
    s3_endpoint: str = "",
) -> list[Run]:
    runs: list[Run] = []
    size = path.stat().st_size
    expected = sha256_of(path)
    with frameflow_server(
        work_dir,
        database_server=database_server,
        storage=backend,
        s3_endpoint=s3_endpoint,
        max_upload_bytes=size + 64 * MiB,
    ) as server:
        token = register_and_login(server.base_url)
        # Both roads must accept the padded file before timing means anything.
        video_id, _ = tus_upload(server.base_url, token, smoke, chunk)
        delete_video(server.base_url, token, video_id)
        for _ in range(repeat):
            for method, client in (
                ("tus (tuspy)", tus_upload),
                ("tus (keep-alive)", keepalive_tus_upload),
            ):
                with RssSampler(server.proc.pid) as rss:
                    video_id, seconds = client(server.base_url, token, path, chunk)
                video = api("GET", f"{server.base_url}/api/v1/videos/{video_id}", token=token)
                if video["sha256"] != expected:
                    raise BenchError("the tus upload's SHA-256 differs from the file's")
                delete_video(server.base_url, token, video_id)
                runs.append(Run(backend, method, size, seconds, rss.peak - rss.baseline))
                log(f"  {backend:5} {method:16} {runs[-1].mib_per_s:7.1f} MiB/s")

            with RssSampler(server.proc.pid) as rss:
                result = upload(server.base_url, "put", path, token, timeout_for(size))
            if result.status != 201:
                raise BenchError(f"curl -T: HTTP {result.status}: {result.body[:500]}")
            delete_video(server.base_url, token, result.json()["id"])
            runs.append(Run(backend, "curl -T", size, result.seconds, rss.peak - rss.baseline))
            log(f"  {backend:5} {'curl -T':16} {runs[-1].mib_per_s:7.1f} MiB/s")
    return runs


def summarize(runs: list[Run], chunk: int) -> tuple[Table, list[dict[str, Any]]]:
    table = Table(
        ["storage", "upload", "size", "MiB/s (median)", "vs curl -T", "server RSS growth"]
    )
    summary: list[dict[str, Any]] = []
    methods = list(dict.fromkeys(r.method for r in runs))
    for backend in dict.fromkeys(r.backend for r in runs):
        speeds = {
            method: median(
                [r.mib_per_s for r in runs if (r.backend, r.method) == (backend, method)]
            )
            for method in methods
        }
        for method in sorted(methods, key=lambda m: m != "curl -T"):
            group = [r for r in runs if (r.backend, r.method) == (backend, method)]
            ratio = speeds[method] / speeds["curl -T"]
            growth = max(r.rss_growth for r in group)
            label = method if method == "curl -T" else f"{method}, {chunk // MiB} MiB PATCHes"
            table.add(
                backend,
                label,
                f"{group[0].size // MiB} MiB",
                f"{speeds[method]:.0f}",
                f"{ratio:.2f}",
                f"{growth / MiB:.1f} MiB",
            )
            summary.append(
                {
                    "storage": backend,
                    "method": method,
                    "size": group[0].size,
                    "runs": len(group),
                    "mib_per_s_median": speeds[method],
                    "ratio_vs_curl_put": ratio,
                    "rss_peak_growth_bytes": growth,
                }
            )
    return table, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="local upload size (MiB)")
    parser.add_argument("--s3-size-mb", type=int, default=256, help="S3 upload size (MiB)")
    parser.add_argument("--chunk-mb", type=int, default=8, help="bytes per tus PATCH (MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    parser.add_argument("--backends", default="local,s3", help="comma list of local, s3")
    parser.add_argument(
        "--database-url",
        default=default_database_server(),
        help="PostgreSQL server to create a scratch database on (default: "
        "BENCH_DATABASE_URL or TEST_DATABASE_URL, else the embedded one)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()

    ensure_tool("curl")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - {"local", "s3"}:
        parser.error(f"unknown backends: {sorted(unknown)}")
    chunk = args.chunk_mb * MiB
    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-tus-bench-", dir=args.work_dir))
    runs: list[Run] = []
    try:
        log(f"generating files in {work_dir}")
        smoke = make_video(work_dir / "smoke.mp4", SMOKE_SIZE)
        if "local" in backends:
            path = make_video(work_dir / "upload.mp4", args.size_mb * MiB)
            log("frameflow, local storage")
            runs += bench_backend(
                work_dir, "local", path, smoke, args.repeat, chunk, args.database_url
            )
            path.unlink()
        if "s3" in backends:
            path = make_video(work_dir / "upload-s3.mp4", args.s3_size_mb * MiB)
            log("frameflow, s3 storage (moto)")
            with moto_s3_server(work_dir) as endpoint:
                runs += bench_backend(
                    work_dir, "s3", path, smoke, args.repeat, chunk, args.database_url, endpoint
                )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    table, summary = summarize(runs, chunk)
    print(table.render())
    result_path = write_results(
        "tus",
        {
            "environment": environment(),
            "database": "server" if args.database_url else "embedded",
            "chunk_bytes": chunk,
            "summary": summary,
            "runs": [asdict(r) | {"mib_per_s": r.mib_per_s} for r in runs],
        },
    )
    print(f"\nresults: {result_path}")


if __name__ == "__main__":
    main()
