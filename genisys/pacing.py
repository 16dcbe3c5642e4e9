"""Pacing: how fast the controller moves real resources toward a service's intent.

A service with a ``behavior`` (Kubernetes' HPA fields and defaults, docs/scaling.md)
is not ordered its intent at once: each count it paces (a placed service's total, or
each compute's count of a service with counts per compute) moves toward the intent
in steps, as HPA moves a Deployment's replicas:

* stabilization: a scale-down goes to the highest intent seen within
  ``scaleDown.stabilizationWindowSeconds``, a scale-up to the lowest within
  ``scaleUp.stabilizationWindowSeconds`` (intents that toggle cause no churn);
* rate: within any ``periodSeconds``, a policy allows a change of ``value`` resources
  (Pods) or of ``ceil(value% of the count at the start of the period)`` (Percent);
  ``selectPolicy`` Max takes the policy that allows the most, Min the least,
  Disabled allows no change in that direction.

Everything here is a pure function of the behavior, the state kept in the service's
status (``status.pacing``: the paced count, the intents seen, the changes made) and
the time, which is passed in (seconds since the epoch: the state outlives a
controller, so it is kept in wall-clock time). The reconciler orders what ``pace``
says and writes the state back in the same status write; the plan shows the same
step. Each rule is a row of tests/test_pacing.py.
"""

import dataclasses
import datetime
import math
from collections.abc import Mapping
from typing import Any, Optional, Union

from genisys.model import Model, Service

PODS, PERCENT = "Pods", "Percent"
MAX, MIN, DISABLED = "Max", "Min", "Disabled"


@dataclasses.dataclass(frozen=True)
class Policy:
    type: str
    value: int
    #: Seconds.
    period: int


@dataclasses.dataclass(frozen=True)
class Rules:
    """One direction's rules, every field set."""

    #: Seconds of past intents a step in this direction considers.
    window: int
    select: str
    policies: tuple[Policy, ...]


@dataclasses.dataclass(frozen=True)
class Behavior:
    up: Rules
    down: Rules


#: HPA's defaults (autoscaling/v2): up at once, by 100% or 4 resources per 15 s,
#: whichever is more; down after 5 minutes of lower intents, by up to 100% per 15 s.
DEFAULT_UP = Rules(window=0, select=MAX, policies=(Policy(PERCENT, 100, 15),
                                                   Policy(PODS, 4, 15)))
DEFAULT_DOWN = Rules(window=300, select=MAX, policies=(Policy(PERCENT, 100, 15),))


def _rules(stored: Optional[Mapping[str, Any]], default: Rules) -> Rules:
    if stored is None:
        return default
    policies = stored.get("policies")
    return Rules(
        window=stored.get("stabilizationWindowSeconds", default.window),
        select=stored.get("selectPolicy", default.select),
        policies=default.policies if policies is None else tuple(
            Policy(p["type"], p["value"], p["periodSeconds"]) for p in policies))


def behavior_of(behavior: Union[Model, Mapping[str, Any]]) -> Behavior:
    """A service's ``behavior`` (the model, or its stored form) with HPA's defaults
    where it leaves a part out."""
    stored = behavior.to_store() if isinstance(behavior, Model) else behavior
    return Behavior(up=_rules(stored.get("scaleUp"), DEFAULT_UP),
                    down=_rules(stored.get("scaleDown"), DEFAULT_DOWN))


# -- one count ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scope:
    """The state of one paced count."""

    #: What the controller orders now.
    paced: int
    #: (since, count): the intents seen, oldest first; each held until the next one.
    intents: tuple[tuple[float, int], ...] = ()
    #: (time, from, to): the changes of ``paced``, oldest first.
    changes: tuple[tuple[float, int, int], ...] = ()


@dataclasses.dataclass(frozen=True)
class Step:
    """What ``pace`` says about one count now."""

    scope: Scope
    intent: int
    #: Seconds until the paced count may move again (None: it is at the intent, or
    #: nothing but a new intent will move it).
    next_in: Optional[float]
    #: Why it is not at the intent ("" when it is).
    message: str


def _held(intents: tuple[tuple[float, int], ...], *, window: float, now: float) -> list[int]:
    """The intents seen within the last ``window`` seconds (the latest always)."""
    ends = [since for since, _ in intents[1:]] + [math.inf]
    return [count for (_, count), end in zip(intents, ends) if end > now - window]


def _moved(changes: tuple[tuple[float, int, int], ...], *, period: float,
           now: float) -> tuple[int, int]:
    """(added, removed) within the last ``period`` seconds."""
    recent = [(a, b) for t, a, b in changes if t > now - period]
    return (sum(b - a for a, b in recent if b > a), sum(a - b for a, b in recent if a > b))


def limit(paced: int, changes: tuple[tuple[float, int, int], ...], *, rules: Rules, up: bool,
          now: float) -> int:
    """The furthest count the rules allow now in one direction (HPA's
    calculateScaleUpLimitWithScalingRules and calculateScaleDownLimitWithBehaviors)."""
    if rules.select == DISABLED:
        return paced
    proposals = []
    for policy in rules.policies:
        added, removed = _moved(changes, period=policy.period, now=now)
        start = paced - added + removed
        change = policy.value if policy.type == PODS else math.ceil(start * policy.value / 100)
        proposals.append(start + change if up else start - change)
    # Up, the policy that allows the most is the highest limit; down, the lowest.
    most = (max if up else min) if rules.select == MAX else (min if up else max)
    found = most(proposals)
    return max(found, paced) if up else max(min(found, paced), 0)


def _step(paced: int, *, intents: tuple[tuple[float, int], ...],
          changes: tuple[tuple[float, int, int], ...], behavior: Behavior,
          now: float) -> tuple[int, int]:
    """(the stabilized target, the count the rates allow toward it) at ``now``."""
    # Stabilization (HPA's stabilizeRecommendationWithBehaviors).
    target = max(paced, min(_held(intents, window=behavior.up.window, now=now)))
    target = min(target, max(_held(intents, window=behavior.down.window, now=now)))
    # Rate (HPA's convertDesiredReplicasWithBehaviorRate).
    if target > paced:
        return target, min(target, limit(paced, changes, rules=behavior.up, up=True, now=now))
    if target < paced:
        return target, max(target, limit(paced, changes, rules=behavior.down, up=False,
                                          now=now))
    return target, paced


def pace(scope: Scope, intent: int, *, behavior: Behavior, now: float) -> Step:
    """The paced count of one scope now, toward ``intent``, and the state to keep."""
    intents = scope.intents
    if not intents or intents[-1][1] != intent:
        intents = intents + ((now, intent),)
    target, new = _step(scope.paced, intents=intents, changes=scope.changes,
                        behavior=behavior, now=now)
    changes = scope.changes
    if new != scope.paced:
        changes = changes + ((now, scope.paced, new),)
    # Kept: what a later step can still count (the longest window, the longest period).
    windows = {behavior.up.window, behavior.down.window}
    periods = {p.period for p in behavior.up.policies + behavior.down.policies}
    ends = [since for since, _ in intents[1:]] + [math.inf]
    intents = tuple(i for i, end in zip(intents, ends) if end > now - max(windows))
    changes = tuple(c for c in changes if c[0] > now - max(periods))
    kept = Scope(paced=new, intents=intents, changes=changes)
    if new == intent:
        return Step(kept, intent, None, "")
    rules, name = (behavior.up, "scaleUp") if intent > new else (behavior.down, "scaleDown")
    if rules.select == DISABLED:
        return Step(kept, intent, None, "Paced: %d of %d (%s is Disabled)" % (new, intent, name))
    # The next step: at the first moment an intent leaves a window or a change leaves a
    # period after which the rules allow a move (the moment itself is outside: HPA
    # counts what is newer than the cut-off).
    moments = sorted({end + w for end in ends[:-1] for w in windows}
                     | {t + p for t, _, _ in changes for p in periods})
    for moment in (m for m in moments if m > now):
        if _step(new, intents=intents, changes=changes, behavior=behavior,
                 now=moment + 1e-6)[1] != new:
            held = " (%s stabilization window)" % name if new == target else ""
            return Step(kept, intent, moment - now, "Paced: %d of %d, next step in %d s%s"
                        % (new, intent, math.ceil(moment - now), held))
    return Step(kept, intent, None, "Paced: %d of %d" % (new, intent))


# -- a service ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Paced:
    """A service as the controller orders it now, and its ``status.pacing``."""

    #: The service with its paced replicas (unchanged without a behavior).
    service: Service
    #: ``status.pacing`` (None: not paced; the status has none).
    status: Optional[dict]
    #: Seconds until a paced count may move again (None: none will).
    retry_in: Optional[float]
    #: The counts paced now, by scope (None: the total), each as (paced, intent).
    steps: dict[Optional[str], tuple[int, int]] = dataclasses.field(default_factory=dict)


def utc(seconds: float) -> str:
    """Seconds since the epoch as 2026-11-29T14:05:00.123Z."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def seconds(text: str) -> float:
    """The inverse of ``utc``."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _scope_of(stored: Optional[Mapping[str, Any]], ordered: int) -> Scope:
    """The state kept in the status; without one, pacing starts from what was ordered."""
    if stored is None:
        return Scope(paced=ordered)
    return Scope(paced=stored["paced"],
                 intents=tuple((seconds(i["time"]), i["count"]) for i in stored["intents"]),
                 changes=tuple((seconds(c["time"]), c["from"], c["to"])
                               for c in stored["changes"]))


def _stored(step: Step, now: float) -> dict:
    scope = step.scope
    stored = {"intent": step.intent, "paced": scope.paced, "message": step.message,
              "intents": [{"time": utc(t), "count": n} for t, n in scope.intents],
              "changes": [{"time": utc(t), "from": a, "to": b} for t, a, b in scope.changes]}
    if step.next_in is not None:
        stored["nextStep"] = utc(now + step.next_in)
    return stored


def pace_service(service: Service, status: Mapping[str, Any], *, now: float) -> Paced:
    """``service`` with the counts to order now, as its behavior paces them from the
    state in ``status`` (its last status). Without a behavior, or while it is being
    deleted, nothing is paced."""
    if service.behavior is None or service.deleting:
        return Paced(service, None, None)
    behavior = behavior_of(service.behavior)
    before = status.get("pacing") or {}
    entries = status.get("computes", {})
    steps: dict[Optional[str], Step] = {}
    if service.placed:
        ordered = (status.get("placement") or {}).get(
            "total", sum(e.get("desired", 0) for e in entries.values()))
        assert isinstance(service.replicas, int)
        steps[None] = pace(_scope_of(before.get("total"), ordered), service.replicas,
                           behavior=behavior, now=now)
        replicas: Union[int, dict] = steps[None].scope.paced
    else:
        counts = service.replicas
        assert isinstance(counts, dict)
        paced_before = before.get("computes", {})
        replicas = {}
        ordering = {c for c, entry in entries.items() if entry.get("desired")}
        for compute in sorted(set(counts) | set(paced_before) | ordering):
            ordered = entries.get(compute, {}).get("desired", 0)
            step = pace(_scope_of(paced_before.get(compute), ordered),
                        counts.get(compute, 0), behavior=behavior, now=now)
            # A compute dropped from the counts goes down paced too, and is dropped
            # once at 0.
            if compute in counts or step.scope.paced > 0:
                steps[compute] = step
                replicas[compute] = step.scope.paced
    stored: dict[str, Any] = {"message": "; ".join(
        step.message if scope is None else "%s: %s" % (scope, step.message)
        for scope, step in steps.items() if step.message)}
    if service.placed:
        stored["total"] = _stored(steps[None], now)
    else:
        stored["computes"] = {c: _stored(step, now) for c, step in steps.items()}
    waits = [s.next_in for s in steps.values() if s.next_in is not None]
    paced = service.model_copy(update={"replicas": replicas})
    return Paced(paced, stored, min(waits) if waits else None,
                 {scope: (s.scope.paced, s.intent) for scope, s in steps.items()})
