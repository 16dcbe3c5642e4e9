"""Connectors that misbehave on purpose, one per case, each on its own loopback port.

In-process (``BadConnectors(cases)`` inside a test's loop) or as a process of its own
(``python -m tests.reconciler.bad_connectors CASE...``, which prints
``{"case": port, ...}`` on one line once every port listens), so that a genisys
started as a real process can be pointed at them. Every path answers the case's way
but ``/capabilities``, which answers 404: no batch extension, so a status is one call.

``stats()`` (``GET /stats`` of the process) tells how many answers each case began and
how many body bytes it managed to send before the client hung up.
"""

import asyncio
import json
import logging
import sys

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

MIB = 1024 * 1024

#: What bottle (the original genisys Docker connector's framework) answers for an
#: undefined service: its default 501 page.
BOTTLE_501 = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html>
    <head>
        <title>Error: 501 Not Implemented</title>
        <style type="text/css">
          html {background-color: #eee; font-family: sans-serif;}
          body {background-color: #fff; border: 1px solid #ddd;
                padding: 15px; margin: 15px;}
          pre {background-color: #eee; border: 1px solid #ddd; padding: 5px;}
        </style>
    </head>
    <body>
        <h1>Error: 501 Not Implemented</h1>
        <p>Sorry, the requested URL <tt>&#039;%(url)s&#039;</tt>
           caused an error:</p>
        <pre>Undefined service: %(service)s.</pre>
    </body>
</html>
"""

#: A JSON error in the connector protocol's shape, with control characters in it.
JSON_ERROR = {"error": {"reason": "BackendUnavailable", "field": "engine",
                        "message": "the engine \x1b[31mis down\x07\nsince 12:00"}}


class _Case(tornado.web.RequestHandler):
    def initialize(self, case, stats):
        self.case = case
        self.stats = stats

    async def get(self, path):
        await self.answer(path)

    async def post(self, path):
        await self.answer(path)

    async def answer(self, path):
        if path == "capabilities":
            self.set_status(404)
            self.finish({"error": {"reason": "NotFound", "message": "no batch extension"}})
            return
        service = path.split("/")[1] if path.startswith("service/") else "?"
        stats = self.stats[self.case]
        stats["answers"] += 1
        if self.case == "big64":
            # 64 MiB, with a Content-Length: the client can refuse it from the head.
            await self.send_json_padding(64 * MIB, declared=True)
        elif self.case == "stream1g":
            # 1 GiB, chunked, made on the fly: never held here either.
            await self.send_json_padding(1024 * MIB, declared=False)
        elif self.case == "hugecount":
            self.finish('{"running_resources": 1%s}' % ("0" * 30))
        elif self.case == "html501":
            self.set_status(501)
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.finish(BOTTLE_501 % {"url": self.request.full_url(), "service": service})
        elif self.case == "jsonerror":
            self.set_status(503)
            self.finish(json.dumps(JSON_ERROR))
        else:
            raise ValueError("unknown case %r" % self.case)

    async def send_json_padding(self, size, *, declared):
        """``{"running_resources": 1, "pad": "xxx..."}`` of ``size`` bytes."""
        head, tail = b'{"running_resources": 1, "pad": "', b'"}'
        chunk = b"x" * (64 * 1024)
        if declared:
            self.set_header("Content-Length", str(size))
        stats = self.stats[self.case]
        try:
            self.write(head)
            sent = len(head)
            while sent < size - len(tail):
                piece = chunk[:size - len(tail) - sent]
                self.write(piece)
                await self.flush()
                sent += len(piece)
                stats["sent"] = max(stats["sent"], sent)
            self.finish(tail)
            stats["completed"] += 1
        except tornado.iostream.StreamClosedError:
            stats["cut"] += 1


class _Stats(tornado.web.RequestHandler):
    def initialize(self, stats):
        self.stats = stats

    def get(self):
        self.finish(self.stats)


class BadConnectors:
    """One server per case on a free loopback port; ``urls[case]``, ``stats()``, ``stop()``."""

    def __init__(self, cases):
        self.stats = {case: {"answers": 0, "sent": 0, "cut": 0, "completed": 0}
                      for case in cases}
        self.servers, self.ports = [], {}
        for case in cases:
            app = tornado.web.Application([
                (r"/stats", _Stats, {"stats": self.stats}),
                (r"/(.*)", _Case, {"case": case, "stats": self.stats}),
            ])
            server = tornado.httpserver.HTTPServer(app)
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server.add_sockets(sockets)
            self.servers.append(server)
            self.ports[case] = sockets[0].getsockname()[1]
        self.urls = {case: "http://127.0.0.1:%d" % port for case, port in self.ports.items()}

    async def stop(self):
        for server in self.servers:
            server.stop()
            await server.close_all_connections()


async def _main(cases):
    logging.getLogger("tornado.access").setLevel(logging.CRITICAL)  # 404s, 501s on purpose
    connectors = BadConnectors(cases)
    print(json.dumps(connectors.ports), flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
