"""The API phase's ceiling: a tornado handler that answers with no work.

Tornado on plain asyncio (no uvloop, whatever genisys itself runs on), one
handler for every path and method, reading the body and answering ``{}``::

    python bench/noop.py --port 0

It says ``noop listening on http://127.0.0.1:PORT`` once it listens, and
stops on SIGTERM. What the load generator gets from it on a machine is the
most any tornado server can answer there: genisys' request rates are read
as shares of it. Standard library and tornado only.
"""

import argparse
import asyncio
import signal
import sys

import tornado.httpserver
import tornado.netutil
import tornado.web


class NoWork(tornado.web.RequestHandler):
    def _answer(self, *args):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(b"{}\n")

    get = post = put = delete = _answer


async def serve(bind, port):
    app = tornado.web.Application([(r"/.*", NoWork)])
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(port, address=bind)
    server.add_sockets(sockets)
    print("noop listening on http://%s:%d" % (bind, sockets[0].getsockname()[1]), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.bind, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
