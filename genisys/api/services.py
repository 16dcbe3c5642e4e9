"""/service endpoints: the seed's upscale and downscale, plus scale, get, put, delete
and the events of a service."""

from genisys.api.base import APIHandler
from genisys.errors import Invalid
from genisys.model import Service, check_fields, validate_count, validate_name, validate_replicas


class ServicesHandler(APIHandler):
    async def get(self):
        self.send(200, await self.intents.list_services())


class ServiceHandler(APIHandler):
    async def get(self, name):
        view = await self.intents.get_service(validate_name(name, "name"))
        self.send(200, view, version=view["resourceVersion"])

    async def put(self, name):
        validate_name(name, "name")
        body = self.json_body()
        check_fields(body, required=("replicas",), optional=("name", "labels", "managedBy"))
        if "name" in body and body["name"] != name:
            raise Invalid("%r does not match the name in the URL (%r)" % (body["name"], name),
                          field="name")
        replicas = validate_replicas(body["replicas"], maximum=self.intents.max_replicas)
        Service(name=name).with_metadata(body)  # labels and managedBy: checked before writing
        view, created = await self.intents.put_service(name, replicas, metadata=body,
                                                       expect_version=self.if_match())
        self.send(201 if created else 200, view, version=view["resourceVersion"])

    async def delete(self, name):
        view = await self.intents.delete_service(validate_name(name, "name"),
                                                 expect_version=self.if_match())
        self.send(202, view, version=view["resourceVersion"])


class EventsHandler(APIHandler):
    async def get(self, name):
        self.send(200, await self.intents.service_events(validate_name(name, "name")))


class StepHandler(APIHandler):
    """The seed's upscale and downscale: one resource more or less on a compute."""

    def initialize(self, *, step, **deps):
        super().initialize(**deps)
        self.step = {"upscale": self.intents.upscale, "downscale": self.intents.downscale}[step]

    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        check_fields(body, required=("compute",))
        idempotency = self.idempotency(body)
        view = await self.step(name, validate_name(body["compute"], "compute"),
                               idempotency=idempotency)
        self.send_change(view, idempotency)


class ScaleHandler(APIHandler):
    async def post(self, name):
        validate_name(name, "name")
        body = self.json_body()
        check_fields(body, required=("compute", "number"))
        compute = validate_name(body["compute"], "compute")
        number = validate_count(body["number"], "number", self.intents.max_replicas)
        idempotency = self.idempotency(body)
        view = await self.intents.scale(name, compute, number, idempotency=idempotency)
        self.send_change(view, idempotency)


def routes(**deps):
    return [
        (r"/service/?", ServicesHandler, deps),
        (r"/service/([^/]+)/?", ServiceHandler, deps),
        (r"/service/([^/]+)/upscale/?", StepHandler, dict(deps, step="upscale")),
        (r"/service/([^/]+)/downscale/?", StepHandler, dict(deps, step="downscale")),
        (r"/service/([^/]+)/scale/?", ScaleHandler, deps),
        (r"/service/([^/]+)/events/?", EventsHandler, deps),
    ]
