"""Processing jobs end to end (`frames`, `transcode`) against the same ffmpeg run directly.

Starts the real server (`python run.py`) as a subprocess with local storage
and ONE worker slot (FRAMEFLOW_WORKER_CONCURRENCY=1), registers a user,
uploads a generated 1080p30 H.264/AAC clip with `curl -T`, then for each case
POSTs a job and polls `GET /api/v1/jobs/{id}` every 0.1 s until it has
succeeded: the time from the POST to the first `succeeded` answer is what a
client waits. Every job's outputs are downloaded through their signed URLs
and checked (frame count in the ZIP, the rendition's height).

The baseline, measured in the same run and interleaved with the jobs, is the
same ffmpeg command run directly on the same file with subprocess: built by
the operation's own pure argv builder (`frames_argv`, `transcode_args`) from
params that its own `parse_params` validated against metadata from
`server.media.probe.probe`, with the same global flags as
`run_ffmpeg_with_progress` (`-hide_banner -nostdin -y -progress pipe:1
-nostats`) and the same binary. The ratio says what the job pipeline costs
on top of ffmpeg: queueing, LISTEN/NOTIFY wake-up, progress parsing,
zipping, storing the outputs, committing, and the client's polling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    MiB,
    RssSampler,
    Table,
    api,
    cpu_seconds,
    curl,
    default_database_server,
    ensure_tool,
    environment,
    frameflow_server,
    log,
    median,
    register_and_login,
    write_results,
)

from config.settings import Settings
from server.jobs.operations import frames, transcode
from server.jobs.operations.argv import input_args
from server.jobs.operations.renditions import Source, output_fps, plan
from server.media.binary import resolve_ffmpeg
from server.media.probe import MediaInfo, probe
from server.media.sniff import SNIFF_BYTES, sniff
from server.videos.model import Video

# The clip: 1080p30 like a phone's, H.264 High (CABAC) + stereo AAC as most
# uploads are. x264 "veryfast" makes the same kind of stream a phone or a
# normal export does; "ultrafast" would drop CABAC and B-frames and make
# decoding, which both sides pay, unrealistically cheap.
CLIP_WIDTH, CLIP_HEIGHT, CLIP_FPS = 1920, 1080, 30
CLIP_PRESET = "veryfast"
CLIP_DIR = Path(tempfile.gettempdir()) / "frameflow-bench-clips"
# Warm-up clip: just big enough that a 720p rendition is not an upscale.
WARMUP_WIDTH, WARMUP_HEIGHT, WARMUP_SECONDS = 1280, 720, 2

POLL_INTERVAL = 0.1
FRAME_ENTRY = re.compile(r"frame_\d{6,}\.jpg")
# The exact global flags run_ffmpeg_with_progress puts before an operation's
# argv (server/jobs/operations/ffmpeg_run.py), progress pipe included: the direct
# run also writes progress to a pipe, which subprocess drains.
GLOBAL_FLAGS = ("-hide_banner", "-nostdin", "-y", "-progress", "pipe:1", "-nostats")
# What the bench sets on the server; also the Settings the baseline's
# parse_params sees, so both validate params against the same limits.
SERVER_ENV = {"FRAMEFLOW_WORKER_CONCURRENCY": "1"}


@dataclass(frozen=True)
class Case:
    name: str
    operation: str
    params: dict[str, Any]


CASES = (
    Case("frames fps=1", "frames", {"fps": 1}),
    Case("transcode 720p", "transcode", {"renditions": ["720p"]}),
)


# --- the clip -----------------------------------------------------------------------------


def make_clip(ffmpeg: str, width: int, height: int, seconds: int) -> Path:
    """testsrc2 + a 440 Hz sine as H.264/AAC MP4, cached by size and duration."""
    CLIP_DIR.mkdir(parents=True, exist_ok=True)
    path = CLIP_DIR / f"testsrc2-{width}x{height}-{CLIP_FPS}fps-{seconds}s-{CLIP_PRESET}.mp4"
    if path.exists():
        return path
    log(f"generating {path.name} (x264 {CLIP_PRESET}; cached for next runs)")
    partial = path.with_suffix(f".{os.getpid()}.partial.mp4")
    started = time.perf_counter()
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={width}x{height}:rate={CLIP_FPS}:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            CLIP_PRESET,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
            "-movflags",
            "+faststart",
            "-shortest",
            str(partial),
        ],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    partial.rename(path)  # a killed run never leaves a half clip in the cache
    log(f"  {path.stat().st_size / MiB:.1f} MiB in {time.perf_counter() - started:.0f} s")
    return path


def probe_file(ffmpeg: str, path: Path) -> tuple[str, str, MediaInfo]:
    """(content type, demuxer, metadata) exactly as an upload gets them: sniff, then probe."""
    with path.open("rb") as f:
        sniffed = sniff(f.read(SNIFF_BYTES))
    if sniffed is None:
        raise BenchError(f"{path} is not a file Frameflow accepts")
    max_pixels = Settings().max_pixels  # the server's default limit
    info = asyncio.run(probe(ffmpeg, path, sniffed.demuxer, timeout=60, max_pixels=max_pixels))
    return sniffed.content_type, sniffed.demuxer, info


def local_video(ffmpeg: str, path: Path) -> Video:
    """The Video row an upload of `path` gets, for the operations' argv builders."""
    content_type, _, info = probe_file(ffmpeg, path)
    return Video(
        id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        filename=path.name,
        storage_key="bench",
        size=path.stat().st_size,
        sha256="",
        content_type=content_type,
        kind="video",
        status="ready",
        metadata=info.to_json(),
        created_at=datetime.now().astimezone(),
    )


# --- the baseline: the operation's own ffmpeg command, run directly ----------------------


def direct_argv(
    ffmpeg: str, case: Case, video: Video, source: Path, out_dir: Path, settings: Settings
) -> list[str]:
    """The argv the operation's run() would build for `case`, binary and global flags first."""
    if case.operation == "frames":
        params = frames.OPERATION.parse_params(case.params, video, settings)
        args = frames.frames_argv(
            params, video, source, out_dir, max_frames=settings.max_frames_per_zip
        )
    elif case.operation == "transcode":
        params = transcode.OPERATION.parse_params(case.params, video, settings)
        src = Source.of(video)
        args = transcode.transcode_args(
            input_args(video, source),
            plan(src, params["renditions"]),
            preset=params["preset"],
            audio=src.has_audio,
            fps=output_fps(src, settings.max_output_fps),
            out_dir=out_dir,
        )
    else:
        raise BenchError(f"no argv builder for {case.operation}")
    return [ffmpeg, *GLOBAL_FLAGS, *args]


@dataclass
class Run:
    case: str
    target: str  # frameflow or direct
    seconds: float  # frameflow: POST -> first "succeeded" answer; direct: ffmpeg's lifetime
    # Frameflow only: the server's own timestamps, its CPU and memory.
    queued_seconds: float | None = None  # created_at -> started_at
    running_seconds: float | None = None  # started_at -> finished_at
    polls: int = 0
    server_cpu_seconds: float | None = None
    rss_baseline: int | None = None
    rss_peak: int | None = None
    outputs: dict[str, int] = field(default_factory=dict)  # name -> size
    checks: dict[str, Any] = field(default_factory=dict)


def run_direct(ffmpeg: str, case: Case, video: Video, source: Path, work_dir: Path) -> Run:
    out_dir = Path(tempfile.mkdtemp(prefix="direct-", dir=work_dir))
    try:
        argv = direct_argv(ffmpeg, case, video, source, out_dir, Settings.from_env(SERVER_ENV))
        os.sync()
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, timeout=1800, check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-1500:]
            raise BenchError(f"direct ffmpeg for {case.name} exited {proc.returncode}:\n{tail}")
        outputs = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
        run = Run(case.name, "direct", seconds)
        if case.operation == "frames":
            run.checks["frames"] = len(outputs)
        else:
            run.outputs = outputs
            for name in outputs:
                run.checks[name] = media_check(ffmpeg, out_dir / name)
        return run
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def media_check(ffmpeg: str, path: Path) -> dict[str, Any]:
    _, _, info = probe_file(ffmpeg, path)
    return {
        "width": info.width,
        "height": info.height,
        "duration": info.duration,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
    }


# --- Frameflow ------------------------------------------------------------------------------


def upload(base_url: str, token: str, path: Path) -> str:
    result = curl(
        [
            "-T",
            str(path),
            "-H",
            f"Authorization: Bearer {token}",
            f"{base_url}/api/v1/uploads/{path.name}",
        ],
        timeout=600,
    )
    if result.status != 201:
        raise BenchError(f"upload of {path.name}: HTTP {result.status}: {result.body[:500]}")
    return str(result.json()["id"])


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def run_job(
    base_url: str, token: str, video_id: str, case: Case, pid: int, timeout: float
) -> tuple[Run, dict[str, Any]]:
    """POST the job, poll it until succeeded; the wall time and the final job JSON."""
    cpu_before = cpu_seconds(pid)
    os.sync()
    with RssSampler(pid) as rss:
        started = time.perf_counter()
        job = api(
            "POST",
            f"{base_url}/api/v1/videos/{video_id}/jobs",
            token=token,
            body={"operation": case.operation, "params": case.params},
            expect=202,
        )
        polls = 0
        deadline = started + timeout
        while True:
            job = api("GET", f"{base_url}/api/v1/jobs/{job['id']}", token=token)
            polls += 1
            if job["status"] == "succeeded":
                seconds = time.perf_counter() - started
                break
            if job["status"] in ("failed", "canceled"):
                raise BenchError(
                    f"{case.name} job {job['id']} ended {job['status']} after "
                    f"{job['attempts']} attempt(s): {job['error']}"
                )
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"{case.name} job {job['id']} still {job['status']} "
                    f"({job['progress']}%) after {timeout:.0f} s"
                )
            time.sleep(POLL_INTERVAL)
    created, began, ended = (
        _timestamp(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    run = Run(
        case.name,
        "frameflow",
        seconds,
        queued_seconds=(began - created).total_seconds() if began and created else None,
        running_seconds=(ended - began).total_seconds() if ended and began else None,
        polls=polls,
        server_cpu_seconds=cpu_seconds(pid) - cpu_before,
        rss_baseline=rss.baseline,
        rss_peak=rss.peak,
        outputs={o["name"]: int(o["size"]) for o in job["outputs"]},
    )
    if job["attempts"] != 1:
        raise BenchError(f"{case.name} job {job['id']} took {job['attempts']} attempts")
    return run, job


def check_outputs(ffmpeg: str, case: Case, job: dict[str, Any], run: Run, work_dir: Path) -> None:
    """Download every output through its signed URL (no headers) and check it."""
    for output in job["outputs"]:
        target = work_dir / f"download-{job['id']}-{output['name'].replace('/', '_')}"
        try:
            result = curl(["-o", str(target), output["url"]], timeout=600)
            if result.status != 200:
                raise BenchError(f"GET {output['name']} (signed URL): HTTP {result.status}")
            size = target.stat().st_size
            if size <= 0 or size != output["size"]:
                raise BenchError(
                    f"{output['name']}: downloaded {size} bytes, job lists {output['size']}"
                )
            if output["name"] == frames.ZIP_NAME:
                with zipfile.ZipFile(target) as archive:
                    names = archive.namelist()
                    bad = archive.testzip()  # reads every entry, checks its CRC
                if bad is not None:
                    raise BenchError(f"{frames.ZIP_NAME}: entry {bad} is corrupt")
                if not all(FRAME_ENTRY.fullmatch(n) for n in names):
                    raise BenchError(f"{frames.ZIP_NAME}: unexpected entry names {names[:5]}")
                run.checks["frames"] = len(names)
            elif output["name"].endswith(".mp4"):
                run.checks[output["name"]] = media_check(ffmpeg, target)
        finally:
            target.unlink(missing_ok=True)


def expect_outputs(case: Case, run: Run, seconds: int) -> None:
    """What each case must produce; a job that 'succeeds' with less fails the bench."""
    if case.operation == "frames":
        want = seconds * int(case.params["fps"])
        if run.checks.get("frames") != want:
            raise BenchError(
                f"{run.target} {case.name}: {run.checks.get('frames')} frames, want {want}"
            )
        return
    for name in case.params["renditions"]:
        check = run.checks.get(f"{name}.mp4")
        if not check:
            raise BenchError(f"{run.target} {case.name}: no {name}.mp4")
        if check["height"] != int(name.removesuffix("p")) or check["audio_codec"] != "aac":
            raise BenchError(f"{run.target} {case.name}: {name}.mp4 is {check}")


# --- report ---------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> tuple[Table, list[dict[str, Any]]]:
    table = Table(
        [
            "case",
            "runs",
            "frameflow median s",
            "direct ffmpeg median s",
            "ratio (ff/direct)",
            "overhead s",
            "queued s",
            "running s",
            "server CPU s/job",
            "server RSS peak",
        ]
    )
    summary: list[dict[str, Any]] = []
    for case in CASES:
        ff = [r for r in runs if r.case == case.name and r.target == "frameflow"]
        direct = [r for r in runs if r.case == case.name and r.target == "direct"]
        if not ff or not direct:
            continue
        ff_s = median([r.seconds for r in ff])
        direct_s = median([r.seconds for r in direct])
        queued = median([r.queued_seconds or 0.0 for r in ff])
        running = median([r.running_seconds or 0.0 for r in ff])
        cpu = median([r.server_cpu_seconds or 0.0 for r in ff])
        rss_base = min(r.rss_baseline or 0 for r in ff)
        rss_peak = max(r.rss_peak or 0 for r in ff)
        table.add(
            case.name,
            len(ff),
            f"{ff_s:.2f}",
            f"{direct_s:.2f}",
            f"{ff_s / direct_s:.2f}",
            f"{ff_s - direct_s:+.2f}",
            f"{queued:.2f}",
            f"{running:.2f}",
            f"{cpu:.2f}",
            f"{rss_peak / MiB:.0f} MiB (+{(rss_peak - rss_base) / MiB:.1f})",
        )
        summary.append(
            {
                "case": case.name,
                "operation": case.operation,
                "params": case.params,
                "runs": len(ff),
                "frameflow_median_seconds": ff_s,
                "direct_median_seconds": direct_s,
                "ratio": ff_s / direct_s,
                "overhead_seconds": ff_s - direct_s,
                "queued_median_seconds": queued,
                "running_median_seconds": running,
                "server_cpu_seconds_median": cpu,
                "server_rss_baseline_bytes": rss_base,
                "server_rss_peak_bytes": rss_peak,
            }
        )
    return table, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds",
        type=int,
        default=60,
        help="clip duration (default 60; shorter for a quick run)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the median is shown")
    parser.add_argument(
        "--database-url",
        default=default_database_server(),
        help="PostgreSQL server to create a scratch database on (default: "
        "BENCH_DATABASE_URL or TEST_DATABASE_URL, else the embedded one)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    if args.seconds < 1 or args.repeat < 1:
        parser.error("--seconds and --repeat must be at least 1")

    ensure_tool("curl")
    # The same binary on both sides: given to the server explicitly.
    ffmpeg = resolve_ffmpeg(os.environ.get("FRAMEFLOW_FFMPEG_PATH", ""))
    clip = make_clip(ffmpeg, CLIP_WIDTH, CLIP_HEIGHT, args.seconds)
    warmup = make_clip(ffmpeg, WARMUP_WIDTH, WARMUP_HEIGHT, WARMUP_SECONDS)
    video = local_video(ffmpeg, clip)
    log(f"clip {clip.name}: {clip.stat().st_size / MiB:.1f} MiB, metadata {video.metadata}")
    commands = {}
    for case in CASES:
        out = Path(tempfile.gettempdir()) / "OUT"
        argv = direct_argv(ffmpeg, case, video, clip, out, Settings.from_env(SERVER_ENV))
        commands[case.name] = " ".join(argv).replace(str(out), "<out>")
        log(f"{case.name}: {commands[case.name]}")

    work_dir = Path(tempfile.mkdtemp(prefix="frameflow-jobs-bench-", dir=args.work_dir))
    runs: list[Run] = []
    job_timeout = 120 + 20.0 * args.seconds  # the server's own default wall-clock limit
    try:
        with frameflow_server(
            work_dir,
            database_server=args.database_url,
            max_upload_bytes=clip.stat().st_size + 64 * MiB,
            extra_env=SERVER_ENV | {"FRAMEFLOW_FFMPEG_PATH": ffmpeg},
        ) as server:
            token = register_and_login(server.base_url)
            pid = server.proc.pid
            video_id = upload(server.base_url, token, clip)
            # Unmeasured warm-up on a 2 s clip: the first job pays one-off costs
            # (imports, the encoder list, cold caches) that are not per-job.
            warmup_id = upload(server.base_url, token, warmup)
            warmup_video = local_video(ffmpeg, warmup)
            for case in CASES:
                run_job(server.base_url, token, warmup_id, case, pid, job_timeout)
                run_direct(ffmpeg, case, warmup_video, warmup, work_dir)
            log(f"measuring, {args.repeat} run(s) per case, direct ffmpeg then frameflow")
            for i in range(args.repeat):
                for case in CASES:
                    direct = run_direct(ffmpeg, case, video, clip, work_dir)
                    expect_outputs(case, direct, args.seconds)
                    runs.append(direct)
                    run, job = run_job(server.base_url, token, video_id, case, pid, job_timeout)
                    check_outputs(ffmpeg, case, job, run, work_dir)
                    expect_outputs(case, run, args.seconds)
                    runs.append(run)
                    log(
                        f"  #{i + 1} {case.name:15} direct {direct.seconds:6.2f} s   "
                        f"frameflow {run.seconds:6.2f} s (queued {run.queued_seconds:.2f}, "
                        f"running {run.running_seconds:.2f}, {run.polls} polls)   "
                        f"RSS peak {(run.rss_peak or 0) / MiB:.0f} MiB"
                    )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    table, summary = summarize(runs)
    print(table.render())
    path = write_results(
        "jobs",
        {
            "environment": environment() | {"ffmpeg": ffmpeg_version(ffmpeg)},
            "database": "server" if args.database_url else "embedded",
            "clip": {
                "path": str(clip),
                "size": clip.stat().st_size,
                "x264_preset": CLIP_PRESET,
                "metadata": video.metadata,
            },
            "direct_commands": commands,
            "server_env": SERVER_ENV,
            "summary": summary,
            "runs": [asdict(r) for r in runs],
        },
    )
    print(f"\nresults: {path}")


def ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
    return out.stdout.split("\n")[0]


if __name__ == "__main__":
    main()
