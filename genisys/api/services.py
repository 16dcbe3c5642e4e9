"""/service endpoints: the seed's upscale and downscale, plus scale, get, put, delete,
rebalance and the events of a service. Each handler parses its body into its model
(``genisys.model``), calls one function of the intent layer and sends the answer."""

from genisys.api.base import APIHandler
from genisys.api.watch import (
    HEARTBEAT_SECONDS,
    Names,
    names_asked,
    query_int,
    watch_arguments,
    watch_service,
    watch_services,
)
from genisys.model import (
    ScaleRequest,
    ServiceUpdate,
    StepRequest,
    check_fields,
    parse,
    validate_name,
)

#: Most services a page of GET /service?limit= holds.
MAX_PAGE = 1000


def heartbeat(handler):
    """Seconds between a watch's keep-alives (the app's ``watch_heartbeat`` setting)."""
    return handler.application.settings.get("watch_heartbeat", HEARTBEAT_SECONDS)


class ServicesHandler(APIHandler):
    """Every service; ?q=, ?after=, ?before=, ?limit= a page of them (10,000 services make a
    large answer); ?watch=1 the changes as they happen (``genisys.api.watch``)."""

    async def get(self):
        watch, timeout, since = watch_arguments(self)
        names = names_asked(self)
        limit = query_int(self, "limit", minimum=1, maximum=MAX_PAGE)
        if watch:
            await watch_services(self, names=names, since=since, timeout=timeout,
                                 heartbeat=heartbeat(self))
            self.finish()
            return
        if names == Names() and limit is None:
            self.send(200, await self.intents.list_services())
            return
        views, total, revision = await self.intents.page_services(
            q=names.q, after=names.after, before=names.before, limit=limit)
        # How many match in all, and the revision to watch from (?resourceVersion=).
        self.set_header("Genisys-Total", str(total))
        self.set_header("Genisys-Revision", str(revision))
        self.send(200, views)


class ServiceHandler(APIHandler):
    async def get(self, name):
        validate_name(name, "name")
        watch, timeout, _ = watch_arguments(self)
        if watch:
            await watch_service(self, name, timeout=timeout, heartbeat=heartbeat(self))
            self.finish()
            return
        view = await self.intents.get_service(name)
        self.send(200, view, version=view["resourceVersion"])

    async def put(self, name):
        validate_name(name, "name")
        update = parse(ServiceUpdate, self.json_body(),
                       maximum=self.intents.max_replicas).named(name)
        view, created = await self.intents.put_service(name, update.replicas, metadata=update,
                                                       expect_version=self.if_match())
        await self.send_written(201 if created else 200, view, version=view["resourceVersion"])

    async def delete(self, name):
        view = await self.intents.delete_service(validate_name(name, "name"),
                                                 expect_version=self.if_match())
        await self.send_written(202, view, version=view["resourceVersion"])


class EventsHandler(APIHandler):
    async def get(self, name):
        self.send(200, await self.intents.service_events(validate_name(name, "name")))


class StepHandler(APIHandler):
    """The seed's upscale and downscale: one resource more or less on a compute."""

    def initialize(self, *, step, **deps):
        super().initialize(**deps)
        self.step_name = step

    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        request = parse(StepRequest, body)
        idempotency = self.idempotency(body)
        # Looked up now: a dry run's intent layer is set after initialize().
        step = getattr(self.intents, self.step_name)
        view = await step(name, request.get("compute"), idempotency=idempotency)
        await self.send_change(view, idempotency)


class ScaleHandler(APIHandler):
    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        request = parse(ScaleRequest, body, maximum=self.intents.max_replicas)
        idempotency = self.idempotency(body)
        view = await self.intents.scale(name, request.get("compute"), request["number"],
                                        idempotency=idempotency)
        await self.send_change(view, idempotency)


class RebalanceHandler(APIHandler):
    """A placed service's assignment moves to its shares, maxSurge at a time."""

    async def post(self, name):
        validate_name(name, "name")
        if self.request.body_arguments or self._body.strip():
            check_fields(self.json_body())  # none or {}: a rebalance takes no fields
        view = await self.intents.rebalance(name, expect_version=self.if_match())
        await self.send_written(202, view, version=view["resourceVersion"])


def routes(**deps):
    return [
        (r"/service/?", ServicesHandler, deps),
        (r"/service/([^/]+)/?", ServiceHandler, deps),
        (r"/service/([^/]+)/upscale/?", StepHandler, dict(deps, step="upscale")),
        (r"/service/([^/]+)/downscale/?", StepHandler, dict(deps, step="downscale")),
        (r"/service/([^/]+)/scale/?", ScaleHandler, deps),
        (r"/service/([^/]+)/events/?", EventsHandler, deps),
        (r"/service/([^/]+)/rebalance/?", RebalanceHandler, deps),
    ]
