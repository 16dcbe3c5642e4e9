"""The service layer: every change of intent goes through here.

The HTTP handlers, the computes.py loader (and later the manifests) call
these functions; they validate against the current state, write the store
atomically and raise domain errors. They never call a connector: making
reality match is the reconciler's job.

Keys: ``computes/<name>`` (a compute), ``services/<name>`` (a service's
spec: the intent), ``status/<name>`` (what the reconciler observed),
``health/<name>`` (a compute's condition, written by the reconciler).
"""

import asyncio
import copy
import dataclasses
import fnmatch
import hashlib
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Optional, Union, cast

from genisys.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyKeyReused,
    Invalid,
    LimitExceeded,
    NotFound,
    VersionMismatch,
)
from genisys.model import (
    Compute,
    Service,
    ServiceUpdate,
    breach_of,
    empty_status,
    public_compute,
)
from genisys.store import Condition, Listing, Op, Record, Store

COMPUTES = "computes/"
SERVICES = "services/"
STATUS = "status/"
#: A service's recent events, apart from its status: the status is read on every
#: pass and every change, the events only by GET /service/<name> and /events.
EVENTS = "events/"
IDEMPOTENCY = "idempotency/"
#: A compute's condition (Ready, NotReady), written by the reconciler when it changes.
HEALTH = "health/"

#: An If-Match of "*": the object must exist, whatever its version.
ANY_VERSION = "*"
#: What a write may be conditional on: nothing (None), ANY_VERSION or a resourceVersion.
Version = Union[None, str, int]
#: A service's replicas: counts per compute, or a total that genisys places.
Replicas = Union[dict, int]
#: A change of a service's replicas: the old ones (a copy) in, the new ones out.
Change = Callable[[Replicas], Replicas]


def compute_key(name: str) -> str:
    return COMPUTES + name


def health_key(name: str) -> str:
    return HEALTH + name


def service_key(name: str) -> str:
    return SERVICES + name


def status_key(name: str) -> str:
    return STATUS + name


def events_key(name: str) -> str:
    return EVENTS + name


def recent_events(events_record: Optional[Record],
                  status_record: Optional[Record] = None) -> list:
    """The events of a service, newest first. A status written before events had a
    key of their own holds them itself: they are shown until the next pass moves them."""
    if events_record is not None:
        return list(events_record.value.get("events", []))
    if status_record is not None:
        return list(status_record.value.get("events", []))
    return []


def _check_version(record: Optional[Record], expect_version: Version, what: str) -> None:
    """If-Match semantics against the current record (None: absent)."""
    if expect_version is None:
        return
    if record is None:
        raise VersionMismatch("%s does not exist, If-Match cannot match" % what)
    if expect_version != ANY_VERSION and record.version != expect_version:
        raise VersionMismatch("%s is at resourceVersion %d, If-Match asked for %s"
                              % (what, record.version, expect_version))


@dataclasses.dataclass
class Idempotency:
    """An Idempotency-Key and a digest of the request it came with."""

    key: str
    #: Digest of what was asked (operation, service, body): the same key with
    #: another request is refused.
    request: str
    #: Set by the intent layer: True if this answer replays an earlier one.
    replayed: bool = False

    @property
    def store_key(self) -> str:
        return IDEMPOTENCY + hashlib.sha256(self.key.encode("utf-8")).hexdigest()


class _NeedsRoom(Exception):
    """Raised inside a write that would create a service before max_services was
    checked: the write is dropped, the limit checked, and the write tried again."""


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def service_view(spec_record: Record, status_record: Optional[Record], *,
                 events: Optional[list] = None) -> dict:
    """The API representation of a service: spec, resourceVersion, status and, if
    given, its recent events (newest first)."""
    view = dict(spec_record.value)
    view["resourceVersion"] = spec_record.version
    status = dict(status_record.value) if status_record else empty_status()
    status.pop("events", None)  # written before events had a key of their own
    view["status"] = status
    if events is not None:
        view["events"] = events
    return view


def computes_used(spec: Optional[dict], status: Optional[dict]) -> frozenset:
    """The computes a service uses: those its spec wants
    resources on, and those its status says still want or run some (a compute
    dropped from the spec is used until the reconciler has scaled it to 0 there). A
    compute in use cannot be deleted."""
    replicas = (spec or {}).get("replicas", {})
    used = {c for c, n in replicas.items() if n > 0} if isinstance(replicas, dict) else set()
    used.update(c for c, entry in (status or {}).get("computes", {}).items()
                if (entry.get("running") or 0) > 0 or entry.get("desired", 0) > 0)
    return frozenset(used)


def _in_use(services: Listing, statuses: Listing, compute: str) -> list[str]:
    """The services using ``compute`` (see computes_used), sorted."""
    status_of = {r.key[len(STATUS):]: r.value for r in statuses.records}
    specs = {r.key[len(SERVICES):]: r.value for r in services.records}
    return sorted(name for name in specs.keys() | status_of.keys()
                  if compute in computes_used(specs.get(name), status_of.get(name)))


def _on(compute: Optional[str]) -> str:
    return " on %r" % compute if compute else " in all"


def _count_of(name: str, replicas: Replicas, compute: Optional[str], step: str) -> int:
    """The count a step acts on: ``compute``'s, or the total of a placed service (None).
    A step of the other form is refused, saying how to do it instead."""
    if compute is None:
        if isinstance(replicas, dict):
            raise Conflict("service %r has counts per compute: %s it on one of them "
                           "(\"compute\": NAME), or give it a total and a placement with "
                           "PUT /service/%s" % (name, step, name), field="compute")
        return replicas
    if not isinstance(replicas, dict):
        raise Conflict("service %r is placed by genisys (a total of %d): %s its total "
                       "(leave out \"compute\"), or give it counts per compute with PUT "
                       "/service/%s" % (name, replicas, step, name), field="compute")
    return replicas.get(compute, 0)


def _with_count(replicas: Replicas, compute: Optional[str], number: int) -> Replicas:
    if compute is None:
        return number
    assert isinstance(replicas, dict)
    replicas[compute] = number
    return replicas


def _check_bounds(name: str, *, current: Optional[Record], updated: Service, put: bool,
                  on_compute: bool) -> None:
    """Refuse replicas outside the service's bounds (docs/scaling.md). A step (upscale,
    downscale, scale) is refused as a step beyond max_replicas is (409, naming
    ``compute`` when it names one); a PUT is Invalid, naming the replicas, or the bound
    when the PUT keeps the replicas and changes the bounds."""
    found = breach_of(updated)
    if found is None:
        return
    message = found.describe(name)
    if not put:
        raise Conflict(message, field="compute" if on_compute else "replicas")
    field = found.field
    if current is not None:
        before = Service.from_store(current.value)
        if before.replicas == updated.replicas and breach_of(before) is None:
            field = found.bound
    raise Invalid(message, field=field)


class Intents:
    def __init__(self, store: Store, *, max_replicas: int, max_services: Optional[int] = None,
                 max_computes: Optional[int] = None, connector_hosts: Iterable[str] = (),
                 idempotency_ttl: float = 24 * 3600.0) -> None:
        self.store = store
        #: Seconds an Idempotency-Key is remembered.
        self.idempotency_ttl = idempotency_ttl
        self.max_replicas = max_replicas
        #: Most services and computes that may exist (None: no limit).
        self.max_services = max_services
        self.max_computes = max_computes
        #: Host patterns (fnmatch) connector URLs must match; empty: any host.
        self.connector_hosts = tuple(connector_hosts)
        #: The computes this process is creating just now (``_put_compute``), by key.
        self._creating: dict[str, asyncio.Future] = {}

    def over(self, store: Store) -> "Intents":
        """The same intent layer over another store (a dry run's)."""
        other = copy.copy(self)
        other.store = store
        other._creating = {}
        return other

    def _check_connector(self, compute: Compute) -> None:
        """Only allowed hosts: whoever may register a compute must not be able to make
        genisys call arbitrary addresses (SSRF)."""
        if not self.connector_hosts:
            return
        host = (urllib.parse.urlsplit(compute.connector).hostname or "").lower()
        if not any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in self.connector_hosts):
            raise Invalid("host %r is not one of the allowed connector hosts (%s)"
                          % (host, ", ".join(self.connector_hosts)), field="connector")

    async def _check_room(self, prefix: str, maximum: int, what: str, setting: str) -> int:
        """Room for one more object under ``prefix``; returns the listing's revision."""
        listing = await self.store.list(prefix)
        if len(listing.records) >= maximum:
            raise LimitExceeded("there are already %d %s, the maximum (%s)"
                                % (len(listing.records), what, setting), field="name")
        return listing.revision

    # -- computes ----------------------------------------------------------

    async def list_computes(self) -> dict:
        listing = await self.store.list(COMPUTES)
        return {r.value["name"]: public_compute(r.value) for r in listing.records}

    async def get_compute(self, name: str) -> Record:
        record = await self.store.get(compute_key(name))
        if record is None:
            raise NotFound("compute %r does not exist" % name, field="compute")
        return record

    async def compute_condition(self, name: str) -> dict:
        """GET /compute/<name>/status: its condition as the reconciler last stored it
        (Unknown before any)."""
        await self.get_compute(name)
        record = await self.store.get(health_key(name))
        if record is None:
            return {"name": name, "condition": "Unknown", "reason": "NotObserved",
                    "message": "no controller has observed its connector yet"}
        return record.value

    async def create_compute(self, compute: Compute) -> Record:
        self._check_connector(compute)
        for _ in range(10):
            conditions = await self._compute_room(compute.name)
            try:
                return await self.store.put(compute_key(compute.name), compute.to_json(),
                                            expect_version=0, conditions=conditions)
            except VersionMismatch as e:
                if e.field == compute_key(compute.name):
                    raise AlreadyExists("compute %r already exists (use PUT /compute/%s to "
                                        "change it)" % (compute.name, compute.name),
                                        field="name") from e
        raise Conflict("computes keep changing, try again", field="name")

    async def _compute_room(self, name: str) -> list[Condition]:
        """Conditions that keep a new compute within max_computes (computes change
        rarely, so the whole prefix staying unchanged is a cheap, exact guard)."""
        if self.max_computes is None or await self.store.get(compute_key(name)) is not None:
            return []
        revision = await self._check_room(COMPUTES, self.max_computes, "computes",
                                          "max_computes")
        return [Condition.unchanged(COMPUTES, revision)]

    async def put_compute(self, compute: Compute, *,
                          expect_version: Version = None) -> tuple[Record, bool]:
        """Create or replace; returns (record, created)."""
        self._check_connector(compute)
        if expect_version is None:
            return await self._put_compute(compute)

        def replace(current: Optional[Record]) -> dict:
            _check_version(current, expect_version, "compute %r" % compute.name)
            return compute.to_json()
        # If-Match: it exists (at that version), so it is replaced, and needs no room.
        return cast(Record, await self.store.update(compute_key(compute.name), replace)), False

    async def _put_compute(self, compute: Compute) -> tuple[Record, bool]:
        """A PUT with no If-Match. Commonly a compute replaced whatever it held: one
        write, which on etcd reads nothing first and which writes of the same compute
        need not take turns for. Else a new one, within max_computes.

        PUTs of one new compute made together wait for the first one's creation, then
        replace it: not each in turn finding it created (a round trip each, in line
        behind the key's lock on etcd: 2 s for the last of 64)."""
        key, value = compute_key(compute.name), compute.to_json()
        for _ in range(10):
            try:
                return await self.store.replace(key, value), False
            except VersionMismatch as e:
                if e.field != key:
                    raise
            creating = self._creating.get(key)
            if creating is not None:
                await asyncio.shield(creating)  # created or not: replace, or create, again
                continue
            self._creating[key] = creating = asyncio.get_running_loop().create_future()
            try:
                return await self.store.put(key, value, expect_version=0,
                                            conditions=await self._compute_room(compute.name)
                                            ), True
            except VersionMismatch as e:
                # Created meanwhile (replace it), or other computes changed (room again).
                if e.field not in (key, COMPUTES):
                    raise
            finally:
                del self._creating[key]
                creating.set_result(None)
        raise Conflict("computes keep changing, try again", field="name")

    async def delete_compute(self, name: str, *, expect_version: Version = None) -> Record:
        """Delete a compute no service wants or still runs resources on."""
        for _ in range(10):
            current = await self.get_compute(name)
            _check_version(current, expect_version, "compute %r" % name)
            services = await self.store.list(SERVICES)
            users = _in_use(services, await self.store.list(STATUS), name)
            if users:
                raise Conflict("compute %r is in use by service(s) %s: scale them to 0 there "
                               "first, and wait until nothing runs there"
                               % (name, ", ".join(users)), field="compute")
            try:
                # Both conditions make check-then-delete atomic: the compute is the
                # one we checked, and no service changed since we looked.
                await self.store.delete(
                    compute_key(name), expect_version=current.version,
                    conditions=[Condition.unchanged(SERVICES, services.revision)])
                return current
            except VersionMismatch:
                continue  # something moved under us: look again
        raise Conflict("compute %r keeps changing, try again" % name, field="compute")

    # -- services ----------------------------------------------------------

    async def list_services(self) -> dict:
        specs = await self.store.list(SERVICES)
        statuses = {r.key[len(STATUS):]: r for r in (await self.store.list(STATUS)).records}
        return {r.value["name"]: service_view(r, statuses.get(r.value["name"]))
                for r in specs.records}

    async def page_services(self, *, q: Optional[str] = None, after: Optional[str] = None,
                            before: Optional[str] = None,
                            limit: Optional[int] = None) -> tuple[dict, int, int]:
        """A page of the services, sorted by name: the first ``limit`` (None: all) of
        those whose name holds ``q`` (lower case; None: any) and sorts after ``after``
        and before ``before``. Returns (views, how many hold ``q`` in all, the store
        revision of the specs read)."""
        specs = await self.store.list(SERVICES)
        matching = [r for r in specs.records if q is None or q in r.key[len(SERVICES):].lower()]
        chosen = [r for r in matching
                  if (after is None or r.key[len(SERVICES):] > after)
                  and (before is None or r.key[len(SERVICES):] < before)]
        if limit is not None:
            chosen = chosen[:limit]
        # The statuses of a small page: one read each beats decoding all of them.
        if limit is not None and len(chosen) < len(specs.records) // 10:
            statuses = {r.key[len(SERVICES):]: await self.store.get(status_key(
                r.key[len(SERVICES):])) for r in chosen}
        else:
            statuses = {r.key[len(STATUS):]: r for r in (await self.store.list(STATUS)).records}
        views = {r.value["name"]: service_view(r, statuses.get(r.value["name"]))
                 for r in chosen}
        return views, len(matching), specs.revision

    async def get_service(self, name: str) -> dict:
        spec, status, events = await self.store.get_many(
            [service_key(name), status_key(name), events_key(name)])
        if spec is None:
            raise NotFound("service %r does not exist" % name, field="service")
        return service_view(spec, status, events=recent_events(events, status))

    async def service_events(self, name: str) -> list:
        """Recent events of a service, newest first."""
        return (await self.get_service(name))["events"]

    async def _change_replicas(self, name: str, change: Change, *, computes: Iterable[str],
                               create: bool, expect_version: Version = None,
                               idempotency: Optional[Idempotency] = None,
                               metadata: Optional[ServiceUpdate] = None,
                               count_first: bool = False, total: bool = False,
                               placement: Any = ...) -> tuple[dict, bool]:
        """Atomically apply ``change(replicas) -> replicas`` to a service's spec.

        ``computes``: the computes the change needs; the write only happens
        if they all exist at that moment (checked inside the write, before
        ``change``, so an unknown compute is a 404 whatever else is wrong).
        ``idempotency``: the change is recorded under its key in the same
        transaction, so a retry is answered from the record and never applied
        twice. ``metadata``: a PUT body whose labels and managedBy replace the
        service's. ``count_first``: count the services before writing, to keep a new
        one within max_services (a write that finds the service new asks for this
        by raising _NeedsRoom). ``total``: a service this creates is a placed one (its
        total starts at 0). ``placement``: a placed service's new placement (stored
        form; absent: unchanged). Returns (view, created)."""
        created = False
        written: dict = {}

        def apply(current: Optional[Record]) -> dict:
            nonlocal created
            _check_version(current, expect_version, "service %r" % name)
            if current is None:
                if not create:
                    raise NotFound("service %r does not exist" % name, field="service")
                if not count_first and self.max_services is not None:
                    raise _NeedsRoom()
                service = Service(name=name, replicas=0 if total else {}, generation=0,
                                  deleting=False, created=rfc3339(time.time()))
            else:
                service = Service.from_store(current.value)
                if service.deleting:
                    raise Conflict("service %r is being deleted" % name, field="service")
            replicas = service.replicas
            updated = service.with_replicas(
                change(dict(replicas) if isinstance(replicas, dict) else replicas), placement)
            if metadata is not None:
                updated = updated.with_metadata(metadata)
            _check_bounds(name, current=current, updated=updated, put=metadata is not None,
                          on_compute=bool(computes))
            if current is None and updated.generation == 0:
                updated = updated.model_copy(update={"generation": 1})
            created = current is None
            value = updated.to_store()
            # The version the answer will carry: unchanged specs keep theirs.
            written.update(spec=value, version=current.version
                           if current is not None and current.value == value else None)
            return value

        # An idempotency key seen before is checked first: a replay is answered as
        # then, even if a compute it named is gone since.
        conditions = [Condition.version(idempotency.store_key, 0)] if idempotency else []
        conditions += [Condition.exists(compute_key(c)) for c in computes]
        if count_first and create and self.max_services is not None:
            # Checked, not enforced inside the write: services are created while
            # others change all the time, so concurrent creations may pass the
            # limit by a few. It guards against runaway scripts, not by the unit.
            existing = await self.store.count(SERVICES)
            if existing >= self.max_services:
                raise LimitExceeded("there are already %d services, the maximum (max_services)"
                                    % existing, field="name")
        ops = [Op.update(service_key(name), apply, conditions=conditions)]
        if idempotency is not None:
            ops.append(Op.update(idempotency.store_key, lambda _: {
                "request": idempotency.request, "service": name, "spec": written["spec"],
                "version": written["version"], "expires": time.time() + self.idempotency_ttl}))
        try:
            # The status too, for the answer: in the same call, where the store can.
            results, (status,) = await self.store.transaction_then_read(
                ops, [status_key(name)])
            spec: Record = results[0]
        except _NeedsRoom:
            # A new service: the limit is checked first (changing an existing one,
            # the common case, needs no count and no extra read).
            return await self._change_replicas(
                name, change, computes=computes, create=create, expect_version=expect_version,
                idempotency=idempotency, metadata=metadata, count_first=True, total=total,
                placement=placement)
        except VersionMismatch as e:
            if idempotency is not None and e.field == idempotency.store_key:
                return await self._replay(idempotency, name, change, computes=computes,
                                          create=create, total=total)
            if not (e.field or "").startswith(COMPUTES):
                raise
            raise NotFound("compute %r does not exist" % e.field[len(COMPUTES):],
                           field="compute") from e
        return service_view(spec, status), created

    async def _replay(self, idempotency: Idempotency, name: str, change: Change, *,
                      computes: Iterable[str], create: bool,
                      total: bool = False) -> tuple[dict, bool]:
        """The key was used before: answer as then, or refuse if the request differs."""
        record = await self.store.get(idempotency.store_key)
        if record is None or record.value["expires"] < time.time():
            if record is not None:  # expired: forget it, and this is a new request
                try:
                    await self.store.delete(idempotency.store_key, expect_version=record.version)
                except VersionMismatch:
                    pass
            return await self._change_replicas(name, change, computes=computes, create=create,
                                               idempotency=idempotency, total=total)
        if record.value["request"] != idempotency.request:
            raise IdempotencyKeyReused("Idempotency-Key %r was used for another request (a "
                                       "different operation, service or body)"
                                       % idempotency.key, field="Idempotency-Key")
        idempotency.replayed = True
        spec = Record(service_key(record.value["service"]), record.value["spec"],
                      record.value["version"] or record.version)
        return service_view(spec, await self.store.get(status_key(name))), False

    async def forget_expired_idempotency_keys(self, now: Optional[float] = None) -> int:
        """Delete the idempotency records whose time is up; returns how many."""
        now = time.time() if now is None else now
        forgotten = 0
        for record in (await self.store.list(IDEMPOTENCY)).records:
            if record.value["expires"] < now:
                try:
                    await self.store.delete(record.key, expect_version=record.version)
                    forgotten += 1
                except VersionMismatch:
                    pass
        return forgotten

    async def upscale(self, name: str, compute: Optional[str], *,
                      idempotency: Optional[Idempotency] = None) -> dict:
        """One more on ``compute``, or on the total of a placed service (None)."""
        def add_one(replicas: Replicas) -> Replicas:
            current = _count_of(name, replicas, compute, "upscale")
            if current >= self.max_replicas:
                raise Conflict("service %r already has %d resources%s, the maximum "
                               "(max_replicas)" % (name, current, _on(compute)),
                               field="compute" if compute else "replicas")
            return _with_count(replicas, compute, current + 1)
        return await self._step(name, add_one, compute, create=True, idempotency=idempotency)

    async def downscale(self, name: str, compute: Optional[str], *,
                        idempotency: Optional[Idempotency] = None) -> dict:
        """One less on ``compute``, or on the total of a placed service (None)."""
        def remove_one(replicas: Replicas) -> Replicas:
            current = _count_of(name, replicas, compute, "downscale")
            if current == 0:
                raise Conflict("service %r has no resources on %r to remove" % (name, compute)
                               if compute else "service %r has a total of 0: nothing to "
                               "remove" % name, field="compute" if compute else "replicas")
            return _with_count(replicas, compute, current - 1)
        return await self._step(name, remove_one, compute, create=False,
                                idempotency=idempotency)

    async def scale(self, name: str, compute: Optional[str], number: int, *,
                    idempotency: Optional[Idempotency] = None) -> dict:
        """``number`` on ``compute``, or as the total of a placed service (None)."""
        def set_number(replicas: Replicas) -> Replicas:
            _count_of(name, replicas, compute, "scale")
            return _with_count(replicas, compute, number)
        return await self._step(name, set_number, compute, create=True,
                                idempotency=idempotency)

    async def _step(self, name: str, change: Change, compute: Optional[str], *, create: bool,
                    idempotency: Optional[Idempotency]) -> dict:
        view, _ = await self._change_replicas(
            name, change, computes=[compute] if compute else [], create=create,
            idempotency=idempotency, total=compute is None)
        return view

    async def put_service(self, name: str, replicas: Replicas, *,
                          expect_version: Version = None,
                          metadata: Optional[ServiceUpdate] = None) -> tuple[dict, bool]:
        """Replace a service's replicas: a map, or a total and (from ``metadata``, a PUT
        body) its placement; and the PUT body's other fields (labels, managedBy).
        Returns (view, created)."""
        placement = metadata.placement if metadata is not None else None
        stored = placement.to_store() if placement is not None else None
        counts = dict(replicas) if isinstance(replicas, dict) else replicas
        return await self._change_replicas(
            name, lambda _: counts, computes=sorted(replicas) if isinstance(replicas, dict)
            else [], create=True, expect_version=expect_version, metadata=metadata,
            placement=stored)

    async def rebalance(self, name: str, *, expect_version: Version = None) -> dict:
        """Ask for a rebalance of a placed service: the reconciler moves its assignment
        to the shares, maxSurge at a time."""
        def ask(service: Service) -> Service:
            if service.deleting:
                raise Conflict("service %r is being deleted" % name, field="service")
            if not service.placed:
                raise Conflict("service %r has counts per compute, which genisys does not move: "
                               "give it a total and a placement (PUT /service/%s) to have it "
                               "placed" % (name, name), field="service")
            return service.model_copy(update={"rebalance": service.rebalance + 1,
                                              "generation": service.generation + 1})
        return await self._update_service(name, ask, expect_version=expect_version)

    async def delete_service(self, name: str, *, expect_version: Version = None) -> dict:
        """Mark a service for deletion; the reconciler scales it to 0, then removes it."""
        def mark(service: Service) -> Service:
            if service.deleting:
                return service
            return service.model_copy(update={"deleting": True,
                                              "generation": service.generation + 1})
        return await self._update_service(name, mark, expect_version=expect_version)

    async def _update_service(self, name: str, change: Callable[[Service], Service], *,
                              expect_version: Version) -> dict:
        """Atomically replace an existing service's spec with ``change(service)`` (the
        same service: left as it is); its view."""
        def update(current: Optional[Record]) -> dict:
            if current is None:
                raise NotFound("service %r does not exist" % name, field="service")
            _check_version(current, expect_version, "service %r" % name)
            service = Service.from_store(current.value)
            changed = change(service)
            return current.value if changed is service else changed.to_store()
        spec = cast(Record, await self.store.update(service_key(name), update))  # never deleted
        return service_view(spec, await self.store.get(status_key(name)))
