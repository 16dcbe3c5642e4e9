"""The connector SDK's HTTP side: a tornado application over a ``Backend``.

The protocol genisys calls (DESIGN.md, "Connector protocol"):

* ``GET  /service/<name>/status`` -> ``{"running_resources": N}``
* ``POST /service/<name>/scale`` ``{"number": N}`` -> 200 once the order is taken

plus the definitions of services (``GET``/``POST /service``, ``GET``/``PUT``/
``DELETE /service/<name>``), ``/healthz`` and ``/metrics``. Handlers only
validate and call one backend method; errors leave in the one JSON shape of
``genisys.web``.
"""

import time

import tornado.web

from genisys.connector.backend import MAX_RESOURCES
from genisys.connector.metrics import ConnectorMetrics
from genisys.model import check_fields, validate_count, validate_name
from genisys.web import InFlight, JSONHandler, NotFoundHandler


class ConnectorHandler(JSONHandler):
    """Handlers get the backend and the metrics from the route table."""

    def initialize(self, *, backend, metrics, endpoint, tracker, auth=None):
        super().initialize(tracker=tracker, auth=auth)
        self.backend = backend
        self.metrics = metrics
        self.endpoint = endpoint

    def on_finish(self):
        self.metrics.requests.labels(self.endpoint, self.request.method,
                                     str(self.get_status())).inc()
        super().on_finish()


class StatusHandler(ConnectorHandler):
    async def get(self, name):
        running = await self.backend.count(validate_name(name, "name"))
        self.send(200, {"running_resources": running})


class ScaleHandler(ConnectorHandler):
    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        check_fields(body, required=("number",))
        number = validate_count(body["number"], "number", MAX_RESOURCES,
                                limit="the connector's limit")
        started, outcome = time.monotonic(), "error"
        try:
            running = await self.backend.scale(name, number)
            outcome = "ok"
        finally:
            self.metrics.scale_seconds.labels(outcome).observe(time.monotonic() - started)
        self.send(200, {"running_resources": running, "number": number})


class DefinitionsHandler(ConnectorHandler):
    async def get(self):
        definitions = await self.backend.list_definitions()
        self.send(200, {name: d.to_json() for name, d in definitions.items()})

    async def post(self):
        definition = self.backend.definition_class.from_body(self.json_body())
        await self.backend.create_definition(definition)
        self.set_header("Location", "/service/%s" % definition.name)
        self.send(201, definition.to_json())


class DefinitionHandler(ConnectorHandler):
    async def get(self, name):
        definition = await self.backend.get_definition(validate_name(name, "name"))
        self.send(200, definition.to_json())

    async def put(self, name):
        validate_name(name, "name")
        definition = self.backend.definition_class.from_body(self.json_body(), name=name)
        created = await self.backend.put_definition(definition)
        self.send(201 if created else 200, definition.to_json())

    async def delete(self, name):
        definition = await self.backend.delete_definition(validate_name(name, "name"))
        self.send(200, definition.to_json())


class HealthHandler(ConnectorHandler):
    public = True  # probes carry no token

    async def get(self):
        self.send(200, {"status": "ok"})


class MetricsHandler(ConnectorHandler):
    async def get(self):
        self.metrics.set_resources(self.backend.snapshot())
        self.set_header("Content-Type", self.metrics.content_type)
        self.finish(self.metrics.render())


class UnknownPathHandler(ConnectorHandler, NotFoundHandler):
    """A JSON 404 for every other path, counted like any request."""


def routes(**deps):
    def route(pattern, handler, endpoint):
        return (pattern, handler, dict(deps, endpoint=endpoint))
    return [
        route(r"/service/?", DefinitionsHandler, "definitions"),
        route(r"/service/([^/]+)/?", DefinitionHandler, "definition"),
        route(r"/service/([^/]+)/status/?", StatusHandler, "status"),
        route(r"/service/([^/]+)/scale/?", ScaleHandler, "scale"),
        route(r"/healthz", HealthHandler, "healthz"),
        route(r"/metrics", MetricsHandler, "metrics"),
    ]


def make_connector_app(backend, *, tracker=None, metrics=None, auth=None):
    """The connector's tornado Application over ``backend`` (already started).

    ``auth`` (a ``genisys.auth.Authenticator``): every request but /healthz must
    carry one of its tokens (the compute's ``token`` in genisys)."""
    tracker = tracker or InFlight()
    metrics = metrics or ConnectorMetrics()
    deps = {"backend": backend, "metrics": metrics, "tracker": tracker, "auth": auth}
    app = tornado.web.Application(
        routes(**deps),
        default_handler_class=UnknownPathHandler,
        default_handler_args=dict(deps, endpoint="unknown"),
    )
    app.tracker = tracker
    app.metrics = metrics
    app.backend = backend
    return app
