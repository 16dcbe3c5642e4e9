"""The AWS backend's Auto Scaling group mode: a service's resources are a group's instances.

The group launches and replaces its instances itself; the connector only
reads and sets its desired capacity.

* **count**: the group's instances that are InService or Pending (any
  Pending step of a lifecycle hook included).
* **scale up**: SetDesiredCapacity, within the group's MaxSize (past it: 409).
* **scale in**: with ``terminationPolicy`` ``newest`` (default) or ``oldest``,
  the connector picks the instances: healthy ones not protected from scale-in,
  by launch time, each terminated with TerminateInstanceInAutoScalingGroup and
  the desired capacity decremented with it. If they are too few, the rest is a
  SetDesiredCapacity the group carries out by its own policies, which never
  pick a protected instance. ``group``: only SetDesiredCapacity.
"""

import logging

from genisys.connector.aws.api import explain
from genisys.connector.aws.instances import Instance
from genisys.errors import InsufficientCapacity, StartFailed

log = logging.getLogger(__name__)

#: Lifecycle states of an instance that count (InService, and the Pending ones).
COUNTED_PREFIXES = ("InService", "Pending")
#: Groups one DescribeAutoScalingGroups takes at most.
NAMES_PER_CALL = 100


def counted(group):
    """The group's instances that count."""
    return [i for i in group.get("Instances", ())
            if i.get("LifecycleState", "").startswith(COUNTED_PREFIXES)]


class GroupsMode:
    """Count and scale services whose definitions name an Auto Scaling group."""

    def __init__(self, *, aws, retry_after):
        self.aws = aws
        self.retry_after = retry_after

    async def groups(self, names):
        """{group name: its description} of those of ``names`` that exist."""
        names = sorted(set(names))
        found = {}
        for start in range(0, len(names), NAMES_PER_CALL):
            chunk = names[start:start + NAMES_PER_CALL]
            try:
                groups = await self.aws.pages("autoscaling", "describe_auto_scaling_groups",
                                              "AutoScalingGroups", AutoScalingGroupNames=chunk)
            except Exception as e:
                raise explain(e, doing="describing Auto Scaling group(s) %s" % ", ".join(chunk),
                              retry_after=self.retry_after) from e
            found.update((group["AutoScalingGroupName"], group) for group in groups)
        return found

    def group_of(self, definition, groups):
        group = groups.get(definition.auto_scaling_group)
        if group is None:
            raise StartFailed("there is no Auto Scaling group %s in %s" % (
                definition.auto_scaling_group, self.aws.region), field="autoScalingGroup")
        return group

    async def count(self, definition):
        groups = await self.groups([definition.auto_scaling_group])
        return len(counted(self.group_of(definition, groups)))

    async def scale(self, definition, number):
        name = definition.auto_scaling_group
        group = self.group_of(definition, await self.groups([name]))
        current = len(counted(group))
        if number > group["MaxSize"] or number < group["MinSize"]:
            raise InsufficientCapacity(
                "Auto Scaling group %s takes %d to %d instances (its MinSize and MaxSize): "
                "cannot run %d of %s" % (name, group["MinSize"], group["MaxSize"], number,
                                         definition.name), field="number")
        if number < current and definition.termination_policy != "group":
            victims = await self._pick(definition, group, current - number)
            for instance_id in victims:
                await self._call("terminate_instance_in_auto_scaling_group",
                                 "terminating %s in group %s" % (instance_id, name),
                                 InstanceId=instance_id, ShouldDecrementDesiredCapacity=True)
            if victims:
                log.info("scaling %s (group %s) in from %d to %d: terminated %s",
                         definition.name, name, current, number, " ".join(victims))
            current -= len(victims)
        if number != current or group["DesiredCapacity"] != number:
            await self._call("set_desired_capacity", "setting the desired capacity of group %s "
                             "to %d" % (name, number), AutoScalingGroupName=name,
                             DesiredCapacity=number, HonorCooldown=False)
            log.info("desired capacity of group %s (service %s): %d (%d counted)", name,
                     definition.name, number, current)
        return current

    async def _pick(self, definition, group, how_many):
        """Up to ``how_many`` healthy, unprotected instances, newest (or oldest) first."""
        candidates = [i["InstanceId"] for i in counted(group)
                      if i.get("HealthStatus", "Healthy") == "Healthy"
                      and not i.get("ProtectedFromScaleIn", False)]
        if not candidates:
            return []
        try:
            reservations = await self.aws.pages("ec2", "describe_instances", "Reservations",
                                                InstanceIds=candidates)
        except Exception as e:
            raise explain(e, doing="describing the instances of group %s"
                          % definition.auto_scaling_group, retry_after=self.retry_after) from e
        instances = [Instance.from_api(entry) for r in reservations for entry in r["Instances"]]
        instances.sort(key=lambda i: (i.launched, i.id),
                       reverse=definition.termination_policy == "newest")
        return [i.id for i in instances[:how_many]]

    async def _call(self, operation, doing, **params):
        try:
            return await self.aws.call("autoscaling", operation, **params)
        except Exception as e:
            raise explain(e, doing=doing, retry_after=self.retry_after) from e
