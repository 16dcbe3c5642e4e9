"""``memory://``: a store that lives and dies with the process (tests, demos).

Values are kept JSON-encoded, exactly as the durable backends keep them, so
a caller can never mutate stored state through a returned object and a value
that would not survive the sqlite store fails here too.
"""

import bisect
import builtins
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from genisys.errors import StoreUnavailable
from genisys.store.base import (
    Condition,
    Listing,
    Op,
    Record,
    Store,
    UpdateFn,
    View,
    Watch,
    WatchHub,
    apply_op,
    decode,
    encode,
    prefix_end,
)


class _MemoryView(View):
    def __init__(self, store: "MemoryStore") -> None:
        self._store = store

    def read(self, key: str) -> Optional[Record]:
        return self._store._read(key)

    def max_version(self, prefix: str) -> int:
        return max((v for _, v in self._store._range(prefix)), default=0)

    def write(self, record: Record) -> None:
        s = self._store
        if record.key not in s._data:
            bisect.insort(s._keys, record.key)
        s._data[record.key] = (encode(record.value), record.version)

    def remove(self, key: str) -> None:
        s = self._store
        del s._data[key]
        del s._keys[bisect.bisect_left(s._keys, key)]


class MemoryStore(Store):
    def __init__(self) -> None:
        self._data: dict[str, tuple[str, int]] = {}  # key -> (encoded value, version)
        self._keys: list[str] = []  # sorted, for prefix ranges
        self._revision = 0
        self._closed = False
        self._hub = WatchHub(0)

    def _read(self, key: str) -> Optional[Record]:
        item = self._data.get(key)
        return Record(key, decode(item[0]), item[1]) if item else None

    def _range(self, prefix: str) -> Iterator[tuple[str, int]]:
        start = bisect.bisect_left(self._keys, prefix)
        end_key = prefix_end(prefix)
        stop = len(self._keys) if end_key is None else bisect.bisect_left(self._keys, end_key)
        for key in self._keys[start:stop]:
            yield key, self._data[key][1]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _apply(self, op: Op) -> Any:
        # Runs without awaiting anything: atomic on the event loop by construction.
        self._check_open()
        keys = [sub.key for sub in op.value] if op.kind == "txn" else [op.key]
        saved = {key: self._data.get(key) for key in keys}
        try:
            result, events = apply_op(_MemoryView(self), op, self._revision + 1)
        except BaseException:
            self._restore(saved)  # a refused op of a transaction undoes the ones before
            raise
        if events:
            self._revision = events[-1].revision
            self._hub.publish(events)
        return result

    def _restore(self, saved: dict[str, Optional[tuple[str, int]]]) -> None:
        view = _MemoryView(self)
        for key, item in saved.items():
            if item is None:
                if key in self._data:
                    view.remove(key)
            else:
                view.write(Record(key, decode(item[0]), item[1]))

    async def close(self) -> None:
        self._closed = True
        self._hub.close()

    async def get(self, key: str) -> Optional[Record]:
        self._check_open()
        return self._read(key)

    async def count(self, prefix: str) -> int:
        self._check_open()
        end_key = prefix_end(prefix)
        stop = len(self._keys) if end_key is None else bisect.bisect_left(self._keys, end_key)
        return stop - bisect.bisect_left(self._keys, prefix)

    async def list(self, prefix: str) -> Listing:
        self._check_open()
        return Listing([Record(key, decode(self._data[key][0]), version)
                        for key, version in self._range(prefix)], self._revision)

    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: Sequence[Condition] = ()) -> Record:
        return self._apply(Op.put(key, value, expect_version=expect_version,
                                     conditions=conditions))

    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return self._apply(Op.delete(key, expect_version=expect_version,
                                        conditions=conditions))

    async def update(self, key: str, fn: UpdateFn, *,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return self._apply(Op.update(key, fn, conditions=conditions))

    async def transaction(self, ops: Sequence[Op]) -> builtins.list[Any]:
        return self._apply(Op.txn(ops))

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    def watch(self, prefix: str, *, start_revision: Optional[int] = None) -> Watch:
        self._check_open()
        return self._hub.subscribe(prefix, start_revision)
