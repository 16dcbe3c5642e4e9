"""Draining a server (genisys.web.Server and drain): kept-alive connections are closed
only between requests, and a request begun is answered before its connection closes."""

import asyncio
import socket

import pytest
import tornado.web

from genisys.web import InFlight, JSONHandler, Server, drain


class Slow(JSONHandler):
    """POST waits for ``gate`` and then counts itself applied; GET answers at once."""

    def initialize(self, *, gate, applied, **deps):
        super().initialize(**deps)
        self.gate = gate
        self.applied = applied

    async def get(self):
        self.send(200, {"ok": True})

    async def post(self):
        await self.gate.wait()
        self.applied.append(self.request.path)
        self.send(202, {"applied": len(self.applied)})


async def read_response(reader):
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status = int(head.split(" ", 2)[1])
    headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if line)
    body = await reader.readexactly(int(headers["Content-Length"]))
    return status, headers, body


REQUEST = (b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: 2\r\n\r\n{}")


@pytest.fixture
def served(io_loop):
    """A Server on a free loopback port over the Slow handler: (server, port, tracker,
    gate, applied)."""
    tracker, gate, applied = InFlight(), asyncio.Event(), []
    app = tornado.web.Application([(r"/.*", Slow, {"tracker": tracker, "gate": gate,
                                                    "applied": applied})])
    server = Server(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server.add_socket(sock)
    yield server, sock.getsockname()[1], tracker, gate, applied
    server.stop()


@pytest.mark.gen_test(timeout=30)
async def test_drain_answers_the_request_begun_and_closes_idle_connections(served):
    server, port, tracker, gate, applied = served
    # idle: kept alive after one answered request; partial: half its headers sent;
    # busy: its request is being handled when the drain begins.
    idle = await asyncio.open_connection("127.0.0.1", port)
    idle[1].write(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, _ = await read_response(idle[0])
    assert status == 200 and "Connection" not in headers
    partial = await asyncio.open_connection("127.0.0.1", port)
    partial[1].write(REQUEST[:30])
    busy = await asyncio.open_connection("127.0.0.1", port)
    busy[1].write(REQUEST)
    await partial[1].drain()
    while tracker.count < 1 or len(server._connections) < 3:
        await asyncio.sleep(0.01)

    draining = asyncio.ensure_future(drain(server, tracker, grace=20))
    # The idle and the partial connections close without an answer...
    assert await asyncio.wait_for(idle[0].read(), 10) == b""
    assert await asyncio.wait_for(partial[0].read(), 10) == b""
    assert not draining.done()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    # ... and the busy one gets its answer, then closes.
    gate.set()
    status, headers, body = await asyncio.wait_for(read_response(busy[0]), 10)
    assert (status, headers["Connection"], body) == (202, "close", b'{"applied":1}\n')
    assert await asyncio.wait_for(busy[0].read(), 10) == b""
    await asyncio.wait_for(draining, 10)
    assert applied == ["/slow"]  # the partial request was never handled
    assert not server._connections and tracker.count == 0
    for _, writer in (idle, partial, busy):
        writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_request_already_in_behind_the_one_being_handled_is_served_too(served):
    """A client pipelines a second request behind one being handled when the drain
    begins: the second is already read, so it is served to the end (closing the
    connection then would not stop tornado handling it from its buffer, unanswered)."""
    server, port, tracker, gate, applied = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST + REQUEST)
    while tracker.count < 1:
        await asyncio.sleep(0.01)
    draining = asyncio.ensure_future(drain(server, tracker, grace=20))
    gate.set()
    for count in (1, 2):
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        assert (status, headers["Connection"], body) == (202, "close",
                                                         b'{"applied":%d}\n' % count)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    await asyncio.wait_for(draining, 10)
    assert applied == ["/slow", "/slow"]
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_request_that_outlasts_the_grace_is_cut_off_and_said_so(served, caplog):
    server, port, tracker, gate, applied = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    while tracker.count < 1:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(drain(server, tracker, grace=0.2), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, unanswered
    assert "some connections did not finish their request within 0.2s: closing them" \
        in caplog.text
    assert "1 request(s) still running after 0.2s" in caplog.text
    assert not server._connections and applied == []
    gate.set()  # the handler finishes, with no one left to answer
    while tracker.count:
        await asyncio.sleep(0.01)
    assert applied == ["/slow"]
    writer.close()
