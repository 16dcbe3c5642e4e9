"""A raw reader of a watch (Server-Sent Events over chunked HTTP/1.1) for in-process API
tests: it sends the request on its own socket, so a test can also just close it."""

import asyncio
import json


class Stream:
    """``GET path`` on 127.0.0.1:``port``; ``status``, ``headers``; ``next()`` the next
    message as (event, id, data) or ("comment", None, text); None once the answer ends."""

    def __init__(self, port, path, headers=None):
        self.port = port
        self.path = path
        self.extra = headers or {}
        self.reader = self.writer = None
        self.status = None
        self.headers = {}
        self.body = b""
        self._buffer = b""
        self._ended = False

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = ["GET %s HTTP/1.1" % self.path, "Host: 127.0.0.1"]
        lines += ["%s: %s" % item for item in self.extra.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
        self.status = int(head.split(" ", 2)[1])
        self.headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in
                                                   head.split("\r\n")[1:] if line)}
        if "content-length" in self.headers:  # an error: JSON, not a stream
            self.body = await self.reader.readexactly(int(self.headers["content-length"]))
        return self

    def json(self):
        return json.loads(self.body)

    async def _chunk(self):
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        data = await self.reader.readexactly(size + 2)
        if size == 0:
            self._ended = True
        return data[:-2]

    async def next(self, timeout=20):
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self):
        while b"\n\n" not in self._buffer:
            if self._ended:
                return None
            self._buffer += await self._chunk()
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        fields = {}
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                return "comment", None, line[1:].strip()
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" not in fields:  # the retry: line
            return await self._next()
        return fields.get("event"), int(fields["id"]), json.loads(fields["data"])

    async def until(self, kind, timeout=20):
        """The messages up to and including the first of ``kind`` (comments skipped)."""
        seen = []
        while True:
            message = await self.next(timeout)
            if message is None:
                raise AssertionError("the stream ended before %s: %r" % (kind, seen))
            if message[0] != "comment":
                seen.append(message)
            if message[0] == kind:
                return seen

    def close(self):
        if self.writer is not None:
            self.writer.close()
