"""Appendable objects on S3: one multipart upload plus a tail object, as tusd's S3 store does.

Every part but the last must be at least 5 MiB, so parts are cut at exactly
`part_size` and whatever is left after the last full part — the tail — cannot
go into the multipart upload until more bytes arrive. `sync` keeps it in a
temporary object under the state's scratch prefix, under a new name each
time (`tail-<hex>`), so the tail the caller has recorded is never overwritten;
the next open reads it back and sends it ahead of the new bytes. The final
`sync` sends the rest as the (small) last part.

A state is handed back only once the parts and tail it names are stored.
Parts uploaded but never recorded (a crash, a failed checksum) are simply
uploaded again under the same number later, and completing names only the
recorded parts, so S3 drops the strays.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from server.storage.base import (
    AppendPart,
    AppendState,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    validate_key,
    validate_prefix,
)
from server.storage.s3 import _MAX_PARTS, _code, _translated

if TYPE_CHECKING:
    from server.storage.s3 import S3Storage


class S3Appender:
    def __init__(self, storage: S3Storage, state: AppendState, tail: bytearray) -> None:
        self._storage = storage
        self._state = state
        self._parts = list(state.parts)
        self._buf = tail  # the recorded tail first, then the new bytes
        self._in_parts = state.size - state.tail_size
        self._tail = (state.tail_key, state.tail_size)
        self._dirty = False  # the buffer differs from the recorded tail
        self.size = state.size

    async def write(self, chunk: bytes) -> AppendState | None:
        self._buf += chunk
        self.size += len(chunk)
        self._dirty = self._dirty or bool(chunk)
        durable = None
        while len(self._buf) >= self._storage.part_size:
            durable = await self._ship(self._storage.part_size)
        return durable

    async def sync(self, *, final: bool = False) -> AppendState:
        if final and self._buf:
            return await self._ship(len(self._buf))
        if self._buf and self._dirty:
            key = f"{self._state.scratch_prefix}tail-{uuid.uuid4().hex}"
            with _translated(f"storing the tail of {self._state.key!r}"):
                await self._storage.client.put_object(
                    Bucket=self._storage.bucket, Key=key, Body=io.BytesIO(bytes(self._buf))
                )
            self._tail = (key, len(self._buf))
            self._dirty = False
        return self._state_now()

    def _state_now(self) -> AppendState:
        tail_key, tail_size = self._tail if self._buf else ("", 0)
        return dataclasses.replace(
            self._state,
            size=self._in_parts + tail_size,
            parts=tuple(self._parts),
            tail_key=tail_key,
            tail_size=tail_size,
        )

    async def _ship(self, size: int) -> AppendState:
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise StorageError(
                f"{self._state.key!r} needs more than {_MAX_PARTS} parts; "
                "raise FRAMEFLOW_S3_PART_SIZE"
            )
        body = io.BytesIO(bytes(memoryview(self._buf)[:size]))
        with _translated(f"uploading part {number} of {self._state.key!r}"):
            response = await self._storage.client.upload_part(
                Bucket=self._storage.bucket,
                Key=self._state.key,
                UploadId=self._state.handle,
                PartNumber=number,
                Body=body,
            )
        self._parts.append(AppendPart(number, response["ETag"], size))
        del self._buf[:size]
        self._in_parts += size
        # A part starts with the whole recorded tail (always under one part).
        self._tail = ("", 0)
        self._dirty = bool(self._buf)
        return self._state_now()


async def start(
    storage: S3Storage, key: str, content_type: str, scratch_prefix: str
) -> AppendState:
    validate_key(key)
    validate_prefix(scratch_prefix)
    upload_id = await storage._create_upload(key, content_type)
    return AppendState(key=key, scratch_prefix=scratch_prefix, handle=upload_id)


async def _read_all(storage: S3Storage, key: str, size: int) -> bytearray:
    data = bytearray()
    async with aclosing(storage.read(key)) as chunks:
        async for chunk in chunks:
            data += chunk
    if len(data) != size:
        raise StorageError(f"tail {key!r} holds {len(data)} bytes, expected {size}")
    return data


@asynccontextmanager
async def open_append(storage: S3Storage, state: AppendState) -> AsyncIterator[S3Appender]:
    tail = await _read_all(storage, state.tail_key, state.tail_size) if state.tail_key else None
    yield S3Appender(storage, state, tail or bytearray())


async def release_superseded(storage: S3Storage, old: AppendState, new: AppendState) -> None:
    if old.tail_key and old.tail_key != new.tail_key:
        await storage.delete(old.tail_key)


async def finish(storage: S3Storage, state: AppendState) -> ObjectInfo:
    if state.tail_key:
        # Recorded without a final sync (length declared after the last bytes):
        # the tail goes up as the last part now.
        async with open_append(storage, state) as appender:
            state = await appender.sync(final=True)
    if not state.parts:
        # Nothing appended: S3 cannot complete a multipart upload with no parts.
        with _translated(f"putting {state.key!r}"):
            await storage.client.put_object(Bucket=storage.bucket, Key=state.key, Body=b"")
        await storage._abort_upload(state.key, state.handle)
    else:
        try:
            with _translated(f"completing {state.key!r}"):
                await storage.client.complete_multipart_upload(
                    Bucket=storage.bucket,
                    Key=state.key,
                    UploadId=state.handle,
                    MultipartUpload={
                        "Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in state.parts]
                    },
                )
        except StorageError as exc:
            # Completed by an earlier call that crashed before it was recorded.
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "NoSuchUpload"):
                raise
    info = await storage.stat(state.key)
    if info is None or info.size != state.size:
        raise ObjectNotFound(state.key)
    return info


async def discard(storage: S3Storage, state: AppendState) -> None:
    if state.handle:
        await storage._abort_upload(state.key, state.handle)
    await storage.delete_prefix(state.scratch_prefix)
