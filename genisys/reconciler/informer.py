"""The informer: the reconciler's view of the store's computes, specs and statuses.

Each of the three prefixes is listed, then watched from the listing's revision;
a compacted or broken watch lists again, so no change is missed.

What it keeps of each record, with the record's version:

* a compute: the record (and its model, made once per version): every connector
  call needs one, and there are few;
* a spec or a status: only the computes it refers to. A pass reads the spec and
  the status themselves from the store, so they are never stale, and ten
  thousand services cost a few MB here instead of 45 (their values as dicts).

From those it answers "which services refer to compute X" (their spec names it
or their status has an entry for it: ``genisys.intents.computes_referred``), the
services to look at again when that compute changes, without reading the store.
A record only ever replaces an older version of itself, so a late watch event or
a listing taken before a write cannot bring an old value back; the reconciler's
own status writes are taken at once (``wrote_status``).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Optional

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
    """What is kept of each record under one prefix (``keep(record)``), by name,
    with its version, as of the last listing and events."""

    def __init__(self, prefix: str, keep: Callable[[Record], Any]) -> None:
        self.prefix = prefix
        self._keep = keep
        self._kept: dict[str, tuple[int, Any]] = {}
        #: Listed and watched: a name absent here is absent from the store.
        self.synced = False
        self.listed_before = False

    def get(self, name: str) -> Any:
        """What is kept of ``name``'s record (None: there is none)."""
        kept = self._kept.get(name)
        return kept[1] if kept is not None else None

    def names(self) -> list[str]:
        return list(self._kept)

    def replace(self, listing: Listing) -> set[str]:
        """Take a listing; returns the names whose record changed. A record written
        after the listing (its version is newer) stays."""
        listed = {r.key[len(self.prefix):]: r for r in listing.records}
        changed = set()
        for name, (version, _) in list(self._kept.items()):
            if name not in listed and version <= listing.revision:
                del self._kept[name]
                changed.add(name)
        for name, record in listed.items():
            if self.offer(name, record):
                changed.add(name)
        return changed

    def offer(self, name: str, record: Record) -> bool:
        """Keep ``record`` unless a newer version is kept; True if it was kept."""
        kept = self._kept.get(name)
        if kept is not None and kept[0] >= record.version:
            return False
        self._kept[name] = (record.version, self._keep(record))
        return True

    def apply(self, event: Event) -> Optional[str]:
        """Apply a watch event; returns the name it changed (None: it was older)."""
        name = event.key[len(self.prefix):]
        if event.type == "put" and event.record is not None:
            return name if self.offer(name, event.record) else None
        kept = self._kept.get(name)
        if kept is None or kept[0] > event.revision:
            return None
        del self._kept[name]
        return name


class Informer:
    def __init__(self, store: Store, *, on_spec: OnChange, on_compute: OnChange,
                 on_specs_relisted: OnRelisted, on_computes_relisted: OnRelisted) -> None:
        self.store = store
        #: One frozenset per distinct set of computes (services mostly share a few).
        self._sets: dict[frozenset, frozenset] = {}
        self._specs = _Cache(SERVICES, lambda r: self._set(computes_referred(r.value, None)))
        self._statuses = _Cache(STATUS, lambda r: self._set(computes_referred(None, r.value)))
        self._computes = _Cache(COMPUTES, lambda r: r)
        self._handlers = {SERVICES: (on_spec, on_specs_relisted),
                          COMPUTES: (on_compute, on_computes_relisted)}
        #: compute -> services that refer to it (see ``services_referring_to``).
        self._users: dict[str, set[str]] = {}
        #: service -> the computes it refers to, as indexed in _users.
        self._uses: dict[str, frozenset[str]] = {}
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
        """Computes, specs and statuses are all listed and watched."""
        return self._specs.synced and self._statuses.synced and self._computes.synced

    async def spec(self, name: str) -> Optional[Record]:
        return await self.store.get(service_key(name))

    async def status(self, name: str) -> Optional[Record]:
        return await self.store.get(status_key(name))

    async def compute(self, name: str) -> Optional[Record]:
        if self._computes.synced:
            record: Optional[Record] = self._computes.get(name)
            return record
        return await self.store.get(compute_key(name))

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

    async def specs_and_statuses(self) -> tuple[list[Record], dict[str, Record]]:
        """Every spec (sorted by name) and every status, by service name."""
        specs = (await self.store.list(SERVICES)).records
        listing = await self.store.list(STATUS)
        return specs, {r.key[len(STATUS):]: r for r in listing.records}

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
        """The reconciler wrote this status: index it now, not at its watch event."""
        if self._statuses.offer(name, record):
            self._index(name)

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

    # -- services using a compute --------------------------------------------------

    def _reindex(self, cache: _Cache, names: set[str]) -> None:
        if cache is not self._computes:
            for name in names:
                self._index(name)

    def _index(self, service: str) -> None:
        uses = self._set((self._specs.get(service) or frozenset())
                         | (self._statuses.get(service) or frozenset()))
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


    def _set(self, computes: frozenset) -> frozenset:
        return self._sets.setdefault(computes, computes)


def _value(record: Optional[Record]) -> Optional[dict]:
    return record.value if record is not None else None
