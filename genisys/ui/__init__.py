"""The dashboard at /ui, served by genisys itself (docs/dashboard.md).

Two pages (the overview, a service's page), rendered from tornado templates that hold
no data at all: the browser's script (``static/app.js``, plain JavaScript, no build
step) reads everything from the API with the operator's token, and follows the
API's watches (``genisys.api.watch``) to update the rows that changed. So the pages
and their static files need no token, and everything they show is as protected as
the API itself. One endpoint is the dashboard's own, behind the same tokens:
``/ui/summary.json``, the computes with what the services hold on each, and who the
token is (a read-only one sees the actions disabled; the API refuses them anyway).

Every answer of /ui carries a Content-Security-Policy that allows scripts, styles and
connections from genisys only, and no inline script or style: a name or a message
that smuggled markup in could not run it even if it were ever put into the page as
markup (the script only ever sets ``textContent``).
"""

import os

import tornado.web

from genisys.api.base import APIHandler
from genisys.intents import COMPUTES, HEALTH, SERVICES, STATUS
from genisys.model import validate_name

HERE = os.path.dirname(os.path.abspath(__file__))

#: No inline script or style, nothing from elsewhere, no framing, no plugin.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


def set_security_headers(handler):
    handler.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")


class PageHandler(tornado.web.RequestHandler):
    """A page: its template, with no data in it (the script fetches the data)."""

    def initialize(self, *, template):
        self.template = template

    def set_default_headers(self):
        set_security_headers(self)
        self.set_header("Cache-Control", "no-store")

    def get(self, name=None):
        if name is not None:
            validate_name(name, "name")  # a bad name is a 400 of the API's kind
        self.render(self.template, service=name or "")

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish("%d: not a page of the dashboard\n" % status_code)

    def _handle_request_exception(self, e):
        # A name the rules refuse is the reader's mistake, not a fault of the server.
        self.send_error(400 if not isinstance(e, tornado.web.HTTPError) else e.status_code)


class StaticHandler(tornado.web.StaticFileHandler):
    def set_default_headers(self):
        set_security_headers(self)


class SummaryHandler(APIHandler):
    """What the overview shows of the computes: each with its connector, how many
    services want or run resources on it, how many resources are desired and running
    there, and its batch size and capacity where known (what the reconciler learnt
    from the connector's /capabilities, or the capacity a placement recorded); and who
    the token is."""

    def initialize(self, *, connectors, **deps):
        super().initialize(**deps)
        self.connectors = connectors

    async def get(self):
        computes = (await self.intents.store.list(COMPUTES)).records
        specs = (await self.intents.store.list(SERVICES)).records
        statuses = (await self.intents.store.list(STATUS)).records
        # Each compute's condition, as the reconciler stored it (none yet: Unknown).
        health = {r.key[len(HEALTH):]: r.value.get("condition")
                  for r in (await self.intents.store.list(HEALTH)).records}
        summary = {r.value["name"]: {"name": r.value["name"], "connector": r.value["connector"],
                                     "services": 0, "desired": 0, "running": 0,
                                     "capacity": None, "batch": None,
                                     "health": health.get(r.value["name"])}
                   for r in computes}
        for record in statuses:
            status = record.value
            for compute, entry in status.get("computes", {}).items():
                row = summary.get(compute)
                if row is None:
                    continue
                if entry.get("desired", 0) > 0 or (entry.get("running") or 0) > 0:
                    row["services"] += 1
                row["desired"] += entry.get("desired", 0)
                row["running"] += entry.get("running") or 0
            for compute, reported in ((status.get("placement") or {}).get("capacity")
                                      or {}).items():
                if compute in summary:
                    summary[compute]["capacity"] = reported.get("total")
        known = self.connectors()
        for row in summary.values():
            learnt = known.get(row["connector"])
            if learnt is not None:
                row["batch"] = learnt["batch"]
                if learnt["capacity"] is not None:
                    row["capacity"] = learnt["capacity"]
        user = self.current_user
        self.send(200, {
            "computes": [summary[name] for name in sorted(summary)],
            "services": len(specs),
            # With no tokens, anyone who reaches genisys (loopback only) may change things.
            "token": {"name": user.name, "role": user.role} if user else None,
            "canWrite": user is None or user.role == "admin",
        })


def routes(*, connectors, **deps):
    static = os.path.join(HERE, "static")
    return [
        (r"/ui/?", PageHandler, {"template": "overview.html"}),
        (r"/ui/service/([^/]+)/?", PageHandler, {"template": "service.html"}),
        (r"/ui/static/(.+)", StaticHandler, {"path": static}),
        (r"/ui/summary\.json", SummaryHandler, dict(deps, connectors=connectors)),
    ]


#: The Application settings the pages need.
SETTINGS = {"template_path": os.path.join(HERE, "templates")}
