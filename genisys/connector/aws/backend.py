"""The AWS backend: the resources of a service are EC2 instances, or an Auto Scaling group's.

A definition says which (``genisys.connector.aws.definition``): instances the
connector launches itself (``genisys.connector.aws.instances``, counted by
their tags and the in-flight ledger), or the instances of a group whose
desired capacity it sets (``genisys.connector.aws.groups``).

The state directory holds the definitions and the in-flight ledger, and its
lock keeps a second connector off them. At start, launches a previous
connector wrote but never saw answered are replayed with their ClientTokens in
the background, so a crash between the ledger and the call, or during it,
never launches twice nor leaves the launch undone.

Capacity (``genisys.connector.capacity``): without ``--capacity``, the
account's ``max-instances`` attribute (DescribeAccountAttributes), if AWS
tells it at start.
"""

import asyncio
import logging

from genisys.connector.aws.api import Aws, explain
from genisys.connector.aws.definition import AwsDefinition
from genisys.connector.aws.groups import GroupsMode, counted
from genisys.connector.aws.instances import TAG_CONNECTOR, InstancesMode
from genisys.connector.aws.ledger import Ledger
from genisys.connector.backend import Backend
from genisys.connector.statedir import StateDir
from genisys.errors import Conflict, GenisysError, StartupError
from genisys.model import validate_name
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

#: The version of the state file this code writes and reads.
STATE_VERSION = 1
#: Seconds between two tries of the start-up replay while AWS does not answer it.
REPLAY_RETRY = (1.0, 30.0)


class AwsBackend(Backend):
    name = "aws"
    requires_definitions = True
    definition_class = AwsDefinition
    definition_hint = ('{"imageId": "ami-...", "instanceType": "t3.micro"} or '
                       '{"autoScalingGroup": "NAME"}')

    def __init__(self, *, state_dir, region=None, endpoint_url=None, connector_id="default",
                 in_flight_timeout=120.0, retry_after=5.0):
        """``region`` (None: the standard chain's, AWS_REGION ...); ``endpoint_url``: another
        EC2 and Auto Scaling endpoint (moto, LocalStack); ``connector_id``: the value of the
        ``genisys:connector`` tag of its instances; ``in_flight_timeout``: seconds a launch
        counts while DescribeInstances does not list it; ``retry_after``: seconds genisys is
        told to wait when AWS throttles."""
        super().__init__()
        self.connector_id = validate_name(connector_id, "connector_id")
        self.aws = Aws(region=region, endpoint_url=endpoint_url)
        self.state = StateDir(state_dir, kind="aws", version=STATE_VERSION,
                              at_stake="the definitions and the record of launches in flight "
                                       "in it will be lost")
        self.ledger = Ledger(timeout=in_flight_timeout)
        self.retry_after = retry_after
        self.instances = InstancesMode(aws=self.aws, ledger=self.ledger, save=self._save,
                                       connector_id=self.connector_id, retry_after=retry_after)
        self.groups = GroupsMode(aws=self.aws, retry_after=retry_after)
        #: Service -> resources when last counted, for snapshot().
        self._running = {}
        self._replayer = None

    # -- life cycle --------------------------------------------------------------

    async def start(self):
        try:
            self.aws.open()
        except ValueError as e:
            raise StartupError(str(e)) from e
        with self.state.taken_back(self.connector_id,
                                   marks="instances tagged %s=%%s" % TAG_CONNECTOR) as state:
            try:
                self.ledger.load(state)
            except (TypeError, ValueError, AttributeError) as e:
                # Starting without it could launch twice: a person decides.
                raise StartupError("the launches in flight in %s cannot be read: %s (move the "
                                   "file away to start afresh; the definitions in it will be "
                                   "lost)" % (self.state.state_path, e)) from e
            self._load_definitions(state.get("definitions", {}), self.state.state_path)
            self._save()
        if self.ledger.unresolved():
            self._replayer = start_task(self._replay(), name="aws launch replay")
        log.info("instances of this connector are tagged %s=%s, in AWS region %s%s",
                 TAG_CONNECTOR, self.connector_id, self.aws.region,
                 " at %s" % self.aws.endpoint_url if self.aws.endpoint_url else "")

    async def close(self):
        """Let scale orders in flight finish; instances keep running (AWS owns them)."""
        await stop_tasks([self._replayer])
        for service in sorted(self._locks):
            await self.lock(service).acquire()
        running = sum(self._running.values())
        if running:
            log.info("leaving %d instance(s) running: a connector with id %s takes them over",
                     running, self.connector_id)
        self.aws.close()
        self.state.close()

    async def _replay(self):
        delay = REPLAY_RETRY[0]
        while True:
            services = sorted({launch.service for launch in self.ledger.unresolved()})
            if not services:
                return
            log.info("replaying the launches of %s a previous connector left unanswered",
                     ", ".join(services))
            try:
                for service in services:
                    async with self.lock(service):
                        await self.instances.resolve(service)
            except GenisysError as e:
                log.warning("%s: trying again in %gs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPLAY_RETRY[1])

    async def capacity_limit(self):
        """The account's max-instances, or None if AWS does not tell."""
        try:
            answer = await self.aws.call("ec2", "describe_account_attributes",
                                         AttributeNames=["max-instances"])
            values = answer["AccountAttributes"][0]["AttributeValues"]
            return int(values[0]["AttributeValue"])
        except Exception as e:  # noqa: BLE001 - a capacity is optional: say why there is none
            log.warning("no capacity reported: cannot read the account's max-instances: %s",
                        explain(e, doing="reading the account's attributes",
                                retry_after=self.retry_after))
            return None

    # -- definitions ---------------------------------------------------------------

    def _save(self):
        self.state.write(dict(self.ledger.to_state(), connector_id=self.connector_id,
                              definitions={n: d.to_json()
                                           for n, d in sorted(self._definitions.items())}))

    def definitions_changed(self):
        self._save()

    async def delete_definition(self, name):
        """Remove a definition; Conflict while instances of the service run."""
        async with self.lock(name):
            definition = await self.get_definition(name)
            running = await self._count(definition)
            if running:
                raise Conflict("service %s has %d instance(s): scale it to 0 first"
                               % (name, running), field="name")
            del self._definitions[name]
            self._running.pop(name, None)
            self.definitions_changed()
            return definition

    # -- the protocol -----------------------------------------------------------------

    async def _count(self, definition):
        if definition.auto_scaling_group is not None:
            running = await self.groups.count(definition)
        else:
            running = await self.instances.count(definition.name)
        self._running[definition.name] = running
        return running

    async def count(self, service):
        return await self._count(self.definition_for(service))

    async def count_many(self, services):
        """{service: count, or the error counting it}, of the defined ``services``: one
        DescribeInstances for all those of the instances mode, one
        DescribeAutoScalingGroups for the groups (a batch status request)."""
        definitions = [self._definitions[s] for s in services if s in self._definitions]
        launching = [d.name for d in definitions if d.auto_scaling_group is None]
        grouped = [d for d in definitions if d.auto_scaling_group is not None]
        counts = {}
        if launching:
            try:
                listed = await self.instances.listed(launching)
            except GenisysError as e:
                counts.update((s, e) for s in launching)
            else:
                for service in launching:
                    counts[service] = self.instances.count_of(service, listed.get(service, {}))
        if grouped:
            try:
                groups = await self.groups.groups([d.auto_scaling_group for d in grouped])
            except GenisysError as e:
                counts.update((d.name, e) for d in grouped)
            else:
                for definition in grouped:
                    try:
                        counts[definition.name] = len(counted(self.groups.group_of(definition,
                                                                                   groups)))
                    except GenisysError as e:
                        counts[definition.name] = e
        self._running.update((s, n) for s, n in counts.items() if isinstance(n, int))
        return counts

    async def scale(self, service, number):
        async with self.lock(service):
            definition = self.definition_for(service)
            if definition.auto_scaling_group is not None:
                running = await self.groups.scale(definition, number)
            else:
                running = await self.instances.scale(definition, number)
            self._running[service] = running
            return running

    def snapshot(self):
        return {service: n for service, n in sorted(self._running.items()) if n}

