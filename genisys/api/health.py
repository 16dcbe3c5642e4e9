"""/healthz (the process is alive) and /readyz (it can serve: the store answers)."""

from genisys.api.base import APIHandler
from genisys.errors import StoreUnavailable


class HealthHandler(APIHandler):
    public = True  # probes carry no token

    async def get(self):
        self.send(200, {"status": "ok"})


class ReadyHandler(APIHandler):
    public = True

    async def get(self):
        try:
            await self.intents.store.check()
        except StoreUnavailable as e:
            self.send(503, {"status": "unavailable", "checks": {"store": str(e)}})
            return
        self.send(200, {"status": "ready", "checks": {"store": "ok"}})


def routes(**deps):
    return [
        (r"/healthz", HealthHandler, deps),
        (r"/readyz", ReadyHandler, deps),
    ]
