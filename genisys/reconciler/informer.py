"""The informer: the reconciler's cache of the store's computes, specs and statuses.

Each of the three prefixes is listed, then watched from the listing's revision;
a compacted or broken watch lists again, so no change is missed. The cache
serves a pass its spec, status and computes without a store round trip while
that prefix is *synced* (listed, and its watch running); otherwise a read goes
to the store. A stale read costs a pass, never correctness: the status write is
a compare-and-swap on the version read (and, on etcd, fenced by leadership),
and a refused one makes the next read of that status go to the store.

The reconciler's own status writes are put in the cache at once
(``wrote_status``), so its next pass needs no watch event to see them. A record
only ever replaces an older version of itself, so a late watch event or a
listing taken before a write cannot bring an old value back.

It also answers "which services refer to compute X" (their spec names it or their
status has an entry for it: ``genisys.intents.computes_referred``), the services
to look at again when that compute changes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Optional

from genisys.errors import GenisysError
from genisys.intents import (
    COMPUTES,
    SERVICES,
    STATUS,
    compute_key,
    computes_referred,
    service_key,
    status_key,
)
from genisys.model import Compute
from genisys.reconciler.queue import Backoff
from genisys.store import Compacted, Store
from genisys.store.base import Event, Listing, Record
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

#: ``on_change(name)``: a spec or a compute ``name`` changed (or went).
OnChange = Callable[[str], Awaitable[None]]
#: ``on_relisted(first)``: the prefix was listed again (``first``: at start).
OnRelisted = Callable[[bool], Awaitable[None]]


class _Cache:
    """The records under one prefix, by name, as of the last listing and events."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.records: dict[str, Record] = {}
        #: Listed and watched: a name absent here is absent from the store.
        self.synced = False
        self.listed_before = False

    def replace(self, listing: Listing) -> set[str]:
        """Take a listing; returns the names whose record changed. A record written
        after the listing (its version is newer) stays."""
        listed = {r.key[len(self.prefix):]: r for r in listing.records}
        changed = set()
        for name, record in list(self.records.items()):
            if name not in listed and record.version <= listing.revision:
                del self.records[name]
                changed.add(name)
        for name, record in listed.items():
            if self.offer(name, record):
                changed.add(name)
        return changed

    def offer(self, name: str, record: Record) -> bool:
        """Keep ``record`` unless a newer version is cached; True if it was kept."""
        cached = self.records.get(name)
        if cached is not None and cached.version >= record.version:
            return False
        self.records[name] = record
        return True

    def apply(self, event: Event) -> Optional[str]:
        """Apply a watch event; returns the name it changed (None: it was older)."""
        name = event.key[len(self.prefix):]
        if event.type == "put" and event.record is not None:
            return name if self.offer(name, event.record) else None
        cached = self.records.get(name)
        if cached is None or cached.version > event.revision:
            return None
        del self.records[name]
        return name


class Informer:
    def __init__(self, store: Store, *, on_spec: OnChange, on_compute: OnChange,
                 on_specs_relisted: OnRelisted, on_computes_relisted: OnRelisted) -> None:
        self.store = store
        self._specs = _Cache(SERVICES)
        self._statuses = _Cache(STATUS)
        self._computes = _Cache(COMPUTES)
        self._handlers = {SERVICES: (on_spec, on_specs_relisted),
                          COMPUTES: (on_compute, on_computes_relisted)}
        #: compute -> services that refer to it (see ``services_referring_to``).
        self._users: dict[str, set[str]] = {}
        #: service -> the computes it refers to, as indexed in _users.
        self._uses: dict[str, frozenset[str]] = {}
        #: Services whose cached status may be older than the store's: read it there.
        self._unsure: set[str] = set()
        #: compute -> (the record version it was made from, the Compute).
        self._compute_models: dict[str, tuple[int, Compute]] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [start_task(self._follow(cache), name="%swatcher" % cache.prefix)
                       for cache in (self._specs, self._statuses, self._computes)]

    async def stop(self, timeout: float = 10.0) -> None:
        await stop_tasks(self._tasks, timeout=timeout)
        self._tasks = []

    # -- reads -----------------------------------------------------------------

    def synced(self) -> bool:
        """Computes, specs and statuses are all listed and watched: reads need no store."""
        return self._specs.synced and self._statuses.synced and self._computes.synced

    async def spec(self, name: str) -> Optional[Record]:
        return await self._read(self._specs, name, service_key(name))

    async def compute(self, name: str) -> Optional[Record]:
        return await self._read(self._computes, name, compute_key(name))

    async def compute_model(self, name: str) -> Optional[Compute]:
        """Compute ``name`` as a model (None: there is none), made once per version of
        its record: every connector call needs it, and computes rarely change."""
        record = await self.compute(name)
        if record is None:
            self._compute_models.pop(name, None)
            return None
        made = self._compute_models.get(name)
        if made is None or made[0] != record.version:
            made = self._compute_models[name] = (record.version,
                                                 Compute.from_store(record.value))
        return made[1]

    async def status(self, name: str) -> Optional[Record]:
        if name in self._unsure:
            self._unsure.discard(name)
            record = await self.store.get(status_key(name))
            if record is not None and self._statuses.offer(name, record):
                self._index(name)
            return record
        return await self._read(self._statuses, name, status_key(name))

    async def specs_and_statuses(self) -> tuple[list[Record], dict[str, Record]]:
        """Every spec (sorted by name) and every status, by service name."""
        if self._specs.synced:
            specs = [self._specs.records[n] for n in sorted(self._specs.records)]
        else:
            specs = (await self.store.list(SERVICES)).records
        if self._statuses.synced and not self._unsure:
            statuses = dict(self._statuses.records)
        else:
            listing = await self.store.list(STATUS)
            statuses = {r.key[len(STATUS):]: r for r in listing.records}
        return specs, statuses

    async def services_referring_to(self, compute: str) -> list[str]:
        """The services that refer to ``compute`` (``computes_referred``), sorted."""
        if self._specs.synced and self._statuses.synced:
            return sorted(self._users.get(compute, ()))
        specs, statuses = await self.specs_and_statuses()
        spec_of = {r.key[len(SERVICES):]: r.value for r in specs}
        return sorted(name for name in spec_of.keys() | statuses.keys()
                      if compute in computes_referred(spec_of.get(name),
                                                   _value(statuses.get(name))))

    # -- what the reconciler tells it -------------------------------------------

    def wrote_status(self, name: str, record: Record) -> None:
        """The reconciler wrote this status: its next pass reads it from here."""
        if self._statuses.offer(name, record):
            self._index(name)

    def doubt_status(self, name: str) -> None:
        """A write on the cached status was refused: read it from the store next."""
        self._unsure.add(name)

    # -- list and watch ----------------------------------------------------------

    async def _follow(self, cache: _Cache) -> None:
        """List the prefix, then watch it from the listing's revision, forever; a
        compacted or broken watch lists again."""
        changed, relisted = self._handlers.get(cache.prefix, (None, None))
        failures = 0
        retry = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                listing = await self.store.list(cache.prefix)
                names = cache.replace(listing)
                self._reindex(cache, names)
                cache.synced = True
                first, cache.listed_before = not cache.listed_before, True
                if relisted is not None:
                    await relisted(first)
                failures = 0
                async with self.store.watch(cache.prefix,
                                            start_revision=listing.revision) as watch:
                    async for event in watch:
                        name = cache.apply(event)
                        if name is not None:
                            self._reindex(cache, {name})
                        if changed is not None:
                            await changed(event.key[len(cache.prefix):])
            except Compacted as e:
                cache.synced = False
                log.info("watch of %s: %s; listing again", cache.prefix, e)
            except GenisysError as e:
                cache.synced = False
                failures += 1
                delay = retry.delay(failures)
                log.warning("watch of %s failed (%s); again in %.1fs", cache.prefix, e, delay)
                await asyncio.sleep(delay)
            except BaseException:
                cache.synced = False
                raise

    async def _read(self, cache: _Cache, name: str, key: str) -> Optional[Record]:
        if cache.synced:
            return cache.records.get(name)
        return await self.store.get(key)

    # -- services using a compute --------------------------------------------------

    def _reindex(self, cache: _Cache, names: set[str]) -> None:
        if cache is not self._computes:
            for name in names:
                self._index(name)

    def _index(self, service: str) -> None:
        spec = self._specs.records.get(service)
        status = self._statuses.records.get(service)
        uses = computes_referred(_value(spec), _value(status))
        old = self._uses.get(service, frozenset())
        if uses == old:
            return
        for compute in old - uses:
            users = self._users[compute]
            users.discard(service)
            if not users:
                del self._users[compute]
        for compute in uses - old:
            self._users.setdefault(compute, set()).add(service)
        if uses:
            self._uses[service] = uses
        else:
            self._uses.pop(service, None)


def _value(record: Optional[Record]) -> Optional[dict]:
    return record.value if record is not None else None
