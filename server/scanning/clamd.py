"""A client for clamd's INSTREAM command: stream bytes in, get a verdict out.

The protocol (clamd(8)): send ``zINSTREAM\\0``, then the data as chunks, each
prefixed by its length as a 4-byte big-endian integer, then a zero length.
clamd answers one NUL-terminated line: ``stream: OK``, ``stream: <signature>
FOUND``, or an error (``INSTREAM size limit exceeded. ERROR`` when the stream
passes its StreamMaxLength; clamd then closes the socket, possibly while we
are still sending). Memory stays at one chunk whatever the file's size.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# clamd answers with one short line; anything longer is not clamd.
_MAX_REPLY_BYTES = 4096
_CHUNK_HEADER = struct.Struct("!I")
# clamd's PING answer.
_PONG = b"PONG"


class ClamdError(Exception):
    """clamd could not be reached or gave no verdict; the message says what happened."""


@dataclass(frozen=True, slots=True)
class ScanVerdict:
    infected: bool
    signature: str | None = None  # e.g. "Eicar-Test-Signature" when infected


@dataclass(frozen=True, slots=True)
class ClamdAddress:
    unix_path: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"tcp://{self.host}:{self.port}"


def parse_address(value: str) -> ClamdAddress:
    """``unix:/run/clamav/clamd.ctl`` or ``tcp://127.0.0.1:3310`` (pure)."""
    if value.startswith("unix:"):
        path = value.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError(f"{value!r}: a unix socket needs an absolute path")
        return ClamdAddress(unix_path=path)
    parts = urlsplit(value)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"{value!r} is neither unix:/path nor tcp://host:port")
    return ClamdAddress(host=parts.hostname, port=parts.port)


def parse_reply(reply: bytes) -> ScanVerdict:
    """A verdict from clamd's answer to INSTREAM; ClamdError for anything else (pure)."""
    text = reply.rstrip(b"\0\r\n").decode("utf-8", errors="replace").strip()
    # "stream: " is the name clamd gives the scanned data.
    body = text.removeprefix("stream:").strip()
    if text.startswith("stream:") and body == "OK":
        return ScanVerdict(infected=False)
    if text.startswith("stream:") and body.endswith(" FOUND"):
        return ScanVerdict(infected=True, signature=body.removesuffix(" FOUND").strip())
    raise ClamdError(f"clamd answered {text!r}" if text else "clamd closed without an answer")


class ClamdClient:
    def __init__(self, address: ClamdAddress, *, timeout: float) -> None:
        self.address = address
        self.timeout = timeout

    async def scan(self, chunks: AsyncIterable[bytes]) -> ScanVerdict:
        """Stream ``chunks`` to clamd and return its verdict.

        Raises ClamdError when clamd cannot be reached, fails, or does not
        answer within ``timeout`` seconds (for the whole exchange).
        """
        return parse_reply(await self._exchange(b"zINSTREAM\0", chunks))

    async def ping(self) -> None:
        """Raise ClamdError unless clamd answers PING."""
        reply = await self._exchange(b"zPING\0", None)
        if reply.rstrip(b"\0\n") != _PONG:
            raise ClamdError(f"clamd answered PING with {reply[:100]!r}")

    async def _exchange(self, command: bytes, chunks: AsyncIterable[bytes] | None) -> bytes:
        # Plain non-blocking sockets, not streams: when clamd stops reading
        # (a size limit) it answers and closes, and our next send fails; a
        # stream would then drop the answer, a socket still lets us read it.
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                sock = await self._connect(loop)
                with sock:
                    try:
                        await loop.sock_sendall(sock, command)
                        if chunks is not None:
                            await _send_chunks(loop, sock, chunks)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # clamd stopped listening; it may have said why
                    return await _read_reply(loop, sock)
        except TimeoutError:
            raise ClamdError(
                f"clamd at {self.address} gave no answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise ClamdError(f"cannot talk to clamd at {self.address}: {exc}") from exc

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        candidates: list[tuple[int, Any]]  # (address family, address)
        if self.address.unix_path is not None:
            candidates = [(socket.AF_UNIX, self.address.unix_path)]
        else:
            infos = await loop.getaddrinfo(
                self.address.host, self.address.port, type=socket.SOCK_STREAM
            )
            candidates = [(family, addr) for family, _, _, _, addr in infos]
        error: OSError = OSError(f"no address for {self.address}")
        for family, addr in candidates:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise error


async def _send_chunks(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, chunks: AsyncIterable[bytes]
) -> None:
    async for chunk in chunks:
        if chunk:  # a zero length would end the stream early
            # One chunk in flight at a time: memory stays flat.
            await loop.sock_sendall(sock, _CHUNK_HEADER.pack(len(chunk)) + chunk)
    await loop.sock_sendall(sock, _CHUNK_HEADER.pack(0))


async def _read_reply(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    reply = bytearray()
    try:
        while len(reply) < _MAX_REPLY_BYTES and b"\0" not in reply:
            data = await loop.sock_recv(sock, _MAX_REPLY_BYTES - len(reply))
            if not data:
                break
            reply += data
    except ConnectionResetError:
        pass  # keep what arrived before the reset
    return bytes(reply)
