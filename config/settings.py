"""Every Frameflow setting, declared once: name, type, default and help.

Each field of `Settings` is overridable by the environment variable
``FRAMEFLOW_<NAME>`` (upper case); a few also honour a conventional alias
(``DATABASE_URL``, ``REDIS_URL``). Secrets can instead be read from a file
named by ``<VARIABLE>_FILE`` (``FRAMEFLOW_JWT_SECRET_FILE=/run/secrets/jwt``),
the convention of Docker and Kubernetes secrets, so they need not sit in the
environment. Values are parsed and validated when the settings are loaded,
and a bad one stops start-up with a message naming it. The README's
configuration table is checked against this module by a test.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "FRAMEFLOW_"
MiB = 1024 * 1024
GiB = 1024 * MiB


# What `unverified_email_denies` may name (server/auth/permissions.py checks them).
UNVERIFIED_GATES = frozenset({"api_keys", "videos:read", "videos:write", "jobs:write", "webhooks"})


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


def _setting(default: Any, help: str, *, alias: str | None = None, secret: bool = False) -> Any:
    return field(
        default=default,
        repr=not secret,
        metadata={"help": help, "alias": alias, "secret": secret},
    )


@dataclass(frozen=True)
class Settings:
    # --- serving -------------------------------------------------------------
    host: str = _setting("127.0.0.1", "Address to listen on (`--host`).")
    port: int = _setting(8080, "TCP port to listen on (`--port`).")
    data_dir: Path = _setting(  # noqa: RUF009 - _setting returns a dataclasses.field
        Path("./data"),
        "Directory for the embedded database, local objects and the generated JWT secret "
        "(`--data-dir`).",
    )
    public_url: str = _setting(
        "",
        "External base URL (e.g. `https://video.example.com`) used in signed links; "
        "empty means taken from each request's Host.",
    )
    role: str = _setting(
        "all",
        "What this process does (`--role`): `api` serves HTTP and WebSockets and runs no "
        "jobs; `worker` runs jobs, the cleanup sweep and the mail and webhook senders and "
        "serves only `/health/*` and `/metrics`; `all` does both.",
    )
    shutdown_grace_seconds: float = _setting(
        30.0, "On SIGTERM, how long in-flight requests may run before they are cut off."
    )
    header_timeout_seconds: float = _setting(
        15.0,
        "A request's line and headers must arrive within this time of its first byte "
        "(slow-header clients are disconnected).",
    )
    body_idle_timeout_seconds: float = _setting(
        60.0,
        "Longest wait for the next bytes of a request body; a body that stalls longer is "
        "answered 408 and its connection closed.",
    )
    keepalive_timeout_seconds: float = _setting(
        75.0,
        "How long an idle keep-alive connection stays open; keep it above the idle timeout "
        "of a load balancer in front.",
    )
    max_connections_per_ip: int = _setting(
        64,
        "Open connections one client address may hold (0: no cap); addresses in "
        "`FRAMEFLOW_TRUSTED_PROXIES` are exempt.",
    )
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    log_format: str = _setting("json", "`json` (one JSON object per line) or `console`.")

    # --- database ------------------------------------------------------------
    database_url: str = _setting(
        "",
        "PostgreSQL URL (also read from `DATABASE_URL`); empty starts the embedded "
        "PostgreSQL under the data dir.",
        alias="DATABASE_URL",
        secret=True,
    )
    database_password: str = _setting(
        "",
        "Password of the database URL's user, kept out of the URL so that any character "
        "works (`@`, `/`, `#`, `:`); replaces a password written in the URL.",
        secret=True,
    )
    database_pool_size: int = _setting(10, "Maximum connections in the database pool.")

    # --- storage -------------------------------------------------------------
    storage: str = _setting("local", "Object storage backend: `local` (data dir) or `s3`.")
    local_direct_io: bool = _setting(
        True,
        "Local storage: write objects and resumable uploads with O_DIRECT, around the page "
        "cache (the bytes are copied once; nothing is left for the fsync); a filesystem "
        "without it gets buffered writes anyway. Turn it off on NFS and other network "
        "filesystems, where every direct write is a synchronous round trip.",
    )
    s3_endpoint_url: str = _setting(
        "", "S3 endpoint (MinIO, R2, ...); empty means AWS for the region."
    )
    s3_bucket: str = _setting("frameflow", "S3 bucket; created at start-up when missing.")
    s3_region: str = _setting("us-east-1", "S3 region.")
    s3_access_key_id: str = _setting("", "S3 access key id; empty uses the AWS default chain.")
    s3_secret_access_key: str = _setting("", "S3 secret access key.", secret=True)
    s3_part_size: int = _setting(
        8 * MiB, "Part size of S3 multipart uploads in bytes (S3 minimum is 5 MiB)."
    )
    s3_parts_in_flight: int = _setting(
        2,
        "Parts of one S3 upload sent at the same time (1-16); an upload holds this many "
        "parts plus the one filling in memory.",
    )

    # --- redis ---------------------------------------------------------------
    redis_url: str = _setting(
        "",
        "Redis URL (also read from `REDIS_URL`) for cross-instance fan-out and shared rate "
        "limits; empty keeps both in-process.",
        alias="REDIS_URL",
        secret=True,
    )

    # --- live events (WebSocket) ---------------------------------------------
    allowed_origins: str = _setting(
        "",
        "Comma-separated browser origins (`https://app.example.com`) allowed to open the "
        "WebSocket; empty allows the same origin only. Clients without `Origin` always pass.",
    )
    ws_queue_size: int = _setting(
        256,
        "Events buffered per WebSocket for a slow reader (progress is coalesced); a socket "
        "that stays full is closed with 1013.",
    )
    ws_queue_bytes: int = _setting(
        1024 * 1024,
        "Bytes (as sent) buffered per WebSocket for a slow reader; past this too, progress "
        "is dropped and then the socket is closed with 1013.",
    )
    ws_max_sockets_per_user: int = _setting(
        20,
        "Open WebSockets one user may have on one instance; one more is closed with 4429.",
    )
    ws_auth_timeout_seconds: float = _setting(
        10.0, "A WebSocket must send its `auth` message within this time (else close 4401)."
    )
    ws_heartbeat_seconds: float = _setting(
        30.0, "Ping interval that keeps idle WebSockets alive and finds dead ones."
    )

    # --- auth ----------------------------------------------------------------
    jwt_secret: str = _setting(
        "",
        "Secret that signs tokens and URLs; empty generates one and keeps it in "
        "`<data dir>/jwt_secret`.",
        secret=True,
    )
    access_token_ttl_seconds: int = _setting(900, "Lifetime of an access token.")
    refresh_token_ttl_seconds: int = _setting(30 * 24 * 3600, "Lifetime of a refresh token.")
    bcrypt_rounds: int = _setting(12, "bcrypt cost factor for new password hashes (4-16).")
    email_verification_ttl_seconds: int = _setting(
        48 * 3600, "How long an email verification link works."
    )
    password_reset_ttl_seconds: int = _setting(3600, "How long a password reset link works.")
    unverified_email_denies: str = _setting(
        "api_keys,webhooks",
        "What an account may not do until its email is verified (403 `email_unverified`), "
        "comma-separated: `api_keys` (create keys) and any of the scopes `videos:read`, "
        "`videos:write`, `jobs:write`, `webhooks`; empty allows everything.",
    )

    # --- rate limits (0 turns one off) ---------------------------------------
    rate_limit_login_per_minute: int = _setting(
        10,
        "Login attempts per minute, counted per client IP and per account (email); "
        "a client that has logged in to the account before is counted on its own.",
    )
    rate_limit_register_per_hour: int = _setting(20, "Sign-ups per hour per client IP.")
    rate_limit_refresh_per_minute: int = _setting(
        30, "Token refreshes per minute, per client IP and per account."
    )
    rate_limit_uploads_per_hour: int = _setting(100, "Uploads per hour per user.")
    rate_limit_jobs_per_minute: int = _setting(
        60, "Jobs created per minute per user (through the jobs API)."
    )
    trusted_proxies: str = _setting(
        "",
        "Comma-separated reverse-proxy addresses or CIDRs whose `X-Forwarded-For` names the "
        "client for per-IP limits; empty trusts no header (behind a proxy, every client then "
        "shares the proxy's address).",
    )

    # --- uploads and playback -------------------------------------------------
    max_upload_bytes: int = _setting(10 * GiB, "Largest accepted upload, in bytes.")
    default_quota_bytes: int = _setting(20 * GiB, "Storage quota of a new account, in bytes.")
    signed_url_ttl_seconds: int = _setting(
        3600, "Lifetime of signed content URLs handed to `<video>` elements."
    )
    accel_redirect_prefix: str = _setting(
        "",
        "Local storage behind nginx: answer media requests, once authorized, with "
        "`X-Accel-Redirect: <prefix><key>` so nginx sends the file (its `internal` location "
        "in deploy/nginx/frameflow.conf, e.g. `/_frameflow_media/`). Empty: Frameflow sends it.",
    )
    accel_cache_seconds: int = _setting(
        2,
        "With FRAMEFLOW_ACCEL_REDIRECT_PREFIX: how long nginx may reuse one authorization of a "
        "media request for every range of it (`X-Accel-Expires`, cached by the shipped nginx "
        "config), never past the signed link's or the token's expiry nor the account check "
        "(FRAMEFLOW_ACCOUNT_CHECK_CACHE_SECONDS); API keys are never reused (0: nginx asks "
        "every time; at most 5).",
    )
    s3_redirect_seconds: int = _setting(
        0,
        "S3 storage: answer media requests, once authorized, with a 307 to a presigned URL "
        "valid this many seconds, so the S3 server or a CDN sends the bytes (0: Frameflow "
        "streams them). Keep it short: the URL works for anyone until then.",
    )
    account_check_cache_seconds: float = _setting(
        2.0,
        "How long a bearer token's account is known to exist without asking the database "
        "again (0: every request asks; at most 5, so a deleted account is refused within it).",
    )
    upload_chunk_bytes: int = _setting(
        1024 * 1024,
        "Read size when streaming request bodies (memory per upload ~2-3x this: one chunk "
        "stored while the next is gathered).",
    )

    # --- images -----------------------------------------------------------------
    image_max_bytes: int = _setting(
        10 * 1000 * 1000, "Largest accepted image upload (JPEG, PNG, WebP), in bytes (422 above)."
    )
    image_min_side: int = _setting(
        256, "Smallest accepted width and height of an uploaded image, in pixels (422 below)."
    )
    image_max_side: int = _setting(
        4096, "Largest accepted width and height of an uploaded image, in pixels (422 above)."
    )
    image_max_pixels: int = _setting(
        4096 * 4096,
        "Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`): an image declaring "
        "more pixels is refused before it is decoded.",
    )
    image_strip_exif: bool = _setting(
        True,
        "Rewrite an uploaded image without its EXIF (GPS, camera, ...) before it is stored; "
        "only the orientation is kept. Thumbnails never carry EXIF whatever this says.",
    )

    # --- resumable uploads (tus) ----------------------------------------------
    tus_upload_ttl_seconds: int = _setting(
        24 * 3600,
        "How long a resumable (tus) upload may take from its creation; after that it "
        "answers 410 and the sweep removes its bytes (at most `stale_upload_seconds`).",
    )
    tus_max_unfinished_uploads: int = _setting(
        10, "Unfinished resumable uploads one user may have at a time."
    )
    tus_checkpoint_bytes: int = _setting(
        8 * MiB,
        "Local disk: a tus PATCH fsyncs and records its offset at least every this many "
        "bytes (on S3 every part is a checkpoint); a crash loses at most this much of one.",
    )

    page_tus_threshold_bytes: int = _setting(
        20_000_000,
        "The browser page sends files of at least this size with tus (in 8 MiB chunks, "
        "resuming after a network error or a reload); smaller ones with one PUT.",
    )

    # --- ffmpeg --------------------------------------------------------------
    ffmpeg_path: str = _setting(
        "",
        "ffmpeg binary; empty uses `ffmpeg` on PATH, else the one bundled by imageio-ffmpeg.",
    )
    probe_timeout_seconds: float = _setting(60.0, "Wall-clock limit of one probe of an upload.")
    probe_concurrency: int = _setting(
        2,
        "Probes of uploads run at once in this instance; more wait their turn (each may "
        "decode a frame of up to `max_pixels`).",
    )
    # 5.1: operations use `-fps_mode` (new in 5.1), and 5.1 (Debian 12) is the
    # oldest release the test suite runs on.
    ffmpeg_min_version: str = _setting(
        "5.1",
        "Oldest FFmpeg release the server starts with (e.g. `5.1`); `0` skips the check "
        "(for testing only).",
    )
    ffmpeg_sandbox: str = _setting(
        "auto",
        "Confinement of every ffmpeg run: `bwrap` (bubblewrap: no network, only its own "
        "files, no privileges), `unshare` (no network), `none`; `auto` picks the first "
        "that works here and warns when none does.",
    )

    # --- malware scanning ------------------------------------------------------
    malware_scan: bool = _setting(
        False,
        "Scan each upload with clamd before it becomes a video: infected is refused (422), "
        "nothing is kept.",
    )
    clamd_address: str = _setting(
        "unix:/run/clamav/clamd.ctl",
        "clamd's socket: `unix:/path` or `tcp://host:port`.",
    )
    malware_scan_timeout_seconds: float = _setting(
        120.0, "Time limit of one scan (connect, stream the file, read the verdict)."
    )
    malware_scan_fail_open: bool = _setting(
        False,
        "When clamd cannot be reached or fails, keep the upload unscanned (logged) instead "
        "of refusing it with 503.",
    )

    # --- jobs ----------------------------------------------------------------
    workers_enabled: bool = _setting(
        True, "Run queued jobs in this instance (false: API only, another instance works)."
    )
    worker_concurrency: int = _setting(
        0, "Concurrent ffmpeg processes in this instance; 0 means the CPU count."
    )
    job_max_attempts: int = _setting(
        3, "Attempts per job before it ends failed (a crash or lost lease counts)."
    )
    job_lease_seconds: float = _setting(
        30.0, "A running job's lease; renewed by heartbeat, re-queued when it lapses."
    )
    job_heartbeat_seconds: float = _setting(10.0, "How often a worker renews its leases.")
    job_poll_seconds: float = _setting(
        5.0, "Fallback poll for new jobs and expired leases (LISTEN/NOTIFY wakes sooner)."
    )
    job_timeout_base_seconds: float = _setting(
        120.0, "Wall-clock limit of a job: this plus `job_timeout_per_media_second` x duration."
    )
    job_timeout_per_media_second: float = _setting(
        20.0, "Extra wall-clock seconds allowed per second of input."
    )
    job_timeout_max_seconds: float = _setting(6 * 3600.0, "Upper bound of any job's wall clock.")
    job_stall_seconds: float = _setting(
        120.0, "A job whose ffmpeg makes no progress for this long fails."
    )
    max_input_duration_seconds: float = _setting(
        4 * 3600.0, "Longest input (seconds) a job may process."
    )
    max_pixels: int = _setting(
        7680 * 4320, "Largest frame (width x height) accepted as input or asked for as output."
    )
    max_output_fps: float = _setting(60.0, "Highest frame rate an output may ask for.")
    max_frames_per_zip: int = _setting(10_000, "Most frames one `frames` job may extract.")

    # --- expiry and cleanup --------------------------------------------------
    video_ttl_seconds: int = _setting(
        7 * 24 * 3600,
        "How long a video (with its outputs) is kept after upload; an upload may ask for "
        "less or more with `ttl`.",
    )
    video_max_ttl_seconds: int = _setting(
        30 * 24 * 3600, "Longest `ttl` an upload may ask for, in seconds."
    )
    cleanup_enabled: bool = _setting(
        True, "Run the cleanup sweep in this instance (one instance sweeps at a time)."
    )
    cleanup_interval_seconds: float = _setting(
        300.0, "Time between cleanup sweeps (each wait is jittered by ±20%)."
    )
    stale_upload_seconds: int = _setting(
        24 * 3600,
        "Unfinished uploads (S3 multipart, temp files) and scratch dirs older than this are "
        "removed by the sweep.",
    )
    orphan_grace_seconds: int = _setting(
        3600,
        "Objects under `videos/` that no video row references (a process killed between "
        "storing an upload and recording it) are deleted by the sweep once older than "
        "`stale_upload_seconds` plus this: S3 dates an object from the start of its upload.",
    )
    audit_retention_days: int = _setting(
        365,
        "Audit log rows older than this many days are deleted by the sweep (0 keeps them forever).",
    )

    # --- email and webhooks ----------------------------------------------------
    smtp_host: str = _setting(
        "",
        "SMTP server for job and account emails; empty writes each message to the log "
        "(links redacted) and records it as not sent.",
    )
    smtp_port: int = _setting(587, "SMTP port (587 with STARTTLS, 465 with TLS, 25 plain).")
    smtp_username: str = _setting("", "SMTP user name; empty sends without logging in.")
    smtp_password: str = _setting("", "SMTP password.", secret=True)
    smtp_starttls: bool = _setting(
        True, "Upgrade the SMTP connection with STARTTLS (ignored with `smtp_tls`)."
    )
    smtp_tls: bool = _setting(False, "Connect to SMTP over TLS from the start (port 465).")
    mail_from: str = _setting(
        "Frameflow <frameflow@localhost>", "`From` address of job and account emails."
    )
    notify_max_attempts: int = _setting(
        8, "Attempts per email or webhook delivery before it is recorded as failed."
    )
    webhook_allowed_hosts: str = _setting(
        "",
        "Comma-separated host names or IP addresses that webhooks may target although they "
        "are internal (loopback, private, link-local); empty admits public addresses only.",
    )
    webhook_timeout_seconds: float = _setting(
        10.0, "Time limit of one webhook delivery (connect, send and read the answer)."
    )

    # --- library: search and share links --------------------------------------
    search_config: str = _setting(
        "english",
        "PostgreSQL text-search configuration of video search (`simple` for no stemming, "
        "or a language such as `german`); changing it rebuilds the vectors at start-up.",
    )
    search_typo_tolerance: bool = _setting(
        True,
        "Also match misspelt titles with `pg_trgm` where the database has that extension "
        "(search falls back to full-text matching alone where it has not).",
    )

    # --- generation and credits -------------------------------------------------
    credits_signup_grant: int = _setting(
        100,
        "Credits a new account starts with (granted when its credit account is first used).",
    )
    generation_local_price_per_second: float = _setting(
        0.0, "Credits per second of video made by the `local` (ffmpeg) generator."
    )
    generation_local_max_seconds: int = _setting(
        20, "Longest video, in seconds, the `local` generator makes."
    )
    generation_font_file: str = _setting(
        "",
        "TrueType font the `local` generator draws the prompt with; empty looks for DejaVu "
        "Sans in the usual places (no font found: no text).",
    )
    generation_poll_seconds: float = _setting(
        5.0, "How often a worker asks a remote provider about a submitted generation."
    )
    generation_breaker_threshold: int = _setting(
        5, "Consecutive failures of a provider that open its circuit (it is then skipped)."
    )
    generation_breaker_cooldown_seconds: float = _setting(
        60.0, "How long an open circuit waits before one trial request may half-open it."
    )
    generation_provider_concurrency: int = _setting(
        4, "Requests to one provider at once from one process."
    )
    generation_retries: int = _setting(
        3, "Retries of a provider call after a 429 or 5xx (with backoff)."
    )
    generation_backoff_seconds: float = _setting(
        1.0,
        "First retry delay after a 429 or 5xx without `Retry-After`; doubles on each retry.",
    )
    generation_max_backoff_seconds: float = _setting(
        60.0, "Longest wait between retries, also when a provider asks for more."
    )
    generation_request_timeout_seconds: float = _setting(
        60.0, "Time limit of one call to a remote provider (and of a silence while downloading)."
    )
    sora_api_key: str = _setting(
        "", "OpenAI API key for Sora 2 (the Videos API); empty: not configured.", secret=True
    )
    sora_base_url: str = _setting("https://api.openai.com", "Base URL of the OpenAI API.")
    sora_price_per_second: float = _setting(10.0, "Credits per second of a Sora video.")
    veo_api_key: str = _setting("", "Gemini API key for Veo 3; empty: not configured.", secret=True)
    veo_base_url: str = _setting(
        "https://generativelanguage.googleapis.com", "Base URL of the Gemini API."
    )
    veo_price_per_second: float = _setting(40.0, "Credits per second of a Veo video.")
    kling_access_key: str = _setting("", "Kling access key; empty: not configured.", secret=True)
    kling_secret_key: str = _setting("", "Kling secret key (signs the API's JWTs).", secret=True)
    kling_base_url: str = _setting("https://api-singapore.klingai.com", "Base URL of Kling's API.")
    kling_price_per_second: float = _setting(7.0, "Credits per second of a Kling video.")
    # --- library: batches, presets, captions ---------------------------------
    batch_max_jobs: int = _setting(
        1000,
        "Most jobs one `POST /api/v1/jobs/batch` may create (videos times operations); "
        "a larger batch is refused whole.",
    )
    presets_per_user: int = _setting(100, "Most saved operation presets per user.")
    thumbnail_after_upload: bool = _setting(
        True,
        "Queue a `thumbnail` job (default params) after each upload, for the page's grid; "
        "skipped when the upload asks for one itself or the quota has no room for it.",
    )
    caption_max_bytes: int = _setting(
        512 * 1024, "Largest caption file (SRT or WebVTT) one upload may send, in bytes."
    )

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def unverified_email_denied(self) -> frozenset[str]:
        """`unverified_email_denies` as a set of names."""
        return frozenset(
            part.strip() for part in self.unverified_email_denies.split(",") if part.strip()
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then the environment, then explicit overrides (CLI flags, tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            names = [env_name(f.name)]
            if alias := f.metadata.get("alias"):
                names.append(alias)
            raw = None
            for name in names:
                raw = _secret_from_file(environ, name) if f.metadata.get("secret") else None
                if raw is None:
                    raw = environ.get(name)
                if raw is not None:
                    break
            if raw is not None:
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def describe(self) -> dict[str, Any]:
        """Settings for a start-up log line, secrets masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


FILE_SUFFIX = "_FILE"


def secret_file_names() -> set[str]:
    """Every `<VARIABLE>_FILE` that `from_env` reads (secrets and their aliases)."""
    names = set()
    for f in dataclasses.fields(Settings):
        if f.metadata.get("secret"):
            names.add(env_name(f.name) + FILE_SUFFIX)
            if alias := f.metadata.get("alias"):
                names.add(alias + FILE_SUFFIX)
    return names


def _secret_from_file(environ: Mapping[str, str], name: str) -> str | None:
    """The secret in the file named by `<name>_FILE`, without its final newline."""
    path = environ.get(name + FILE_SUFFIX)
    if path is None:
        return None
    if environ.get(name) is not None:
        raise SettingsError(f"set {name} or {name}{FILE_SUFFIX}, not both")
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}{FILE_SUFFIX}={path!r}: cannot read it ({exc})") from None


def _parse(name: str, type_name: Any, raw: str) -> Any:
    kind = type_name if isinstance(type_name, str) else type_name.__name__
    raw = raw.strip()
    try:
        if kind == "int":
            return int(raw.replace("_", ""))
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError:
        raise SettingsError(f"{env_name(name)}={raw!r} is not a valid {kind}") from None


def _validate(s: Settings) -> None:
    secrets = {f.name for f in dataclasses.fields(s) if f.metadata.get("secret")}

    def need(ok: bool, name: str, why: str) -> None:
        if not ok:
            # A secret's value never goes into a message that ends up in logs.
            got = "a hidden value" if name in secrets else repr(getattr(s, name))
            raise SettingsError(f"{env_name(name)}: {why} (got {got})")

    need(0 <= s.port <= 65535, "port", "must be a TCP port")
    need(s.storage in {"local", "s3"}, "storage", "must be 'local' or 's3'")
    need(s.role in {"all", "api", "worker"}, "role", "must be 'all', 'api' or 'worker'")
    need(s.log_level in {"debug", "info", "warning", "error"}, "log_level", "unknown level")
    need(s.credits_signup_grant >= 0, "credits_signup_grant", "must be 0 or more")
    need(
        s.generation_local_price_per_second >= 0,
        "generation_local_price_per_second",
        "must be 0 or more",
    )
    need(1 <= s.generation_local_max_seconds <= 600, "generation_local_max_seconds", "1-600")
    need(s.generation_poll_seconds > 0, "generation_poll_seconds", "must be positive")
    need(s.generation_breaker_threshold >= 1, "generation_breaker_threshold", "must be 1 or more")
    need(s.generation_provider_concurrency >= 1, "generation_provider_concurrency", "1 or more")
    need(s.generation_retries >= 0, "generation_retries", "must be 0 or more")
    need(
        s.generation_request_timeout_seconds > 0,
        "generation_request_timeout_seconds",
        "must be positive",
    )
    for price in ("sora_price_per_second", "veo_price_per_second", "kling_price_per_second"):
        need(getattr(s, price) >= 0, price, "must be 0 or more")
    need(s.log_format in {"json", "console"}, "log_format", "must be 'json' or 'console'")
    need(s.database_pool_size >= 2, "database_pool_size", "must be at least 2")
    need(
        not s.database_password or bool(s.database_url),
        "database_password",
        "needs a database URL to go with it (the embedded PostgreSQL takes none)",
    )
    need(s.s3_part_size >= 5 * MiB, "s3_part_size", "S3 parts must be at least 5 MiB")
    need(1 <= s.s3_parts_in_flight <= 16, "s3_parts_in_flight", "must be between 1 and 16")
    need(s.max_upload_bytes > 0, "max_upload_bytes", "must be positive")
    need(s.batch_max_jobs >= 1, "batch_max_jobs", "must be at least 1")
    need(s.presets_per_user >= 1, "presets_per_user", "must be at least 1")
    need(s.caption_max_bytes >= 1024, "caption_max_bytes", "must be at least 1024")
    need(s.default_quota_bytes >= 0, "default_quota_bytes", "must not be negative")
    need(4 <= s.bcrypt_rounds <= 16, "bcrypt_rounds", "must be between 4 and 16")
    need(s.access_token_ttl_seconds > 0, "access_token_ttl_seconds", "must be positive")
    need(s.refresh_token_ttl_seconds > 0, "refresh_token_ttl_seconds", "must be positive")
    for name in ("email_verification_ttl_seconds", "password_reset_ttl_seconds"):
        need(getattr(s, name) > 0, name, "must be positive")
    need(
        set(s.unverified_email_denied) <= UNVERIFIED_GATES,
        "unverified_email_denies",
        "must name only " + ", ".join(sorted(UNVERIFIED_GATES)),
    )
    for name in (
        "rate_limit_login_per_minute",
        "rate_limit_register_per_hour",
        "rate_limit_refresh_per_minute",
        "rate_limit_uploads_per_hour",
        "rate_limit_jobs_per_minute",
    ):
        need(getattr(s, name) >= 0, name, "must not be negative (0 turns the limit off)")
    need(_are_networks(s.trusted_proxies), "trusted_proxies", "must be IP addresses or CIDRs")
    need(s.signed_url_ttl_seconds > 0, "signed_url_ttl_seconds", "must be positive")
    need(
        not s.accel_redirect_prefix
        or (s.accel_redirect_prefix.startswith("/") and s.accel_redirect_prefix.endswith("/")),
        "accel_redirect_prefix",
        "must start and end with '/'",
    )
    need(0 <= s.accel_cache_seconds <= 5, "accel_cache_seconds", "must be between 0 and 5")
    need(0 <= s.s3_redirect_seconds <= 3600, "s3_redirect_seconds", "must be between 0 and 3600")
    need(
        0 <= s.account_check_cache_seconds <= 5,
        "account_check_cache_seconds",
        "must be between 0 and 5",
    )
    need(s.upload_chunk_bytes >= 4096, "upload_chunk_bytes", "must be at least 4096")
    need(s.image_max_bytes > 0, "image_max_bytes", "must be positive")
    need(s.image_min_side >= 1, "image_min_side", "must be at least 1")
    need(s.image_max_side >= s.image_min_side, "image_max_side", "must be at least image_min_side")
    need(
        s.image_max_pixels >= s.image_max_side * s.image_min_side,
        "image_max_pixels",
        "must allow an image of image_max_side by image_min_side",
    )
    need(s.shutdown_grace_seconds >= 0, "shutdown_grace_seconds", "must not be negative")
    need(s.header_timeout_seconds > 0, "header_timeout_seconds", "must be positive")
    need(s.body_idle_timeout_seconds > 0, "body_idle_timeout_seconds", "must be positive")
    need(s.keepalive_timeout_seconds > 0, "keepalive_timeout_seconds", "must be positive")
    need(s.max_connections_per_ip >= 0, "max_connections_per_ip", "must not be negative")
    need(s.probe_timeout_seconds > 0, "probe_timeout_seconds", "must be positive")
    need(s.worker_concurrency >= 0, "worker_concurrency", "must not be negative")
    need(s.probe_concurrency >= 1, "probe_concurrency", "must be at least 1")
    need(
        _is_version(s.ffmpeg_min_version),
        "ffmpeg_min_version",
        "must be a release like 5.1 or 6.0.1, or 0 to skip the check",
    )
    need(
        s.ffmpeg_sandbox in {"auto", "bwrap", "unshare", "none"},
        "ffmpeg_sandbox",
        "must be auto, bwrap, unshare or none",
    )
    need(
        re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", s.search_config) is not None,
        "search_config",
        "must be the name of a text-search configuration, such as english or simple",
    )
    need(
        _is_clamd_address(s.clamd_address),
        "clamd_address",
        "must be unix:/absolute/path or tcp://host:port",
    )
    need(s.malware_scan_timeout_seconds > 0, "malware_scan_timeout_seconds", "must be positive")
    need(1 <= s.job_max_attempts <= 20, "job_max_attempts", "must be between 1 and 20")
    need(s.job_lease_seconds >= 2, "job_lease_seconds", "must be at least 2")
    need(
        0 < s.job_heartbeat_seconds < s.job_lease_seconds,
        "job_heartbeat_seconds",
        "must be positive and shorter than the lease",
    )
    need(s.job_poll_seconds > 0, "job_poll_seconds", "must be positive")
    need(s.job_timeout_base_seconds > 0, "job_timeout_base_seconds", "must be positive")
    need(s.job_timeout_per_media_second >= 0, "job_timeout_per_media_second", "must be >= 0")
    need(s.job_timeout_max_seconds > 0, "job_timeout_max_seconds", "must be positive")
    need(s.job_stall_seconds > 0, "job_stall_seconds", "must be positive")
    need(s.max_input_duration_seconds > 0, "max_input_duration_seconds", "must be positive")
    need(s.max_pixels >= 64 * 64, "max_pixels", "must be at least 4096")
    need(s.max_output_fps > 0, "max_output_fps", "must be positive")
    need(s.max_frames_per_zip >= 1, "max_frames_per_zip", "must be at least 1")
    need(s.video_ttl_seconds >= 60, "video_ttl_seconds", "must be at least 60")
    need(
        s.video_max_ttl_seconds >= s.video_ttl_seconds,
        "video_max_ttl_seconds",
        "must be at least video_ttl_seconds",
    )
    need(s.cleanup_interval_seconds >= 1, "cleanup_interval_seconds", "must be at least 1")
    # An upload still streaming must never look stale: keep a generous floor.
    need(s.stale_upload_seconds >= 3600, "stale_upload_seconds", "must be at least 3600")
    # Covers probing a committed upload before its row exists, and clock skew with S3.
    need(s.orphan_grace_seconds >= 300, "orphan_grace_seconds", "must be at least 300")
    need(s.audit_retention_days >= 0, "audit_retention_days", "must be 0 (keep) or more")
    # Multipart uploads and temp files of live tus uploads must never look stale.
    need(
        60 <= s.tus_upload_ttl_seconds <= s.stale_upload_seconds,
        "tus_upload_ttl_seconds",
        "must be from 60 up to stale_upload_seconds",
    )
    need(s.tus_max_unfinished_uploads >= 1, "tus_max_unfinished_uploads", "must be at least 1")
    need(s.tus_checkpoint_bytes >= 64 * 1024, "tus_checkpoint_bytes", "must be at least 65536")
    need(s.page_tus_threshold_bytes >= 0, "page_tus_threshold_bytes", "must not be negative")
    need(s.ws_queue_size >= 4, "ws_queue_size", "must be at least 4")
    need(s.ws_queue_bytes >= 4096, "ws_queue_bytes", "must be at least 4096")
    need(s.ws_max_sockets_per_user >= 1, "ws_max_sockets_per_user", "must be at least 1")
    need(0 <= s.smtp_port <= 65535, "smtp_port", "must be a TCP port")
    need(1 <= s.notify_max_attempts <= 50, "notify_max_attempts", "must be between 1 and 50")
    need(s.webhook_timeout_seconds > 0, "webhook_timeout_seconds", "must be positive")
    need(s.ws_auth_timeout_seconds > 0, "ws_auth_timeout_seconds", "must be positive")
    need(s.ws_heartbeat_seconds > 0, "ws_heartbeat_seconds", "must be positive")
    need(
        all(_is_origin(o) for o in s.allowed_origins.split(",") if o.strip()),
        "allowed_origins",
        "must be a comma-separated list of scheme://host[:port]",
    )
    need(
        not s.jwt_secret or len(s.jwt_secret) >= 32,
        "jwt_secret",
        "must be at least 32 characters",
    )
    need(
        s.storage != "s3" or bool(s.s3_bucket),
        "s3_bucket",
        "is required when FRAMEFLOW_STORAGE=s3",
    )
    need(
        s.public_url == "" or s.public_url.startswith(("http://", "https://")),
        "public_url",
        "must start with http:// or https://",
    )


def _are_networks(value: str) -> bool:
    try:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
    except ValueError:
        return False
    return True


def _is_version(value: str) -> bool:
    return value.strip() in ("", "0") or re.fullmatch(r"\d+(\.\d+){0,2}", value.strip()) is not None


def _is_clamd_address(value: str) -> bool:
    if value.startswith("unix:"):
        return value.removeprefix("unix:").startswith("/")
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "tcp" and bool(parts.hostname) and port is not None


def _is_origin(value: str) -> bool:
    parts = urlsplit(value.strip())
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.hostname)
        and parts.path in {"", "/"}
        and not parts.query
        and not parts.fragment
    )


def markdown_table() -> str:
    """The README's configuration table: `python -m config.settings`."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, Path) and not default.is_absolute():
            default = f"./{default}"
        shown = "(empty)" if default == "" else f"`{default}`"
        help_text = f.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{env_name(f.name)}` | {shown} | {help_text} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
