# Frameflow production image: the one Python process plus Debian's ffmpeg.
#
#   docker build -t frameflow .
#   docker run -p 8080:8080 -v frameflow-data:/data frameflow
#
# With no configuration it runs the embedded PostgreSQL and keeps objects on
# the /data volume; docker-compose.yml wires it to PostgreSQL, Redis and MinIO.
FROM python:3.11-slim-bookworm

# Debian's ffmpeg package brings ffprobe too (imageio-ffmpeg's static build has
# no ffprobe). --no-install-recommends keeps the X11/GL bits out of the image.
# bubblewrap confines each ffmpeg (no network, only its own files); it needs
# user namespaces, which Docker's default seccomp profile refuses: see the
# README's "Defences" section (without them ffmpeg runs unconfined, with a warning).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg bubblewrap \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid so that volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 frameflow \
    && useradd --system --uid 10001 --gid frameflow --home-dir /app --no-create-home frameflow

WORKDIR /app
COPY pyproject.toml README.md run.py ./
COPY config ./config
COPY server ./server
COPY sql ./sql
COPY static ./static
# Installs the runtime dependencies (no [test] extras). The process still runs
# from /app, not site-packages: `python run.py` puts /app first on sys.path,
# and the server finds sql/ and static/ next to its own source.
RUN pip install . \
    && mkdir -p /data \
    && chown frameflow:frameflow /data

# Listen on every interface inside the container (the default, 127.0.0.1,
# would be unreachable through a published port); keep all state on /data.
ENV FRAMEFLOW_HOST=0.0.0.0 \
    FRAMEFLOW_PORT=8080 \
    FRAMEFLOW_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080

USER frameflow

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
