"""Placement: how many resources of a placed service go on each compute. Pure: no I/O.

A placed service has a total (``replicas: 6``) and a ``placement`` (which computes,
which strategy; see ``genisys.model.Placement``) instead of per-compute counts. The
reconciler turns them into an *assignment*, {compute: count}, which it then
converges like a per-compute map, and keeps it in the service's status
(``status.placement``). ``GET /plan`` runs the same functions over the same inputs,
so what it shows is what the reconciler does.

The rules (docs/placement.md says them for users):

* **Shares** divide the total by largest remainder: each compute's quota is
  total × weight / Σ weights, floored; the seats left go to the largest
  remainders, ties broken by weight, then by what already runs there, then by
  name. A compute never gets more than its *room* (its connector's capacity left
  for this service, and ``maxPerCompute``): a compute at its room drops out and the
  rest is divided again among the others. The names' order starts at a compute
  that depends on the service's name (``turns``), so that many services of the
  same total do not all take the same computes. Spread weighs each compute 1, Weighted
  by ``weights`` (1 for a compute it does not name), Capacity by each compute's
  room (a compute whose connector reports no capacity gets nothing), and Pack
  fills the computes in order, each up to its room.
* **Steady.** Once a service has an assignment, a change of its total only adds
  where a compute is furthest under its share, and only removes where one is
  furthest over it (a compute no longer in the placement has a share of 0). A
  compute that joins or leaves the placement, or a new weight, moves nothing. A
  service given a total after counts per compute starts from those counts.
* **Fail-over** (opt in: ``placement.failover``). A compute NotReady for longer
  than ``tolerationSeconds`` has its share moved to the Ready computes of the
  placement (as if it had left it: the others grow, within their room), while the
  originals it held stay in the assignment until it comes back; then
  ``purgeMode`` says when they go: Immediate at once, Graceful once the
  replacements run (or ``gracePeriodSeconds`` after the fail-over), Never on a
  rebalance only. Nothing fails over while more than ``breaker`` of the
  placement's computes are NotReady (genisys' own network is the likelier fault),
  nor faster than the controller's global rate (``may_start``). Health itself is
  the reconciler's (genisys.reconciler.health); docs/failover.md says it for users.
* **Rebalance is explicit.** A rebalance moves the assignment to the shares, at
  most ``maxSurge`` at a time: it adds up to that many where computes are under
  their share, waits until everything assigned runs, then removes as many where
  computes are over it, and waits again. What runs never drops below the total
  nor exceeds it by more than ``maxSurge`` — but when the shares hold less than
  the total (a room shrank since), a rebalance has nothing to add, and takes at
  once what no room is left for.
"""

import dataclasses
import functools
import heapq
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional

from genisys.model import CONVERGED, Service, placement_of, utc_seconds, utc_text

SPREAD, WEIGHTED, CAPACITY, PACK = "Spread", "Weighted", "Capacity", "Pack"
STRATEGIES = (SPREAD, WEIGHTED, CAPACITY, PACK)
#: maxSurge when a placement does not say.
DEFAULT_MAX_SURGE = "25%"

#: status.placement conditions.
PLACED = "Placed"
UNSCHEDULABLE = "Unschedulable"
REBALANCING = "Rebalancing"

#: Fail-over: purge modes, and the states of a compute in status.placement.failover.
GRACEFUL, IMMEDIATE, NEVER = "Graceful", "Immediate", "Never"
TOLERATING, FAILED_OVER, RETURNED, KEPT = "Tolerating", "FailedOver", "Returned", "Kept"
#: ... and the failover's own condition when a guard rail holds it.
HELD, PENDING = "Held", "Pending"
#: The health conditions placement reads (genisys.reconciler.health sets them).
READY, NOT_READY = "Ready", "NotReady"
#: Defaults of placement.failover, as Karmada's.
DEFAULT_TOLERATION, DEFAULT_GRACE_PERIOD = 300, 600
#: Nothing fails over while more than this share of a placement's computes is NotReady.
DEFAULT_BREAKER = 0.55
#: How soon a pass looks again while returned originals wait for their replacements.
PURGE_CHECK = 0.5


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A compute the placement may use, as the strategy sees it."""

    name: str
    #: The strategy's weight (Pack: unused).
    weight: int
    #: The most it may hold of this service (None: no bound).
    room: Optional[int]
    #: Why its room is what it is ("" when unbounded), for status.placement's reasons.
    bound: str = ""


@dataclasses.dataclass(frozen=True)
class Placed:
    """The outcome of ``place``."""

    #: compute -> desired count (computes with 0 are left out).
    assignment: dict[str, int]
    #: What a rebalance would move to: compute -> share (0s left out).
    shares: dict[str, int]
    #: How many the candidates can hold in all (None: no bound).
    fits: Optional[int]
    #: A rebalance asked for is done (the assignment is the shares, and runs).
    rebalanced: bool
    #: compute -> why it has its count.
    reasons: dict[str, str]

    @property
    def placed(self) -> int:
        return sum(self.assignment.values())


# -- which computes --------------------------------------------------------------


def selects(selector: Optional[Mapping[str, Any]], labels: Mapping[str, str]) -> bool:
    """Whether a compute with ``labels`` matches a label selector (Kubernetes'
    matchLabels and matchExpressions; None or empty: every compute)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or ()
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def eligible(placement: Mapping[str, Any], computes: Mapping[str, Mapping[str, str]]
             ) -> list[str]:
    """The computes a placement may use, in its order: those it lists that exist (in
    the listed order), or those its selector matches (by name)."""
    listed = placement.get("computes")
    if listed is not None:
        return [name for name in listed if name in computes]
    selector = placement.get("selector")
    if not selector:  # every compute (the common case: no call per compute)
        return sorted(computes)
    return [name for name in sorted(computes) if selects(selector, computes[name])]


def candidates(placement: Mapping[str, Any], names: Sequence[str], *,
               capacity: Mapping[str, Optional[tuple[int, int]]],
               running: Mapping[str, int]) -> list[Candidate]:
    """The eligible computes ``names`` as the strategy weighs them. ``capacity``:
    compute -> (total, used) its connector reported (None or absent: none);
    ``running``: what this service runs there, which its room includes."""
    strategy = placement.get("strategy", SPREAD)
    weights = placement.get("weights") or {}
    most = placement.get("maxPerCompute")
    found = []
    for name in names:
        room, bound = None, ""
        reported = capacity.get(name)
        if reported is not None:
            total, used = reported
            room = max(0, total - used + running.get(name, 0))
            bound = "capacity %d, %d used by others" % (total, max(0, used - running.get(name, 0)))
        if most is not None and (room is None or most < room):
            room, bound = most, "maxPerCompute %d" % most
        if strategy == WEIGHTED:
            weight = weights.get(name, 1)
        elif strategy == CAPACITY:
            weight = 0 if reported is None else (room or 0)
        else:
            weight = 1
        found.append(Candidate(name, weight, room, bound))
    return found


# -- shares ----------------------------------------------------------------------


def fits(strategy: str, computes: Iterable[Candidate]) -> Optional[int]:
    """How many the computes can hold under ``strategy`` (None: no bound)."""
    rooms = [c.room for c in computes if strategy == PACK or c.weight > 0]
    if not rooms or None in rooms:
        return None if rooms else 0
    return sum(r for r in rooms if r is not None)


def turns(names: Iterable[str], salt: str = "") -> dict[str, int]:
    """The order in which ties go to computes: by name, starting at a compute that
    depends on ``salt`` (the service's name): services with the same total and
    placement then do not all land on the first computes by name (10,000 services of
    4 over 8 computes would all be on the first 4)."""
    ordered = sorted(names)
    return _turns(tuple(ordered), _start(salt, len(ordered)))


def _start(salt: str, count: int) -> int:
    return zlib.crc32(salt.encode("utf-8")) % count if count and salt else 0


@functools.lru_cache(maxsize=1024)
def _turns(ordered: tuple[str, ...], start: int) -> dict[str, int]:
    return {name: (i - start) % len(ordered) for i, name in enumerate(ordered)}


def shares(total: int, strategy: str, computes: Sequence[Candidate],
           current: Mapping[str, int], turn: Optional[Mapping[str, int]] = None
           ) -> dict[str, int]:
    """Each compute's share of ``total`` (largest remainder within each room; Pack:
    in order). Less than ``total`` when it does not all fit."""
    share = {c.name: 0 for c in computes}
    if strategy == PACK:
        left = total
        for c in computes:
            take = left if c.room is None else min(left, c.room)
            share[c.name], left = take, left - take
        return share
    open_ = [c for c in computes if c.weight > 0 and (c.room is None or c.room > 0)]
    left = total
    while left > 0 and open_:
        weight = sum(c.weight for c in open_)
        # A compute whose quota reaches its room gets its room, and the rest is
        # divided again among the others (integers: left * w / weight exactly).
        full = [c for c in open_ if c.room is not None and left * c.weight >= c.room * weight]
        if full:
            for c in full:
                share[c.name] = c.room  # type: ignore[assignment]
                left -= c.room  # type: ignore[operator]
            open_ = [c for c in open_ if c not in full]
            continue
        seats = left
        for c in open_:
            share[c.name] = left * c.weight // weight
            seats -= share[c.name]
        turn = turns(c.name for c in computes) if turn is None else turn
        ranked = sorted(open_, key=lambda c: (-(left * c.weight % weight), -c.weight,
                                              -current.get(c.name, 0), turn[c.name]))
        for c in ranked[:seats]:
            share[c.name] += 1
        left = 0
    return share


def max_surge(total: int, setting: Any) -> int:
    """maxSurge as a count: an integer, or "N%" of the total (rounded up), at least 1."""
    setting = DEFAULT_MAX_SURGE if setting is None else setting
    if isinstance(setting, str):
        percent = int(setting.rstrip("%"))
        return max(1, -(-total * percent // 100))
    return max(1, setting)


# -- the assignment ----------------------------------------------------------------


def place(total: int, placement: Mapping[str, Any], computes: Sequence[Candidate], *,
          previous: Optional[Mapping[str, int]], running: Mapping[str, Optional[int]],
          rebalance: bool, refused: Iterable[str] = (), salt: str = "",
          turn: Optional[Mapping[str, int]] = None) -> Placed:
    """The assignment of a placed service with ``total``, given the candidates,
    its ``previous`` assignment (None: it has none yet) and what ``running`` each
    compute last reported (a step of a rebalance waits until that is the assignment).
    ``rebalance``: a rebalance is asked for and not done. ``refused``: computes whose
    connector refused an order for lack of capacity; what they cannot hold goes
    elsewhere. ``salt`` (the service's name) turns the order ties are broken in
    (``turns``; or ``turn``, that order itself)."""
    strategy = placement.get("strategy", SPREAD)
    by_name = {c.name: c for c in computes}
    turn = turns(by_name, salt) if turn is None else turn
    target = shares(total, strategy, computes, previous or {}, turn)
    if previous is None:
        assignment = dict(target)
    else:
        assignment = {c: n for c, n in previous.items() if n > 0}
        have = sum(assignment.values())
        settled = all(running.get(c) == n for c, n in assignment.items())
        if have < total:
            _grow(assignment, total - have, target, by_name, strategy, turn)
        elif have > total and (settled or not rebalance):
            _shrink(assignment, have - total, target, by_name, turn)
        elif have == total and rebalance and settled and _nonzero(assignment) != _nonzero(target):
            surge = max_surge(total, placement.get("maxSurge"))
            under = sum(max(0, n - assignment.get(c, 0)) for c, n in target.items())
            if under:
                _grow(assignment, min(surge, under), target, by_name, strategy, turn,
                      only_under=True)
            else:
                # The shares hold less than the total (a room shrank): nothing to add,
                # so the rebalance takes what no room is left for.
                assignment = {c: min(n, target.get(c, 0)) for c, n in assignment.items()}
        _make_room(assignment, refused, target, by_name, strategy, turn)
    assignment = _nonzero(assignment)
    settled = all(running.get(c) == n for c, n in assignment.items())
    done = assignment == _nonzero(target) and settled
    return Placed(assignment=assignment, shares=_nonzero(target),
                  fits=fits(strategy, computes), rebalanced=done,
                  reasons=_reasons(assignment, target, by_name, strategy, total))


def _make_room(assignment: dict[str, int], refused: Iterable[str],
               target: Mapping[str, int], by_name: Mapping[str, Candidate],
               strategy: str, turn: Mapping[str, int]) -> None:
    """A compute that refused an order for lack of room keeps what it has room for;
    the rest goes to the computes that have room (an order that can never be taken is
    not sent again and again)."""
    moved = 0
    for name in refused:
        c = by_name.get(name)
        if c is not None and c.room is not None and assignment.get(name, 0) > c.room:
            moved += assignment[name] - c.room
            assignment[name] = c.room
    if moved:
        _grow(assignment, moved, target, by_name, strategy, turn)


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {c: n for c, n in sorted(counts.items()) if n > 0}


def _rank(strategy: str, by_name: Mapping[str, Candidate]) -> dict[str, int]:
    """Pack's order of the computes (others: none)."""
    return {name: i for i, name in enumerate(by_name)} if strategy == PACK else {}


def _grow(assignment: dict[str, int], count: int, target: Mapping[str, int],
          by_name: Mapping[str, Candidate], strategy: str, turn: Mapping[str, int], *,
          only_under: bool = False) -> None:
    """Add ``count``, one at a time where a compute is furthest under its share (ties:
    weight, what runs there, name; Pack: its order), never past a room. Only eligible
    computes receive; with ``only_under``, only those under their share."""
    order = _rank(strategy, by_name)

    def key(name: str) -> tuple:
        n = assignment.get(name, 0)
        return (order.get(name, 0), -(target.get(name, 0) - n), -by_name[name].weight, -n,
                turn[name])

    def open_(name: str) -> bool:
        c, n = by_name[name], assignment.get(name, 0)
        if c.room is not None and n >= c.room:
            return False
        if only_under and n >= target.get(name, 0):
            return False
        return strategy == PACK or c.weight > 0

    heap = [(key(name), name) for name in by_name if open_(name)]
    heapq.heapify(heap)
    while count > 0 and heap:
        _, name = heapq.heappop(heap)
        assignment[name] = assignment.get(name, 0) + 1
        count -= 1
        if open_(name):
            heapq.heappush(heap, (key(name), name))


def _shrink(assignment: dict[str, int], count: int, target: Mapping[str, int],
            by_name: Mapping[str, Candidate], turn: Mapping[str, int]) -> None:
    """Remove ``count``, one at a time where a compute is furthest over its share (a
    compute out of the placement: its share is 0); ties: out of the placement first,
    then the lowest weight, then the most held there, then the name order backwards."""
    def key(name: str) -> tuple:
        n = assignment[name]
        c = by_name.get(name)
        last = (-turn[name],) if name in turn else _reverse(name)
        return (-(n - target.get(name, 0)), c.weight if c else -1, -n, last)

    heap = [(key(name), name) for name, n in assignment.items() if n > 0]
    heapq.heapify(heap)
    while count > 0 and heap:
        _, name = heapq.heappop(heap)
        assignment[name] -= 1
        count -= 1
        if assignment[name] > 0:
            heapq.heappush(heap, (key(name), name))


def _reverse(name: str) -> tuple:
    """A key that sorts names backwards."""
    return tuple(-ord(ch) for ch in name) + (1,)


def _reasons(assignment: Mapping[str, int], target: Mapping[str, int],
             by_name: Mapping[str, Candidate], strategy: str, total: int) -> dict[str, str]:
    reasons = {}
    for name in sorted(set(assignment) | {c for c, n in target.items() if n > 0}):
        c = by_name.get(name)
        if c is None:
            reasons[name] = "not in the placement: kept until a rebalance"
            continue
        share = target.get(name, 0)
        text = "%s: share %d of %d" % (strategy, share, total)
        if strategy == WEIGHTED:
            text += " (weight %d)" % c.weight
        if c.room is not None and share >= c.room:
            text += ", full (%s)" % c.bound
        if assignment.get(name, 0) != share:
            text += "; holds %d until a rebalance" % assignment.get(name, 0)
        reasons[name] = text
    return reasons


# -- a service's placement, as its status shows it -------------------------------


#: The reason of a status entry whose connector refused an order for lack of capacity.
INSUFFICIENT_CAPACITY = "InsufficientCapacity"


def refused(status: Mapping[str, Any]) -> set[str]:
    """The computes whose connector last refused this service's order for lack of room."""
    return {c for c, e in status.get("computes", {}).items()
            if e.get("reason") == INSUFFICIENT_CAPACITY}


def needs_capacity(service: Service, status: Mapping[str, Any], *,
                   health: Optional[Mapping[str, tuple[str, float]]] = None) -> bool:
    """Whether this pass may change the assignment, and so needs what the connectors
    can hold now (else the capacity the status recorded will do). ``health``: that of
    a service with fail-over (``assign``), which may move what a NotReady compute holds."""
    before = status.get("placement")
    if not before or before.get("total") != service.replicas or refused(status):
        return True
    if health is not None and (before.get("failover") or any(
            health.get(c, ("",))[0] == NOT_READY for c in before.get("assignment", ()))):
        return True
    # Unschedulable: room may have come (a compute joined, another service shrank).
    return service.rebalance > before.get("rebalanced", 0) or \
        before.get("placed", 0) < before.get("total", 0)


def others_use(reported: tuple[int, int], own: Optional[int]) -> tuple[int, int]:
    """A connector's (total, used) as (total, used by the other services): ``own`` is
    what this service ran there as last seen (its own resources are room for itself)."""
    total, used = reported
    return total, max(0, used - (own or 0))


def assign(service: Service, status: Mapping[str, Any], *,
           computes: Mapping[str, Mapping[str, str]],
           capacity: Optional[Mapping[str, Optional[tuple[int, int]]]] = None,
           health: Optional[Mapping[str, tuple[str, float]]] = None, now: float = 0.0,
           may_start: Callable[[], Optional[float]] = lambda: None,
           breaker: float = DEFAULT_BREAKER) -> dict:
    """The status.placement of a placed service for this pass: its assignment, shares
    and why, from its spec, its last status, the computes (name -> labels) and what
    their connectors can hold for it (name -> (total, used by the other services);
    None: what the status recorded).

    Fail-over needs ``health`` (compute -> (condition, since when), wall-clock
    seconds; a compute absent: Unknown) and ``now``; without it (``GET /plan``), what
    has failed over stays as the status says. ``may_start()``: None if a fail-over may
    start now, else the seconds until one may (the global rate). What the pass needs
    besides the status comes in ``_pass``: the events to add, when to look again, why
    counts moved; the caller pops it."""
    # (A first decision of thousands of services runs this with cold caches, where each
    # Python call costs about a µs: the common cases call none.)
    spec = service.placement if type(service.placement) is dict else placement_of(service)
    before = status.get("placement") or {}
    listed = spec.get("computes")
    names = tuple(filter(computes.__contains__, listed)) if listed is not None \
        else tuple(eligible(spec, computes))
    # (Most services have no fail-over: they pay nothing for it.)
    failing = None
    if spec.get("failover") is not None:
        failing = _FailOver(service, spec["failover"], before, status, computes=computes,
                            names=names, health=health, now=now)
        failing.decide(may_start, breaker=breaker)
        names = tuple(n for n in names if n not in failing.held)
    if capacity is None:
        recorded = before.get("capacity")
        reported = tuple(sorted((c, (r["total"], r["usedByOthers"]))
                                for c, r in recorded.items())) if recorded else ()
    elif capacity:
        reported = tuple(sorted((c, r) for c, r in capacity.items() if r is not None))
    else:  # no connector reported any (the common case): nothing to sort
        reported = ()
    rebalance = service.rebalance > before.get("rebalanced", 0)
    entries = status.get("computes")
    running, refusing, desired = _past(entries) if entries else ((), (), ())
    # A service that had counts per compute keeps them as its first assignment: giving it
    # a total moves nothing by itself either.
    if before:
        assigned = before.get("assignment")
        if assigned is not None and failing is not None:
            # What a failed-over compute holds (or held, if purged now) is no part of
            # what the others share.
            assigned = {c: n for c, n in assigned.items() if c not in failing.aside}
        previous = None if assigned is None else tuple(sorted(assigned.items()))
    else:
        previous = desired or None
    weights = spec.get("weights")
    decided = _decide(
        service.replicas, spec.get("strategy", SPREAD),  # type: ignore[arg-type]  # an int here
        tuple(sorted(weights.items())) if weights else (), spec.get("maxPerCompute"),
        spec.get("maxSurge"), names, reported, previous, running, rebalance, refusing,
        # _start's, inline: a call costs about a µs here.
        zlib.crc32(service.name.encode()) % len(names) if names else 0)
    answer, done = decided
    placed = {**answer,  # copies: the remembered answer stays as it is
              "assignment": dict(answer["assignment"]), "shares": dict(answer["shares"]),
              "reasons": dict(answer["reasons"]),
              "capacity": {c: {"total": t, "usedByOthers": u} for c, (t, u) in reported}
              if reported else {},
              "rebalanced": service.rebalance if not rebalance or done
              else before.get("rebalanced", 0)}
    if failing is not None:
        failing.conclude(placed)
    return placed


class _FailOver:
    """One pass's fail-over of a placed service: which computes' shares have moved
    (``held``: their originals stay in the assignment), which move now, which are
    tolerated a while longer, and when the originals go (the module's rules)."""

    def __init__(self, service: Service, settings: Mapping[str, Any],
                 before: Mapping[str, Any], status: Mapping[str, Any], *,
                 computes: Mapping[str, Any], names: Sequence[str],
                 health: Optional[Mapping[str, tuple[str, float]]], now: float) -> None:
        self.service = service
        self.settings = settings
        self.before, self.status = before, status
        self.computes, self.names = computes, names
        self.health, self.now = health, now
        recorded = (before.get("failover") or {}).get("computes") or {}
        #: compute -> its record: those whose share moved, originals kept.
        self.held = {c: dict(r) for c, r in recorded.items() if r.get("failedOverAt")}
        #: What the others do not share: held computes, and those purged in this pass.
        self.aside = set(self.held)
        #: compute -> its record: NotReady, but within its toleration (or held back).
        self.waiting: dict[str, dict] = {}
        #: (condition, message) of a guard rail that holds the fail-over back.
        self.guard: Optional[tuple[str, str]] = None
        #: (type, reason, compute, message) of the events to add.
        self.events: list[tuple[str, str, str, str]] = []
        #: Seconds until something is due (a toleration ends, the rate allows, a
        #: grace period ends), or None.
        self.retry: Optional[float] = None
        #: The computes that failed over in this pass, and those whose originals went.
        self.started: list[str] = []
        self.purged: list[str] = []

    @property
    def toleration(self) -> int:
        return self.settings.get("tolerationSeconds", DEFAULT_TOLERATION)

    @property
    def mode(self) -> str:
        return self.settings.get("purgeMode", GRACEFUL)

    @property
    def grace(self) -> int:
        return self.settings.get("gracePeriodSeconds", DEFAULT_GRACE_PERIOD)

    def _again(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.retry = seconds if self.retry is None else min(self.retry, seconds)

    def _condition(self, compute: str) -> tuple[str, float]:
        assert self.health is not None
        return self.health.get(compute, ("Unknown", self.now))

    def decide(self, may_start: Callable[[], Optional[float]], *, breaker: float) -> None:
        if self.health is None:
            return  # GET /plan: what failed over stays as the status says
        self._purge()
        assigned = self.before.get("assignment") or {}
        down = [c for c in self.names if self._condition(c)[0] == NOT_READY]
        due = []
        for compute in down:
            if compute in self.held or not assigned.get(compute):
                continue
            since = self._condition(compute)[1]
            at = since + self.toleration
            if self.now >= at:
                due.append(compute)
                continue
            self._again(at - self.now)
            self.waiting[compute] = {
                "state": TOLERATING, "notReadySince": utc_text(since),
                "originals": assigned[compute],
                "message": "NotReady since %s: its %d fail over at %s (tolerationSeconds %d)"
                           % (utc_text(since), assigned[compute], utc_text(at), self.toleration)}
        if down and len(down) > breaker * len(self.names):
            self.guard = (HELD, "%d of the placement's %d computes are NotReady (more than "
                                "%g%%): genisys' own network is the likelier fault, so nothing "
                                "fails over" % (len(down), len(self.names), breaker * 100))
            for compute in due:
                self._held_back(compute, assigned[compute], "held by the breaker")
            return
        if not due:
            return
        wait = may_start()
        if wait is not None:
            self.guard = (PENDING, "%s past the toleration: waiting for the fail-over rate"
                          % ", ".join("%s NotReady" % c for c in due))
            self._again(wait)
            for compute in due:
                self._held_back(compute, assigned[compute], "waiting for the fail-over rate")
            return
        for compute in due:
            since = self._condition(compute)[1]
            self.held[compute] = {"state": FAILED_OVER, "notReadySince": utc_text(since),
                                  "failedOverAt": utc_text(self.now),
                                  "originals": assigned[compute]}
            self.aside.add(compute)
            self.started.append(compute)

    def _held_back(self, compute: str, originals: int, why: str) -> None:
        since = self._condition(compute)[1]
        self.waiting[compute] = {
            "state": TOLERATING, "notReadySince": utc_text(since), "originals": originals,
            "message": "NotReady since %s, past its toleration: its %d %s"
                       % (utc_text(since), originals, why)}

    def _purge(self) -> None:
        """Let go of the held computes that were deleted, and purge the originals of
        those back (Ready) as the purge mode says."""
        rebalance = self.service.rebalance > self.before.get("rebalanced", 0)
        for compute, record in sorted(self.held.items()):
            if compute not in self.computes:
                del self.held[compute]  # deleted: its pair goes as any dropped compute's
                continue
            if self._condition(compute)[0] != READY:
                record["state"] = FAILED_OVER
                continue
            why = self._purge_now(record, rebalance)
            if why is None:
                record["state"] = KEPT if self.mode == NEVER else RETURNED
                continue
            del self.held[compute]
            self.purged.append(compute)
            self.events.append(("Normal", "Purged", compute, "removed the %d original(s) of %s "
                                "on %s: %s" % (record["originals"], self.service.name, compute,
                                               why)))

    def _purge_now(self, record: Mapping[str, Any], rebalance: bool) -> Optional[str]:
        """Why the originals of a compute back go now (None: not yet)."""
        if self.mode == IMMEDIATE:
            return "it is Ready again (purgeMode Immediate)"
        if self.mode == NEVER:
            return "a rebalance was asked for (purgeMode Never)" if rebalance else None
        if self._replacements_run():
            return "it is Ready again and the replacements run (purgeMode Graceful)"
        end = utc_seconds(record["failedOverAt"]) + self.grace
        if self.now >= end:
            return ("it is Ready again and the grace period of %ds is over (purgeMode "
                    "Graceful)" % self.grace)
        self._again(min(end - self.now, PURGE_CHECK))
        return None

    def _replacements_run(self) -> bool:
        """Every compute the share moved to runs what it was assigned, as last seen."""
        entries = self.status.get("computes", {})
        assigned = self.before.get("assignment") or {}
        return all(entries.get(c, {}).get("condition") == CONVERGED
                   and entries[c].get("running") == n
                   for c, n in assigned.items() if c not in self.held)

    def conclude(self, placed: dict) -> None:
        """Add to ``placed`` (the status.placement of the pass) the originals kept, the
        fail-over's status, and ``_pass``: its events, when to look again, and why counts
        moved."""
        assignment = placed["assignment"]
        for compute, record in self.held.items():
            assignment[compute] = record["originals"]
            placed["reasons"][compute] = "%s: its %d original(s) kept until they go (%s)" % (
                record["state"], record["originals"], self.mode)
            record["message"] = self._held_message(compute, record)
        if self.started:
            for compute in self.started:
                record = self.held[compute]
                self.events.append(("Warning", "FailedOver", compute, "%s NotReady since %s "
                                    "(tolerationSeconds %d): its %d of %s moved to the Ready "
                                    "computes; the originals go %s" % (
                                        compute, record["notReadySince"], self.toleration,
                                        record["originals"], self.service.name,
                                        self._purge_text(record))))
        before = (self.before.get("failover") or {}).get("condition")
        records = {**self.waiting, **self.held}
        if self.guard is not None:
            condition, message = self.guard
        elif self.held:
            condition = KEPT if any(r["state"] == KEPT for r in self.held.values()) \
                else FAILED_OVER
            message = "; ".join("%s: %s" % (c, r["message"]) for c, r in sorted(records.items()))
        elif self.waiting:
            condition = TOLERATING
            message = "; ".join("%s: %s" % (c, r["message"]) for c, r in sorted(records.items()))
        else:
            condition, message = "", ""
        if condition and condition != before and condition in (HELD, KEPT):
            self.events.append(("Warning", "FailoverHeld" if condition == HELD
                                else "OriginalsKept", sorted(records)[0], message))
        if condition:
            placed["failover"] = {"condition": condition, "message": message,
                                  "computes": dict(sorted(records.items()))}
        why = None
        if self.started:
            why = "fail-over from %s" % ", ".join(self.started)
        elif self.purged:
            why = "originals purged"
        placed["_pass"] = {"events": self.events, "retry_in": self.retry, "why": why,
                           "started": len(self.started)}

    def _purge_text(self, record: Mapping[str, Any]) -> str:
        if self.mode == IMMEDIATE:
            return "as soon as it is Ready again (purgeMode Immediate)"
        if self.mode == NEVER:
            return "only on a rebalance (purgeMode Never)"
        end = utc_text(utc_seconds(record["failedOverAt"]) + self.grace)
        return ("when it is Ready again: once the replacements run, or from %s on "
                "(purgeMode Graceful)" % end)

    def _held_message(self, compute: str, record: Mapping[str, Any]) -> str:
        moved = "NotReady since %s; its %d moved to the Ready computes at %s" % (
            record["notReadySince"], record["originals"], record["failedOverAt"])
        if record["state"] == KEPT:
            return ("Ready again; its %d original(s) stay (purgeMode Never): POST "
                    "/service/%s/rebalance removes them" % (record["originals"],
                                                            self.service.name))
        if record["state"] == RETURNED:
            return ("Ready again; its %d original(s) go once the replacements run, or at %s "
                    "(purgeMode Graceful)" % (record["originals"], utc_text(
                        utc_seconds(record["failedOverAt"]) + self.grace)))
        return "%s; the originals go %s" % (moved, self._purge_text(record))


def _past(entries: Optional[Mapping[str, Any]]) -> tuple[tuple, tuple, tuple]:
    """From a status's entries, in one pass (a first decision has none): what runs where
    it converged, the computes that refused for lack of capacity (``refused``), and what
    each was told to run, as sorted tuples (hashable, for ``_decide``)."""
    if not entries:
        return (), (), ()
    running, refusing, desired = [], [], []
    for compute, entry in sorted(entries.items()):
        if entry.get("condition") == CONVERGED:
            running.append((compute, entry.get("running")))
        if entry.get("reason") == INSUFFICIENT_CAPACITY:
            refusing.append(compute)
        if entry.get("desired"):
            desired.append((compute, entry["desired"]))
    return tuple(running), tuple(refusing), tuple(desired)


@functools.lru_cache(maxsize=4096)
def _decide(total: int, strategy: str, weights: tuple, most: Optional[int], surge: Any,
            names: tuple[str, ...], capacity: tuple, previous: Optional[tuple],
            running: tuple, rebalance: bool, refused_by: tuple, start: int
            ) -> tuple[dict, bool]:
    """``assign``'s decision, from hashable inputs only, and whether a rebalance is done:
    services with the same total, placement, computes and past (thousands of them, often)
    share one. Pure, so a remembered answer is the answer; the caller copies what it keeps."""
    spec = {"strategy": strategy, "weights": dict(weights), "maxPerCompute": most,
            "maxSurge": surge}
    found = candidates(spec, names, capacity=dict(capacity), running={})
    result = place(total, spec, found, previous=None if previous is None else dict(previous),
                   running=dict(running), rebalance=rebalance, refused=refused_by,
                   turn=_turns(tuple(sorted(names)), start))
    if result.placed < total:
        condition = UNSCHEDULABLE
        message = "Unschedulable: %d wanted, %d fit" % (total, result.placed)
        if not found:
            message += " (no compute is in the placement)"
    elif rebalance and not result.rebalanced:
        condition = REBALANCING
        message = "rebalancing to %s, %s at a time" % (_counts(result.shares),
                                                       max_surge(total, surge))
    else:
        condition = PLACED
        message = "%d placed on %d compute(s) (%s)" % (total, len(result.assignment), strategy)
    return {"total": total, "placed": result.placed, "condition": condition,
            "message": message, "assignment": result.assignment, "shares": result.shares,
            "reasons": result.reasons}, result.rebalanced


def moves(status: Mapping[str, Any], after: Mapping[str, Any],
          why: str) -> list[tuple[str, str]]:
    """(compute, what moved there) for each compute whose assigned count changed since
    ``status`` (the last one: its assignment, or for a service that had counts per
    compute, those), as events say it: "placed 2 on dc2 (Spread)", "took 1 off dc1
    (rebalance)"."""
    before = status.get("placement")
    old = before["assignment"] if before else {
        c: e["desired"] for c, e in status.get("computes", {}).items() if e.get("desired")}
    new = after["assignment"]
    said = []
    for compute in sorted(set(old) | set(new)):
        change = new.get(compute, 0) - old.get(compute, 0)
        if change > 0:
            said.append((compute, "placed %d on %s (%s)" % (change, compute, why)))
        elif change < 0:
            said.append((compute, "took %d off %s (%s)" % (-change, compute, why)))
    return said


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join("%d on %s" % (n, c) for c, n in counts.items()) or "nothing"
