"""A store that pretends to write: what a dry run (``?dryRun=true``) runs the intent
layer over.

Reads go to the real store; writes are checked and carried out exactly as a real
backend would (the same ``apply_op``, conditions and versions included), into an
overlay that only this object sees, and that is dropped with it. So a dry run
refuses what the real request would refuse, answers what it would answer, and the
store is left exactly as it was.
"""

import builtins
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from genisys.store.base import (
    Condition,
    Listing,
    Op,
    Record,
    Store,
    UpdateFn,
    View,
    apply_op,
)


class _Overlay(View):
    """The records an op needs, read ahead, with the dry run's own writes over them."""

    def __init__(self, records: dict[str, Optional[Record]], newest: dict[str, int]) -> None:
        self.records = records
        self.newest = newest

    def read(self, key: str) -> Optional[Record]:
        return self.records.get(key)

    def max_version(self, prefix: str) -> int:
        return self.newest.get(prefix, 0)

    def write(self, record: Record) -> None:
        self.records[record.key] = record

    def remove(self, key: str) -> None:
        self.records[key] = None


class DryRunStore(Store):
    """``base`` as it would be after the writes made through this object, which never
    reach it. Not for watching: the intent layer never watches."""

    shared = False

    def __init__(self, base: Store) -> None:
        self.base = base
        #: key -> the record this dry run wrote (None: deleted).
        self._written: dict[str, Optional[Record]] = {}
        self._revision: Optional[int] = None

    async def close(self) -> None:
        self._written.clear()

    async def get(self, key: str) -> Optional[Record]:
        if key in self._written:
            return self._written[key]
        return await self.base.get(key)

    async def list(self, prefix: str) -> Listing:
        listing = await self.base.list(prefix)
        records = {r.key: r for r in listing.records}
        for key, record in self._written.items():
            if key.startswith(prefix):
                if record is None:
                    records.pop(key, None)
                else:
                    records[key] = record
        return Listing([records[k] for k in sorted(records)],
                       max(listing.revision, self._revision or 0))

    async def count(self, prefix: str) -> int:
        return len((await self.list(prefix)).records)

    async def revision(self) -> int:
        return max(await self.base.revision(), self._revision or 0)

    def watch(self, prefix: str, *, start_revision: Optional[int] = None) -> Any:
        raise NotImplementedError("a dry run is not watched")

    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: Sequence[Condition] = ()) -> Record:
        return await self._one(Op.put(key, value, expect_version=expect_version,
                                      conditions=conditions))

    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return await self._one(Op.delete(key, expect_version=expect_version,
                                         conditions=conditions))

    async def update(self, key: str, fn: UpdateFn, *,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return await self._one(Op.update(key, fn, conditions=conditions))

    async def transaction(self, ops: Sequence[Op]) -> builtins.list[Any]:
        return await self._one(Op.txn(list(ops)))

    async def _one(self, op: Op) -> Any:
        """Run ``op`` as the real store would, over what it reads now: the overlay is
        only changed if the whole op is taken."""
        subs = op.value if op.kind == "txn" else [op]
        keys = {sub.key for sub in subs}
        prefixes: set[str] = set()
        for condition in _conditions(subs):
            (prefixes if condition.kind == "unchanged" else keys).add(condition.key)
        records = {key: await self.get(key) for key in keys}
        newest = {prefix: max((r.version for r in (await self.list(prefix)).records),
                              default=0) for prefix in prefixes}
        revision = await self.revision() + 1
        overlay = _Overlay(dict(records), newest)
        result, _ = apply_op(overlay, op, revision)
        self._revision = revision
        for key, record in overlay.records.items():
            if record is not records.get(key):
                self._written[key] = record
        return result


def _conditions(ops: Iterable[Op]) -> Iterable[Condition]:
    for op in ops:
        yield from op.conditions
