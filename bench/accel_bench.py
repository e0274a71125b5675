"""Random 64 KB ranges through nginx: Frameflow authorizing with X-Accel-Redirect
against nginx serving the same file directly.

    python bench/accel_bench.py                       # 64 MiB file, 64 connections, 8 s
    python bench/accel_bench.py --duration 15 --rounds 3

Starts `python run.py` with local storage and
FRAMEFLOW_ACCEL_REDIRECT_PREFIX=/_frameflow_media/ behind nginx running the
shipped deploy/nginx/frameflow.conf (templated as tests/cluster.py does:
ports, and the media location's alias pointed at the server's objects/). A
second nginx server block in the same nginx serves the uploaded file itself
with no authorization: the baseline. `wrk` asks each for random 64 KB ranges
(the Lua script of range_bench.py); every answer must be a 206 of 64 KB.
Cases alternate, `--rounds` times: signed link, bearer token, direct.

nginx reuses Frameflow's authorization of a URI and its credentials for
`--cache-seconds` (FRAMEFLOW_ACCEL_CACHE_SECONDS; 0 asks Frameflow for every
request, as before it existed); the table is followed by how many requests
reached Frameflow in each round.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from _common import (
    LOOPBACK,
    REPO,
    BenchError,
    MiB,
    Table,
    cpu_seconds,
    curl,
    default_database_server,
    ensure_tool,
    environment,
    frameflow_server,
    free_port,
    make_video,
    register_and_login,
    signed_content_url,
    upload_video,
    write_results,
)
from range_bench import Load, check_range, measure, path_of, write_script

sys.path.insert(0, str(REPO))
from devtools.nginx import NGINX_CONF, render_site

PREFIX = "/_frameflow_media/"


def start_nginx(work_dir: Path, upstream: int, objects: Path, video: Path) -> tuple[Any, int, int]:
    nginx = ensure_tool("nginx")
    prefix = work_dir / "nginx"
    (prefix / "temp").mkdir(parents=True)
    port, direct_port = free_port(), free_port()
    site = render_site(
        NGINX_CONF.read_text(),
        listen_port=port,
        upstreams=[upstream],
        media_root=objects,
        cache_dir=prefix / "authorizations",
    )
    (prefix / "frameflow.conf").write_text(site)
    (prefix / "nginx.conf").write_text(
        f"""
user root;
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {prefix}/temp;
    proxy_temp_path {prefix}/temp;
    fastcgi_temp_path {prefix}/temp;
    uwsgi_temp_path {prefix}/temp;
    scgi_temp_path {prefix}/temp;
    include {prefix}/frameflow.conf;
    server {{
        listen {LOOPBACK}:{direct_port};
        location = /file {{ alias {video}; }}
    }}
}}
"""
    )
    argv = [nginx, "-e", f"{prefix}/error.log", "-p", str(prefix), "-c", "nginx.conf"]
    subprocess.run([*argv, "-t", "-q"], check=True, capture_output=True, timeout=30)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _answers_206(f"http://{LOOPBACK}:{direct_port}/file"):
        if time.monotonic() > deadline:
            proc.terminate()
            raise BenchError("nginx did not start")
        time.sleep(0.2)
    return proc, port, direct_port


def _answers_206(url: str) -> bool:
    try:
        return curl([url, "-r", "0-0"], timeout=5).status == 206
    except BenchError:  # not listening yet
        return False


def content_requests(base_url: str) -> float:
    """frameflow_http_requests_total of the content route, from Frameflow's /metrics."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=30) as resp:  # noqa: S310
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("frameflow_http_requests_total{")
        and 'route="/api/v1/videos/{id}/content"' in line
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=64, help="file size (MiB)")
    parser.add_argument("--duration", type=float, default=8, help="seconds of load per case")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=2, help="signed, bearer, direct: N times")
    parser.add_argument(
        "--cache-seconds",
        type=int,
        default=2,
        help="FRAMEFLOW_ACCEL_CACHE_SECONDS: how long nginx reuses an authorization (0: never)",
    )
    parser.add_argument("--database-url", default=default_database_server())
    parser.add_argument("--log-level", default="info", help="Frameflow's FRAMEFLOW_LOG_LEVEL")
    args = parser.parse_args()

    ensure_tool("wrk")
    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-accel-bench-"))
    loads: list[Load] = []
    reached: dict[str, list[float]] = {"signed": [], "bearer": []}
    frameflow_cpu: dict[str, list[float]] = {"signed": [], "bearer": []}
    try:
        video = make_video(work_dir / "range.mp4", args.size_mb * MiB)
        size = video.stat().st_size
        with frameflow_server(
            work_dir,
            database_server=args.database_url,
            max_upload_bytes=size + 64 * MiB,
            log_level=args.log_level,
            extra_env={
                "FRAMEFLOW_ACCEL_REDIRECT_PREFIX": PREFIX,
                "FRAMEFLOW_ACCEL_CACHE_SECONDS": str(args.cache_seconds),
                "FRAMEFLOW_MAX_CONNECTIONS_PER_IP": "0",
                "FRAMEFLOW_TRUSTED_PROXIES": LOOPBACK,
            },
        ) as server:
            token = register_and_login(server.base_url)
            video_id = upload_video(server.base_url, token, video)
            signed = signed_content_url(server.base_url, token, video_id)
            nginx, port, direct_port = start_nginx(
                work_dir, int(server.base_url.rsplit(":", 1)[1]), server.data_dir / "objects", video
            )
            try:
                base = f"http://{LOOPBACK}:{port}"
                link = path_of(signed)
                bearer_path = f"/api/v1/videos/{video_id}/content"
                authorization = f"Bearer {token}"
                check_range(base + link, video)
                check_range(base + bearer_path, video, authorization)
                direct = f"http://{LOOPBACK}:{direct_port}/file"
                check_range(direct, video)
                scripts = {
                    "signed": write_script(work_dir, "signed", size, link),
                    "bearer": write_script(work_dir, "bearer", size, bearer_path, authorization),
                    "direct": write_script(work_dir, "direct", size, "/file"),
                }
                # Server CPU: nginx's workers; Frameflow's is counted on its own.
                # (Not the cache manager and loader: the loader exits after a minute.)
                workers = [
                    child.pid
                    for child in psutil.Process(nginx.pid).children()
                    if "worker process" in " ".join(child.cmdline())
                ]
                for _ in range(args.rounds):
                    for case, url in (("signed", base + link), ("bearer", base + bearer_path)):
                        asked = content_requests(server.base_url)
                        cpu = cpu_seconds(server.proc.pid)
                        loads.append(measure(case, url, workers, scripts[case], args))
                        # Warm-up and measured runs: what reached Frameflow at all.
                        reached[case].append(content_requests(server.base_url) - asked)
                        frameflow_cpu[case].append(cpu_seconds(server.proc.pid) - cpu)
                    loads.append(measure("direct", direct, workers, scripts["direct"], args))
            finally:
                nginx.terminate()
                nginx.wait(timeout=30)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    names = {
        "signed": "nginx + frameflow (signed URL)",
        "bearer": "nginx + frameflow (bearer token)",
        "direct": "nginx alone (same file)",
    }
    table = Table(
        [
            "case",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "non-206",
            "vs nginx alone",
            "nginx CPU us/req",
            "nginx CPU/req vs nginx alone",
        ]
    )
    ratios: dict[str, list[float]] = {"signed": [], "bearer": []}
    for start in range(0, len(loads), 3):
        signed_load, bearer_load, direct_load = loads[start : start + 3]
        for load in (signed_load, bearer_load, direct_load):
            if load is not direct_load:
                ratios[load.server].append(load.rps / direct_load.rps)
            table.add(
                names[load.server],
                f"{load.rps:.0f}",
                f"{load.p50_ms:.1f}",
                f"{load.p99_ms:.1f}",
                load.not_206 + load.wrong_length,
                f"{load.rps / direct_load.rps:.2f}",
                f"{load.cpu_us_per_request:.0f}",
                f"{load.cpu_us_per_request / direct_load.cpu_us_per_request:.2f}",
            )
    print(table.render())
    for case, values in ratios.items():
        print(f"{names[case]} / nginx alone: " + ", ".join(f"{v:.2f}" for v in values))
        print(
            f"{names[case]}: requests that reached Frameflow per round (warm-up included): "
            + ", ".join(f"{v:.0f}" for v in reached[case])
            + "; Frameflow CPU seconds: "
            + ", ".join(f"{v:.2f}" for v in frameflow_cpu[case])
        )
    results = {
        "environment": environment(),
        "file_bytes": size,
        "connections": args.connections,
        "duration_seconds": args.duration,
        "accel_cache_seconds": args.cache_seconds,
        "ratios_vs_nginx_alone": ratios,
        "requests_reaching_frameflow": reached,
        "frameflow_cpu_seconds": frameflow_cpu,
        "loads": [vars(load) | {"requests_per_second": load.rps} for load in loads],
    }
    print(f"\nresults: {write_results('accel', results)}")


if __name__ == "__main__":
    main()
