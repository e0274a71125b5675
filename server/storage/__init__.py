"""Object storage: one `Storage` interface, a local-disk and an S3 backend.

`open_storage(settings)` is the only place that looks at which backend is
configured; everything else codes against `server.storage.base.Storage`.
"""

from __future__ import annotations

from config.settings import Settings
from server import data_dirs
from server.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    Storage,
    StorageError,
    StorageUnavailable,
    validate_key,
    validate_prefix,
)
from server.storage.local import LocalStorage
from server.storage.s3 import S3Storage
from server.storage.traced import TracedStorage
from server.tracing import tracing_enabled

__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectWriter",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "open_storage",
    "validate_key",
    "validate_prefix",
]


async def open_storage(settings: Settings) -> Storage:
    """The configured backend, ready to use (directories and bucket exist), with a
    span around each call when tracing is on.

    Raises StorageUnavailable when S3 cannot be reached or the bucket can be
    neither found nor created, so start-up fails with the reason.
    """
    storage = await _open_backend(settings)
    return TracedStorage(storage) if tracing_enabled() else storage


async def _open_backend(settings: Settings) -> Storage:
    if settings.storage == "local":
        return await LocalStorage.open(settings.data_dir, direct_io=settings.local_direct_io)
    storage = await S3Storage.connect(
        bucket=settings.s3_bucket,
        part_size=settings.s3_part_size,
        parts_in_flight=settings.s3_parts_in_flight,
        # local_path() copies for ffmpeg; under the data dir so they land on a
        # disk the operator sized for media, not on a small /tmp.
        tmp_dir=data_dirs.s3_copies_dir(settings.data_dir),
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
    try:
        await storage.ensure_bucket()
    except BaseException:
        await storage.close()
        raise
    return storage
