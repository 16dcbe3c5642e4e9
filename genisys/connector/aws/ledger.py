"""The in-flight ledger of the AWS backend's instances mode: launches AWS may not show yet.

DescribeInstances is eventually consistent: an instance RunInstances just
returned may be missing from it for seconds, and a terminated one may still be
listed as running. Counting only what it lists would launch twice. So every
launch is written here *before* RunInstances is called (``Launch``, with its
deterministic ClientToken and its exact parameters), and its instance ids once
the answer comes back. The count of a service is then what DescribeInstances
lists, plus the ledger's launches not listed yet, minus what the connector
terminated and AWS still lists.

* A launch whose answer was never seen (the connector crashed, or the answer
  was lost after every retry) is *unresolved*: it counts as the number it asked
  for, and replaying the same request with the same ClientToken resolves it
  (AWS answers the first launch's reservation instead of launching again).
* A launch leaves the ledger once all its instances were listed, or
  ``timeout`` seconds after it was written (what is not listed by then is
  gone: terminated already, or never launched).

The ledger is kept in the backend's state file (``genisys.connector.statedir``);
times are wall-clock seconds, as they must mean something after a restart.
Nothing here calls AWS.
"""

import collections
import dataclasses
import hashlib
import secrets
from typing import Optional

#: Longest ClientToken AWS takes.
MAX_TOKEN_CHARS = 64


@dataclasses.dataclass
class Launch:
    """One RunInstances call: written before it is made."""

    token: str
    service: str
    #: Instances it asked for (MaxCount).
    count: int
    #: The RunInstances parameters, exactly as sent (a replay must send the same).
    request: dict
    #: When it was written (time.time()).
    at: float
    #: The ids AWS answered with; None while the answer was not seen.
    instances: Optional[list] = None

    @property
    def resolved(self):
        return self.instances is not None

    def to_json(self):
        return dataclasses.asdict(self)


class Ledger:
    """The launches in flight and the instances being terminated, of every service."""

    def __init__(self, *, timeout, epoch=None, launches=(), terminated=None, sequence=None):
        self.timeout = timeout
        #: Random, made once per state directory: tokens of a connector that lost its
        #: state directory never collide with the ones it used before.
        self.epoch = epoch or secrets.token_hex(8)
        self.launches = list(launches)
        #: instance id -> [its service, when the connector terminated it].
        self.terminated = {i: list(entry) for i, entry in (terminated or {}).items()}
        #: service -> the number of its last launch.
        self.sequence = dict(sequence or {})

    def load(self, state):
        """Take what ``to_state`` wrote (a state file without any: start empty)."""
        self.__init__(timeout=self.timeout, epoch=state.get("epoch"),
                      launches=[Launch(**entry) for entry in state.get("launches", [])],
                      terminated=state.get("terminated"), sequence=state.get("sequence"))

    def to_state(self):
        return {"epoch": self.epoch, "launches": [launch.to_json() for launch in self.launches],
                "terminated": dict(sorted(self.terminated.items())),
                "sequence": dict(sorted(self.sequence.items()))}

    def next_token(self, connector_id, service):
        """The ClientToken of ``service``'s next launch: a digest of the connector id, the
        epoch, the service and the launch's number, so the same launch always has the
        same token and no two launches share one."""
        number = self.sequence.get(service, 0) + 1
        self.sequence[service] = number
        digest = hashlib.sha256(("%s\0%s\0%s\0%d" % (connector_id, self.epoch, service, number))
                                .encode()).hexdigest()
        return ("genisys-" + digest)[:MAX_TOKEN_CHARS]

    def add(self, launch):
        self.launches.append(launch)

    def remove(self, launch):
        self.launches = [entry for entry in self.launches if entry is not launch]

    def of(self, service):
        return [launch for launch in self.launches if launch.service == service]

    def unresolved(self, service=None):
        return [launch for launch in self.launches if not launch.resolved
                and (service is None or launch.service == service)]

    def terminating(self, service, instance_ids, now):
        for instance_id in instance_ids:
            self.terminated[instance_id] = [service, now]
        for launch in self.launches:
            if launch.instances:
                launch.instances = [i for i in launch.instances if i not in self.terminated]

    def counted(self, service, listed):
        """What of ``service`` counts, given what DescribeInstances ``listed`` for it
        ({instance id: the ClientToken it was launched with}, pending or running):
        (the listed ids that count, the in-flight ids not listed yet, and how many more
        instances unresolved launches may have started that are not listed)."""
        live = [i for i in listed if i not in self.terminated]
        seen = set(live)
        coming = [i for launch in self.of(service) if launch.resolved
                  for i in launch.instances if i not in seen and i not in self.terminated]
        tokens = collections.Counter(listed.values())
        unknown = sum(max(0, launch.count - tokens[launch.token])
                      for launch in self.unresolved(service))
        return live, coming, unknown

    def settle(self, service, listed, now):
        """Forget what ``listed`` (all the ids DescribeInstances listed for ``service``)
        or the timeout settled; True if anything changed."""
        listed = set(listed)
        before = (len(self.launches), len(self.terminated))
        self.launches = [launch for launch in self.launches if launch.service != service or (
            now - launch.at < self.timeout
            and not (launch.resolved and set(launch.instances) <= listed))]
        # A terminated instance no longer listed is settled; one AWS still lists as running
        # after the timeout is running again as far as anyone can tell.
        self.terminated = {i: [s, at] for i, (s, at) in self.terminated.items()
                           if s != service or (now - at < self.timeout and i in listed)}
        return (len(self.launches), len(self.terminated)) != before
