"""Who reconciles: exactly one leader among the controllers that share a store.

With a store of its own (memory, sqlite: the file lock keeps other controllers
out) the process is always the leader (``SoleLeader``). With a shared store
(etcd) the controllers elect one (``Election``); every one of them serves the
API, only the leader runs the reconciler.

Election: the leader holds the key ``leader/reconciler``, created only if it
is absent and bound to an etcd lease of ``ttl`` seconds, which the leader
renews every ttl/3. etcd deletes the key when the lease expires (the leader
died, or lost etcd); followers watch the key and the first to create it again
leads. A leader that cannot renew steps down *before* its lease can expire:
it measures the lease from the moment it *sent* the last renewal that etcd
answered (etcd renewed it later than that) and stops reconciling ttl/4 before
the earliest moment etcd could expire it, so there is never a moment where
another controller could have been elected while this one still reconciles.

Fencing, for a leader that is paused or cut off and wakes up late: every
write of the reconciler (status, events, the finalizer's deletes) goes
through ``FencedStore``, which makes it conditional on the leadership key
still being at the ``mod_revision`` this leader wrote. That write carried the
leader's lease, and any later holder (after the key expired or was deleted)
writes it at a higher revision, so the condition checks lease and term at
once, inside etcd's transaction. Each connector call is preceded by
``check()``, which refuses once the lease may be past its safe period.
"""

import asyncio
import datetime
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Optional, cast

from genisys.errors import GenisysError, StoreUnavailable, VersionMismatch
from genisys.metrics import Metrics
from genisys.store import Condition, Op, Store, replacing
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

LEADER_KEY = "leader/reconciler"
LEADER = "leader"
FOLLOWER = "follower"

#: Makes the reconciler of a term, given the leadership it runs under.
MakeReconciler = Callable[["Leadership"], Any]


class NotLeader(GenisysError):
    """This process does not (or no longer) hold the leadership."""

    reason = "NotLeader"


def default_identity() -> str:
    """How this controller is named in the election: host and process."""
    return "%s-%d" % (socket.gethostname(), os.getpid())


def make_leadership(store: Store, *, metrics: Optional[Metrics],
                    identity: Optional[str] = None, ttl: float = 10.0) -> "Leadership":
    """An ``Election`` on a shared store, else a ``SoleLeader``."""
    identity = identity or default_identity()
    if getattr(store, "shared", False):
        return Election(store, identity=identity, ttl=ttl, metrics=metrics)
    return SoleLeader(identity=identity, metrics=metrics)


class Leadership:
    """What the reconciler, /readyz and /metrics see of the leadership."""

    role = FOLLOWER
    leader: Optional[str] = None

    def __init__(self, *, identity: str, metrics: Optional[Metrics]) -> None:
        self.identity = identity
        self.metrics = metrics
        self._make_reconciler: Optional[MakeReconciler] = None
        self._reconciler: Any = None

    def check(self) -> None:
        """Raise NotLeader unless this process may reconcile now."""
        raise NotImplementedError

    def fenced(self, store: Store) -> Store:
        """``store`` as this leader's reconciler writes it."""
        raise NotImplementedError

    @property
    def term(self) -> Optional[tuple[str, int]]:
        """(scope, number) of this leader's term, sent with its connector calls so that
        connectors refuse the orders of an older one (None: nothing to fence)."""
        return None

    def deposed(self, why: str) -> None:
        """Something proved this process is no longer the leader: step down now."""

    async def start(self, make_reconciler: "MakeReconciler") -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def status(self) -> dict:
        return {"role": self.role, "identity": self.identity, "leader": self.leader}

    @property
    def reconciler(self) -> Any:
        """The reconciler of this process's term (None: it does not lead now)."""
        return self._reconciler

    def _publish(self) -> None:
        if self.metrics is not None:
            self.metrics.set_leadership(identity=self.identity, role=self.role,
                                        leader=self.leader)

    async def _start_term(self) -> None:
        assert self._make_reconciler is not None
        self._reconciler = self._make_reconciler(self)
        await self._reconciler.start()

    async def _end_term(self) -> None:
        reconciler, self._reconciler = self._reconciler, None
        if reconciler is not None:
            await reconciler.stop()
            await reconciler.client.aclose()


class SoleLeader(Leadership):
    """The only controller of its store: always the leader, nothing to fence."""

    role = LEADER

    def __init__(self, *, identity: str, metrics: Optional[Metrics] = None) -> None:
        super().__init__(identity=identity, metrics=metrics)
        self.leader = identity

    def check(self) -> None:
        pass

    def fenced(self, store: Store) -> Store:
        return store

    async def start(self, make_reconciler: "MakeReconciler") -> None:
        """Run the reconciler ``make_reconciler(self)`` makes, until stop()."""
        self._make_reconciler = make_reconciler
        self._publish()
        await self._start_term()

    async def stop(self) -> None:
        await self._end_term()


class Election(Leadership):
    def __init__(self, store: Any, *, identity: str, ttl: float = 10.0,
                 metrics: Optional[Metrics] = None) -> None:
        super().__init__(identity=identity, metrics=metrics)
        self.store = store
        #: Seconds of the lease: how long a dead leader keeps the leadership at most.
        self.ttl = ttl
        self._lease = None
        #: mod_revision of the leadership key this leader wrote (its term).
        self._version = None
        #: Monotonic time of the last renewal etcd answered, when it was sent.
        self._renewed_at = 0.0
        #: Monotonic time before which etcd cannot expire the lease.
        self._valid_until = 0.0
        self._leading = False
        self._lost = asyncio.Event()
        self._task = None

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def margin(self) -> float:
        """Stop this long before the lease could expire (and renewal attempts give up)."""
        return self.ttl / 4

    @property
    def role(self) -> str:  # type: ignore[override]
        return LEADER if self._leads() else FOLLOWER

    def _leads(self) -> bool:
        return self._leading and time.monotonic() < self._valid_until - self.margin

    def check(self) -> None:
        if not self._leads():
            if self.leader == self.identity:
                raise NotLeader("%s is stepping down: its leadership lease may not be renewed "
                                "in time" % self.identity)
            raise NotLeader("%s is not the leader (the leader is %s)"
                            % (self.identity, self.leader or "unknown"))

    def fenced(self, store: Store) -> Store:
        # FencedStore answers every method of Store: writes fenced, reads passed on.
        return cast(Store, FencedStore(store, self))

    def fence(self) -> Condition:
        """The condition every write of this leader carries; NotLeader if not leading."""
        self.check()
        assert self._version is not None  # check() raised NotLeader otherwise
        return Condition.version(LEADER_KEY, self._version)

    @property
    def term(self) -> Optional[tuple[str, int]]:
        # The revision that wrote this leader's key: higher for every new leader of the
        # same etcd cluster and key prefix, which make the scope (docs/distributed.md).
        if self._version is None:
            return None
        return ("%s/%s" % (getattr(self.store, "cluster_id", None) or "-",
                           getattr(self.store, "prefix", "")), self._version)

    def deposed(self, why: str) -> None:
        if self._leading:
            log.warning("leadership lost: %s", why)
            self._leading = False
            self._lost.set()

    # -- lifecycle ----------------------------------------------------------------

    async def start(self, make_reconciler: "MakeReconciler") -> None:
        """Campaign in the background; ``make_reconciler(self)`` runs while leading."""
        self._make_reconciler = make_reconciler
        self._publish()
        self._task = start_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Stop reconciling, then hand the leadership over at once (revoke the lease)."""
        await stop_tasks([self._task], timeout=15.0)
        self._task = None

    # -- the election loop ----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                listing = await self.store.list(LEADER_KEY)
                holder = next((r for r in listing.records if r.key == LEADER_KEY), None)
                if holder is None:
                    if await self._campaign():
                        await self._lead()
                    failures = 0
                    continue
                self._set_leader(holder.value.get("identity"))
                failures = 0
                await self._wait_for_change(listing.revision)
            except Exception as e:  # noqa: BLE001 - the election must outlive any failure
                failures += 1
                delay = min(0.1 * 2 ** failures, self.renew_every)
                if isinstance(e, GenisysError):
                    log.warning("leader election: %s; again in %.1fs", e, delay)
                else:
                    log.exception("leader election crashed; again in %.1fs", delay)
                await asyncio.sleep(delay)

    def _set_leader(self, identity: Optional[str]) -> None:
        if identity != self.leader:
            log.info("the leader is %s%s", identity or "nobody",
                     " (this process)" if identity == self.identity else "")
            self.leader = identity
            self._publish()

    async def _wait_for_change(self, revision: int) -> None:
        """Until the leadership key changes (or ttl passes: then look again anyway)."""
        async with self.store.watch(LEADER_KEY, start_revision=revision) as watch:
            try:
                event = await asyncio.wait_for(watch.__anext__(), self.ttl)
            except asyncio.TimeoutError:
                return
            if event.type == "delete" and event.key == LEADER_KEY:
                log.info("the leadership of %s is free", self.leader)
                self._set_leader(None)

    async def _campaign(self) -> bool:
        sent = time.monotonic()
        timeout = self.renew_every
        lease, ttl = await self.store.grant_lease(self.ttl, timeout=timeout)
        if ttl <= 0:
            raise StoreUnavailable("etcd granted a lease of %ds" % ttl)
        value = {"identity": self.identity, "ttl": ttl,
                 "since": datetime.datetime.now(datetime.timezone.utc)
                 .strftime("%Y-%m-%dT%H:%M:%SZ")}
        try:
            won, record = await self.store.create_with_lease(LEADER_KEY, value, lease,
                                                             timeout=timeout)
        except BaseException:
            self._revoke_soon(lease)
            raise
        if not won:
            self._revoke_soon(lease)
            self._set_leader(record.value.get("identity") if record else None)
            return False
        self._lease, self._version = lease, record.version
        self._renewed_at, self._valid_until = sent, sent + ttl
        self._lost.clear()
        self._leading = True
        log.info("%s is the leader now (lease %s of %ds, term %d)", self.identity, lease, ttl,
                 record.version)
        self._set_leader(self.identity)
        self._publish()
        return True

    async def _lead(self) -> None:
        try:
            await self._start_term()
            await self._renew()
        finally:
            self._leading = False
            self._publish()
            log.info("%s stops reconciling", self.identity)
            try:
                await self._end_term()
            finally:
                lease, self._lease = self._lease, None
                self._set_leader(None)
                if lease is not None:
                    await self._revoke(lease)

    async def _renew(self) -> None:
        """Keep the lease alive; return when leadership is lost or can't be kept safely."""
        while True:
            wake = self._renewed_at + self.renew_every - time.monotonic()
            if wake > 0:
                try:
                    await asyncio.wait_for(self._lost.wait(), wake)
                except asyncio.TimeoutError:
                    pass
            if self._lost.is_set():
                return
            if not await self._renew_once():
                return
            await self._confirm_key()
            if self._lost.is_set():
                return

    async def _renew_once(self) -> bool:
        """One renewal, retried (on every member) until it works or it is too late."""
        deadline = self._valid_until - self.margin
        while True:
            now = time.monotonic()
            if now >= deadline:
                log.warning("could not renew the leadership lease for %.1fs: stepping down "
                            "before it can expire", now - self._renewed_at)
                self.deposed("lease not renewed in time")
                return False
            sent = now
            try:
                ttl = await asyncio.wait_for(
                    self.store.keep_alive(self._lease, timeout=min(self.margin, deadline - now)),
                    deadline - now)
            except (StoreUnavailable, asyncio.TimeoutError) as e:
                log.warning("renewing the leadership lease failed: %s", e or "timeout")
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            if ttl <= 0:
                self.deposed("the lease expired")
                return False
            self._renewed_at, self._valid_until = sent, sent + ttl
            return True

    async def _confirm_key(self) -> None:
        """The key must still be this term's (an operator may have deleted it)."""
        try:
            record = await asyncio.wait_for(self.store.get(LEADER_KEY), self.margin)
        except (StoreUnavailable, asyncio.TimeoutError):
            return  # the lease decides; this check is for keys removed by hand
        if record is None or record.version != self._version:
            self.deposed("the leadership key was %s" % ("deleted" if record is None
                                                        else "taken over"))

    def _revoke_soon(self, lease: int) -> None:
        start_task(self._revoke(lease), name="revoke-lease")

    async def _revoke(self, lease: int) -> None:
        try:
            await self.store.revoke_lease(lease, timeout=min(2.0, self.ttl / 2))
        except GenisysError as e:
            log.info("could not revoke lease %s (%s): it expires on its own", lease, e)


class FencedStore:
    """The store as a leader's reconciler writes it: every write also requires the
    leadership key to be at this leader's term, so a deposed leader writes nothing."""

    def __init__(self, store: Store, election: Election) -> None:
        self._store = store
        self._election = election

    def __getattr__(self, name: str) -> Any:
        # Reads (get, list, count, watch, revision, check) are anyone's.
        return getattr(self._store, name)

    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: tuple = ()) -> Any:
        return await self._fenced(self._store.put, key, value, expect_version=expect_version,
                                  conditions=self._conditions(conditions))

    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: tuple = ()) -> Any:
        return await self._fenced(self._store.delete, key, expect_version=expect_version,
                                  conditions=self._conditions(conditions))

    async def update(self, key: str, fn: Callable, *, conditions: tuple = ()) -> Any:
        return await self._fenced(self._store.update, key, fn,
                                  conditions=self._conditions(conditions))

    async def replace(self, key: str, value: dict) -> Any:
        # As an update, which carries the fence (the store's own replace could not).
        return await self.update(key, replacing(key, value))

    async def transaction(self, ops: list[Op]) -> list:
        return await self._fenced(self._store.transaction, self._fence_first(ops))

    async def transaction_then_read(self, ops: list[Op], keys: list[str]) -> tuple:
        return await self._fenced(self._store.transaction_then_read, self._fence_first(ops),
                                  keys)

    def _fence_first(self, ops: list[Op]) -> list[Op]:
        first = ops[0]
        return [Op(first.kind, first.key, first.value, first.expect_version,
                   self._conditions(first.conditions))] + list(ops[1:])

    def _conditions(self, conditions: Iterable[Condition]) -> tuple[Condition, ...]:
        return tuple(conditions) + (self._election.fence(),)

    async def _fenced(self, write: Callable[..., Awaitable[Any]], *args: Any,
                      **kwargs: Any) -> Any:
        try:
            return await write(*args, **kwargs)
        except VersionMismatch as e:
            if e.field != LEADER_KEY:
                raise
            self._election.deposed("a write was refused: %s" % e)
            raise NotLeader("%s is no longer the leader: %s" % (self._election.identity, e)) \
                from e
