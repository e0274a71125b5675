"""Objects in an S3 bucket (AWS, MinIO, R2, ...) through one long-lived aioboto3 client.

Uploads are multipart with fixed-size parts, streamed: at most
`parts_in_flight` parts (FRAMEFLOW_S3_PARTS_IN_FLIGHT, default 2) are on the
wire while the next one fills, so an upload holds at most parts_in_flight + 1
parts in memory whatever the object's size. One part at a time left the
upload at the pace of one connection (0.71-0.78 of boto3's `upload_file`,
which sends 10 at once, bench/s3_bench.py). Objects smaller than a part skip the
multipart machinery and go up with a single PutObject. Reads are ranged
GetObjects streamed chunk by chunk, sent to a presigned URL reused per key
(`s3_get`): botocore's per-call work cost more than the request itself.
"""

from __future__ import annotations

import asyncio
import collections
import io
import re
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    aclosing,
    asynccontextmanager,
    contextmanager,
)
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from server import scratch
from server.storage.base import (
    DEFAULT_CHECKPOINT_BYTES,
    DEFAULT_CHUNK_SIZE,
    LIST_PAGE_SIZE,
    Appender,
    AppendState,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    StorageError,
    StorageUnavailable,
    abort_quietly,
    check_range,
    managed_writer,
    validate_key,
    validate_prefix,
)
from server.storage.s3_get import PresignedGets, S3Refused, S3Unreachable

# HeadObject/HeadBucket have no body, so a miss is only the bare status "404".
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_NO_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})
# Codes that mean "this deployment cannot use S3 right now", not "this request is wrong".
_UNAVAILABLE = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
    }
)
_LOCAL_PATH_CHUNK = 1024 * 1024
_MAX_CONNECTIONS = 64  # each of the client's pool and the reads' pool
_CONNECT_TIMEOUT = 10.0
_READ_TIMEOUT = 60.0
_MAX_PARTS = 10_000  # S3's limit: part_size * 10000 is the largest object
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")

_OPEN, _COMMITTING, _COMMITTED, _ABORTED = "open", "committing", "committed", "aborted"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """botocore errors -> StorageError / StorageUnavailable, so callers catch one family."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in _UNAVAILABLE or _status(exc) >= 500:
            raise StorageUnavailable(f"{what}: {exc}") from exc
        raise StorageError(f"{what}: {exc}") from exc
    except BotoCoreError as exc:  # connection refused, timeouts, truncated bodies
        raise StorageUnavailable(f"{what}: {exc}") from exc


class S3Writer:
    """Streams one object into S3; see the module docstring for the memory bound."""

    def __init__(self, storage: S3Storage, key: str, content_type: str) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        # BytesIO rather than bytearray: botocore can send (and re-send on retry)
        # a seekable stream without copying it, while aiohttp warns about, and
        # pytest fails on, raw bytes bodies over 1 MiB.
        self._buf = io.BytesIO()
        self._create: asyncio.Future[str] | None = None
        # Oldest first; finished parts move to _parts in order, so part numbers ascend.
        self._inflight: collections.deque[asyncio.Task[dict[str, Any]]] = collections.deque()
        self._shipped = 0
        self._parts: list[dict[str, Any]] = []
        self._state = _OPEN
        self.bytes_written = 0

    def _ensure(self, *states: str) -> None:
        if self._state not in states:
            raise StorageError(f"writer for {self._key!r} is {self._state}")

    async def write(self, chunk: bytes) -> None:
        self._ensure(_OPEN)
        view = memoryview(chunk)
        part_size = self._storage.part_size
        while len(view):
            room = part_size - self._buf.tell()
            if room == 0:
                # Ship a full part only once more data arrives: an object of
                # exactly N parts then never needs an empty last part, and one
                # of exactly one part goes up as a plain PutObject.
                await self._ship_part()
                room = part_size
            self._buf.write(view[:room])
            self.bytes_written += min(room, len(view))
            view = view[room:]

    async def _ship_part(self) -> None:
        while len(self._inflight) >= self._storage.parts_in_flight:
            await self._wait_oldest()  # keeps at most parts_in_flight parts on the wire
        number = self._shipped + 1
        if number > _MAX_PARTS:
            raise StorageError(
                f"{self._key!r} needs more than {_MAX_PARTS} parts; raise FRAMEFLOW_S3_PART_SIZE"
            )
        upload_id = await self._upload_id()
        body, self._buf = self._buf, io.BytesIO()
        body.seek(0)
        self._shipped = number
        self._inflight.append(asyncio.create_task(self._upload_part(upload_id, number, body)))

    async def _wait_oldest(self) -> None:
        part = await self._inflight[0]  # re-raises a failed upload on every later call
        self._inflight.popleft()
        self._parts.append(part)

    async def _wait_inflight(self) -> None:
        while self._inflight:
            await self._wait_oldest()

    async def _upload_id(self) -> str:
        if self._create is None:
            self._create = asyncio.ensure_future(
                self._storage._create_upload(self._key, self._content_type)
            )
        # Shielded: if we are cancelled mid-request the upload may still get
        # created server-side; abort() awaits this same future for its id.
        return await asyncio.shield(self._create)

    async def _upload_part(self, upload_id: str, number: int, body: io.BytesIO) -> dict[str, Any]:
        client, bucket = self._storage.client, self._storage.bucket
        with _translated(f"uploading part {number} of {self._key!r}"):
            response = await client.upload_part(
                Bucket=bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": response["ETag"]}

    async def commit(self) -> ObjectInfo:
        self._ensure(_OPEN)
        self._state = _COMMITTING
        client, bucket, key = self._storage.client, self._storage.bucket, self._key
        try:
            if self._create is None:
                self._buf.seek(0)
                with _translated(f"putting {key!r}"):
                    await client.put_object(
                        Bucket=bucket, Key=key, Body=self._buf, ContentType=self._content_type
                    )
            else:
                await self._ship_part()  # the last part, 1..part_size bytes
                await self._wait_inflight()
                upload_id = await self._upload_id()
                with _translated(f"completing {key!r}"):
                    await client.complete_multipart_upload(
                        Bucket=bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
            self._state = _COMMITTED
        except BaseException:
            await abort_quietly(self)
            raise
        finally:
            self._buf = io.BytesIO()
        info = await self._storage.stat(key)
        if info is None:  # deleted concurrently between complete and head
            raise ObjectNotFound(key)
        return info

    async def abort(self) -> None:
        if self._state in (_COMMITTED, _ABORTED):
            return
        self._state = _ABORTED
        self._buf = io.BytesIO()
        tasks, self._inflight = list(self._inflight), collections.deque()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # mark retrieved; the upload is going away anyway
        if self._create is None:
            return
        try:
            upload_id = await self._create
        except Exception:
            return  # the upload was never created
        await self._storage._abort_upload(self._key, upload_id)


class S3Storage:
    name = "s3"

    def __init__(
        self,
        client: Any,
        exit_stack: AsyncExitStack,
        *,
        bucket: str,
        region: str,
        part_size: int,
        tmp_dir: Path,
        check_timeout: float,
        max_attempts: int = 5,
        parts_in_flight: int = 2,
    ) -> None:
        self.client = client  # aiobotocore S3 client, entered for our lifetime
        self._exit_stack = exit_stack
        # Reads skip botocore's per-call machinery (s3_get); closed with the client.
        self._gets = PresignedGets(
            self._presign_get,
            client.meta.endpoint_url,
            max_attempts=max_attempts,
            max_connections=_MAX_CONNECTIONS,
            connect_timeout=_CONNECT_TIMEOUT,
            read_timeout=_READ_TIMEOUT,
        )
        exit_stack.push_async_callback(self._gets.close)
        self.bucket = bucket
        self.region = region
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self.tmp_dir = tmp_dir  # where local_path() puts its copies
        self.check_timeout = check_timeout

    @classmethod
    async def connect(
        cls,
        *,
        bucket: str,
        part_size: int,
        tmp_dir: Path,
        parts_in_flight: int = 2,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        max_attempts: int = 5,
        check_timeout: float = 10.0,
    ) -> S3Storage:
        """Open the client; does not touch the network (see `ensure_bucket`)."""
        if bool(access_key_id) != bool(secret_access_key):
            raise ValueError("set both the S3 access key id and secret access key, or neither")
        session = aioboto3.Session(
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            region_name=region or None,
        )
        config = AioConfig(
            # Custom endpoints (MinIO, moto, many gateways) do not do
            # virtual-hosted buckets on their bare host name.
            s3={"addressing_style": "path"} if endpoint_url else None,
            retries={"mode": "standard", "max_attempts": max_attempts},
            # SigV4 everywhere, presigned URLs too (botocore may presign SigV2,
            # which real servers such as SeaweedFS refuse).
            signature_version="s3v4",
            max_pool_connections=_MAX_CONNECTIONS,
            connect_timeout=_CONNECT_TIMEOUT,
            read_timeout=_READ_TIMEOUT,
            # botocore >= 1.36 adds CRC32 checksums to every upload by default;
            # several S3-compatible stores reject or mishandle them, and our own
            # multipart flow would have to declare them on create. Checksums
            # only where the API requires them (DeleteObjects).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        tmp_dir = await asyncio.to_thread(_make_dir, tmp_dir)
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                session.client("s3", endpoint_url=endpoint_url or None, config=config)
            )
        except BaseException:
            await stack.aclose()
            raise
        return cls(
            client,
            stack,
            bucket=bucket,
            region=region,
            part_size=part_size,
            tmp_dir=tmp_dir,
            check_timeout=check_timeout,
            max_attempts=max_attempts,
            parts_in_flight=parts_in_flight,
        )

    async def ensure_bucket(self) -> None:
        """Create the bucket unless it exists; safe when several instances start at once."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _code(exc) not in _NO_BUCKET:
                raise StorageUnavailable(f"S3 bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable: {exc}") from exc
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            # us-east-1 is the one region that rejects an explicit constraint.
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return  # another instance created it first
            raise StorageUnavailable(f"cannot create S3 bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable: {exc}") from exc

    # --- writing -------------------------------------------------------------

    async def open_writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> S3Writer:
        # Nothing remote yet: the multipart upload starts when a part is full.
        return S3Writer(self, validate_key(key), content_type)

    def writer(
        self, key: str, content_type: str = "application/octet-stream"
    ) -> AbstractAsyncContextManager[ObjectWriter]:
        return managed_writer(self.open_writer(key, content_type))

    async def _create_upload(self, key: str, content_type: str) -> str:
        with _translated(f"starting upload of {key!r}"):
            response = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )
        return str(response["UploadId"])

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        try:
            with _translated(f"aborting upload of {key!r}"):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
        except StorageError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, ClientError) and _code(cause) == "NoSuchUpload"):
                raise

    # --- reading -------------------------------------------------------------

    async def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with _translated(f"stat {key!r}"):
                head = await self.client.head_object(Bucket=self.bucket, Key=key)
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) in _NOT_FOUND:
                return None
            raise
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].astimezone(UTC))

    async def read(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> AsyncGenerator[bytes, None]:
        """A GetObject by presigned URL (`s3_get`): per range, one plain HTTP request."""
        check_range(start, end, chunk_size)
        validate_key(key)
        # The server sends only these bytes; an empty object has no valid range
        # at all, so a whole-object read sends none.
        byte_range = (
            f"bytes={start}-{'' if end is None else end}" if start or end is not None else None
        )
        what = f"reading {key!r}"
        try:
            async with aclosing(self._gets.read(key, byte_range, chunk_size)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except S3Refused as exc:
            if exc.code in _NOT_FOUND or (exc.status == 404 and exc.code not in _UNAVAILABLE):
                raise ObjectNotFound(key) from None
            if exc.code == "InvalidRange" or exc.status == 416:
                return  # start is past the end: nothing, as on the local backend
            if exc.code in _UNAVAILABLE or exc.status >= 500 or exc.status == 403:
                raise StorageUnavailable(f"{what}: {exc}") from None
            raise StorageError(f"{what}: {exc}") from None
        except S3Unreachable as exc:
            raise StorageUnavailable(f"{what}: {exc}") from None

    async def _presign_get(self, key: str, seconds: int) -> str:
        with _translated(f"signing a read of {key!r}"):  # e.g. no credentials found
            url: str = await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        return url

    async def list_prefix(self, prefix: str) -> AsyncGenerator[ObjectInfo, None]:
        validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = aiter(
            paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_SIZE}
            )
        )
        while True:
            # Only the request is translated, never our consumer's code between pages.
            with _translated(f"listing prefix {prefix!r}"):
                page = await anext(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    str(item["Key"]), int(item["Size"]), item["LastModified"].astimezone(UTC)
                )

    @asynccontextmanager
    async def local_path(self, key: str) -> AsyncIterator[Path]:
        validate_key(key)
        tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="obj-", dir=self.tmp_dir))
        try:
            # Keep the extension: some tools look at it, and it is server-made anyway.
            suffix = Path(key).suffix if _SUFFIX.fullmatch(Path(key).suffix) else ""
            path = tmp / f"object{suffix}"
            # Opened on the loop (microseconds): an open() handed to a thread
            # still runs if this task is cancelled, and its file would leak.
            file = open(path, "wb")  # noqa: ASYNC230, SIM115
            try:
                async with aclosing(self.read(key, chunk_size=_LOCAL_PATH_CHUNK)) as chunks:
                    async for chunk in chunks:
                        await asyncio.to_thread(file.write, chunk)
            finally:
                # Closed synchronously: a close sent to a worker thread can be
                # cancelled before it runs (a job canceled mid-download) and leak.
                file.close()
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)

    # --- deleting ------------------------------------------------------------

    async def delete(self, key: str) -> None:
        validate_key(key)
        with _translated(f"deleting {key!r}"):
            await self.client.delete_object(Bucket=self.bucket, Key=key)  # missing is fine

    async def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        deleted = 0
        paginator = self.client.get_paginator("list_objects_v2")
        with _translated(f"deleting prefix {prefix!r}"):
            # Pages hold at most 1000 keys, which is also DeleteObjects' limit.
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    continue
                response = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                if errors := response.get("Errors"):
                    raise StorageError(f"deleting prefix {prefix!r}: {errors[:3]}")
                deleted += len(keys)
        return deleted

    # --- operations ----------------------------------------------------------

    def sendfile_path(self, key: str) -> Path | None:
        return None  # bytes come over HTTP from the store; nothing local to send

    async def presigned_get_url(
        self, key: str, seconds: int, *, content_type: str, disposition: str
    ) -> str | None:
        validate_key(key)
        url: str = await self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                # The store answers with ours, not what the upload left there.
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=seconds,
        )
        return url

    async def check(self) -> None:
        try:
            async with asyncio.timeout(self.check_timeout):
                await self.client.head_bucket(Bucket=self.bucket)
        except TimeoutError:
            raise StorageUnavailable(f"S3 did not answer within {self.check_timeout:g}s") from None
        except ClientError as exc:
            raise StorageUnavailable(f"S3 bucket {self.bucket!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 is unreachable: {exc}") from exc

    async def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort multipart uploads started before `older_than` ago, and remove
        `local_path` copies a crashed process left in the temp dir."""
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        with _translated("listing multipart uploads"):
            async for page in paginator.paginate(Bucket=self.bucket):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        await self._abort_upload(upload["Key"], upload["UploadId"])
                        aborted += 1
        return aborted + await asyncio.to_thread(
            scratch.remove_stale, [self.tmp_dir], time.time() - older_than.total_seconds()
        )

    async def close(self) -> None:
        await self._exit_stack.aclose()

    # --- appendable objects: server/storage/s3_append.py ----------------------

    async def start_append(self, key: str, content_type: str, scratch_prefix: str) -> AppendState:
        from server.storage import s3_append

        return await s3_append.start(self, key, content_type, scratch_prefix)

    def open_append(
        self, state: AppendState, *, checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    ) -> AbstractAsyncContextManager[Appender]:
        """`checkpoint_bytes` is unused: each part is a checkpoint."""
        from server.storage import s3_append

        return s3_append.open_append(self, state)

    async def release_superseded(self, old: AppendState, new: AppendState) -> None:
        from server.storage import s3_append

        await s3_append.release_superseded(self, old, new)

    async def finish_append(self, state: AppendState) -> ObjectInfo:
        from server.storage import s3_append

        return await s3_append.finish(self, state)

    async def discard_append(self, state: AppendState) -> None:
        from server.storage import s3_append

        await s3_append.discard(self, state)


def _make_dir(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
