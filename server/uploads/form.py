"""Read an upload form (multipart/form-data) from the request stream.

Small text fields may come before the file (`process`, `preset`, `ttl`); the file must
be the last field, streamed part chunk by part chunk. Every read waits at
most the body idle deadline. Framing that aiohttp's multipart reader refuses
— a body that ends before its closing boundary ("Reading after EOF"), a part
header line over 8,190 bytes, a malformed header — is a 400
`invalid_multipart`; raised while the file streams, it aborts the upload's
writer, so nothing is stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from server.errors import BadRequest
from server.request_body import send_continue, within_idle_deadline

FILE_FIELD = "file"
TEXT_FIELDS = frozenset({"process", "preset", "ttl"})
MAX_FIELD_BYTES = 1024
# Multipart framing around the file: boundaries and part headers.
MULTIPART_OVERHEAD = 64 * 1024
# What aiohttp's multipart reader raises on a body it cannot parse. A client
# that hangs up raises ConnectionResetError instead, which is not caught here.
_MALFORMED = (ValueError, AssertionError, HttpProcessingError, RequestPayloadError)


def malformed() -> BadRequest:
    return BadRequest("Malformed multipart body", code="invalid_multipart")


@contextmanager
def multipart_errors() -> Iterator[None]:
    try:
        yield
    except _MALFORMED:
        raise malformed() from None


class DelimiterScanner:
    """Where a part's body ends, in a stream of reads, without copying the reads.

    `feed` hands back each read's bytes that are certainly the part's (the read
    itself, not a copy, in the common case) and, once the delimiter is seen,
    whatever followed it. Only an end of a read that could be the start of the
    delimiter is held back until the next read says what it was: for random
    media bytes that is rare and a few bytes long.
    """

    def __init__(self, delimiter: bytes) -> None:
        self._delimiter = delimiter
        self._carry = b""  # held back: a possible start of the delimiter

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """(the part's bytes in `data`, the bytes after the delimiter or None if not seen)."""
        if self._carry:
            data = self._carry + data
            self._carry = b""
        found = data.find(self._delimiter)
        if found >= 0:
            return data[:found], data[found + len(self._delimiter) :]
        held = self._possible_start(data)
        if held:
            self._carry = data[-held:]
            return data[:-held], None
        return data, None

    def _possible_start(self, data: bytes) -> int:
        """The length of the longest end of `data` that begins the delimiter (0 if none)."""
        delimiter = self._delimiter
        at = data.find(delimiter[:1], max(0, len(data) - len(delimiter) + 1))
        while at >= 0:
            if delimiter.startswith(data[at:]):
                return len(data) - at
            at = data.find(delimiter[:1], at + 1)
        return 0


class UploadForm:
    """One form: `fields()` first, then `file_chunks()`."""

    def __init__(self, request: web.Request, chunk_size: int) -> None:
        self._request = request
        self._chunk_size = chunk_size
        self._reader: MultipartReader | None = None
        self._file: BodyPartReader | None = None

    async def fields(self) -> tuple[dict[str, str], str]:
        """The text fields before the file, and the file's name as sent.

        Sends the deferred `100 Continue`: call it once the request passed
        every check that does not need the body.
        """
        await send_continue(self._request)
        with multipart_errors():
            self._reader = await self._request.multipart()
        fields: dict[str, str] = {}
        while True:
            part = await self._next()
            if part is None:
                raise BadRequest(f"The form has no '{FILE_FIELD}' field", code="missing_file")
            if not isinstance(part, BodyPartReader):
                raise BadRequest(
                    "Nested multipart bodies are not supported", code="invalid_multipart"
                )
            if part.name == FILE_FIELD:
                self._file = part
                with multipart_errors():
                    return fields, part.filename or "upload"
            if part.name in TEXT_FIELDS:
                raw = await self._read(part, MAX_FIELD_BYTES + 1)
                if len(raw) > MAX_FIELD_BYTES or await self._read(part, 1):
                    raise BadRequest(
                        f"'{part.name}' is too long", code="invalid_field", field=part.name
                    )
                fields[part.name] = raw.decode("utf-8", errors="replace")
            else:
                # Unknown fields are skipped, a chunk at a time under the idle deadline.
                while await self._read(part, self._chunk_size):
                    pass

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes, read straight from the request stream.

        aiohttp's `read_chunk` copies a window of two chunks per call to look for
        the boundary and hands out whatever arrived. Here each read is searched
        where it lies (`DelimiterScanner`), and reads are gathered into chunks
        of `chunk_size` with one join, as a raw PUT's body is: the file's bytes
        are copied once on their way to storage (bench/upload_bench.py).
        """
        assert self._file is not None, "fields() first"
        scanner = DelimiterScanner(b"\r\n--" + self._boundary())
        content = self._request.content
        parts: list[bytes] = []
        have = 0
        while True:
            with multipart_errors():
                data = await within_idle_deadline(
                    self._request, content.read(max(1, self._chunk_size - have))
                )
            if not data:
                raise malformed()  # the body ended before the closing boundary
            body, rest = scanner.feed(data)
            if body:
                parts.append(body)
                have += len(body)
            if rest is not None:
                if parts:
                    yield b"".join(parts)
                await self._after_file(rest)
                return
            if have >= self._chunk_size:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts = []
                have = 0

    async def _after_file(self, rest: bytes) -> None:
        """After the file's delimiter: `--` ends the form; anything else is a field
        after the file, which would arrive after the object is committed."""
        while len(rest) < 2:
            with multipart_errors():
                more = await within_idle_deadline(self._request, self._request.content.read(2))
            if not more:
                raise malformed()
            rest += more
        if rest[:2] == b"--":
            return
        if rest[:2] == b"\r\n":
            raise BadRequest(
                f"'{FILE_FIELD}' must be the last field of the form", code="invalid_multipart"
            )
        raise malformed()

    def _boundary(self) -> bytes:
        # The reader was made, so the header has a boundary (aiohttp checked it).
        mimetype = parse_mimetype(self._request.headers.get(hdrs.CONTENT_TYPE, ""))
        return mimetype.parameters["boundary"].encode("latin-1")

    async def _next(self) -> MultipartReader | BodyPartReader | None:
        assert self._reader is not None
        with multipart_errors():
            return await within_idle_deadline(self._request, self._reader.next())

    async def _read(self, part: BodyPartReader, size: int) -> bytes:
        with multipart_errors():
            return await within_idle_deadline(self._request, part.read_chunk(size))
