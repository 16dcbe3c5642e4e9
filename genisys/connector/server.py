"""The connector SDK's HTTP side: a tornado application over a ``Backend``.

The protocol genisys calls (docs/connectors.md, "The protocol"):

* ``GET  /service/<name>/status`` -> ``{"running_resources": N}``
* ``POST /service/<name>/scale`` ``{"number": N}`` -> 200 once the order is taken

plus the definitions of services (``GET``/``POST /service``, ``GET``/``PUT``/
``DELETE /service/<name>``), ``/healthz`` and ``/metrics``; unless turned
off, the batch extension: ``GET /capabilities``, ``POST /batch/status`` and
``POST /batch/scale`` (``genisys.connector.batch``); and, if it is given one,
a capacity, reported in ``GET /capabilities`` and kept by every scale order
(``genisys.connector.capacity``). Handlers only validate and call the backend;
errors leave in the one JSON shape of ``genisys.web``.
"""

import time

import tornado.web

from genisys.connector import IDENTITY_HEADER
from genisys.connector import batch as batching
from genisys.connector.backend import MAX_RESOURCES
from genisys.connector.capacity import CapacityGuard
from genisys.connector.fence import Fence
from genisys.connector.metrics import ConnectorMetrics
from genisys.model import check_fields, validate_count, validate_name
from genisys.web import InFlight, JSONHandler, NotFoundHandler


class ConnectorHandler(JSONHandler):
    """Handlers get the backend and the metrics from the route table."""

    #: True for the handlers of scale orders, which the fence refuses of an old term.
    orders = False

    def initialize(self, *, backend, metrics, endpoint, tracker, fence, auth=None,
                   capacity=None, batch=True):
        super().initialize(tracker=tracker, auth=auth)
        #: The leader terms seen (genisys.connector.fence).
        self.fence = fence
        self.backend = backend
        self.metrics = metrics
        self.endpoint = endpoint
        #: The CapacityGuard of a connector with a capacity, else None.
        self.capacity = capacity
        #: True if the batch extension is offered.
        self.batch = batch

    def prepare(self):
        super().prepare()
        self.fence.check(self.request.headers, order=self.orders)

    def on_finish(self):
        self.metrics.requests.labels(self.endpoint, self.request.method,
                                     str(self.get_status())).inc()
        super().on_finish()


class StatusHandler(ConnectorHandler):
    async def get(self, name):
        validate_name(name, "name")
        await self.backend.answering()
        running = await self.backend.count(name)
        self.send(200, {"running_resources": running})


async def take_scale_order(handler, service, number):
    """One scale order, within the connector's capacity if it has one, timed in the
    scale histogram; the running count it answers.

    The per-service POST and every order of a batch go through here."""
    handler.metrics.count_order(handler.request.headers.get(IDENTITY_HEADER))
    started, outcome = time.monotonic(), "error"
    try:
        if handler.capacity is None:
            running = await handler.backend.scale(service, number)
        else:
            with handler.capacity.order(service, number):
                running = await handler.backend.scale(service, number)
        outcome = "ok"
    finally:
        handler.metrics.scale_seconds.labels(outcome).observe(time.monotonic() - started)
    return running


class ScaleHandler(ConnectorHandler):
    orders = True

    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        check_fields(body, required=("number",))
        number = validate_count(body["number"], "number", MAX_RESOURCES,
                                limit="the connector's limit")
        await self.backend.answering()
        running = await take_scale_order(self, name, number)
        self.send(200, {"running_resources": running, "number": number})


class CapabilitiesHandler(ConnectorHandler):
    async def get(self):
        answer = dict(batching.CAPABILITIES) if self.batch else {}
        if self.capacity is not None:
            answer["capacity"] = self.capacity.report()
        self.send(200, answer)


class BatchStatusHandler(ConnectorHandler):
    max_body_bytes = batching.MAX_BATCH_BODY_BYTES

    async def post(self):
        names = batching.services_to_check(self.json_body())
        await self.backend.answering()
        counted = await self.backend.count_many(names)

        async def count(name):
            if name not in counted:
                return await self.backend.count(name)
            if isinstance(counted[name], Exception):
                raise counted[name]
            return counted[name]
        entries = await batching.for_each("status", names, count)
        self.metrics.count_batch(self.endpoint, entries)
        self.send(200, {"services": entries})


class BatchScaleHandler(ConnectorHandler):
    max_body_bytes = batching.MAX_BATCH_BODY_BYTES
    orders = True

    async def post(self):
        orders = batching.orders_from(self.json_body())
        await self.backend.answering()

        def order(service):
            return take_scale_order(self, service, orders[service])
        if self.capacity is None:
            entries = await batching.for_each("scale", orders, order)
        else:
            entries = {}
            for services in self.capacity.raising_last(orders):
                entries.update(await batching.for_each("scale", services, order))
        self.metrics.count_batch(self.endpoint, entries)
        self.send(200, {"services": entries})


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


def routes(*, batch=True, **deps):
    def route(pattern, handler, endpoint):
        return (pattern, handler, dict(deps, batch=batch, endpoint=endpoint))
    table = [
        route(r"/service/?", DefinitionsHandler, "definitions"),
        route(r"/service/([^/]+)/?", DefinitionHandler, "definition"),
        route(r"/service/([^/]+)/status/?", StatusHandler, "status"),
        route(r"/service/([^/]+)/scale/?", ScaleHandler, "scale"),
        route(r"/healthz", HealthHandler, "healthz"),
        route(r"/metrics", MetricsHandler, "metrics"),
    ]
    if batch or deps.get("capacity") is not None:
        table.append(route(r"/capabilities", CapabilitiesHandler, "capabilities"))
    if batch:  # without it these paths are unknown: a 404 tells genisys to go per service
        table += [
            route(r"/batch/status", BatchStatusHandler, "batch_status"),
            route(r"/batch/scale", BatchScaleHandler, "batch_scale"),
        ]
    return table


def make_connector_app(backend, *, tracker=None, metrics=None, auth=None, batch=True,
                       capacity=None, fence=None):
    """The connector's tornado Application over ``backend`` (already started).

    ``auth`` (a ``genisys.auth.Authenticator``): every request but /healthz must
    carry one of its tokens (the compute's ``token`` in genisys). ``batch``: offer
    the batch extension (False: /batch/* answer 404, and /capabilities too unless
    there is a capacity). ``capacity``: the most resources the connector runs at
    once, over all its services (None: no limit). ``fence``: the ``Fence`` of leaders'
    terms (default: one in memory).

    Batch bodies may be up to ``genisys.connector.batch.MAX_BATCH_BODY_BYTES``: an
    HTTPServer in front of the app needs a ``max_body_size`` above that."""
    tracker = tracker or InFlight()
    metrics = metrics or ConnectorMetrics()
    guard = CapacityGuard(backend, capacity) if capacity is not None else None
    deps = {"backend": backend, "metrics": metrics, "tracker": tracker, "auth": auth,
            "capacity": guard, "fence": fence if fence is not None else Fence()}
    app = tornado.web.Application(
        routes(batch=batch, **deps),
        default_handler_class=UnknownPathHandler,
        default_handler_args=dict(deps, endpoint="unknown"),
    )
    app.tracker = tracker
    app.metrics = metrics
    app.backend = backend
    return app
