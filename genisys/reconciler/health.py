"""Compute health: Ready, NotReady or Unknown, from what connectors answer.

Every connector call genisys makes anyway (status, scale, batch, capabilities) is
an observation: the connector answered (any HTTP answer but a 503), or it did not
(refused, timed out, or said 503: what it drives is down). Computes that no call
touched for a while get a light probe (``GET /capabilities``, by the reconciler).

One lost call does not flip a compute: it goes NotReady only once its connector has
failed every call for ``failure_threshold`` seconds, and Ready again only once it
has answered every call for ``success_threshold`` seconds (Karmada's cluster
thresholds, 30 s each by default). A compute that went NotReady ``flap_limit``
times within ``flap_window`` is *flapping*: it stays NotReady until it has answered
for the whole window. A compute never heard from is Unknown; its first answer makes
it Ready, and failing for ``failure_threshold`` makes it NotReady.

``ComputeHealth`` is the bookkeeping only: no I/O, the time is passed in (wall-clock
seconds), so each rule is a row of tests/reconciler/test_health.py. The reconciler
feeds it, stores each change of condition (``computestatus/<name>``, shown by
``GET /compute/<name>/status``) and acts on them (docs/failover.md).
"""

import collections
import dataclasses
from typing import Optional

from genisys.model import utc_seconds, utc_text

READY, NOT_READY, UNKNOWN = "Ready", "NotReady", "Unknown"


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """How long an outcome must last before the condition follows it (seconds)."""

    failure: float = 30.0
    success: float = 30.0
    #: NotReady this many times within ``flap_window``: flapping.
    flap_limit: int = 3
    flap_window: float = 300.0


@dataclasses.dataclass(frozen=True)
class Health:
    """A compute's condition, as stored and shown."""

    condition: str
    #: One word: Answering, NotAnswering, Flapping, NotObserved.
    reason: str
    message: str
    #: When the condition last changed (wall-clock seconds).
    since: float

    def to_store(self, name: str) -> dict:
        return {"name": name, "condition": self.condition, "reason": self.reason,
                "message": self.message, "lastTransitionTime": utc_text(self.since)}

    @classmethod
    def from_store(cls, value: dict) -> "Health":
        return cls(value["condition"], value["reason"], value["message"],
                   utc_seconds(value["lastTransitionTime"]))


@dataclasses.dataclass
class _Tracked:
    condition: Health
    #: The outcome of the last observation (None: none yet) and since when every
    #: observation has had it.
    last_ok: Optional[bool] = None
    streak_since: float = 0.0
    #: The last failure's words, for the NotReady message.
    failure: str = ""
    #: When the last observation was made (the probe skips computes seen lately).
    seen: float = 0.0
    #: When it went NotReady, within the flap window.
    downs: collections.deque = dataclasses.field(default_factory=collections.deque)
    #: It flaps: Ready again only after answering for the whole flap window.
    flapping: bool = False


def unknown(now: float) -> Health:
    return Health(UNKNOWN, "NotObserved", "no call to its connector has answered or "
                                             "failed yet", now)


class ComputeHealth:
    """The condition of every compute genisys calls, from the outcomes of the calls."""

    def __init__(self, thresholds: Thresholds = Thresholds()) -> None:
        self.thresholds = thresholds
        self._computes: dict[str, _Tracked] = {}

    def condition(self, name: str, now: float) -> Health:
        tracked = self._computes.get(name)
        return tracked.condition if tracked is not None else unknown(now)

    def conditions(self) -> dict[str, Health]:
        return {name: t.condition for name, t in self._computes.items()}

    def seen(self, name: str) -> float:
        """When a call to its connector last answered or failed (0: never)."""
        tracked = self._computes.get(name)
        return tracked.seen if tracked is not None else 0.0

    def restore(self, name: str, condition: Health) -> None:
        """Start from a stored condition (a controller restarted, or a new leader): the
        thresholds count from the first observation of this controller."""
        self._computes[name] = _Tracked(condition=condition)

    def forget(self, name: str) -> None:
        """The compute went, or moved to another connector: what was known no longer
        holds."""
        self._computes.pop(name, None)

    def observe(self, name: str, ok: bool, now: float, failure: str = "") -> Optional[Health]:
        """An outcome of a call to ``name``'s connector; the new condition if it changed."""
        tracked = self._computes.get(name)
        if tracked is None:
            tracked = self._computes[name] = _Tracked(condition=unknown(now))
        if ok != tracked.last_ok:
            tracked.last_ok, tracked.streak_since = ok, now
        tracked.seen = now
        if not ok:
            tracked.failure = failure
        return self._settle(name, tracked, now)

    def tick(self, now: float) -> dict[str, Health]:
        """Conditions that change by the passing of time alone (a streak that reached its
        threshold since its last observation)."""
        changed = {}
        for name, tracked in self._computes.items():
            new = self._settle(name, tracked, now)
            if new is not None:
                changed[name] = new
        return changed

    def _settle(self, name: str, tracked: _Tracked, now: float) -> Optional[Health]:
        t, current = self.thresholds, tracked.condition
        lasted = now - tracked.streak_since
        while tracked.downs and tracked.downs[0] < now - t.flap_window:
            tracked.downs.popleft()
        new = None
        if tracked.last_ok is None:
            return None
        if tracked.last_ok:
            if current.condition == NOT_READY and len(tracked.downs) >= t.flap_limit:
                tracked.flapping = True
            needed = t.flap_window if tracked.flapping else t.success
            if current.condition == UNKNOWN or (current.condition == NOT_READY
                                                and lasted >= needed):
                new = Health(READY, "Answering", "its connector answers", now)
                tracked.flapping = False
            elif current.condition == NOT_READY and tracked.flapping \
                    and current.reason != "Flapping":
                new = Health(NOT_READY, "Flapping", "went NotReady %d times within %gs: stays "
                                "NotReady until its connector has answered for %gs"
                                % (len(tracked.downs), t.flap_window, t.flap_window),
                                current.since)
        elif current.condition != NOT_READY and lasted >= t.failure:
            tracked.downs.append(now)
            new = Health(NOT_READY, "NotAnswering", "its connector has failed every call for "
                            "%gs: %s" % (t.failure, tracked.failure), now)
        if new is None:
            return None
        tracked.condition = new
        return new
