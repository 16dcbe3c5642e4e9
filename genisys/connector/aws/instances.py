"""The AWS backend's instances mode: a service's resources are EC2 instances it launches.

Every instance it launches carries the tags ``genisys:connector`` (the
connector id), ``genisys:service`` and ``genisys:launch`` (the launch's
ClientToken), and every count is one DescribeInstances on those tags over
pending and running instances, corrected by the in-flight ledger
(``genisys.connector.aws.ledger``) for what AWS does not show yet.

* **Scale up**: RunInstances for the missing instances, with a deterministic
  ClientToken written to the state directory before the call: a lost answer is
  retried by botocore with the same token, and a launch the connector crashed
  in is replayed with it at the next start, so AWS launches it once. When AWS
  lacks the capacity for all of them at once, it asks again for as many as it
  has (MinCount 1) and answers 409 saying how many run.
* **Scale down**: TerminateInstances, newest first (or oldest first:
  the definition's ``terminationPolicy``).
"""

import dataclasses
import datetime
import logging
import time

from genisys.connector.aws.api import NO_CAPACITY, code_of, explain, is_definitive, message_of
from genisys.connector.aws.ledger import Launch
from genisys.errors import InsufficientCapacity

log = logging.getLogger(__name__)

TAG_CONNECTOR = "genisys:connector"
TAG_SERVICE = "genisys:service"
TAG_LAUNCH = "genisys:launch"
#: Instance states that are a resource.
LISTED_STATES = ("pending", "running")
#: Instance ids one TerminateInstances call takes at most.
TERMINATE_BATCH = 1000
#: Values one DescribeInstances filter takes at most.
FILTER_VALUES = 200
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance of this connector, as DescribeInstances lists it."""

    id: str
    service: str
    #: The ClientToken of the launch that started it ("" if the tag is missing).
    token: str
    #: Seconds since the epoch.
    launched: float

    @classmethod
    def from_api(cls, entry):
        tags = {tag["Key"]: tag["Value"] for tag in entry.get("Tags") or ()}
        launched = entry.get("LaunchTime")
        return cls(id=entry["InstanceId"], service=tags.get(TAG_SERVICE, ""),
                   token=tags.get(TAG_LAUNCH, ""),
                   launched=(launched - _EPOCH).total_seconds()
                   if isinstance(launched, datetime.datetime) else 0.0)


class InstancesMode:
    """Count and scale services whose definitions launch instances."""

    def __init__(self, *, aws, ledger, save, connector_id, retry_after):
        """``save()`` writes the ledger (with the rest of the state) durably."""
        self.aws = aws
        self.ledger = ledger
        self.save = save
        self.connector_id = connector_id
        self.retry_after = retry_after

    async def listed(self, services=None):
        """{service: {instance id: Instance}} of this connector's pending and running
        instances (of ``services`` only, if given): one DescribeInstances (and its pages)."""
        filters = [{"Name": "tag:" + TAG_CONNECTOR, "Values": [self.connector_id]},
                   {"Name": "instance-state-name", "Values": list(LISTED_STATES)}]
        if services is not None and len(services) <= FILTER_VALUES:
            filters.append({"Name": "tag:" + TAG_SERVICE, "Values": sorted(services)})
        what = "listing the instances of %s" % (", ".join(sorted(services)) if services
                                                 else "this connector")
        try:
            reservations = await self.aws.pages("ec2", "describe_instances", "Reservations",
                                                Filters=filters)
        except Exception as e:
            raise explain(e, doing=what, retry_after=self.retry_after) from e
        found = {}
        for reservation in reservations:
            for entry in reservation.get("Instances", ()):
                instance = Instance.from_api(entry)
                found.setdefault(instance.service, {})[instance.id] = instance
        return found

    def tally(self, service, listed):
        """(ids that count, in-flight ids, unknown) of ``service``, given its ``listed``
        instances; forgets (and saves) what the listing settled."""
        if self.ledger.settle(service, listed, time.time()):
            self.save()
        return self.ledger.counted(service, {i: x.token for i, x in listed.items()})

    def count_of(self, service, listed):
        live, coming, unknown = self.tally(service, listed)
        return len(live) + len(coming) + unknown

    async def count(self, service):
        listed = (await self.listed([service])).get(service, {})
        return self.count_of(service, listed)

    async def scale(self, definition, number):
        """Launch or terminate instances until ``number`` count; the count then."""
        service = definition.name
        await self.resolve(service)
        listed = (await self.listed([service])).get(service, {})
        live, coming, unknown = self.tally(service, listed)
        current = len(live) + len(coming) + unknown
        if number > current:
            return current + await self._launch(definition, number - current, current)
        if number < current:
            victims = _in_order(definition.termination_policy, [listed[i] for i in live],
                                coming)[:current - number]
            await self._terminate(service, victims, current, number)
            return current - len(victims)
        return current

    async def resolve(self, service=None):
        """Replay, with the same ClientToken and parameters, each launch whose answer
        was never seen: AWS answers the reservation it made, or makes it now."""
        for launch in self.ledger.unresolved(service):
            try:
                answer = await self.aws.call("ec2", "run_instances", **launch.request)
            except Exception as e:
                code = code_of(e)
                if code == "IdempotentInstanceTerminated":
                    log.info("launch %s of %s: its instances were terminated already",
                             launch.token, launch.service)
                elif is_definitive(e):
                    log.warning("launch %s of %s: AWS refuses it (%s): nothing was launched",
                                launch.token, launch.service, code)
                else:
                    raise explain(e, doing="replaying launch %s of %s" % (
                        launch.token, launch.service), retry_after=self.retry_after) from e
                self.ledger.remove(launch)
                self.save()
                continue
            launch.instances = [entry["InstanceId"] for entry in answer["Instances"]]
            self.save()
            log.info("launch %s of %s: %d instance(s): %s", launch.token, launch.service,
                     len(launch.instances), " ".join(launch.instances))

    async def _launch(self, definition, missing, current):
        """Launch ``missing`` instances (``current`` count already); how many AWS launched.
        InsufficientCapacity, saying how many run, if AWS had room for fewer."""
        service = definition.name
        refusal = None
        # All at once first; short of capacity, as many as AWS has (MinCount 1).
        for at_least in (missing, 1) if missing > 1 else (1,):
            try:
                launched = await self._run(definition, missing, at_least=at_least)
            except Exception as e:
                if code_of(e) not in NO_CAPACITY:
                    raise explain(e, doing="launching %d instance(s) of %s" % (missing, service),
                                  retry_after=self.retry_after) from e
                log.warning("AWS has no capacity for %d instance(s) of %s at once (%s)",
                            at_least, service, code_of(e))
                refusal = e
                continue
            if launched < missing:
                raise InsufficientCapacity(
                    "AWS had capacity for %d of the %d instances of %s asked for: %d run"
                    % (launched, missing, service, current + launched), field="number")
            return launched
        raise InsufficientCapacity(
            "AWS has no capacity for any of the %d instances of %s asked for (%s: %s): %d run"
            % (missing, service, code_of(refusal), message_of(refusal), current),
            field="number") from refusal

    async def _run(self, definition, missing, *, at_least):
        """One RunInstances, written to the ledger first; how many it launched."""
        service = definition.name
        token = self.ledger.next_token(self.connector_id, service)
        request = definition.run_request(count=missing, token=token, own_tags={
            TAG_CONNECTOR: self.connector_id, TAG_SERVICE: service, TAG_LAUNCH: token})
        request["MinCount"] = at_least
        launch = Launch(token=token, service=service, count=missing, request=request,
                        at=time.time())
        self.ledger.add(launch)
        self.save()  # before the call: a crash from here on is replayed, never repeated
        log.info("launching %d instance(s) of %s (ClientToken %s)", missing, service, token)
        try:
            answer = await self.aws.call("ec2", "run_instances", **request)
        except Exception as e:
            if is_definitive(e):  # AWS refused it: nothing was launched
                self.ledger.remove(launch)
                self.save()
            raise
        launch.instances = [entry["InstanceId"] for entry in answer["Instances"]]
        self.save()
        log.info("launched %d instance(s) of %s: %s", len(launch.instances), service,
                 " ".join(launch.instances))
        return len(launch.instances)

    async def _terminate(self, service, victims, current, number):
        log.info("scaling %s down from %d to %d: terminating %s", service, current, number,
                 " ".join(victims))
        for start in range(0, len(victims), TERMINATE_BATCH):
            chunk = victims[start:start + TERMINATE_BATCH]
            try:
                await self.aws.call("ec2", "terminate_instances", InstanceIds=chunk)
            except Exception as e:
                raise explain(e, doing="terminating %d instance(s) of %s" % (len(chunk), service),
                              retry_after=self.retry_after) from e
            self.ledger.terminating(service, chunk, time.time())
            self.save()


def _in_order(policy, listed, coming):
    """Instance ids in the order a scale-down terminates them: ``newest`` first (the
    in-flight ones, launched last, then the listed ones by launch time) or ``oldest``."""
    by_age = [i.id for i in sorted(listed, key=lambda i: (i.launched, i.id))]
    if policy == "oldest":
        return by_age + list(coming)
    return list(reversed(coming)) + list(reversed(by_age))
