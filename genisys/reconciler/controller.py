"""The reconciler: watches intents, and makes connectors run what they say.

It is level-triggered. A service name enters the work queue when its spec
changes (store watch), when a compute it uses changes, and every
``poll_interval`` for all services (resync: catches a resource that died or
was scaled by hand). A worker then runs one pass, ``reconcile_service``:
read desired and observed, send absolute set-points where they differ,
write status. A lost wake-up or a crash costs latency, never correctness.

Failures are per (service, compute) pair: a connector that is down, hanging,
answering 500 or garbage only marks its own pairs, which are retried with
exponential backoff (sooner if the intent changes), while every other pair
keeps converging.
"""

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Optional

from genisys.connector.client import ConnectorFailure, ConnectorNotFound
from genisys.errors import GenisysError, VersionMismatch
from genisys.intents import (
    COMPUTES,
    SERVICES,
    STATUS,
    compute_key,
    events_key,
    recent_events,
    service_key,
    status_key,
)
from genisys.model import (
    COMPUTE_MISSING,
    CONVERGED,
    ERROR,
    PROGRESSING,
    UNREACHABLE,
    Compute,
    Service,
    empty_status,
)
from genisys.reconciler import status as st
from genisys.reconciler.leader import NotLeader
from genisys.reconciler.queue import Backoff, QueueClosed, WorkQueue
from genisys.store import Compacted, Op
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)


def _from(running):
    """ "from 3 " when the count before a scale order is known ("" when never seen)."""
    return "" if running is None else "from %d " % running


@dataclasses.dataclass
class PairState:
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
class PairResult:
    #: The status entry; None drops the compute from status (it is done there).
    entry: Optional[dict]
    events: list
    #: Look at the service again after this many seconds (None: at resync).
    retry_in: Optional[float]
    outcome: str  # converged, progressing, failed, waiting
    #: The desired count this result was worked out for.
    desired: Optional[int] = None


class Reconciler:
    def __init__(self, store, client, *, metrics, poll_interval=15.0, workers=16,
                 backoff=None, progress_check=0.25, pass_budget=1.0, leadership=None):
        #: With a shared store, every write is fenced by the leadership (a deposed
        #: leader can't write) and every connector call is preceded by its check().
        self.leadership = leadership
        self.store = leadership.fenced(store) if leadership is not None else store
        self.client = client
        self.metrics = metrics
        #: Seconds between resyncs of every service.
        self.poll_interval = poll_interval
        self.workers = workers
        #: Backoff of failing (service, compute) pairs.
        self.backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        #: First delay before checking that a scale order took effect; doubles
        #: with each check, up to poll_interval (a crash-looping command is not
        #: restarted more often than that).
        self.progress_check = progress_check
        #: Seconds a pass waits for its pairs. A pair whose connector is slower goes on
        #: in the background and the pass writes the others' status now: a hanging
        #: connector doesn't hold back the rest of the service. The pass its answer
        #: triggers records it.
        self.pass_budget = pass_budget
        #: (service, compute) -> the task of a pair still waiting on its connector.
        self._inflight = {}
        # Whole-pass failures (store errors, bugs) back off like pairs do.
        self.queue = WorkQueue(backoff=Backoff(initial=self.backoff.initial,
                                               maximum=self.backoff.maximum),
                               on_change=self._queue_changed)
        self._pairs = {}
        #: compute -> services whose last failure there was the connector itself
        #: (unreachable, timeout): any answer from it means they can try again.
        self._down = collections.defaultdict(set)
        #: compute name -> its record (None: absent), as last read (see _compute).
        self._computes = {}
        self._computes_watched = False
        self._tasks = []

    # -- lifecycle -----------------------------------------------------------

    async def start(self):
        self.metrics.leader.set(1)
        self._tasks = [
            start_task(self._follow(SERVICES, self._service_changed,
                                    listed=self._services_listed), name="service-watcher"),
            start_task(self._follow(COMPUTES, self._compute_changed,
                                    listed=self._computes_listed),
                       name="compute-watcher"),
            start_task(self.resync_timer(), name="resync-timer"),
        ] + [start_task(self.worker(), name="worker-%d" % i) for i in range(self.workers)]

    async def stop(self, timeout=10.0):
        """Stop every task; a pass cut short is simply redone by the next leader or start."""
        self.queue.close()
        await stop_tasks(self._tasks + list(self._inflight.values()), timeout=timeout)
        self._tasks = []
        self._inflight.clear()
        self.metrics.leader.set(0)

    # -- what puts services in the queue ------------------------------------

    async def _follow(self, prefix, changed, *, listed):
        """List ``prefix``, then watch it from the listing's revision, forever.

        A compacted or broken watch lists again, so no change is ever missed:
        ``await listed(listing)`` after each listing, ``await changed(key)`` for
        each change seen after it."""
        failures = 0
        retry = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                listing = await self.store.list(prefix)
                await listed(listing)
                failures = 0
                async with self.store.watch(prefix, start_revision=listing.revision) as watch:
                    async for event in watch:
                        await changed(event.key)
            except Compacted as e:
                log.info("watch of %s: %s; listing again", prefix, e)
            except GenisysError as e:
                failures += 1
                delay = retry.delay(failures)
                log.warning("watch of %s failed (%s); again in %.1fs", prefix, e, delay)
                await asyncio.sleep(delay)

    async def _service_changed(self, key):
        self.queue.add(key[len(SERVICES):])

    async def _services_listed(self, specs):
        """Every service may have changed unseen (at start, after a broken watch):
        look at each, but for those batch connectors say are still as converged."""
        await self._queue_unsettled(specs)

    async def _computes_listed(self, listing):
        """Computes are read when used, then kept: forget what may be stale. After a
        gap in the watch (not at start), any compute may have moved unseen: every
        pair may try again now, and every service gets looked at."""
        del listing
        self._computes.clear()
        if self._computes_watched:
            for state in self._pairs.values():
                state.not_before = 0.0
            await self._queue_unsettled(await self.store.list(SERVICES))
        self._computes_watched = True

    async def _compute(self, name):
        """The record of compute ``name`` (None: there is none). Computes are read
        from the store once each, then kept up to date by the compute watcher, so a
        pass needs no store read per pair."""
        if name in self._computes:
            return self._computes[name]
        record = self._computes[name] = await self.store.get(compute_key(name))
        return record

    async def _compute_changed(self, key):
        """A compute appeared, moved or went: look again at every service using it."""
        name = key[len(COMPUTES):]
        self._computes.pop(name, None)  # read again at its next use
        # A new address deserves a try now, not at the end of the old one's backoff.
        for (_, compute), state in self._pairs.items():
            if compute == name:
                state.not_before = 0.0
        for service in await self._services_using(name):
            self.queue.add(service)

    async def _services_using(self, compute):
        specs = await self.store.list(SERVICES)
        statuses = await self.store.list(STATUS)
        users = {r.key[len(SERVICES):] for r in specs.records if compute in r.value["replicas"]}
        users |= {r.key[len(STATUS):] for r in statuses.records
                  if compute in r.value.get("computes", {})}
        return sorted(users)

    async def resync_timer(self):
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.resync()
            except GenisysError as e:
                log.warning("resync failed: %s", e)

    async def resync(self):
        """Queue every service, and every status left without one (a crash
        between the finalizer's two deletes) — but for the services found
        converged on connectors with the batch extension: those are asked about
        every such service at once, and only what differs gets a pass."""
        await self._queue_unsettled(await self.store.list(SERVICES))

    async def _queue_unsettled(self, specs):
        statuses = await self.store.list(STATUS)
        names = {r.key[len(SERVICES):] for r in specs.records}
        names |= {r.key[len(STATUS):] for r in statuses.records}
        try:
            settled = await self._settled(specs, statuses)
        except GenisysError as e:  # the store, say: then every service gets its pass
            log.warning("cannot check services in batches: %s", e)
            settled = set()
        for name in sorted(names - settled):
            self.queue.add(name)

    async def _settled(self, specs, statuses):
        """The services whose status says Converged everywhere, for their current
        generation, on computes with the batch extension only — and whose
        connectors, asked now in batch requests, still run exactly that."""
        try:
            self._check_leader()
        except NotLeader:
            return set()
        status_of = {r.key[len(STATUS):]: r.value for r in statuses.records}
        candidates = {}  # compute -> {service: desired}
        for record in specs.records:
            service = Service.from_store(record.value)
            status = status_of.get(service.name)
            if status is None or service.deleting \
                    or status.get("observedGeneration") != service.generation \
                    or set(status.get("computes", {})) != set(service.replicas):
                continue
            entries = status["computes"]
            if all(entries[c].get("condition") == CONVERGED
                   and entries[c].get("desired") == n for c, n in service.replicas.items()):
                for compute, desired in service.replicas.items():
                    candidates.setdefault(compute, {})[service.name] = desired
        unsettled = set()
        for compute_name, wanted in candidates.items():
            record = await self._compute(compute_name)
            counts = None
            if record is not None:
                counts = await self.client.running_many(Compute.from_store(record.value),
                                                        sorted(wanted))
            if counts is None:  # no batch extension (or no compute): one pass each
                unsettled.update(wanted)
                continue
            self._connector_answered(compute_name)
            unsettled.update(s for s, n in wanted.items() if counts.get(s) != n)
        settled = set().union(*candidates.values())
        return settled - unsettled

    def _queue_changed(self):
        self.metrics.queue_depth.set(len(self.queue))
        self.metrics.queue_delayed.set(self.queue.delayed)

    # -- workers ---------------------------------------------------------------

    async def worker(self):
        while True:
            try:
                name = await self.queue.get()
            except QueueClosed:
                return
            try:
                retry_in = await self.reconcile_service(name)
            except Exception as e:  # noqa: BLE001 - one bad pass must not end the worker
                delay = self.queue.retry(name)
                self.metrics.passes.labels("failed").inc()
                self.metrics.errors.labels(getattr(e, "reason", type(e).__name__)).inc()
                if isinstance(e, GenisysError):
                    log.warning("reconcile %s failed: %s; again in %.1fs", name, e, delay)
                else:
                    log.exception("reconcile %s crashed; again in %.1fs", name, delay)
            else:
                self.queue.forget(name)
                if retry_in is not None:
                    self.queue.add_after(name, retry_in)
            finally:
                self.queue.done(name)

    # -- one pass ----------------------------------------------------------------

    async def reconcile_service(self, name):
        """One pass over a service; returns when to look again (None: at resync)."""
        started = time.monotonic()
        spec = await self.store.get(service_key(name))
        current = await self.store.get(status_key(name))
        if spec is None:
            if current is not None:
                await self.store.transaction([
                    Op.delete(status_key(name), expect_version=current.version),
                    Op.delete(events_key(name))])
            self._forget(name)
            return None
        service = Service.from_store(spec.value)
        previous = current.value if current else empty_status()
        before = previous.get("computes", {})

        desired = {c: 0 if service.deleting else n for c, n in service.replicas.items()}
        dropped = {c for c in before if c not in desired}
        desired.update({c: 0 for c in dropped})
        computes = sorted(desired)
        results = await self._run_pairs(service, computes, desired, before, dropped)

        entries, new_events, retries = {}, [], []
        for compute, result in zip(computes, results):
            if result.entry is not None:
                entries[compute] = result.entry
            else:
                self._forget_pair(name, compute)
            new_events += result.events
            if result.retry_in is not None:
                retries.append(result.retry_in)
        outcomes = {r.outcome for r in results}
        self.metrics.passes.labels("failed" if outcomes & {"failed", "waiting"} else
                                   "progressing" if "progressing" in outcomes
                                   else "converged").inc()
        self.metrics.pass_seconds.observe(time.monotonic() - started)

        if service.deleting and st.is_finished(entries):
            return await self._finalize(name, spec, current)
        new = {"observedGeneration": service.generation, "computes": entries}
        ops = []
        if new != previous:
            ops.append(Op.put(status_key(name), new,
                              expect_version=current.version if current else 0))
        if new_events or "events" in previous:
            # Events live apart from the status (read only when asked for), written
            # in the same transaction; a status of before that hands its own over.
            events = recent_events(await self.store.get(events_key(name)), current)
            for event in new_events:
                events = st.add_event(events, event)
            ops.append(Op.put(events_key(name), {"events": events}))
        if ops:
            await self.store.transaction(ops)
        return min(retries) if retries else None

    async def _run_pairs(self, service, computes, desired, before, dropped):
        """The PairResult of each compute, concurrently, within ``pass_budget``.

        A pair still waiting on its connector then is left running; this pass
        keeps its previous entry, and its completion queues the service again,
        whose next pass takes the result (or starts over if the intent moved)."""
        tasks = {}
        for compute in computes:
            key = (service.name, compute)
            task = self._inflight.get(key)
            if task is not None and task.done():
                self._inflight.pop(key)
                finished = task.result()  # a store error fails this pass, like any
                if finished.desired == desired[compute]:
                    tasks[compute] = task
                    continue
                task = None  # worked out for an older intent: start over
            if task is None:
                task = asyncio.ensure_future(self._pair(
                    service, compute, desired[compute], before.get(compute),
                    dropped=compute in dropped))
                self._inflight[key] = task
            tasks[compute] = task
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.pass_budget)
        results = []
        for compute in computes:
            task, key = tasks[compute], (service.name, compute)
            if task.done():
                if self._inflight.get(key) is task:
                    self._inflight.pop(key)
                results.append(task.result())
            else:
                task.add_done_callback(lambda _, name=service.name: self.queue.add(name))
                entry = before.get(compute) or st.entry(
                    None, desired=desired[compute], running=None, condition=PROGRESSING,
                    reason="Waiting", message="waiting for the connector to answer")
                results.append(PairResult(entry, [], None, "waiting", desired[compute]))
        return results

    async def _pair(self, service, compute, desired, previous, *, dropped):
        result = await self._reconcile_pair(service, compute, desired, previous, dropped=dropped)
        return dataclasses.replace(result, desired=desired)

    async def _finalize(self, name, spec, current):
        """The service is being deleted and nothing is left: remove its records."""
        try:
            await self.store.delete(service_key(name), expect_version=spec.version)
        except VersionMismatch:
            return 0  # changed under us: look again
        await self.store.transaction([Op.delete(status_key(name)), Op.delete(events_key(name))])
        self._forget(name)
        log.info("deleted service %s: every resource is gone", name)
        return None

    async def _reconcile_pair(self, service, compute_name, desired, previous, *, dropped):
        name = service.name
        state = self._pairs.setdefault((name, compute_name), PairState(
            failures=(previous or {}).get("failures", 0)))
        loop_now = asyncio.get_running_loop().time()
        if (state.not_before > loop_now and state.generation == service.generation
                and previous is not None):
            return PairResult(previous, [], state.not_before - loop_now, "waiting")

        record = await self._compute(compute_name)
        if record is None:
            if dropped:
                return PairResult(None, [], None, "converged")
            entry = st.entry(previous, desired=desired, running=None, condition=COMPUTE_MISSING,
                             reason="ComputeMissing",
                             message="compute %r does not exist: create it, or remove it "
                                     "from the service" % compute_name)
            events = [] if (previous or {}).get("condition") == COMPUTE_MISSING else [
                st.event(st.WARNING, "ComputeMissing", compute_name, entry["message"])]
            self.metrics.set_pair(name, compute_name, desired=desired, running=None)
            return PairResult(entry, events, None, "failed")
        compute = Compute.from_store(record.value)
        running = (previous or {}).get("running")
        try:
            if previous is None or previous.get("desired") != desired:
                # A new intent: the set-point is absolute, so it is sent at once (one
                # round trip, not two); the answer says what runs.
                self._check_leader()
                reported = await self.client.scale(compute, name, desired)
                self._connector_answered(compute_name)
            else:
                # The same intent: check that reality still matches it (drift, a dead
                # resource, a scale order still in progress), and only then act.
                self._check_leader()
                running = await self.client.running(compute, name)
                self._connector_answered(compute_name)
                self.metrics.set_pair(name, compute_name, desired=desired, running=running)
                if running == desired:
                    return self._converged(state, name, compute_name, desired, previous,
                                           dropped=dropped)
                self._check_leader()
                reported = await self.client.scale(compute, name, desired)
        except NotLeader:
            raise  # not ours to reconcile any more: no status either
        except ConnectorNotFound as e:
            if desired == 0:
                # A connector that doesn't know the service runs none of it: that is
                # what is wanted, and what lets a deletion finish.
                self.metrics.set_pair(name, compute_name, desired=0, running=0)
                return self._converged(state, name, compute_name, 0, previous, dropped=dropped)
            return self._failed(state, service, compute_name, desired, running, previous,
                                reason=e.reason, condition=e.condition, message=e.message)
        except ConnectorFailure as e:
            return self._failed(state, service, compute_name, desired, running, previous,
                                reason=e.reason, condition=e.condition, message=e.message)
        except Exception as e:  # noqa: BLE001 - a bug in one pair must not stop the others
            log.exception("reconcile %s on %s crashed", name, compute_name)
            return self._failed(state, service, compute_name, desired, running, previous,
                                reason="InternalError", condition=ERROR,
                                message="internal error: %r (see the controller log)" % e)

        # The order is taken.
        events = []
        if not previous or (previous.get("condition"), previous.get("desired"),
                            previous.get("running")) != (PROGRESSING, desired, running):
            events.append(st.event(st.NORMAL, "Scaled", compute_name, "scaled %s on %s %sto %d"
                                   % (name, compute_name, _from(running), desired)))
        if reported == desired:  # and done already, says the answer
            self.metrics.set_pair(name, compute_name, desired=desired, running=desired)
            result = self._converged(state, name, compute_name, desired, previous,
                                     dropped=dropped)
            return dataclasses.replace(result, events=events + result.events)
        # Check again soon that it took effect.
        state.failures, state.not_before = 0, 0.0
        state.checks += 1
        message = "scaling %sto %d" % (_from(running), desired)
        if reported is not None:
            running = reported
        entry = st.entry(previous, desired=desired, running=running, condition=PROGRESSING,
                         reason="Scaling", message=message)
        retry_in = min(self.poll_interval, self.progress_check * 2 ** min(state.checks - 1, 20))
        return PairResult(entry, events, retry_in, "progressing")

    def _check_leader(self):
        if self.leadership is not None:
            self.leadership.check()

    def _connector_answered(self, compute_name):
        """The connector of ``compute_name`` answers again: every pair waiting out a
        backoff because it was down is retried now, not at the end of its backoff."""
        for service in self._down.pop(compute_name, ()):
            state = self._pairs.get((service, compute_name))
            if state is not None:
                state.not_before = 0.0
                self.queue.add(service)

    def _converged(self, state, name, compute_name, desired, previous, *, dropped):
        state.failures, state.not_before, state.checks = 0, 0.0, 0
        events = []
        if (previous or {}).get("condition") != CONVERGED or previous.get("running") != desired:
            events.append(st.event(st.NORMAL, "Converged", compute_name, "%s on %s: %d running,"
                                   " as desired" % (name, compute_name, desired)))
        if dropped and desired == 0:
            return PairResult(None, events, None, "converged")
        entry = st.entry(previous, desired=desired, running=desired, condition=CONVERGED)
        return PairResult(entry, events, None, "converged")

    def _failed(self, state, service, compute_name, desired, running, previous, *, reason,
                condition, message):
        state.failures += 1
        state.generation = service.generation
        if condition == UNREACHABLE:
            self._down[compute_name].add(service.name)
        else:
            self._down[compute_name].discard(service.name)
        delay = self.backoff.delay(state.failures)
        state.not_before = asyncio.get_running_loop().time() + delay
        self.metrics.errors.labels(reason).inc()
        log.info("%s on %s: %s: %s (attempt %d, again in %.1fs)", service.name, compute_name,
                 reason, message, state.failures, delay)
        entry = st.entry(previous, desired=desired, running=running, condition=condition,
                         reason=reason, message=message, failures=state.failures)
        events = [st.event(st.WARNING, reason, compute_name, message)]
        return PairResult(entry, events, delay, "failed")

    def _forget_pair(self, name, compute):
        self._pairs.pop((name, compute), None)
        self._down.get(compute, set()).discard(name)
        self.metrics.forget_pair(name, compute)

    def _forget(self, name):
        for service, compute in [k for k in self._pairs if k[0] == name]:
            self._forget_pair(service, compute)
