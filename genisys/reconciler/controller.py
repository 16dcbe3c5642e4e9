"""The reconciler: watches intents, and makes connectors run what they say.

It is level-triggered. A service name enters the work queue when its spec
changes, when a compute it uses changes (both seen by the informer), and every
``poll_interval`` for all services (resync: catches a resource that died or was
scaled by hand). A worker then runs one pass, ``reconcile_service``: it reads
the spec and the status (from the informer), asks ``decide_pair`` what to do
about each compute and makes the connector calls it says, then writes what
``conclude`` says. A lost wake-up or a crash costs latency, never correctness.

Failures are per (service, compute) pair: a connector that is down, hanging,
answering 500 or garbage only marks its own pairs, which are retried with
exponential backoff (sooner if the intent changes, the compute changes, or
the connector answers again), while every other pair keeps converging.
"""

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Optional, cast

from genisys import pacing, placement
from genisys.connector.client import (
    ConnectorClient,
    ConnectorFailure,
    ConnectorFenced,
    ConnectorNotFound,
)
from genisys.errors import GenisysError, VersionMismatch
from genisys.intents import (
    COMPUTES,
    HEALTH,
    SERVICES,
    compute_key,
    events_key,
    health_key,
    recent_events,
    service_key,
    status_key,
)
from genisys.metrics import Metrics
from genisys.model import CONVERGED, UNREACHABLE, Compute, Service, empty_status, placement_of
from genisys.reconciler import status as st
from genisys.reconciler.decide import (
    AskStatus,
    Call,
    Decision,
    Failure,
    Now,
    Observed,
    Pair,
    PairMemory,
    PairResult,
    Scale,
    Tuning,
    conclude,
    decide_pair,
    internal_error,
    plan,
)
from genisys.reconciler.health import NOT_READY, ComputeHealth, Health, Thresholds
from genisys.reconciler.informer import Informer
from genisys.reconciler.leader import Leadership, NotLeader
from genisys.reconciler.queue import Backoff, WorkQueue
from genisys.reconciler.workers import PassGate, resync_timer, worker
from genisys.store import Condition, Op, Record, Store
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)


class Reconciler:
    """One term of reconciling: the informer, the queue and its workers, and the pass."""

    def __init__(self, store: Store, client: ConnectorClient, *, metrics: Metrics,
                 poll_interval: float = 15.0, workers: int = 16,
                 backoff: Optional[Backoff] = None, progress_check: float = 0.25,
                 pass_budget: float = 1.0, leadership: Optional[Leadership] = None,
                 health: Optional[Thresholds] = None, probe_interval: float = 10.0,
                 failover_rate: float = 0.5,
                 failover_breaker: float = placement.DEFAULT_BREAKER,
                 api_answering: Optional[Callable[[], int]] = None) -> None:
        #: With a shared store, every write is fenced by the leadership (a deposed
        #: leader can't write) and every connector call is preceded by its check().
        self.leadership = leadership
        self.store = leadership.fenced(store) if leadership is not None else store
        self.client = client
        self.metrics = metrics
        #: Seconds between resyncs of every service.
        self.poll_interval = poll_interval
        self.workers = workers
        #: How many requests the API is answering now (None: no API in this
        #: process): with it, passes yield to a busy API (workers.PassGate).
        self.api_answering = api_answering
        self.gate: Optional[PassGate] = None
        #: Backoff of failing (service, compute) pairs.
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        #: First delay before checking that a scale order took effect; doubles
        #: with each check, up to poll_interval (a crash-looping command is not
        #: restarted more often than that).
        self.progress_check = progress_check
        self.tuning = Tuning(backoff=self.backoff, poll_interval=poll_interval,
                             progress_check=progress_check)
        #: Seconds a pass waits for its pairs. A pair whose connector is slower goes on
        #: in the background and the pass writes the others' status now: a hanging
        #: connector doesn't hold back the rest of the service. The pass its answer
        #: triggers records it.
        self.pass_budget = pass_budget
        # Whole-pass failures (store errors, bugs) back off like pairs do.
        self.queue = WorkQueue(backoff=Backoff(initial=self.backoff.initial,
                                               maximum=self.backoff.maximum),
                               on_change=self._queue_changed)
        self.informer = Informer(self.store, on_spec=self._spec_changed,
                                 on_compute=self._compute_changed,
                                 on_specs_relisted=self._specs_relisted,
                                 on_computes_relisted=self._computes_relisted)
        #: (service, compute) -> the task of a pair still waiting on its connector.
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        #: While a resync looks at every service: those whose pass ended (its write
        #: landed) since it began (its listing is older than what they saw). None between
        #: resyncs.
        self._passed_in_resync: Optional[set[str]] = None
        #: The pairs calling their connector now: when the call was sent (loop time), or
        #: None while it waits in line for a turn.
        self._calls: dict[tuple[str, str], Optional[float]] = {}
        #: compute -> service -> what is remembered of the pair between passes.
        self._memory: dict[str, dict[str, PairMemory]] = {}
        #: compute -> services whose last failure there was the connector itself
        #: (unreachable, timeout): any answer from it means they can try again.
        self._down: dict[str, set[str]] = collections.defaultdict(set)
        self._tasks: list[asyncio.Task] = []
        #: Compute health, from the outcome of every call to a connector
        #: (docs/failover.md): a probe asks those no call touched for ``probe_interval``.
        self.health = ComputeHealth(health or Thresholds())
        self.probe_interval = probe_interval
        client.on_outcome = self._observed
        #: Fail-overs of placed services start at ``failover_rate`` a second at most,
        #: all together; none while more than ``failover_breaker`` of a placement's
        #: computes are NotReady.
        self.failover_rate = _Rate(failover_rate)
        self.failover_breaker = failover_breaker
        #: compute -> the lock its health record is written under (in order).
        self._health_locks: dict[str, asyncio.Lock] = {}
        #: Health records being written, and probes under way (by compute).
        self._health_writes: set[asyncio.Task] = set()
        self._probing: dict[str, asyncio.Task] = {}
        #: compute -> its condition as last acted on.
        self._conditions: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self.metrics.leader.set(1)
        await self._restore_health()
        await self.informer.start()
        self._tasks = [start_task(resync_timer(self.poll_interval, self.resync),
                                  name="resync-timer"),
                       start_task(self._follow_health(), name="compute-health")]
        if self.api_answering is not None:
            self.gate = PassGate(self.workers, answering=self.api_answering,
                                 on_look=self.metrics.passes_allowed.set)
            self.metrics.passes_allowed.set(self.workers)
            self.gate.start()
        self._tasks += [start_task(worker(self.queue, self.reconcile_service,
                                          metrics=self.metrics, gate=self.gate),
                                   name="worker-%d" % i)
                        for i in range(self.workers)]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every task; a pass cut short is simply redone by the next leader or start."""
        self.queue.close()
        if self.gate is not None:
            self.gate.stop()
        await stop_tasks(self._tasks + list(self._inflight.values()) + list(self._health_writes)
                         + list(self._probing.values()), timeout=timeout)
        await self.informer.stop(timeout=timeout)
        self._tasks = []
        self._inflight.clear()
        self.metrics.leader.set(0)

    # -- what puts services in the queue (called by the informer) -------------

    async def _spec_changed(self, name: str) -> None:
        self.queue.add(name)

    async def _compute_changed(self, name: str) -> None:
        """A compute appeared, moved or went: look again at every service using it
        (its spec names it, or a pair there is still remembered: being scaled to 0
        there, say). A new address deserves a try now, not at the end of the old
        one's backoff. Nothing is read from the store: computes may change often."""
        remembered = self._memory.get(name, {})
        if await self.informer.compute(name) is None and name in self._conditions:
            self._forget_health(name)
        self._retry_now(name, remembered)
        for service in sorted(self.informer.services_using(name).union(remembered)):
            self.queue.add(service)

    async def _specs_relisted(self, first: bool, specs: list[Record]) -> None:
        """Every service may have changed unseen (at start, after a broken watch):
        look at each, but for those batch connectors say are still as converged."""
        del first
        await self._queue_unsettled(specs)

    async def _computes_relisted(self, first: bool, computes: list[Record]) -> None:
        """After a gap in the watch (not at start), any compute may have moved
        unseen: every pair may try again now, and every service gets looked at."""
        del computes
        if first:
            return
        for compute, memories in self._memory.items():
            self._retry_now(compute, memories)
        await self._queue_unsettled()

    def _retry_now(self, compute: str, services: Iterable[str]) -> None:
        """Cut short the backoff of ``compute``'s pairs with ``services``."""
        memories = self._memory.get(compute, {})
        for service in list(services):
            if service in memories:
                memories[service] = dataclasses.replace(memories[service], not_before=0.0)

    async def resync(self) -> None:
        """Queue every service, and every status left without one (by a genisys
        whose finalizer deleted them apart, and crashed in between) — but for the services found
        converged on connectors with the batch extension: those are asked about
        every such service at once, and only what differs gets a pass."""
        self._passed_in_resync = set()
        try:
            await self._queue_unsettled(resync=True)
        finally:
            self._passed_in_resync = None

    async def _queue_unsettled(self, specs: Optional[list[Record]] = None, *,
                               resync: bool = False) -> None:
        """Queue every service, but those ``_settled`` (``specs``: just listed) and those
        with a connector call still under way (its answer queues the service); at a
        ``resync``, those the queue holds already too (waiting, in a pass, or due again
        later: a retry keeps its backoff), and those passed while it listed and asked
        the connectors. A pass for those now would find nothing new, at the cost of a
        read, and of a decision for a placed service. (After a gap in the watch, any
        spec may have changed: those due later are not left to wait.)"""
        specs, statuses = await self.informer.specs_and_statuses(specs)
        names = {r.key[len(SERVICES):] for r in specs} | set(statuses)
        try:
            settled = await self._settled(specs, statuses)
        except GenisysError as e:  # the store, say: then every service gets its pass
            log.warning("cannot check services in batches: %s", e)
            settled = set()
        busy = {service for (service, _), task in self._inflight.items() if not task.done()}
        if resync and self._passed_in_resync:
            busy |= self._passed_in_resync
        for name in sorted(names - settled - busy):
            if not (resync and self.queue.holds(name)):
                self.queue.add(name)

    async def _settled(self, specs: list[Record], statuses: dict[str, Record]) -> set[str]:
        """The services whose status says Converged everywhere, for their current
        generation, on computes with the batch extension only — and whose
        connectors, asked now in batch requests, still run exactly that."""
        try:
            self._check_leader()
        except NotLeader:
            return set()
        candidates: dict[str, dict[str, int]] = {}  # compute -> {service: desired}
        for record in specs:
            service = Service.from_store(record.value)
            status = statuses.get(service.name)
            if status is None or service.deleting \
                    or status.value.get("observedGeneration") != service.generation:
                continue
            if (status.value.get("pacing") or {}).get("message"):
                continue  # paced toward its intent: its passes take the next steps
            wants: Any = service.replicas
            if service.placed:
                placed = status.value.get("placement") or {}
                # A rebalance under way is not settled, converged or not.
                wants = placed.get("assignment") if placed.get("condition") == \
                    placement.PLACED else None
            if not isinstance(wants, dict) or set(status.value.get("computes", {})) != set(wants):
                continue
            entries = status.value["computes"]
            if all(entries[c].get("condition") == CONVERGED
                   and entries[c].get("desired") == n for c, n in wants.items()):
                for compute, desired in wants.items():
                    candidates.setdefault(compute, {})[service.name] = desired
        unsettled: set[str] = set()
        for compute_name, wanted in candidates.items():
            found = await self.informer.compute_model(compute_name)
            counts = None
            if found is not None:
                counts = await self.client.running_many(found, sorted(wanted))
            if counts is None:  # no batch extension (or no compute): one pass each
                unsettled.update(wanted)
                continue
            self._connector_answered(compute_name)
            unsettled.update(s for s, n in wanted.items() if counts.get(s) != n)
        settled: set[str] = set().union(*candidates.values())
        return settled - unsettled

    def _queue_changed(self) -> None:
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.queue_delayed.set(self.queue.delayed)

    # -- one pass ----------------------------------------------------------------

    async def reconcile_service(self, name: str) -> Optional[float]:
        """One pass over a service; returns when to look again (None: at resync)."""
        started = time.monotonic()
        # The events too: a pass that writes a status mostly adds one (one read, not two).
        spec, current, events = await self.store.get_many(
            [service_key(name), status_key(name), events_key(name)])
        if spec is None:
            await self._remove(name, current)
            return None
        service = Service.from_store(spec.value)
        previous = current.value if current else empty_status()
        paced = pacing.pace_service(service, previous, now=time.time())
        service = paced.service
        placed = await self._place(service, previous) if service.placed else None
        assignment = placed["assignment"] if placed is not None else None
        failing = placed.pop("_pass", None) if placed is not None else None
        computes = set(assignment if assignment is not None else cast(dict, service.replicas))
        computes.update(previous.get("computes", {}))
        memory = {c: self._memory[c][name] for c in computes
                  if name in self._memory.get(c, ())}
        results = await self._run_pairs(plan(service, previous, memory, assignment=assignment))
        for compute, result in results.items():
            if result.entry is None:
                self._forget_pair(name, compute)
        decision = conclude(service, results, placement=placed)
        if placed is not None:
            decision = self._placement_told(service, previous, placed, decision, failing)
        decision = _paced_told(decision, paced)
        self.metrics.passes.labels(decision.outcome).inc()
        self.metrics.pass_seconds.observe(time.monotonic() - started)
        try:
            if decision.action == "finalize":
                return await self._finalize(name, spec)
            await self._write(name, current, events, previous, decision)
            return decision.retry_in
        finally:
            # Once written, not once decided: a resync that began in between listed the
            # status of before the write, and would queue the service again for it.
            if self._passed_in_resync is not None:
                self._passed_in_resync.add(name)

    async def _place(self, service: Service, status: dict) -> dict:
        """A placed service's status.placement for this pass (``genisys.placement``), with
        what its computes' connectors can hold now if the assignment may change."""
        computes = await self.informer.compute_labels()
        health = None
        if placement_of(service).get("failover") is not None:
            health = {name: (h.condition, h.since)
                      for name, h in self.health.conditions().items()}
        capacity = None
        if placement.needs_capacity(service, status, health=health):
            capacity = {}
            entries = status.get("computes", {})
            for name in placement.eligible(placement_of(service), computes):
                compute = await self.informer.compute_model(name)
                reported = await self.client.capacity(compute) if compute else None
                if reported is not None:
                    capacity[name] = placement.others_use(
                        (reported.total, reported.used), entries.get(name, {}).get("running"))
        # This thread's CPU time: not the store's writer thread, nor waiting for the GIL.
        # (The clock itself adds about 2 µs to each decision on the 2-core VM.)
        started = time.thread_time()
        if health is None:
            placed = placement.assign(service, status, computes=computes, capacity=capacity)
        else:
            placed = placement.assign(service, status, computes=computes, capacity=capacity,
                                      health=health, now=time.time(),
                                      may_start=self._may_fail_over,
                                      breaker=self.failover_breaker)
        self.metrics.placement_seconds.inc(time.thread_time() - started)
        self.metrics.placements.inc()
        return placed

    def _placement_told(self, service: Service, status: dict, placed: dict,
                        decision: Decision, failing: Optional[dict]) -> Decision:
        """A placed service's decision with an event per compute whose count the
        placement moved, and those of its fail-over (``failing``); and, while a
        rebalance goes on, with its next step taken as soon as this one has converged."""
        before = status.get("placement")
        why = placement_of(service).get("strategy", placement.SPREAD)
        if service.rebalance > (before or {}).get("rebalanced", 0):
            why = "rebalance"
        retry_in = decision.retry_in
        utc = datetime.datetime.now(datetime.timezone.utc)
        events = list(decision.events)
        if failing is not None:
            why = failing["why"] or why
            events += [st.event(kind, reason, compute, message, now=utc)
                       for kind, reason, compute, message in failing["events"]]
            if failing["retry_in"] is not None:
                retry_in = failing["retry_in"] if retry_in is None \
                    else min(retry_in, failing["retry_in"])
            self.metrics.failovers.inc(failing["started"])
        events += [st.event(st.NORMAL, "Placed", compute, message, now=utc)
                   for compute, message in placement.moves(status, placed, why)]
        # A step of a rebalance is taken by the pass that finds the last one done: the
        # next pass, at once, when this one moved the assignment or saw it converge (a
        # converged service may get no pass of its own until it changes again).
        moved = before is None or before.get("assignment") != placed["assignment"]
        entries = status.get("computes", {})
        was_running = all(entries.get(c, {}).get("running") == n
                          and entries.get(c, {}).get("condition") == CONVERGED
                          for c, n in placed["assignment"].items())
        if placed["condition"] == placement.REBALANCING and decision.outcome == "converged" \
                and (moved or not was_running):
            retry_in = 0.0
        return dataclasses.replace(decision, events=events, retry_in=retry_in)

    async def _run_pairs(self, pairs: dict[str, Pair]) -> dict[str, PairResult]:
        """The PairResult of each compute, concurrently, within ``pass_budget``.

        A pair still waiting on its connector then is left running; this pass
        keeps its previous entry, and its completion queues the service again,
        whose next pass takes the result (or starts over if the intent moved)."""
        tasks = {}
        for compute, pair in pairs.items():
            key = (pair.service, compute)
            task = self._inflight.get(key)
            if task is not None and task.done():
                self._inflight.pop(key)
                finished = task.result()  # a store error fails this pass, like any
                if finished.desired == pair.desired:
                    tasks[compute] = task
                    continue
                task = None  # worked out for an older intent: start over
            if task is None:
                task = asyncio.ensure_future(self._pair(pair))
                self._inflight[key] = task
            tasks[compute] = task
        # The budget is for connectors slow to answer, counted from when a call was
        # sent, not for calls waiting in line at a busy one: those are waited for
        # (workers then take no new passes, which is what keeps lines short), and a
        # line whose connector answers nothing gives up on its own (connector.timeout).
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            pending = [c for c, t in tasks.items() if not t.done()]
            if not pending:
                break
            since = [self._calls.get((pairs[c].service, c), started) for c in pending]
            sent = [t for t in since if t is not None]
            if len(sent) < len(since):
                timeout = self.pass_budget  # a call in line: look again after a while
            else:
                timeout = max(sent) + self.pass_budget - loop.time()
                if timeout <= 0:
                    break
            await asyncio.wait([tasks[c] for c in pending], timeout=timeout)
        results = {}
        for compute, pair in pairs.items():
            task, key = tasks[compute], (pair.service, compute)
            if task.done():
                if self._inflight.get(key) is task:
                    self._inflight.pop(key)
                results[compute] = task.result()
            else:
                task.add_done_callback(functools.partial(self._answered, pair.service))
                results[compute] = decide_pair(pair, Observed(in_flight=True), now=self._now(),
                                               tuning=self.tuning)
        return results

    def _answered(self, service: str, task: asyncio.Future) -> None:
        """A pair left running by a pass is done: the next pass takes its result."""
        del task
        self.queue.add(service)

    async def _pair(self, pair: Pair) -> PairResult:
        """Make the calls ``decide_pair`` asks for, one after the other, until it
        has the pair's outcome."""
        # Present while the pair is known: a pair forgotten meanwhile stays forgotten.
        self._memory.setdefault(pair.compute, {}).setdefault(pair.service, pair.memory)
        compute = await self.informer.compute_model(pair.compute)
        observed = Observed(compute_exists=compute is not None)
        while True:
            step = decide_pair(pair, observed, now=self._now(), tuning=self.tuning)
            if isinstance(step, PairResult):
                break
            assert compute is not None  # decide_pair calls no connector of a missing compute
            observed = await self._call(step, compute, pair, observed)
        self._record(pair, step)
        return step

    async def _call(self, call: Call, compute: Compute, pair: Pair,
                    observed: Observed) -> Observed:
        """``observed`` with the connector's answer to ``call`` (or its failure)."""
        self._check_leader()  # NotLeader: not ours to reconcile any more, no status either
        key = (pair.service, pair.compute)
        self._calls[key] = None

        def sent() -> None:
            # The call had to wait its turn (or a batch window): a leader deposed meanwhile
            # (its lease expired while it was paused, say) must not send it now that
            # another leads. NotLeader here ends the call unsent.
            self._check_leader()
            self._calls[key] = asyncio.get_running_loop().time()
        try:
            if isinstance(call, Scale):
                reported = await self.client.scale(compute, pair.service, call.number,
                                                   on_sent=sent)
                answered = dataclasses.replace(observed, scaled=True, reported=reported)
            else:
                assert isinstance(call, AskStatus)
                running = await self.client.running(compute, pair.service, on_sent=sent)
                answered = dataclasses.replace(observed, asked=True, running=running)
        except NotLeader:
            raise  # not ours to reconcile any more: no status either
        except ConnectorFenced as e:
            # The connector has heard a newer leader: this one's term is over.
            if self.leadership is not None:
                self.leadership.deposed(e.message)
            raise NotLeader("a connector refused the order of an old term: %s"
                            % e.message) from e
        except ConnectorNotFound as e:
            failure = Failure(e.reason, e.condition, e.message, not_defined=True)
            return dataclasses.replace(observed, failure=failure)
        except ConnectorFailure as e:
            failure = Failure(e.reason, e.condition, e.message,
                              retry_after=getattr(e, "retry_after", None))
            return dataclasses.replace(observed, failure=failure)
        except Exception as e:  # noqa: BLE001 - a bug in one pair must not stop the others
            log.exception("reconcile %s on %s crashed", pair.service, pair.compute)
            return dataclasses.replace(observed, failure=internal_error(e))
        finally:
            self._calls.pop(key, None)
        self._connector_answered(pair.compute)
        return answered

    def _record(self, pair: Pair, result: PairResult) -> None:
        """Keep what a pair's outcome says to remember, publish and log."""
        memories = self._memory.get(pair.compute, {})
        if result.memory is not None and pair.service in memories:
            memories[pair.service] = result.memory
        if result.metric is not None:
            desired, running = result.metric
            self.metrics.set_pair(pair.service, pair.compute, desired=desired, running=running)
        failure = result.failure
        if failure is not None:
            if failure.condition == UNREACHABLE:
                self._down[pair.compute].add(pair.service)
            else:
                self._down[pair.compute].discard(pair.service)
            self.metrics.errors.labels(failure.reason).inc()
            log.info("%s on %s: %s: %s (attempt %d, again in %.1fs)", pair.service,
                     pair.compute, failure.reason, failure.message,
                     result.memory.failures if result.memory else 0, result.retry_in or 0.0)

    async def _write(self, name: str, current: Optional[Record], events_record: Optional[Record],
                     previous: dict, decision: Decision) -> None:
        """Write the new status (a compare-and-swap on the version read) and events."""
        new = decision.status
        assert new is not None  # a "write" decision always carries the status
        ops = []
        if new != previous:
            ops.append(Op.put(status_key(name), new,
                              expect_version=current.version if current else 0))
        if decision.events or "events" in previous:
            # Events live apart from the status (read only when asked for), written
            # in the same transaction; a status of before that hands its own over.
            events = recent_events(events_record, current)
            for event in decision.events:
                events = st.add_event(events, event)
            ops.append(Op.put(events_key(name), {"events": events}))
        if not ops:
            return
        await self.store.transaction(ops)

    async def _remove(self, name: str, current: Optional[Record]) -> None:
        """The spec is gone: so go the status (``current``) and events left, and what
        is remembered of the service."""
        if current is not None:
            await self.store.transaction([
                Op.delete(status_key(name), expect_version=current.version),
                Op.delete(events_key(name))])
        self._forget(name)

    async def _finalize(self, name: str, spec: Record) -> Optional[float]:
        """The service is being deleted and nothing is left: remove its records, in one
        transaction (no moment where the spec is gone and its status is not)."""
        try:
            await self.store.transaction([
                Op.delete(service_key(name), expect_version=spec.version),
                Op.delete(status_key(name)), Op.delete(events_key(name))])
        except VersionMismatch:
            return 0  # changed under us: look again
        self._forget(name)
        log.info("deleted service %s: every resource is gone", name)
        return None

    # -- compute health ------------------------------------------------------------

    async def _restore_health(self) -> None:
        """Start from the conditions stored by the last leader (or this controller before
        a restart): a compute NotReady stays so until it has answered long enough. The
        records of computes gone meanwhile go."""
        computes = {r.key for r in (await self.store.list(COMPUTES)).records}
        for record in (await self.store.list(HEALTH)).records:
            name = record.key[len(HEALTH):]
            if compute_key(name) not in computes:
                with contextlib.suppress(VersionMismatch):  # written again meanwhile
                    await self.store.delete(health_key(name), expect_version=record.version)
                continue
            try:
                found = Health.from_store(record.value)
            except (KeyError, TypeError, ValueError):
                continue  # not a record of ours: the next change writes a good one
            self.health.restore(name, found)
            self._conditions[name] = found.condition
            self.metrics.set_condition(name, found.condition)

    def _forget_health(self, compute: str) -> None:
        """The compute went: so goes what is known of its health, and its record."""
        self.health.forget(compute)
        self._conditions.pop(compute, None)
        self.metrics.set_condition(compute, None)
        task = start_task(self._save_health(compute), name="health-%s" % compute)
        self._health_writes.add(task)
        task.add_done_callback(self._health_writes.discard)

    def _observed(self, compute: str, answered: bool, failure: str) -> None:
        """The connector client's word on every call: feed the compute's health (not
        that of a compute deleted while the call was under way)."""
        if not self.informer.may_exist(compute):
            return
        changed = self.health.observe(compute, answered, time.time(), failure)
        if changed is not None:
            self._health_changed(compute, changed)

    def _health_changed(self, compute: str, health: Health) -> None:
        (log.warning if health.condition == NOT_READY else log.info)(
            "compute %s is %s: %s", compute, health.condition, health.message)
        self.metrics.set_condition(compute, health.condition)
        task = start_task(self._save_health(compute), name="health-%s" % compute)
        self._health_writes.add(task)
        task.add_done_callback(self._health_writes.discard)
        was, self._conditions[compute] = self._conditions.get(compute), health.condition
        if NOT_READY in (was, health.condition) and was != health.condition:
            # The placed services there decide again: fail over, or purge what did. (A
            # first answer, Unknown to Ready, changes nothing for them.)
            for service in sorted(self._memory.get(compute, ())):
                self.queue.add(service)

    async def _save_health(self, compute: str) -> None:
        """Store the compute's condition as it is now (writes of one compute in order)."""
        lock = self._health_locks.setdefault(compute, asyncio.Lock())
        async with lock:
            try:
                if compute not in self._conditions:  # forgotten: the compute went
                    await self.store.delete(health_key(compute))
                    return
                health = self.health.condition(compute, time.time())
                await self.store.put(health_key(compute), health.to_store(compute),
                                     conditions=[Condition.exists(compute_key(compute))])
            except VersionMismatch:
                pass  # the compute is gone, and its record with it
            except NotLeader:
                pass  # the next leader stores what it sees
            except GenisysError as e:
                log.warning("cannot store the condition of compute %s: %s", compute, e)

    async def _follow_health(self) -> None:
        """Now and then: conditions that change with time alone, and a probe of each
        compute no call touched for ``probe_interval``."""
        t = self.health.thresholds
        every = min(1.0, self.probe_interval, t.failure / 4, t.success / 4)
        while True:
            await asyncio.sleep(every)
            now = time.time()
            for compute, health in self.health.tick(now).items():
                self._health_changed(compute, health)
            try:
                computes = await self.informer.compute_labels()
            except GenisysError as e:  # the store, before the informer has listed them
                log.warning("cannot list the computes to probe: %s", e)
                continue
            for compute in computes:
                if now - self.health.seen(compute) >= self.probe_interval \
                        and compute not in self._probing:
                    task = start_task(self._probe(compute), name="probe-%s" % compute)
                    self._probing[compute] = task
                    task.add_done_callback(lambda _, c=compute: self._probing.pop(c, None))

    async def _probe(self, name: str) -> None:
        compute = await self.informer.compute_model(name)
        if compute is not None:
            await self.client.probe(compute)  # its outcome reaches _observed

    def _may_fail_over(self) -> Optional[float]:
        """None if a fail-over may start now (and count it), else the seconds to wait."""
        return self.failover_rate.take(asyncio.get_running_loop().time())

    # -- helpers -------------------------------------------------------------------

    def _now(self) -> Now:
        return Now(time=asyncio.get_running_loop().time(),
                   utc=datetime.datetime.now(datetime.timezone.utc),
                   jitter=self.backoff.jitter())

    def _check_leader(self) -> None:
        if self.leadership is not None:
            self.leadership.check()

    def _connector_answered(self, compute_name: str) -> None:
        """The connector of ``compute_name`` answers again: every pair waiting out a
        backoff because it was down is retried now, not at the end of its backoff."""
        down = self._down.pop(compute_name, ())
        if not down:
            return
        memories = self._memory.get(compute_name, {})
        self._retry_now(compute_name, down)
        for service in down:
            if service in memories:
                self.queue.add(service)

    def _forget_pair(self, name: str, compute: str) -> None:
        memories = self._memory.get(compute)
        if memories is not None:
            memories.pop(name, None)
            if not memories:
                del self._memory[compute]
        self._down.get(compute, set()).discard(name)
        self.metrics.forget_pair(name, compute)

    def _forget(self, name: str) -> None:
        for compute in [c for c, memories in self._memory.items() if name in memories]:
            self._forget_pair(name, compute)


class _Rate:
    """A token bucket of ``rate`` a second, and a burst of one."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = 1.0
        self._at: Optional[float] = None

    def take(self, now: float) -> Optional[float]:
        """None if a token was taken, else the seconds until one is there."""
        if self._at is not None:
            self._tokens = min(1.0, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


# -- pacing (docs/scaling.md) --------------------------------------------------------


def _paced_told(decision: Decision, paced: pacing.Paced) -> Decision:
    """A paced service's decision: its status carries where the pacing stands (a
    controller restarted, or a new leader, goes on from it), and the service is looked
    at again when its next step is due."""
    if paced.status is None or decision.status is None:
        return decision
    waits = [w for w in (decision.retry_in, paced.retry_in) if w is not None]
    return dataclasses.replace(decision, status=dict(decision.status, pacing=paced.status),
                               retry_in=min(waits) if waits else None)
