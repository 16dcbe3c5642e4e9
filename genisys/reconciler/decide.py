"""What the reconciler should do about a service: pure decisions, no I/O, no clock.

The shape of controller-runtime's Reconcile: ``decide(spec, status, observed)``
takes the service's spec, its last status, the memory kept about each
(service, compute) pair between passes and what the connectors reported in this
pass, and returns what to do: per compute, a connector call to make
(``AskStatus``, ``Scale``) or its outcome (the status entry, the events, when to
look again); once every compute has its outcome, the status to write, or that
the service's records go (``finalize``, ``remove``).

``decide`` is three steps, which the loop around it
(``genisys.reconciler.controller``) runs itself with the reads, calls and writes
in between: ``plan`` (the pairs and their desired counts), ``decide_pair`` once
per answer of a pair's connector (so each pair goes at its own pace: a slow
connector holds back only its own pairs), and ``conclude`` once every pair has
its outcome. Time is passed in (``Now``), so each rule here is a row of
tests/reconciler/test_decide.py.
"""

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Optional, Union

from genisys.model import COMPUTE_MISSING, CONVERGED, ERROR, PROGRESSING, Service
from genisys.reconciler import status as st
from genisys.reconciler.queue import Backoff


@dataclasses.dataclass(frozen=True)
class Now:
    """The moment of a decision, read by the loop."""

    #: Event-loop time (seconds): what backoff deadlines are measured in.
    time: float
    #: Wall-clock time of status entries and events.
    utc: datetime.datetime
    #: A random draw in [0, 1) that spreads this pair's retry within its backoff.
    jitter: float = 0.5


@dataclasses.dataclass(frozen=True)
class Tuning:
    """The reconciler's settings a decision depends on."""

    #: Backoff of failing pairs.
    backoff: Backoff
    #: Seconds between resyncs; also the longest wait between progress checks.
    poll_interval: float
    #: First delay before checking that a scale order took effect (doubles per check).
    progress_check: float


@dataclasses.dataclass(frozen=True)
class PairMemory:
    """What the reconciler remembers about one (service, compute) between passes."""

    #: Consecutive failures (also shown in status).
    failures: int = 0
    #: Loop time before which a failed pair is not called again.
    not_before: float = 0.0
    #: Spec generation at the last failure: a newer intent retries at once.
    generation: int = 0
    #: Progress checks since the last scale order (spaces them out).
    checks: int = 0


@dataclasses.dataclass(frozen=True)
class Failure:
    """A connector call that failed (or crashed), as the status shows it."""

    reason: str
    condition: str
    message: str
    #: The connector has no such service (404): it runs none of it.
    not_defined: bool = False
    #: Seconds the connector asked genisys to wait (Retry-After), None if it did not.
    retry_after: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Observed:
    """What this pass learnt about one pair so far."""

    #: False: the compute has no record (deleted, or never created).
    compute_exists: bool = True
    #: The status call answered (``running`` is its count).
    asked: bool = False
    running: Optional[int] = None
    #: The scale order was taken (``reported``: the count in its answer, if any).
    scaled: bool = False
    reported: Optional[int] = None
    failure: Optional[Failure] = None
    #: Still waiting on the connector when the pass budget ran out.
    in_flight: bool = False


@dataclasses.dataclass(frozen=True)
class AskStatus:
    """Ask the connector how many resources of the service run."""


@dataclasses.dataclass(frozen=True)
class Scale:
    """Order the connector to run ``number`` resources of the service (absolute)."""

    number: int


Call = Union[AskStatus, Scale]


@dataclasses.dataclass(frozen=True)
class Pair:
    """One (service, compute) as a pass sees it before any call."""

    service: str
    compute: str
    generation: int
    #: What should run there (0 while deleting, or once dropped from the spec).
    desired: int
    #: Its status entry of the last pass (None: none yet).
    previous: Optional[dict]
    #: No longer in the spec: scaled to 0, then removed from the status.
    dropped: bool
    memory: PairMemory


@dataclasses.dataclass(frozen=True)
class PairResult:
    """The outcome of one pair in a pass."""

    #: The status entry; None drops the compute from the status (it is done there).
    entry: Optional[dict]
    events: list[dict]
    #: Look at the service again after this many seconds (None: at resync).
    retry_in: Optional[float]
    #: converged, progressing, failed, or waiting (out its backoff, or on its connector).
    outcome: str
    #: The desired count this result was worked out for.
    desired: int
    #: The pair's memory from now on (None: unchanged).
    memory: Optional[PairMemory] = None
    #: (desired, running) to publish as metrics (None: unchanged).
    metric: Optional[tuple[int, Optional[int]]] = None
    #: The failure this result reports, if any (logged and counted by the loop).
    failure: Optional[Failure] = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do about a service now.

    ``action`` is "call" (``calls`` holds the connector calls to make, then
    decide again with their answers), "write" (``status`` and ``events``),
    "finalize" (every resource is gone: delete the spec, the status and the
    events) or "remove" (the spec is gone: delete the status and events)."""

    action: str
    calls: dict[str, Call] = dataclasses.field(default_factory=dict)
    results: dict[str, PairResult] = dataclasses.field(default_factory=dict)
    status: Optional[dict] = None
    events: list[dict] = dataclasses.field(default_factory=list)
    #: Look at the service again after this many seconds (None: at resync).
    retry_in: Optional[float] = None
    #: converged, progressing or failed (the ``genisys_reconcile_passes_total`` label).
    outcome: str = "converged"


def plan(service: Service, status: dict, memory: Mapping[str, PairMemory], *,
         assignment: Optional[Mapping[str, int]] = None) -> dict[str, Pair]:
    """The pairs of a pass, by compute (sorted): the spec's computes (a placed
    service's: its ``assignment``), and those the status still has an entry for
    (dropped: they go to 0 first)."""
    before = status.get("computes", {})
    counts = service.replicas if assignment is None else assignment
    assert isinstance(counts, dict), "a placed service is planned with its assignment"
    desired = {c: 0 if service.deleting else n for c, n in counts.items()}
    dropped = {c for c in before if c not in desired}
    desired.update({c: 0 for c in dropped})
    pairs = {}
    for compute in sorted(desired):
        previous = before.get(compute)
        pairs[compute] = Pair(
            service=service.name, compute=compute, generation=service.generation,
            desired=desired[compute], previous=previous, dropped=compute in dropped,
            memory=memory.get(compute) or PairMemory(failures=(previous or {}).get("failures", 0)))
    return pairs


def decide_pair(pair: Pair, observed: Observed, *, now: Now,
                tuning: Tuning) -> Union[Call, PairResult]:
    """The next connector call of one pair, or its outcome."""
    previous, desired, memory = pair.previous, pair.desired, pair.memory
    if observed.in_flight:
        # Its connector is slow: the pair goes on in the background, its last entry stays.
        entry = previous or st.entry(None, desired=desired, running=None,
                                     condition=PROGRESSING, reason="Waiting",
                                     message="waiting for the connector to answer",
                                     now=now.utc)
        return PairResult(entry, [], None, "waiting", desired)
    if (memory.not_before > now.time and memory.generation == pair.generation
            and previous is not None and previous.get("desired") == desired):
        # Out its backoff; a new count (a newer spec, or a placement that moved) is
        # tried at once.
        return PairResult(previous, [], memory.not_before - now.time, "waiting", desired)
    if not observed.compute_exists:
        return _compute_missing(pair, now)
    new_intent = previous is None or previous.get("desired") != desired
    # The count before this pass's order: what the status said, or what the connector
    # just answered.
    running = observed.running if observed.asked else (previous or {}).get("running")
    metric = (desired, observed.running) if observed.asked else None
    if observed.failure is not None:
        if observed.failure.not_defined and desired == 0:
            # A connector that doesn't know the service runs none of it: that is what
            # is wanted, and what lets a deletion finish.
            return _converged(pair, 0, [], now=now, metric=(0, 0))
        return _failed(pair, observed.failure, running, now=now, tuning=tuning, metric=metric)
    if observed.scaled:
        return _order_taken(pair, running, observed.reported, now=now, tuning=tuning,
                            metric=metric)
    if new_intent:
        # The set-point is absolute, so it is sent at once (one round trip, not two);
        # the answer says what runs.
        return Scale(desired)
    if not observed.asked:
        # The same intent: check that reality still matches it (drift, a dead resource,
        # a scale order still in progress), and only then act.
        return AskStatus()
    if observed.running == desired:
        return _converged(pair, desired, [], now=now, metric=metric)
    return Scale(desired)


def decide(spec: Optional[Service], status: Optional[dict],
           observed: Mapping[str, Observed], *, memory: Mapping[str, PairMemory],
           now: Now, tuning: Tuning) -> Decision:
    """What to do about a service, given what was observed so far in this pass
    (a compute missing from ``observed``: nothing yet)."""
    if spec is None:
        return Decision("remove")
    status = status if status is not None else {}
    results: dict[str, PairResult] = {}
    calls: dict[str, Call] = {}
    for compute, pair in plan(spec, status, memory).items():
        step = decide_pair(pair, observed.get(compute, Observed()), now=now, tuning=tuning)
        if isinstance(step, PairResult):
            results[compute] = step
        else:
            calls[compute] = step
    if calls:
        return Decision("call", calls=calls, results=results)
    return conclude(spec, results)


def conclude(service: Service, results: Mapping[str, PairResult], *,
             placement: Optional[dict] = None) -> Decision:
    """The pass's decision once every pair has its outcome (``placement``: a placed
    service's status.placement, kept in the status)."""
    entries, events, retries = {}, [], []
    for compute in sorted(results):
        result = results[compute]
        if result.entry is not None:
            entries[compute] = result.entry
        events += result.events
        if result.retry_in is not None:
            retries.append(result.retry_in)
    outcomes = {r.outcome for r in results.values()}
    outcome = ("failed" if outcomes & {"failed", "waiting"} else
               "progressing" if "progressing" in outcomes else "converged")
    if service.deleting and st.is_finished(entries):
        return Decision("finalize", results=dict(results), events=events, outcome=outcome)
    status = {"observedGeneration": service.generation, "computes": entries}
    if placement is not None:
        status["placement"] = placement
    return Decision("write", results=dict(results), events=events, outcome=outcome,
                    status=status, retry_in=min(retries) if retries else None)


def _from(running: Optional[int]) -> str:
    """ "from 3 " when the count before a scale order is known ("" when never seen)."""
    return "" if running is None else "from %d " % running


def _compute_missing(pair: Pair, now: Now) -> PairResult:
    if pair.dropped:
        return PairResult(None, [], None, "converged", pair.desired)
    previous = pair.previous or {}
    entry = st.entry(pair.previous, desired=pair.desired, running=None,
                     condition=COMPUTE_MISSING, reason="ComputeMissing",
                     message="compute %r does not exist: create it, or remove it from the "
                             "service" % pair.compute, now=now.utc)
    events = [] if previous.get("condition") == COMPUTE_MISSING else [
        st.event(st.WARNING, "ComputeMissing", pair.compute, entry["message"], now=now.utc)]
    return PairResult(entry, events, None, "failed", pair.desired,
                      metric=(pair.desired, None))


def _converged(pair: Pair, desired: int, events: list[dict], *, now: Now,
               metric: Optional[tuple[int, Optional[int]]]) -> PairResult:
    previous = pair.previous or {}
    memory = dataclasses.replace(pair.memory, failures=0, not_before=0.0, checks=0)
    if previous.get("condition") != CONVERGED or previous.get("running") != desired:
        events = events + [st.event(st.NORMAL, "Converged", pair.compute,
                                    "%s on %s: %d running, as desired"
                                    % (pair.service, pair.compute, desired), now=now.utc)]
    if pair.dropped and desired == 0:
        return PairResult(None, events, None, "converged", pair.desired, memory, metric)
    entry = st.entry(pair.previous, desired=desired, running=desired, condition=CONVERGED,
                     now=now.utc)
    return PairResult(entry, events, None, "converged", pair.desired, memory, metric)


def _order_taken(pair: Pair, running: Optional[int], reported: Optional[int], *, now: Now,
                 tuning: Tuning, metric: Optional[tuple[int, Optional[int]]]) -> PairResult:
    previous, desired = pair.previous, pair.desired
    events = []
    if not previous or (previous.get("condition"), previous.get("desired"),
                        previous.get("running")) != (PROGRESSING, desired, running):
        events.append(st.event(st.NORMAL, "Scaled", pair.compute, "scaled %s on %s %sto %d"
                               % (pair.service, pair.compute, _from(running), desired),
                               now=now.utc))
    if reported == desired:  # and done already, says the answer
        return _converged(pair, desired, events, now=now, metric=(desired, desired))
    # Check again soon that it took effect.
    checks = pair.memory.checks + 1
    memory = dataclasses.replace(pair.memory, failures=0, not_before=0.0, checks=checks)
    message = "scaling %sto %d" % (_from(running), desired)
    entry = st.entry(previous, desired=desired,
                     running=reported if reported is not None else running,
                     condition=PROGRESSING, reason="Scaling", message=message, now=now.utc)
    retry_in = min(tuning.poll_interval, tuning.progress_check * 2 ** min(checks - 1, 20))
    return PairResult(entry, events, retry_in, "progressing", desired, memory, metric)


def _failed(pair: Pair, failure: Failure, running: Optional[int], *, now: Now, tuning: Tuning,
            metric: Optional[tuple[int, Optional[int]]]) -> PairResult:
    failures = pair.memory.failures + 1
    # A connector that says how long to wait (Retry-After) is not called sooner.
    delay = max(tuning.backoff.spread(failures, now.jitter), failure.retry_after or 0.0)
    memory = dataclasses.replace(pair.memory, failures=failures, generation=pair.generation,
                                 not_before=now.time + delay)
    entry = st.entry(pair.previous, desired=pair.desired, running=running,
                     condition=failure.condition, reason=failure.reason,
                     message=failure.message, failures=failures, now=now.utc)
    events = [st.event(st.WARNING, failure.reason, pair.compute, failure.message, now=now.utc)]
    return PairResult(entry, events, delay, "failed", pair.desired, memory, metric, failure)


def internal_error(error: Exception) -> Failure:
    """A bug in one pair's call, as its status shows it (the others go on)."""
    return Failure("InternalError", ERROR,
                   "internal error: %r (see the controller log)" % (error,))
