"""The image step of an upload: size and dimension limits, EXIF, the stored copy
without EXIF, and the 512x512 thumbnail.

`UploadService` calls it where every upload path meets (see its docstring):
`check_size` before anything is decoded, `prepare` on the local copy of the
stored upload (Pillow in a thread, one image at a time per probe slot), then
`store` writes the thumbnail — and, when EXIF is stripped, the stripped copy —
under the video's prefix and returns the candidate that the row will hold.
What `store` wrote is removed by `discard_derived` when the upload fails or
turns out to be a duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from config.settings import Settings
from server.data_dirs import image_scratch_dir
from server.errors import Unprocessable
from server.localfiles import file_chunks
from server.logs import get_logger
from server.media.images import (
    PILLOW_FORMATS,
    THUMBNAIL_CONTENT_TYPE,
    ImageLimits,
    ImageRefused,
    PreparedImage,
    configure_pillow,
    prepare_image,
)
from server.media.sniff import ALL_TYPES, SniffResult
from server.object_keys import image_key, image_thumbnail_key
from server.storage.base import Storage
from server.videos.model import Video

log = get_logger("frameflow.images")

_COPY_CHUNK = 256 * 1024
_IMAGE_EXTENSIONS = tuple(t.extension for t in ALL_TYPES if t.kind == "image")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ImageIntake:
    def __init__(self, *, storage: Storage, settings: Settings) -> None:
        configure_pillow(settings.image_max_pixels)
        self._storage = storage
        self._max_bytes = settings.image_max_bytes
        self._strip = settings.image_strip_exif
        self._limits = ImageLimits(
            settings.image_min_side, settings.image_max_side, settings.image_max_pixels
        )
        self._scratch = image_scratch_dir(settings.data_dir)
        # Decoding holds up to max_pixels x 4 bytes: as many at once as probes.
        self._slots = asyncio.Semaphore(settings.probe_concurrency)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def check_size(self, size: int) -> None:
        if size > self._max_bytes:
            raise Unprocessable(
                f"Images are limited to {self._max_bytes} bytes",
                code="image_too_large",
                max_bytes=self._max_bytes,
            )

    @asynccontextmanager
    async def prepare(self, path: Path, sniffed: SniffResult) -> AsyncIterator[PreparedImage]:
        """Check, read and derive from the image at `path`; its derived files live
        until the block ends. 422 naming the limit when it breaks one."""
        await asyncio.to_thread(self._scratch.mkdir, parents=True, exist_ok=True)
        work = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._scratch))
        try:
            async with self._slots:
                try:
                    prepared = await asyncio.to_thread(
                        prepare_image,
                        path,
                        sniffed.content_type,
                        self._limits,
                        work,
                        strip=self._strip,
                    )
                except ImageRefused as exc:
                    raise Unprocessable(str(exc), code=exc.code, **exc.data) from None
            yield prepared
        finally:
            await asyncio.shield(asyncio.to_thread(shutil.rmtree, work, ignore_errors=True))

    async def store(self, candidate: Video, sniffed: SniffResult, prepared: PreparedImage) -> Video:
        """Write the thumbnail (and the stripped copy) and return the candidate with
        the metadata and, when stripped, the key and size of the copy kept."""
        thumb_key = image_thumbnail_key(candidate.user_id, candidate.id)
        thumb_size = await self._put(thumb_key, prepared.thumbnail, THUMBNAIL_CONTENT_TYPE)
        image: dict[str, Any] = {
            "width": prepared.width,
            "height": prepared.height,
            "format": PILLOW_FORMATS[sniffed.content_type].lower(),
            "exif_stripped": prepared.stripped is not None,
            "thumbnail": {
                "width": prepared.thumbnail_width,
                "height": prepared.thumbnail_height,
                "size": thumb_size,
                "content_type": THUMBNAIL_CONTENT_TYPE,
            },
        }
        metadata = {**candidate.metadata, "exif": prepared.exif, "image": image}
        if prepared.stripped is None:
            return dataclasses.replace(candidate, metadata=metadata)
        key = image_key(candidate.user_id, candidate.id, sniffed.extension)
        size = await self._put(key, prepared.stripped, sniffed.content_type)
        # `sha256` stays the uploaded bytes' (what de-duplication and the client
        # compare); the stored copy's own is kept beside it.
        image["stored_sha256"] = await asyncio.to_thread(_sha256_of, prepared.stripped)
        return dataclasses.replace(candidate, storage_key=key, size=size, metadata=metadata)

    async def discard_derived(self, candidate: Video) -> None:
        """Remove what `store` may have written for `candidate` (idempotent)."""
        keys = [image_thumbnail_key(candidate.user_id, candidate.id)]
        keys += [image_key(candidate.user_id, candidate.id, ext) for ext in _IMAGE_EXTENSIONS]
        for key in keys:
            try:
                await asyncio.shield(self._storage.delete(key))
            except Exception:
                log.exception("image_derived_delete_failed", key=key)

    async def _put(self, key: str, path: Path, content_type: str) -> int:
        size = 0
        writer_cm = self._storage.writer(key, content_type)
        async with writer_cm as writer:
            async for chunk in file_chunks(path, _COPY_CHUNK):
                size += len(chunk)
                await writer.write(chunk)
            await writer.commit()
        return size
