"""The genisys HTTP API: a tornado application over the intent layer.

Handlers only parse, validate and call one function of ``genisys.intents``;
they never talk to connectors (the reconciler does).
"""

import tornado.web

from genisys import ui
from genisys.api import audit_trail, computes, health, openapi, plan, prometheus, services
from genisys.api.base import InFlight, NotFoundHandler
from genisys.api.watch import HEARTBEAT_SECONDS
from genisys.audit import AuditLog
from genisys.metrics import Metrics


def make_app(intents, *, tracker=None, metrics=None, auth=None, audit=None, checks=None,
             watch_heartbeat=HEARTBEAT_SECONDS, connectors=None):
    """The API application; ``auth`` (an Authenticator) makes every endpoint but
    the health checks require a token; ``audit`` records every change asked for;
    ``checks`` ({name: function returning (ready, detail)}) add to /readyz;
    ``watch_heartbeat``: seconds of silence before a watch sends a keep-alive;
    ``connectors``: a function saying what the reconciler knows of each connector
    ({URL: {"batch", "capacity"}}), which the dashboard shows."""
    tracker = tracker or InFlight()
    audit = audit or AuditLog(intents.store)
    deps = {"intents": intents, "tracker": tracker, "auth": auth, "audit": audit}
    app = tornado.web.Application(
        computes.routes(**deps) + services.routes(**deps) + health.routes(checks=checks, **deps)
        + prometheus.routes(metrics=metrics or Metrics(), **deps)
        + openapi.routes(**deps) + audit_trail.routes(**deps) + plan.routes(**deps)
        + ui.routes(connectors=connectors or dict, **deps),
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        watch_heartbeat=watch_heartbeat,
        **ui.SETTINGS,
    )
    app.tracker = tracker
    app.audit = audit
    return app
