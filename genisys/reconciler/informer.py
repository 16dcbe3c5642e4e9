"""The informer: what the reconciler knows of the store between passes.

Two prefixes are listed, then watched from the listing's revision; a compacted
or broken watch lists again, so no change is missed:

* specs (``services/``): each change is handed to ``on_spec``, each listing to
  ``on_specs_relisted`` (every service may have changed unseen). Of each spec,
  only the computes it names are kept (``services_using``);
* computes (``computes/``): kept here, records and models, because every
  connector call needs its compute and there are few. Each change is handed to
  ``on_compute``.

Specs and statuses themselves are not kept: a pass reads its own from the store itself,
so it never acts on a stale one, and a resync lists them. Kept as dicts, ten thousand
services' specs and statuses took 45 MB (tracemalloc), and the third watch (of
statuses) cost a decoded event per status write.

A record only ever replaces an older version of itself, so a late watch event or
a listing taken before a write cannot bring an old value back.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Optional, TypeVar

from genisys.errors import GenisysError
from genisys.intents import (
    COMPUTES,
    SERVICES,
    STATUS,
    compute_key,
)
from genisys.model import Compute
from genisys.reconciler.queue import Backoff
from genisys.store import Compacted, Store
from genisys.store.base import Event, Listing, Record
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

#: ``on_change(name)``: a spec or a compute ``name`` changed (or went).
OnChange = Callable[[str], Awaitable[None]]
#: ``on_relisted(first, records)``: the prefix was listed again (``first``: at start).
OnRelisted = Callable[[bool, list[Record]], Awaitable[None]]
T = TypeVar("T")


class _Cache(Generic[T]):
    """What is kept of each record under one prefix (``keep(record)``), by name, as of
    the last listing and events."""

    def __init__(self, prefix: str, keep: Callable[[Record], T]) -> None:
        self.prefix = prefix
        self.keep = keep
        #: name -> (the version of the record, what is kept of it)
        self.entries: dict[str, tuple[int, T]] = {}
        #: Listed and watched: a name absent here is absent from the store.
        self.synced = False

    def get(self, name: str) -> Optional[T]:
        entry = self.entries.get(name)
        return entry[1] if entry is not None else None

    def kept(self) -> dict[str, T]:
        return {name: item for name, (_, item) in self.entries.items()}

    def replace(self, listing: Listing) -> None:
        """Take a listing. A record written after it (its version is newer) stays."""
        listed = {r.key[len(self.prefix):]: r for r in listing.records}
        for name, (version, _) in list(self.entries.items()):
            if name not in listed and version <= listing.revision:
                self._drop(name)
        for name, record in listed.items():
            self.offer(name, record)

    def offer(self, name: str, record: Record) -> bool:
        """Keep ``record`` unless a newer version is cached; True if it was kept."""
        cached = self.entries.get(name)
        if cached is not None and cached[0] >= record.version:
            return False
        self._set(name, record.version, self.keep(record))
        return True

    def apply(self, event: Event) -> None:
        """Apply a watch event, unless what is cached is newer."""
        name = event.key[len(self.prefix):]
        if event.type == "put" and event.record is not None:
            self.offer(name, event.record)
            return
        cached = self.entries.get(name)
        if cached is not None and cached[0] <= event.revision:
            self._drop(name)

    # Every change of ``entries`` goes through these two (a subclass keeps an index).
    def _set(self, name: str, version: int, item: T) -> None:
        self.entries[name] = (version, item)

    def _drop(self, name: str) -> None:
        del self.entries[name]


class _SpecCache(_Cache[frozenset]):
    """The specs' cache: of each, the computes it names; and, from those, the services
    that name each compute, so a compute's change finds its services without looking
    at every spec (it did: 0.27 ms of CPU per compute write with 1,000 services)."""

    def __init__(self) -> None:
        super().__init__(SERVICES, _ComputesNamed())
        #: compute (or "*", for placed services) -> the services that name it.
        self.using: dict[str, set[str]] = {}

    def _set(self, name: str, version: int, item: frozenset) -> None:
        cached = self.entries.get(name)
        if cached is not None and cached[1] is not item:
            self._unindex(name, cached[1])
        super()._set(name, version, item)
        for compute in item:
            self.using.setdefault(compute, set()).add(name)

    def _drop(self, name: str) -> None:
        self._unindex(name, self.entries[name][1])
        super()._drop(name)

    def _unindex(self, name: str, named: frozenset) -> None:
        for compute in named:
            users = self.using[compute]
            users.discard(name)
            if not users:
                del self.using[compute]


class _ComputesNamed:
    """``keep`` of the specs' cache: the computes a spec names, one frozenset for all
    the specs that name the same ones (ten thousand services on four computes share
    a handful)."""

    def __init__(self) -> None:
        self._sets: dict[frozenset, frozenset] = {}

    def __call__(self, record: Record) -> frozenset:
        replicas = record.value.get("replicas", ())
        # A placed service may move to any compute (one that joins its selector, say).
        named = frozenset(replicas) if isinstance(replicas, dict) else ANY_COMPUTE
        return self._sets.setdefault(named, named)


#: What is kept of a placed service's spec: it may use any compute ("*" names none).
ANY = "*"
ANY_COMPUTE = frozenset([ANY])


class Informer:
    def __init__(self, store: Store, *, on_spec: OnChange, on_compute: OnChange,
                 on_specs_relisted: OnRelisted, on_computes_relisted: OnRelisted) -> None:
        self.store = store
        self._computes: _Cache[Record] = _Cache(COMPUTES, lambda record: record)
        #: Of each spec, only the computes it names (``services_using``).
        self._specs = _SpecCache()
        self._handlers = {SERVICES: (on_spec, on_specs_relisted),
                          COMPUTES: (on_compute, on_computes_relisted)}
        #: compute -> (the record version it was made from, the Compute).
        self._compute_models: dict[str, tuple[int, Compute]] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [start_task(self._follow(prefix), name="%swatcher" % prefix)
                       for prefix in (COMPUTES, SERVICES)]

    async def stop(self, timeout: float = 10.0) -> None:
        await stop_tasks(self._tasks, timeout=timeout)
        self._tasks = []

    # -- reads -----------------------------------------------------------------

    def synced(self) -> bool:
        """Specs and computes are both listed and watched."""
        return self._specs.synced and self._computes.synced

    async def compute(self, name: str) -> Optional[Record]:
        if self._computes.synced:
            return self._computes.get(name)
        return await self.store.get(compute_key(name))

    def may_exist(self, name: str) -> bool:
        """Whether compute ``name`` exists as of the computes watched (True until they
        are listed): no store read."""
        return not self._computes.synced or self._computes.get(name) is not None

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

    async def compute_labels(self) -> dict[str, dict]:
        """Every compute's labels, by name (what a placement selects by)."""
        if self._computes.synced:
            records = list(self._computes.kept().values())
        else:
            records = (await self.store.list(COMPUTES)).records
        return {r.value["name"]: r.value.get("labels", {}) for r in records}

    async def specs_and_statuses(self, specs: Optional[list[Record]] = None
                                 ) -> tuple[list[Record], dict[str, Record]]:
        """Every spec (``specs``, if just listed) and every status, by service name."""
        if specs is None:
            specs = (await self.store.list(SERVICES)).records
        listing = await self.store.list(STATUS)
        return specs, {r.key[len(STATUS):]: r for r in listing.records}

    def services_using(self, compute: str) -> set[str]:
        """The services whose spec names ``compute``, and the placed ones, as of the
        specs listed and watched: no store read (computes may change often; ten
        thousand services on four computes cost about 3 MB here, with the index)."""
        using = self._specs.using
        return using.get(compute, set()) | using.get(ANY, set())

    # -- list and watch ----------------------------------------------------------

    async def _follow(self, prefix: str) -> None:
        """List the prefix, then watch it from the listing's revision, forever; a
        compacted or broken watch lists again."""
        changed, relisted = self._handlers[prefix]
        cache = self._computes if prefix == COMPUTES else self._specs
        failures, first = 0, True
        retry = Backoff(initial=0.2, maximum=5.0)
        while True:
            try:
                listing = await self.store.list(prefix)
                cache.replace(listing)
                cache.synced = True
                # Watched from the listing's revision before the listing is handed on:
                # on the embedded stores no write falls between the two, so their
                # watch history (``WatchHub``) can stay short.
                async with self.store.watch(prefix, start_revision=listing.revision) as watch:
                    records = listing.records
                    del listing  # not kept while watching: ten thousand specs are megabytes
                    await relisted(first, records)
                    del records
                    first, failures = False, 0
                    async for event in watch:
                        cache.apply(event)
                        await changed(event.key[len(prefix):])
            except Compacted as e:
                cache.synced = False
                log.info("watch of %s: %s; listing again", prefix, e)
            except GenisysError as e:
                cache.synced = False
                failures += 1
                delay = retry.delay(failures)
                log.warning("watch of %s failed (%s); again in %.1fs", prefix, e, delay)
                await asyncio.sleep(delay)
            except BaseException:
                cache.synced = False
                raise

