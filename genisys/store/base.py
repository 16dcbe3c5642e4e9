"""The store interface every backend implements, and the logic they share.

A store is a versioned key-value map of JSON objects, the single source of
truth of genisys. Every write takes the next value of one store-wide,
monotonically increasing *revision*; a record's ``version`` is the revision
of its last write (etcd's ``mod_revision``), which the API exposes as
``resourceVersion``. Writes may be conditional, either on the version of the
key they write or on other keys (``Condition``), and ``update`` is an atomic
read-modify-write. ``watch`` streams changes under a prefix from a revision
on, so a consumer can ``list`` and then follow without missing anything.

The in-process backends (memory, sqlite) run the same ``apply_op`` over
their own ``View`` of the data, so their semantics cannot drift apart.
"""

import abc
import asyncio
import builtins
import collections
import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Optional, cast

import orjson

from genisys.errors import GenisysError, VersionMismatch


def decode(text: str) -> dict:
    """A stored value, from its JSON text: orjson, some five times faster than ``json``
    (every pass and every GET decodes three records); ``json`` for what orjson refuses
    and it reads (NaN), so nothing stored becomes unreadable. (orjson reads an integer
    past 64 bits as a float; genisys stores none: every count is bounded by its model.)"""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


#: What orjson must not write on its own: ``encode`` then refuses it as ``json`` does.
_STRICT = (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
           | orjson.OPT_PASSTHROUGH_SUBCLASS)


def encode(value: Any) -> str:
    """A value's stored JSON text (a JSON object's), compact: orjson, some ten times
    faster than ``json`` (an events record of 50: 4 µs instead of 49, on every status
    write). What JSON cannot hold is refused as ``json`` refuses it: TypeError for
    what is not JSON, ValueError for NaN and infinities, which orjson would write as
    null (so a text with a null, which genisys' own records hardly ever hold, is
    checked by ``json`` too). ``json`` writes what orjson refuses (an integer past
    64 bits)."""
    if not isinstance(value, dict):
        raise TypeError("store values are JSON objects, got %r" % type(value))
    try:
        text = orjson.dumps(value, option=_STRICT)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    if b"null" in text:
        json.dumps(value, allow_nan=False)  # ValueError for NaN or an infinity
    return text.decode("utf-8")


@dataclasses.dataclass(frozen=True)
class Record:
    key: str
    value: dict
    #: Revision of the last write to this key (never 0 for a stored record).
    version: int


@dataclasses.dataclass(frozen=True)
class Listing:
    records: list[Record]
    #: Store revision the listing reflects: watch from here to follow it.
    revision: int


@dataclasses.dataclass(frozen=True)
class Event:
    type: str  # "put" or "delete"
    key: str
    revision: int
    #: The new record for "put", None for "delete".
    record: Optional[Record] = None


class Compacted(GenisysError):
    """A watch asked for history the store no longer has: list again, then watch."""

    reason = "Compacted"


@dataclasses.dataclass(frozen=True)
class Condition:
    """Something about *another* key that must hold for a write to happen.

    ``Condition.version(key, v)``: the key is at version v (0: it is absent).
    ``Condition.exists(key)``: the key is present.
    ``Condition.unchanged(prefix, revision)``: no key under the prefix was
    written after that revision (deleted keys don't count, as in etcd).
    """

    kind: str
    key: str
    value: int = 0

    @classmethod
    def version(cls, key: str, version: int) -> "Condition":
        return cls("version", key, version)

    @classmethod
    def exists(cls, key: str) -> "Condition":
        return cls("exists", key)

    @classmethod
    def unchanged(cls, prefix: str, revision: int) -> "Condition":
        return cls("unchanged", prefix, revision)


#: Returned by an update function to delete the key instead of writing it.
DELETE = object()

#: What ``update`` calls: the current record (None: absent) -> the new value, the same
#: value, or DELETE.
UpdateFn = Callable[[Optional["Record"]], Any]


def prefix_end(prefix: str) -> Optional[str]:
    """The first key after every key that starts with ``prefix`` (etcd's range_end)."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class Store(abc.ABC):
    """Async interface of every backend; use it as an async context manager."""

    #: True when other controllers may use the same store at the same time (etcd):
    #: only the elected leader then reconciles. False: this process owns the store
    #: (memory, or sqlite, whose file lock keeps any other controller out).
    shared = False

    async def __aenter__(self) -> "Store":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 (backends with nothing to open keep this one)
        """Connect, create what is missing; raise StoreUnavailable if impossible."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release every resource."""

    @abc.abstractmethod
    async def get(self, key: str) -> Optional[Record]:
        ...

    async def get_many(self, keys: Sequence[str]) -> builtins.list[Optional[Record]]:
        """The records of ``keys`` (None: absent), in order; a backend may read them all
        at once (etcd: in one call, at one revision)."""
        return [await self.get(key) for key in keys]

    @abc.abstractmethod
    async def list(self, prefix: str) -> Listing:
        """Every record whose key starts with ``prefix``, sorted by key."""

    @abc.abstractmethod
    async def count(self, prefix: str) -> int:
        """How many keys start with ``prefix`` (without reading their values)."""

    @abc.abstractmethod
    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: Sequence[Condition] = ()) -> Record:
        """Write ``value``. ``expect_version``: None = unconditional, 0 = create
        only, N = replace only version N. Raises VersionMismatch."""

    @abc.abstractmethod
    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        """Delete ``key``; returns the deleted record, None if it was absent."""

    @abc.abstractmethod
    async def update(self, key: str, fn: UpdateFn, *,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        """Atomically replace the value of ``key`` with ``fn(current_record_or_None)``.

        ``fn`` is pure and may run more than once (CAS backends retry); it
        returns the new value, the same value to leave the key untouched,
        ``DELETE`` to remove it, or raises a GenisysError to abort. Returns the
        resulting record (None if deleted or absent)."""

    async def replace(self, key: str, value: dict) -> Record:
        """Write ``value`` to ``key``, which must exist (VersionMismatch "<key> does not
        exist" if not). A key that already holds ``value`` is left as it is (no new
        version, no event), like ``update``; but nothing else of the current value
        matters, so a backend may decide it in the write itself (etcd: no read, and
        writers replacing one key do not take turns or retry against each other)."""
        return cast(Record, await self.update(key, replacing(key, value)))

    @abc.abstractmethod
    async def transaction(self, ops: Sequence["Op"]) -> builtins.list[Any]:
        """Apply ``ops`` (``Op.put``/``Op.delete``/``Op.update``) in order, all or
        nothing: if one is refused, none happened and its error is raised. Every
        write of a transaction takes the same revision (as in etcd). Returns the
        result of each op."""

    async def transaction_then_read(
            self, ops: Sequence["Op"], keys: Sequence[str]
    ) -> tuple[builtins.list[Any], builtins.list[Optional[Record]]]:
        """``transaction(ops)``, then ``get_many(keys)``: (results, records). A backend
        may do both at once (etcd: in the transaction's own call)."""
        return await self.transaction(ops), await self.get_many(keys)

    @abc.abstractmethod
    async def revision(self) -> int:
        """The current store revision."""

    @abc.abstractmethod
    def watch(self, prefix: str, *, start_revision: Optional[int] = None) -> "WatchStream":
        """Changes under ``prefix`` after ``start_revision`` (default: from now).
        Raises Compacted (on iteration) if that history is gone."""

    async def check(self) -> None:
        """Raise StoreUnavailable if the store can't serve requests (for /readyz)."""
        await self.revision()


# -- shared by the in-process backends -------------------------------------


class View(abc.ABC):
    """What ``apply_op`` needs from a backend, inside one atomic transaction."""

    @abc.abstractmethod
    def read(self, key: str) -> Optional[Record]:
        ...

    def version(self, key: str) -> int:
        """The version of ``key`` (0: absent); a backend may spare the decoding."""
        record = self.read(key)
        return record.version if record else 0

    @abc.abstractmethod
    def max_version(self, prefix: str) -> int:
        ...

    @abc.abstractmethod
    def write(self, record: Record) -> None:
        ...

    @abc.abstractmethod
    def remove(self, key: str) -> None:
        ...


@dataclasses.dataclass(frozen=True)
class Op:
    """One write request: kind is "put", "delete", "update" or "txn" (whose value
    is a list of the others)."""

    kind: str
    key: str
    value: Any = None
    expect_version: Optional[int] = None
    conditions: Sequence[Condition] = ()

    @classmethod
    def put(cls, key: str, value: dict, *, expect_version: Optional[int] = None,
            conditions: Iterable[Condition] = ()) -> "Op":
        return cls("put", key, value, expect_version, tuple(conditions))

    @classmethod
    def delete(cls, key: str, *, expect_version: Optional[int] = None,
               conditions: Iterable[Condition] = ()) -> "Op":
        return cls("delete", key, None, expect_version, tuple(conditions))

    @classmethod
    def update(cls, key: str, fn: UpdateFn, *, conditions: Iterable[Condition] = ()) -> "Op":
        return cls("update", key, fn, None, tuple(conditions))

    @classmethod
    def txn(cls, ops: Sequence["Op"]) -> "Op":
        if not ops or any(op.kind == "txn" for op in ops):
            raise ValueError("a transaction is a non-empty list of put, delete, update")
        return cls("txn", "", list(ops))


def replacing(key: str, value: dict) -> UpdateFn:
    """The update function of ``Store.replace``: ``value``, if ``key`` exists."""
    def replace(current: Optional[Record]) -> dict:
        if current is None:
            raise VersionMismatch("%s does not exist" % key, field=key)
        return value
    return replace


def check_conditions(view: View, conditions: Iterable[Condition]) -> None:
    for cond in conditions:
        if cond.kind == "unchanged":
            latest = view.max_version(cond.key)
            if latest > cond.value:
                raise VersionMismatch("%s changed at revision %d, after %d"
                                      % (cond.key, latest, cond.value), field=cond.key)
            continue
        record = view.read(cond.key)
        version = record.version if record else 0
        if cond.kind == "exists" and version == 0:
            raise VersionMismatch("%s does not exist" % cond.key, field=cond.key)
        if cond.kind == "version" and version != cond.value:
            raise VersionMismatch("%s is at version %d, not %d"
                                  % (cond.key, version, cond.value), field=cond.key)


def check_expected(key: str, current: Optional[Record], expect_version: Optional[int]) -> None:
    if expect_version is None:
        return
    check_version(key, current.version if current else 0, expect_version)


def check_version(key: str, version: int, expect_version: int) -> None:
    if version != expect_version:
        if expect_version == 0:
            raise VersionMismatch("%s already exists" % key, field=key)
        if version == 0:
            raise VersionMismatch("%s does not exist" % key, field=key)
        raise VersionMismatch("%s is at version %d, not %d" % (key, version, expect_version),
                              field=key)


def apply_op(view: View, op: Op, revision: int) -> tuple[Any, list[Event]]:
    """Run ``op`` against ``view``; a write takes ``revision``.

    Returns ``(result, events)``. Raises GenisysError to refuse, in which case
    the view must be left as it was (the caller rolls back what a transaction
    wrote before the refused op)."""
    if op.kind == "txn":
        results: list = []
        events: list[Event] = []
        for sub in op.value:
            result, more = apply_op(view, sub, revision)
            results.append(result)
            events += more
        return results, events
    result, event = _apply_one(view, op, revision)
    return result, [event] if event is not None else []


def _apply_one(view: View, op: Op, revision: int) -> tuple[Any, Optional[Event]]:
    check_conditions(view, op.conditions)
    if op.kind == "put":
        # A put needs no current value: only its version, and only if one is expected.
        if op.expect_version is not None:
            check_version(op.key, view.version(op.key), op.expect_version)
        current = None
    else:
        current = view.read(op.key)
        check_expected(op.key, current, op.expect_version)
    if op.kind == "update":
        new_value = op.value(current)
        if new_value is DELETE:
            if current is None:
                return None, None
            view.remove(op.key)
            return None, Event("delete", op.key, revision)
        if current is not None and new_value == current.value:
            return current, None
        kind = "put"
    else:
        new_value, kind = op.value, op.kind
    if kind == "delete":
        if current is None:
            return None, None
        view.remove(op.key)
        return current, Event("delete", op.key, revision)
    if not isinstance(new_value, dict):
        raise TypeError("store values are JSON objects, got %r" % type(new_value))
    record = Record(op.key, new_value, revision)
    view.write(record)
    return record, Event("put", op.key, revision, record)


class WatchStream:
    """What every backend's watch is: ``async with`` it, ``async for event in`` it;
    close() ends it. Subclasses implement close() and __anext__()."""

    async def __aenter__(self) -> "WatchStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> "WatchStream":
        return self

    def close(self) -> None:
        raise NotImplementedError

    async def __anext__(self) -> Event:
        raise NotImplementedError


class Watch(WatchStream):
    """A stream of events from the in-process backends' hub."""

    def __init__(self, hub: "WatchHub", prefix: str, *, after: int, limit: int) -> None:
        self._hub = hub
        self.prefix = prefix
        #: Events at or before this revision are not for this watch.
        self._after = after
        self._queue: asyncio.Queue[Optional[Event]] = asyncio.Queue()
        self._limit = limit
        self._error: Optional[Exception] = None
        self._closed = False

    def _offer(self, event: Event) -> None:
        if self._error or self._closed or event.revision <= self._after:
            return
        if self._queue.qsize() >= self._limit:
            # A consumer this far behind must re-list; never grow without bound.
            self._error = Compacted("watch on %r fell more than %d events behind"
                                    % (self.prefix, self._limit))
            self._queue.put_nowait(None)
            return
        self._queue.put_nowait(event)

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._queue.put_nowait(None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub.unsubscribe(self)
            self._queue.put_nowait(None)

    async def __anext__(self) -> Event:
        if self._error:
            raise self._error
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            if self._error:
                raise self._error
            raise StopAsyncIteration
        return event


class WatchHub:
    """Fans committed events out to watches, with a bounded replay history.

    The history only has to bridge a listing and the watch that follows it (the
    informer subscribes right after it lists, with nothing in between); a watch
    starting further back is told Compacted and lists again. It is short
    because it holds the values written: ten thousand events of a burst of
    status writes held some 40 MB."""

    def __init__(self, revision: int, *, history: int = 1000,
                 watch_limit: int = 100000) -> None:
        self._history: collections.deque[Event] = collections.deque(maxlen=history)
        self._revision = revision
        #: Events up to this revision can no longer be replayed.
        self._forgotten = revision
        self._watches: set[Watch] = set()
        self._watch_limit = watch_limit

    def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            self._revision = event.revision
            if len(self._history) == self._history.maxlen:
                self._forgotten = self._history[0].revision
            self._history.append(event)
            for watch in list(self._watches):
                if event.key.startswith(watch.prefix):
                    watch._offer(event)

    def subscribe(self, prefix: str, start_revision: Optional[int]) -> Watch:
        after = self._revision if start_revision is None else start_revision
        watch = Watch(self, prefix, after=after, limit=self._watch_limit)
        if start_revision is not None:
            if start_revision < self._forgotten:
                watch._fail(Compacted("revision %d is older than the kept history (%d)"
                                      % (start_revision, self._forgotten)))
                return watch
            for event in self._history:
                if event.revision > start_revision and event.key.startswith(prefix):
                    watch._offer(event)
        self._watches.add(watch)
        return watch

    def unsubscribe(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close(self) -> None:
        for watch in list(self._watches):
            watch.close()
