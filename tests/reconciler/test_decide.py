"""decide(spec, status, observed) as a table: one row per situation, no I/O, no clock.

Each row gives the spec, the last status, the pair memory and what the
connectors reported so far in the pass, and the exact decision: the calls to
make, or the status entries, the events, when to look again and the pass
outcome. The loop around it is tested against real connectors in
test_reconcile.py.
"""

import dataclasses
import datetime
from typing import Optional

import pytest

from genisys.model import Service
from genisys.reconciler.decide import (
    AskStatus,
    Failure,
    Now,
    Observed,
    PairMemory,
    Scale,
    Tuning,
    decide,
    internal_error,
)
from genisys.reconciler.queue import Backoff

UTC = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
T0 = "2026-03-01T12:00:00Z"  # now
EARLIER = "2026-01-01T00:00:00Z"  # when the previous condition began
NOW = Now(time=100.0, utc=UTC, jitter=0.5)
TUNING = Tuning(backoff=Backoff(initial=1.0, maximum=60.0), poll_interval=15.0,
                progress_check=0.25)
DOWN = Failure("ConnectorUnreachable", "Unreachable", "cannot connect to http://a")
NOT_DEFINED = Failure("ServiceNotDefined", "Error", "no such service", not_defined=True)


def spec(replicas, *, generation=2, deleting=False):
    return Service.from_store({"name": "web", "replicas": replicas, "generation": generation,
                               "deleting": deleting})


def entry(condition, desired, running, *, reason="", message="", failures=0, since=T0):
    return {"desired": desired, "running": running, "condition": condition, "reason": reason,
            "message": message, "lastTransitionTime": since, "failures": failures}


def status(**entries):
    return {"observedGeneration": 2, "computes": entries}


def converged(desired, since=EARLIER):
    return entry("Converged", desired, desired, since=since)


def progressing(desired, running, message, since=T0):
    return entry("Progressing", desired, running, reason="Scaling", message=message, since=since)


def event(kind, reason, compute, message):
    return {"time": T0, "type": kind, "reason": reason, "compute": compute,
            "message": message, "count": 1}


def scaled(compute, message):
    return event("Normal", "Scaled", compute, message)


def converged_event(compute, number):
    return event("Normal", "Converged", compute,
                 "web on %s: %d running, as desired" % (compute, number))


@dataclasses.dataclass
class Row:
    id: str
    spec: Optional[Service]
    status: Optional[dict]
    observed: dict
    expect_action: str
    memory: dict = dataclasses.field(default_factory=dict)
    calls: dict = dataclasses.field(default_factory=dict)
    #: The status to write ("write"), as a whole.
    status_written: Optional[dict] = None
    events: list = dataclasses.field(default_factory=list)
    retry_in: Optional[float] = None
    outcome: str = "converged"
    #: compute -> the pair memory after the pass (only for the computes listed).
    memory_after: dict = dataclasses.field(default_factory=dict)
    #: compute -> the (desired, running) metric published (only for those listed).
    metrics: dict = dataclasses.field(default_factory=dict)
    #: compute -> the pair's own outcome (only for those listed).
    pair_outcomes: dict = dataclasses.field(default_factory=dict)


ROWS = [
    Row("new intent: the absolute set-point is ordered at once, without asking first",
        spec({"a": 2}), None, {}, "call", calls={"a": Scale(2)}),
    Row("new intent, done at once: converged, both events",
        spec({"a": 2}), None, {"a": Observed(scaled=True, reported=2)}, "write",
        status_written=status(a=converged(2, since=T0)),
        events=[scaled("a", "scaled web on a to 2"), converged_event("a", 2)],
        memory_after={"a": PairMemory()}, metrics={"a": (2, 2)}),
    Row("new intent, taken without a count: progressing, checked soon",
        spec({"a": 2}), status(a=converged(1)), {"a": Observed(scaled=True)}, "write",
        status_written=status(a=progressing(2, 1, "scaling from 1 to 2")),
        events=[scaled("a", "scaled web on a from 1 to 2")], retry_in=0.25,
        outcome="progressing", memory_after={"a": PairMemory(checks=1)},
        metrics={"a": None}),  # nothing was counted: no metric to publish
    Row("same intent: ask before acting",
        spec({"a": 2}), status(a=converged(2)), {}, "call", calls={"a": AskStatus()}),
    Row("converged: nothing to do, nothing to write, no event",
        spec({"a": 2}), status(a=converged(2)), {"a": Observed(asked=True, running=2)},
        "write", status_written=status(a=converged(2)), metrics={"a": (2, 2)}),
    Row("drift: a resource died, ordered back",
        spec({"a": 2}), status(a=converged(2)), {"a": Observed(asked=True, running=1)},
        "call", calls={"a": Scale(2)}),
    Row("drift repaired: one Scaled event, still Converged since before",
        spec({"a": 2}), status(a=converged(2)),
        {"a": Observed(asked=True, running=1, scaled=True, reported=2)}, "write",
        status_written=status(a=converged(2)),
        events=[scaled("a", "scaled web on a from 1 to 2")], metrics={"a": (2, 2)}),
    Row("progressing with check backoff: the 4th check waits 2s, no repeated event",
        spec({"a": 2}), status(a=progressing(2, 1, "scaling from 1 to 2", since=EARLIER)),
        {"a": Observed(asked=True, running=1, scaled=True)}, "write",
        memory={"a": PairMemory(checks=3)},
        status_written=status(a=progressing(2, 1, "scaling from 1 to 2", since=EARLIER)),
        retry_in=2.0, outcome="progressing", memory_after={"a": PairMemory(checks=4)},
        metrics={"a": (2, 1)}),
    Row("progress checks never wait longer than the poll interval",
        spec({"a": 2}), status(a=progressing(2, 1, "scaling from 1 to 2", since=EARLIER)),
        {"a": Observed(asked=True, running=1, scaled=True)}, "write",
        memory={"a": PairMemory(checks=10)},
        status_written=status(a=progressing(2, 1, "scaling from 1 to 2", since=EARLIER)),
        retry_in=15.0, outcome="progressing", memory_after={"a": PairMemory(checks=11)},
        metrics={"a": (2, 1)}),
    Row("connector down: Unreachable, a failure counted, retried after its backoff",
        spec({"a": 2}), status(a=converged(2)), {"a": Observed(failure=DOWN)}, "write",
        status_written=status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                      message=DOWN.message, failures=1)),
        events=[event("Warning", "ConnectorUnreachable", "a", DOWN.message)],
        retry_in=0.75, outcome="failed",
        memory_after={"a": PairMemory(failures=1, not_before=100.75, generation=2)}),
    Row("connector down again: the backoff grows (3rd failure: 2 to 4s, here 3s)",
        spec({"a": 2}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {"a": Observed(failure=DOWN)}, "write",
        memory={"a": PairMemory(failures=2, not_before=99.0, generation=2)},
        status_written=status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                      message=DOWN.message, failures=3, since=EARLIER)),
        events=[event("Warning", "ConnectorUnreachable", "a", DOWN.message)],
        retry_in=3.0, outcome="failed",
        memory_after={"a": PairMemory(failures=3, not_before=103.0, generation=2)}),
    Row("in backoff: no call, the entry stays, look again when it ends",
        spec({"a": 2}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {}, "write", memory={"a": PairMemory(failures=2, not_before=130.0, generation=2)},
        status_written=status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                      message=DOWN.message, failures=2, since=EARLIER)),
        retry_in=30.0, outcome="failed"),
    Row("in backoff, but the intent is newer: ordered at once",
        spec({"a": 3}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {}, "call", memory={"a": PairMemory(failures=2, not_before=130.0, generation=1)},
        calls={"a": Scale(3)}),
    Row("the status call failed after a count was seen: the count stays",
        spec({"a": 2}), status(a=converged(2)),
        {"a": Observed(asked=True, running=1, failure=internal_error(ValueError("x")))},
        "write", status_written=status(a=entry(
            "Error", 2, 1, reason="InternalError", failures=1,
            message="internal error: ValueError('x') (see the controller log)")),
        events=[event("Warning", "InternalError", "a",
                      "internal error: ValueError('x') (see the controller log)")],
        retry_in=0.75, outcome="failed", metrics={"a": (2, 1)}),
    Row("service not defined while resources are wanted: an error",
        spec({"a": 1}), None, {"a": Observed(failure=NOT_DEFINED)}, "write",
        status_written=status(a=entry("Error", 1, None, reason="ServiceNotDefined",
                                      message="no such service", failures=1)),
        events=[event("Warning", "ServiceNotDefined", "a", "no such service")],
        retry_in=0.75, outcome="failed"),
    Row("service not defined with desired 0: none runs, as wanted",
        spec({"a": 0}), status(a=entry("Error", 1, None, reason="ServiceNotDefined",
                                       message="no such service", failures=1)),
        {"a": Observed(failure=NOT_DEFINED)}, "write",
        status_written=status(a=converged(0, since=T0)),
        events=[converged_event("a", 0)], metrics={"a": (0, 0)},
        memory_after={"a": PairMemory()}),
    Row("compute missing: shown, with one warning, no call",
        spec({"a": 2}), status(a=converged(2)), {"a": Observed(compute_exists=False)},
        "write", status_written=status(a=entry(
            "ComputeMissing", 2, None, reason="ComputeMissing",
            message="compute 'a' does not exist: create it, or remove it from the service")),
        events=[event("Warning", "ComputeMissing", "a", "compute 'a' does not exist: create "
                      "it, or remove it from the service")],
        outcome="failed", metrics={"a": (2, None)}),
    Row("compute still missing: no second warning",
        spec({"a": 2}), status(a=entry(
            "ComputeMissing", 2, None, reason="ComputeMissing", since=EARLIER,
            message="compute 'a' does not exist: create it, or remove it from the service")),
        {"a": Observed(compute_exists=False)}, "write", status_written=status(a=entry(
            "ComputeMissing", 2, None, reason="ComputeMissing", since=EARLIER,
            message="compute 'a' does not exist: create it, or remove it from the service")),
        outcome="failed", metrics={"a": (2, None)}),
    Row("compute dropped from the spec: scaled to 0 first",
        spec({"a": 2}), status(a=converged(2), b=converged(3)),
        {"a": Observed(asked=True, running=2)}, "call", calls={"b": Scale(0)}),
    Row("compute dropped, at 0: its entry goes",
        spec({"a": 2}), status(a=converged(2), b=converged(3)),
        {"a": Observed(asked=True, running=2), "b": Observed(scaled=True, reported=0)},
        "write", status_written=status(a=converged(2)),
        events=[scaled("b", "scaled web on b from 3 to 0"), converged_event("b", 0)],
        metrics={"a": (2, 2), "b": (0, 0)}, memory_after={"b": PairMemory()},
        pair_outcomes={"a": "converged", "b": "converged"}),
    Row("compute dropped and gone: its entry goes, nothing to call",
        spec({}), status(b=converged(3)), {"b": Observed(compute_exists=False)}, "write",
        status_written=status(), pair_outcomes={"b": "converged"}),
    Row("deleting: every compute goes to 0",
        spec({"a": 2, "b": 1}, deleting=True), status(a=converged(2), b=converged(1)), {},
        "call", calls={"a": Scale(0), "b": Scale(0)}),
    Row("deleting, one compute still scaling down: the status is written, no finalize",
        spec({"a": 2, "b": 1}, deleting=True), status(a=converged(2), b=converged(1)),
        {"a": Observed(scaled=True, reported=0), "b": Observed(scaled=True)}, "write",
        status_written=status(a=converged(0), b=progressing(0, 1, "scaling from 1 to 0")),
        events=[scaled("a", "scaled web on a from 2 to 0"), converged_event("a", 0),
                scaled("b", "scaled web on b from 1 to 0")],
        retry_in=0.25, outcome="progressing", metrics={"a": (0, 0)}),
    Row("deletion finishing: nothing runs anywhere, the records go",
        spec({"a": 2, "b": 1}, deleting=True),
        status(a=converged(0), b=entry("ComputeMissing", 0, None, reason="ComputeMissing")),
        {"a": Observed(asked=True, running=0), "b": Observed(compute_exists=False)},
        "finalize", outcome="failed"),
    Row("a slow connector: its pair waits, the others are written",
        spec({"a": 2, "b": 1}), None,
        {"a": Observed(scaled=True, reported=2), "b": Observed(in_flight=True)}, "write",
        status_written=status(a=converged(2, since=T0), b=entry(
            "Progressing", 1, None, reason="Waiting",
            message="waiting for the connector to answer")),
        events=[scaled("a", "scaled web on a to 2"), converged_event("a", 2)],
        outcome="failed"),
    Row("a slow connector, seen before: its last entry stays",
        spec({"a": 2}), status(a=converged(1)), {"a": Observed(in_flight=True)}, "write",
        status_written=status(a=converged(1)), outcome="failed"),
    Row("one pair failing, one progressing: look again at the soonest",
        spec({"a": 2, "b": 1}), None,
        {"a": Observed(failure=DOWN), "b": Observed(scaled=True)}, "write",
        status_written=status(
            a=entry("Unreachable", 2, None, reason="ConnectorUnreachable",
                    message=DOWN.message, failures=1),
            b=progressing(1, None, "scaling to 1")),
        events=[event("Warning", "ConnectorUnreachable", "a", DOWN.message),
                scaled("b", "scaled web on b to 1")],
        retry_in=0.25, outcome="failed"),
    Row("backoff over, converged meanwhile: failures, backoff and checks are forgotten",
        spec({"a": 2}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {"a": Observed(asked=True, running=2)}, "write",
        memory={"a": PairMemory(failures=2, not_before=99.0, generation=2, checks=3)},
        status_written=status(a=converged(2, since=T0)), events=[converged_event("a", 2)],
        memory_after={"a": PairMemory(generation=2)}, metrics={"a": (2, 2)}),
    Row("backoff ending right now: called again",
        spec({"a": 2}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {}, "call", memory={"a": PairMemory(failures=2, not_before=100.0, generation=2)},
        calls={"a": AskStatus()}),
    Row("a failing pair's newer intent taken, part done: the count it answered, failures "
        "forgotten",
        spec({"a": 3}), status(a=entry("Unreachable", 2, 2, reason="ConnectorUnreachable",
                                       message=DOWN.message, failures=2, since=EARLIER)),
        {"a": Observed(scaled=True, reported=1)}, "write",
        memory={"a": PairMemory(failures=2, not_before=130.0, generation=1)},
        status_written=status(a=progressing(3, 1, "scaling from 2 to 3")),
        events=[scaled("a", "scaled web on a from 2 to 3")], retry_in=0.25,
        outcome="progressing", memory_after={"a": PairMemory(generation=1, checks=1)},
        pair_outcomes={"a": "progressing"}),
    Row("deletion finishing in this pass: the records go, with the last events",
        spec({"a": 1}, deleting=True), status(a=converged(1)),
        {"a": Observed(scaled=True, reported=0)}, "finalize",
        events=[scaled("a", "scaled web on a from 1 to 0"), converged_event("a", 0)],
        memory_after={"a": PairMemory()}, metrics={"a": (0, 0)}),
    Row("the spec is gone: its status and events go",
        None, status(a=converged(2)), {}, "remove"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_decide(row):
    status_before = None if row.status is None else _copy(row.status)
    decision = decide(row.spec, row.status, row.observed, memory=row.memory, now=NOW,
                      tuning=TUNING)
    assert decision.action == row.expect_action
    assert decision.calls == row.calls
    assert row.status == status_before  # decide changes nothing it is given
    if row.spec is not None:
        # Every compute of the spec or the status has either a call to make or its
        # outcome, which says the count it was worked out for (0: deleting or dropped).
        planned = set(row.spec.replicas) | set((row.status or {}).get("computes", {}))
        assert sorted([*decision.calls, *decision.results]) == sorted(planned)
        assert not set(decision.calls) & set(decision.results)
    for compute, result in decision.results.items():
        assert result.desired == (0 if row.spec.deleting
                                  else row.spec.replicas.get(compute, 0)), compute
    if row.expect_action == "call":
        return
    assert decision.status == row.status_written
    assert decision.events == row.events
    assert decision.retry_in == row.retry_in
    assert decision.outcome == row.outcome
    for compute, memory in row.memory_after.items():
        assert decision.results[compute].memory == memory
    for compute, metric in row.metrics.items():
        assert decision.results[compute].metric == metric
    for compute, outcome in row.pair_outcomes.items():
        assert decision.results[compute].outcome == outcome


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def test_every_failure_is_reported_to_the_loop_and_nothing_else_is():
    failed = decide(spec({"a": 2}), None, {"a": Observed(failure=DOWN)}, memory={},
                    now=NOW, tuning=TUNING)
    assert failed.results["a"].failure == DOWN
    fine = decide(spec({"a": 0}), None, {"a": Observed(failure=NOT_DEFINED)}, memory={},
                  now=NOW, tuning=TUNING)
    assert fine.results["a"].failure is None and fine.results["a"].outcome == "converged"


def test_failures_in_the_status_carry_over_to_a_new_reconciler():
    """A restarted controller has no memory: the count goes on from the status."""
    before = status(a=entry("Error", 2, 2, reason="ConnectorError", message="boom",
                            failures=4, since=EARLIER))
    decision = decide(spec({"a": 2}), before, {"a": Observed(failure=Failure(
        "ConnectorError", "Error", "boom"))}, memory={}, now=NOW, tuning=TUNING)
    assert decision.status["computes"]["a"]["failures"] == 5
    assert decision.retry_in == TUNING.backoff.spread(5, NOW.jitter) == 12.0


def test_an_internal_error_is_shown_as_such():
    assert internal_error(KeyError("web")) == Failure(
        "InternalError", "Error", "internal error: KeyError('web') (see the controller log)")


def test_progress_checks_stop_doubling_after_twenty():
    """With a poll interval too long to bound them, the checks' delay stops growing at
    progress_check * 2**20."""
    tuning = dataclasses.replace(TUNING, poll_interval=1e9)
    for checks, delay in ((20, 0.25 * 2 ** 20), (21, 0.25 * 2 ** 20), (30, 0.25 * 2 ** 20),
                          (19, 0.25 * 2 ** 19)):
        decision = decide(spec({"a": 2}), status(a=progressing(2, 1, "scaling from 1 to 2")),
                          {"a": Observed(asked=True, running=1, scaled=True)},
                          memory={"a": PairMemory(checks=checks)}, now=NOW, tuning=tuning)
        assert decision.retry_in == delay, checks
