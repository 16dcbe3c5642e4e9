"""The genisys HTTP API: a tornado application over the intent layer.

Handlers only parse, validate and call one function of ``genisys.intents``;
they never talk to connectors (the reconciler does).
"""

import tornado.web

from genisys.api import computes, health, services
from genisys.api import metrics as metrics_api
from genisys.api.base import InFlight, NotFoundHandler
from genisys.metrics import Metrics


def make_app(intents, *, tracker=None, metrics=None, auth=None):
    """The API application; ``auth`` (an Authenticator) makes every endpoint but
    the health checks require a token."""
    tracker = tracker or InFlight()
    deps = {"intents": intents, "tracker": tracker, "auth": auth}
    app = tornado.web.Application(
        computes.routes(**deps) + services.routes(**deps) + health.routes(**deps)
        + metrics_api.routes(metrics=metrics or Metrics(), **deps),
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
    )
    app.tracker = tracker
    return app
