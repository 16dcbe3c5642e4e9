"""A tornado application served on a free loopback port from a thread of its own, for
the tests whose own code blocks (a fault proxy in front of moto, a throttling
connector) while a real genisys, in another process, calls it."""

import asyncio
import threading

import tornado.httpserver
import tornado.netutil


class ThreadedServer:
    """``start()`` serves ``make_app()`` (called in the server's thread, on its loop) and
    sets ``url``; ``stop()`` closes every connection and ends the thread."""

    def __init__(self, make_app, *, name="test-server"):
        self._make_app = make_app
        self._name = name
        self.url = None
        self.loop = None
        self._thread = None
        self._server = None

    def start(self):
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.url = "http://127.0.0.1:%d" % sockets[0].getsockname()[1]
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self._server = tornado.httpserver.HTTPServer(self._make_app())
            self._server.add_sockets(sockets)
            ready.set()
            self.loop.run_forever()
            self.loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise AssertionError("%s did not start" % self._name)
        return self

    def stop(self):
        if self.loop is None:
            return

        async def shutdown():
            self._server.stop()
            await self._server.close_all_connections()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop = None
