"""An in-process connector on a loopback port, whose behaviour a test sets.

It speaks the real protocol over real HTTP; a test flips ``mode`` to make it
answer 500, garbage, 404 or hang, and reads ``calls`` to see what genisys
asked. ``running`` is what it reports, so a test can simulate drift.
"""

import asyncio
import collections
import json
import time

import tornado.httpserver
import tornado.netutil
import tornado.web

OK, ERROR_500, GARBAGE, HANG, NOT_FOUND = "ok", "500", "garbage", "hang", "404"
WRONG_SHAPE = "wrong-shape"


class _Handler(tornado.web.RequestHandler):
    def initialize(self, fake):
        self.fake = fake

    async def misbehave(self):
        self.fake.peers.add(self.request.connection.stream.socket.getpeername())
        self.fake.in_flight += 1
        self.fake.loads.append(self.fake.in_flight)
        self.fake.most_in_flight = max(self.fake.most_in_flight, self.fake.in_flight)
        try:
            return await self._misbehave()
        finally:
            self.fake.in_flight -= 1

    async def _misbehave(self):
        mode = self.fake.mode
        if self.fake.serial:
            async with self.fake.one_at_a_time:
                await asyncio.sleep(self.fake.delay)
        elif self.fake.slow_above is not None and self.fake.in_flight > self.fake.slow_above:
            await asyncio.sleep(2 * self.fake.delay)
        elif self.fake.delay:
            await asyncio.sleep(self.fake.delay)
        if mode == WRONG_SHAPE:
            self.finish(self.fake.body)
            return True
        if mode == HANG:
            await self.fake.released.wait()
            return True
        if mode == ERROR_500:
            self.set_status(500)
            self.finish('{"error": {"reason": "InternalError", "message": "disk on fire"}}')
            return True
        if mode == GARBAGE:
            self.finish("<html>this is not JSON</html>")
            return True
        if mode == NOT_FOUND:
            self.set_status(404)
            self.finish('{"error": {"reason": "ServiceNotDefined", "message": "no such service"}}')
            return True
        return False


class StatusHandler(_Handler):
    async def get(self, service):
        self.fake.calls.append((time.monotonic(), "status", service, None))
        if not await self.misbehave():
            self.finish({"running_resources": self.fake.running[service]})


class ScaleHandler(_Handler):
    async def post(self, service):
        number = json.loads(self.request.body)["number"]
        self.fake.calls.append((time.monotonic(), "scale", service, number))
        if not await self.misbehave():
            self.fake.running[service] = number
            if self.fake.terse_scale:
                self.finish("")  # like the seed's connectors: a bare 200
            else:
                self.finish({"running_resources": number})


class FakeConnector:
    def __init__(self, *, ssl_options=None):
        self.mode = OK
        self.running = collections.Counter()
        self.calls = []
        self.released = asyncio.Event()
        #: Client addresses seen: one per connection the client opened.
        self.peers = set()
        self.in_flight = self.most_in_flight = 0
        #: Calls in flight when each call arrived (itself included), in order.
        self.loads = []
        #: Seconds every call waits before answering.
        self.delay = 0.0
        #: Serve one call at a time, each taking ``delay`` (like the seed's bottle
        #: connector): the others wait in line.
        self.serial = False
        self.one_at_a_time = asyncio.Lock()
        #: A call that arrives with more than this many in flight takes twice ``delay``.
        self.slow_above = None
        #: What WRONG_SHAPE answers.
        self.body = "{}"
        #: Answer scale with an empty 200, not the count: genisys must check.
        self.terse_scale = False
        app = tornado.web.Application([
            (r"/service/([^/]+)/status", StatusHandler, {"fake": self}),
            (r"/service/([^/]+)/scale", ScaleHandler, {"fake": self}),
        ])
        self.server = tornado.httpserver.HTTPServer(app, ssl_options=ssl_options)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if ssl_options else "http", self.port)

    def scales(self, service=None):
        return [n for _, op, s, n in self.calls if op == "scale" and service in (None, s)]

    def count(self, op, service=None):
        return sum(1 for _, o, s, _ in self.calls if o == op and service in (None, s))

    async def stop(self):
        self.released.set()
        self.server.stop()
        await self.server.close_all_connections()
