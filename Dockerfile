# Frameflow production image: the one Python process plus Debian's ffmpeg.
#
#   docker build -t frameflow .
#   docker run -p 8080:8080 -v frameflow-data:/data \
#     -e DATABASE_URL=postgresql://frameflow@db.internal:5432/frameflow \
#     -e FRAMEFLOW_DATABASE_PASSWORD_FILE=/run/secrets/db_password ... frameflow
#
# It needs an external PostgreSQL (DATABASE_URL): the embedded one and the
# bundled ffmpeg of a development install are left out (pyproject's
# [tool.frameflow] image-excludes). docker-compose.yml wires it to
# PostgreSQL, Redis and MinIO.
FROM python:3.11-slim-bookworm

# Debian's ffmpeg package brings ffprobe too (imageio-ffmpeg's static build has
# no ffprobe). --no-install-recommends keeps the X11/GL bits out of the image.
# bubblewrap confines each ffmpeg (no network, only its own files); it needs
# user namespaces, which Docker's default seccomp profile refuses: see the
# README's "Defences" section (without them ffmpeg runs unconfined, with a warning).
# DL3008 (pin apt versions) is ignored on purpose: bookworm's security updates
# replace a pinned version, after which the pin no longer installs; the base
# image tag pins the Debian release, and a rebuild picks up the fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg bubblewrap \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid and gid: volume ownership is predictable across
# rebuilds, and Kubernetes' runAsNonRoot can verify a numeric USER.
RUN groupadd --system --gid 10001 frameflow \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home frameflow

WORKDIR /app
# Dependencies first, exactly as locked and hash-checked (regenerate with
# `bash scripts/lock`); a change to the code then reuses this layer.
COPY requirements.lock ./
RUN pip install --no-deps --require-hashes -r requirements.lock

COPY pyproject.toml README.md run.py ./
COPY config ./config
COPY server ./server
COPY sql ./sql
COPY static ./static
# --no-deps: everything it needs is installed from the lock above; this
# leaves out the development-only embedded PostgreSQL and bundled ffmpeg.
# The process still runs from /app, not site-packages: `python run.py` puts
# /app first on sys.path, and the server finds sql/ and static/ next to its
# own source.
RUN pip install --no-deps . \
    && mkdir -p /data \
    && chown 10001:10001 /data

# Listen on every interface inside the container (the default, 127.0.0.1,
# would be unreachable through a published port); keep all state on /data.
ENV FRAMEFLOW_HOST=0.0.0.0 \
    FRAMEFLOW_PORT=8080 \
    FRAMEFLOW_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080

USER 10001:10001

# Liveness only (the process answers); readiness of the database and storage
# is /health/ready, for a load balancer. Python's urllib because slim has no
# curl; urlopen raises on any non-2xx status or connection error.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FRAMEFLOW_PORT', '8080') + '/health/live', timeout=4)"]

# aiohttp's run_app handles SIGTERM: stop accepting, let in-flight requests
# finish for FRAMEFLOW_SHUTDOWN_GRACE_SECONDS, then abort what is left. Give
# `docker stop -t` (or compose's stop_grace_period) more time than that.
STOPSIGNAL SIGTERM
CMD ["python", "run.py"]
