"""Write a ZIP archive front to back into an async sink: never whole in memory.

The archive goes straight into a storage writer (an S3 multipart upload or a
temp file), so nothing can seek back to patch headers. Members are files on
the local disk whose size is known and whose CRC-32 is computed before their
header is written, so every local header is complete and no data descriptors
are needed: the result also reads with streaming unzippers, which cannot
handle stored members followed by a data descriptor.

Members are stored, not deflated: JPEG and PNG are compressed already, and
deflating them again costs CPU for nothing.

ZIP64 (APPNOTE 4.5.3) is used where a field would overflow: a member of
4 GiB or more, a member starting past 4 GiB, more than 65,535 members, or a
central directory past 4 GiB. Archives that need none of it stay plain ZIP
for the oldest readers; `force_zip64` writes the ZIP64 forms everywhere
(tests use it to check them without writing 4 GiB).
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_STORED = 0
_UTF8_NAMES = 1 << 11
_MADE_BY_UNIX = 3 << 8
_VERSION_PLAIN = 20
_VERSION_ZIP64 = 45
_ZIP64_EXTRA_ID = 0x0001
_REGULAR_FILE_0644 = (0o100644 << 16) & _U32

# A member up to this size is read once (CRC and bytes together); a bigger one
# is read twice, first for its CRC, then streamed, so memory stays bounded.
_READ_WHOLE_MAX = 4 * 1024 * 1024
_CHUNK = 1024 * 1024
# Output is coalesced into writes of about this size: a frame is a few KB,
# and each storage write may be a thread hop (local) or a buffer copy (S3).
_FLUSH_AT = 1024 * 1024

Sink = Callable[[bytes], Awaitable[None]]


class ZipStreamError(Exception):
    """The archive cannot be written as asked (bad name, file changed while read)."""


@dataclass(frozen=True, slots=True)
class Member:
    name: bytes
    flags: int
    crc: int
    size: int
    offset: int  # of its local header
    dos_time: int
    dos_date: int


def dos_datetime(when: datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS format; it cannot express years before 1980."""
    when = max(when, datetime(1980, 1, 1, tzinfo=when.tzinfo))
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    date = ((when.year - 1980) << 9) | (when.month << 5) | when.day
    return time, date


def local_header(member: Member, *, force_zip64: bool = False) -> bytes:
    """The local file header (pure). ZIP64 when the size needs it (or forced)."""
    zip64 = force_zip64 or member.size >= _U32
    # The local ZIP64 extra must carry both sizes (APPNOTE 4.5.3).
    extra = _zip64_extra(member.size, member.size) if zip64 else b""
    size32 = _U32 if zip64 else member.size
    return (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            _VERSION_ZIP64 if zip64 else _VERSION_PLAIN,
            member.flags,
            _STORED,
            member.dos_time,
            member.dos_date,
            member.crc,
            size32,
            size32,
            len(member.name),
            len(extra),
        )
        + member.name
        + extra
    )


def central_header(member: Member, *, force_zip64: bool = False) -> bytes:
    """The central directory record (pure); ZIP64 fields only for what overflows."""
    big_size = force_zip64 or member.size >= _U32
    big_offset = force_zip64 or member.offset >= _U32
    # Only the fields whose 32-bit slot says 0xFFFFFFFF go in, in this order.
    values = ([member.size, member.size] if big_size else []) + (
        [member.offset] if big_offset else []
    )
    extra = _zip64_extra(*values) if values else b""
    version = _VERSION_ZIP64 if values else _VERSION_PLAIN
    return (
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            _MADE_BY_UNIX | version,
            version,
            member.flags,
            _STORED,
            member.dos_time,
            member.dos_date,
            member.crc,
            _U32 if big_size else member.size,
            _U32 if big_size else member.size,
            len(member.name),
            len(extra),
            0,  # comment length
            0,  # disk number
            0,  # internal attributes
            _REGULAR_FILE_0644,
            _U32 if big_offset else member.offset,
        )
        + member.name
        + extra
    )


def end_records(count: int, cd_offset: int, cd_size: int, *, force_zip64: bool = False) -> bytes:
    """End of central directory; preceded by the ZIP64 record and locator when needed."""
    zip64 = force_zip64 or count >= _U16 or cd_offset >= _U32 or cd_size >= _U32
    out = b""
    if zip64:
        zip64_end_offset = cd_offset + cd_size
        out += struct.pack(
            "<IQHHIIQQQQ",
            0x06064B50,
            44,  # size of the rest of this record
            _MADE_BY_UNIX | _VERSION_ZIP64,
            _VERSION_ZIP64,
            0,
            0,
            count,
            count,
            cd_size,
            cd_offset,
        )
        out += struct.pack("<IIQI", 0x07064B50, 0, zip64_end_offset, 1)
    out += struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        _U16 if zip64 else count,
        _U16 if zip64 else count,
        _U32 if zip64 else cd_size,
        _U32 if zip64 else cd_offset,
        0,  # comment length
    )
    return out


def _zip64_extra(*values: int) -> bytes:
    return struct.pack(f"<HH{len(values)}Q", _ZIP64_EXTRA_ID, 8 * len(values), *values)


def _encode_name(name: str) -> tuple[bytes, int]:
    if not name or name.startswith("/") or "\\" in name or ".." in name.split("/"):
        raise ZipStreamError(f"unsafe member name {name!r}")
    encoded = name.encode("utf-8")
    if len(encoded) > _U16:
        raise ZipStreamError("member name too long")
    return encoded, 0 if name.isascii() else _UTF8_NAMES


def _crc_of(path: Path) -> tuple[int, int]:
    crc, size = 0, 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return crc, size


class ZipStream:
    """Appends files to an archive written through `sink`; call `finish()` once at the end.

    Not safe for concurrent use. If anything fails midway, the caller aborts
    whatever `sink` writes into (the storage writer does that on exit).
    """

    def __init__(self, sink: Sink, *, force_zip64: bool = False) -> None:
        self._sink = sink
        self._force_zip64 = force_zip64
        self._members: list[Member] = []
        self._buffer = bytearray()
        self._offset = 0  # bytes of archive produced so far (flushed or not)
        self._finished = False

    @property
    def bytes_written(self) -> int:
        return self._offset

    async def add_file(
        self,
        name: str,
        path: Path,
        *,
        modified: datetime | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Store `path` as member `name`; `on_bytes(n)` after each n bytes of it are out."""
        if self._finished:
            raise ZipStreamError("archive already finished")
        encoded, flags = _encode_name(name)
        stat = await asyncio.to_thread(path.stat)
        when = modified or datetime.fromtimestamp(stat.st_mtime, UTC)
        dos_time, dos_date = dos_datetime(when)

        data: bytes | None = None
        if stat.st_size <= _READ_WHOLE_MAX:
            data = await asyncio.to_thread(path.read_bytes)
            crc, size = zlib.crc32(data), len(data)
        else:
            crc, size = await asyncio.to_thread(_crc_of, path)
        member = Member(encoded, flags, crc, size, self._offset, dos_time, dos_date)
        await self._emit(local_header(member, force_zip64=self._force_zip64))

        if data is not None:
            await self._emit(data)
            if on_bytes:
                on_bytes(size)
        else:
            await self._stream(path, member, on_bytes)
        self._members.append(member)

    async def _stream(
        self, path: Path, member: Member, on_bytes: Callable[[int], None] | None
    ) -> None:
        crc, size = 0, 0
        with await asyncio.to_thread(path.open, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                await self._emit(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        # The header is already out: a file that changed in between would make
        # a corrupt archive, so fail instead (the writer is then aborted).
        if (crc, size) != (member.crc, member.size):
            raise ZipStreamError(f"{member.name.decode()} changed while being archived")

    async def finish(self) -> int:
        """Write the central directory and end records, flush; returns the archive size."""
        if self._finished:
            raise ZipStreamError("archive already finished")
        self._finished = True
        cd_offset = self._offset
        for member in self._members:
            await self._emit(central_header(member, force_zip64=self._force_zip64))
        cd_size = self._offset - cd_offset
        await self._emit(
            end_records(len(self._members), cd_offset, cd_size, force_zip64=self._force_zip64)
        )
        await self._flush()
        return self._offset

    async def _emit(self, data: bytes) -> None:
        self._offset += len(data)
        if len(self._buffer) + len(data) > _FLUSH_AT:
            await self._flush()
            if len(data) >= _FLUSH_AT:
                await self._sink(data)
                return
        self._buffer += data

    async def _flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            await self._sink(chunk)
