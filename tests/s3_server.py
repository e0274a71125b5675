"""A real S3-protocol server on loopback for tests: moto's server mode in a thread.

Talking HTTP to it (rather than patching botocore in-process) exercises
signatures, multipart uploads, ranged GETs and streaming bodies the way a real
store would. Reusable from any test module or conftest::

    with moto_s3_server() as endpoint:
        settings = Settings(data_dir=tmp, **s3_settings(endpoint))
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.server import ThreadedMotoServer

# moto accepts any credentials; explicit ones keep botocore away from the
# developer's real ~/.aws configuration.
ACCESS_KEY_ID = "frameflow-test"
SECRET_ACCESS_KEY = "frameflow-test-secret"
REGION = "us-east-1"


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Start moto on 127.0.0.1 on a free port; yields its endpoint URL."""
    # werkzeug logs every request at INFO; keep test output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Port 0: the OS picks a free port while binding, so there is no window in
    # which another process could take it (as with "find a port, then bind").
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        # stop() shuts the serve loop down but leaves the listening socket
        # open, which surfaces later as a ResourceWarning (an error in pytest).
        if server._server is not None:
            server._server.server_close()


def unique_bucket(prefix: str = "frameflow-test") -> str:
    """A fresh, valid bucket name (lower case, 3-63 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def s3_settings(endpoint: str, bucket: str | None = None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `Settings(...)` that point the S3 backend at `endpoint`."""
    return {
        "storage": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": bucket or unique_bucket(),
        "s3_region": REGION,
        "s3_access_key_id": ACCESS_KEY_ID,
        "s3_secret_access_key": SECRET_ACCESS_KEY,
        **extra,
    }
