"""A TCP proxy on loopback that can cut a connection mid-request, and slow it down.

Real clients (tuspy) talk to the server through it, so a "dropped
connection" in a test is a real one: the client sees a reset in the middle
of a PATCH body, the server a body that stops short.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    def __init__(self, target_port: int, *, bytes_per_second: float | None = None) -> None:
        self.target_port = target_port
        self.bytes_per_second = bytes_per_second
        self.port = 0
        self.forwarded = 0  # client → server bytes, over every connection
        self.cuts = 0
        self._cut_at: int | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def cut_at(self, forwarded: int) -> None:
        """Cut the connection that carries client → server byte number `forwarded`, once."""
        self._cut_at = forwarded

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer, upstream=True)),
            asyncio.ensure_future(self._pump(up_reader, writer, upstream=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for w in (writer, up_writer):
                w.transport.abort()  # a hard cut: no orderly close
                self._writers.discard(w)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.discard(task)

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while data := await src.read(16 * 1024):
            if upstream:
                if self._cut_at is not None and self.forwarded + len(data) >= self._cut_at:
                    keep = self._cut_at - self.forwarded
                    dst.write(data[:keep])
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()
                    self.forwarded += keep
                    self._cut_at = None
                    self.cuts += 1
                    raise _Cut()
                self.forwarded += len(data)
                if self.bytes_per_second:
                    await asyncio.sleep(len(data) / self.bytes_per_second)
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()


class _Cut(Exception):
    pass
