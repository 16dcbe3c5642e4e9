"""/healthz (the process is alive) and /readyz (it can serve: the store answers,
and every other readiness check of the process passes)."""

from genisys.api.base import APIHandler
from genisys.errors import StoreUnavailable


class HealthHandler(APIHandler):
    public = True  # probes carry no token

    async def get(self):
        self.send(200, {"status": "ok"})


class ReadyHandler(APIHandler):
    public = True

    def initialize(self, *, checks=None, **deps):
        super().initialize(**deps)
        #: name -> function returning (ready, what to show): more readiness checks
        #: than the store's (the manifests folder in sidecar mode).
        self.checks = checks or {}

    async def get(self):
        ready, checks = True, {}
        try:
            await self.intents.store.check()
            checks["store"] = "ok"
        except StoreUnavailable as e:
            ready, checks["store"] = False, str(e)
        for name, check in self.checks.items():
            ok, checks[name] = check()
            ready = ready and ok
        self.send(200 if ready else 503,
                  {"status": "ready" if ready else "unavailable", "checks": checks})


def routes(*, checks=None, **deps):
    return [
        (r"/healthz", HealthHandler, deps),
        (r"/readyz", ReadyHandler, dict(deps, checks=checks)),
    ]
