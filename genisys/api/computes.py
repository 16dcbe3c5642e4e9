"""/compute and /compute/<name>: the seed's compute endpoints, plus list and delete."""

from genisys.api.base import APIHandler
from genisys.model import Compute, public_compute, validate_name


class ComputesHandler(APIHandler):
    async def get(self):
        self.send(200, await self.intents.list_computes())

    async def post(self):
        compute = Compute.from_body(self.json_body())
        record = await self.intents.create_compute(compute)
        self.set_header("Location", "/compute/%s" % compute.name)
        await self.send_written(201, public_compute(record.value), version=record.version)


class ComputeHandler(APIHandler):
    async def get(self, name):
        record = await self.intents.get_compute(validate_name(name, "name"))
        self.send(200, public_compute(record.value), version=record.version)

    async def put(self, name):
        validate_name(name, "name")
        compute = Compute.from_body(self.json_body(), name=name)
        record, created = await self.intents.put_compute(compute, expect_version=self.if_match())
        await self.send_written(201 if created else 200, public_compute(record.value),
                                version=record.version)

    async def delete(self, name):
        record = await self.intents.delete_compute(validate_name(name, "name"),
                                                   expect_version=self.if_match())
        await self.send_written(200, public_compute(record.value))


class ComputeConditionHandler(APIHandler):
    async def get(self, name):
        self.send(200, await self.intents.compute_condition(validate_name(name, "name")))


def routes(**deps):
    return [
        (r"/compute/?", ComputesHandler, deps),
        (r"/compute/([^/]+)/status/?", ComputeConditionHandler, deps),
        (r"/compute/([^/]+)/?", ComputeHandler, deps),
    ]
