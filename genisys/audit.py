"""The audit trail: who asked to change what, when, and what came of it.

Every mutating request (POST, PUT, DELETE), granted or refused, leaves an
entry: the token name that made it (``anonymous`` without one), the method
and path, the answer's status and error reason, and the time. Entries go to
the ``genisys.audit`` log at once and to the store in batches, written by one
background task (it lingers a few milliseconds for more): a batch is one
record, ``audit/<time>`` = ``{"entries": [...]}`` (oldest first), so a burst of
requests costs one write, not one per request; on etcd each written key costs
its own share of the member's CPU. (A record without ``entries`` is one entry,
as genisys wrote them before.) The store keeps the newest ``keep`` entries, give
or take a batch.
"""

import asyncio
import collections
import datetime
import logging
import time

from genisys.errors import GenisysError
from genisys.store import Op

log = logging.getLogger("genisys.audit")

AUDIT = "audit/"
#: Entries kept in the store; older ones are deleted.
KEEP = 10000
#: Seconds the writer waits, once woken, for more entries to write with the first: under
#: load, one transaction carries many (a store round trip each on etcd), at the cost of
#: entries reaching the store a few milliseconds later (the log has them at once).
LINGER = 0.005


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class AuditLog:
    def __init__(self, store, *, keep=KEEP, linger=LINGER):
        self.store = store
        self.keep = keep
        self.linger = linger
        self._pending = []
        self._wake = asyncio.Event()
        self._seq = 0
        #: (key, entries) of the batches in the store, oldest first, as far as this
        #: process knows (None: not listed yet), and their entries in all. Listed
        #: once; then each flush appends its own, so trimming never has to read the
        #: whole trail again. (Replicas on one etcd each trim what they know: the
        #: trail holds at most keep each.)
        self._batches = None
        self._held = 0

    def record(self, *, who, method, path, status, reason=None):
        entry = {"time": _now(), "who": who, "method": method, "path": path, "status": status}
        if reason:
            entry["reason"] = reason
        log.info("%s %s %s -> %d%s", who, method, path, status,
                 " " + reason if reason else "")
        self._pending.append(entry)
        self._wake.set()

    async def run(self):
        """The writer task: flush whenever entries are waiting."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.linger)
            self._wake.clear()
            await self.flush()

    async def flush(self):
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._seq += 1
        key = "%s%020d-%06d" % (AUDIT, time.time_ns(), self._seq % 10**6)
        try:
            await self.store.transaction([Op.put(key, {"entries": batch})])
        except GenisysError as e:
            # The log line above already has them; the store will again later.
            log.error("cannot store %d audit entries: %s", len(batch), e)
            return
        if self._batches is None:
            try:
                records = (await self.store.list(AUDIT)).records
            except GenisysError as e:
                log.error("cannot list the audit trail: %s", e)
                return
            self._batches = collections.deque((r.key, len(_entries(r.value)))
                                              for r in records)
            self._held = sum(n for _, n in self._batches)
        else:
            self._batches.append((key, len(batch)))
            self._held += len(batch)
        if self._held > self.keep * 1.1:
            await self._trim()

    async def _trim(self):
        """Delete the oldest batches while the newest ``keep`` entries stay."""
        excess, left = [], self._held
        for key, count in self._batches:
            if left - count < self.keep:
                break
            excess.append(key)
            left -= count
        if not excess:
            return
        try:
            await self.store.transaction([Op.delete(key) for key in excess])
        except GenisysError as e:
            log.error("cannot trim the audit trail: %s", e)
            return
        for _ in excess:
            self._held -= self._batches.popleft()[1]

    async def entries(self, limit=100):
        """The newest ``limit`` entries, newest first."""
        await self.flush()
        records = (await self.store.list(AUDIT)).records
        newest = []
        for record in reversed(records):
            newest.extend(reversed(_entries(record.value)))
            if len(newest) >= limit:
                break
        return newest[:limit]


def _entries(value):
    """The entries of one record of the trail, oldest first: a batch, or (as genisys
    wrote them before batches) one entry."""
    return value.get("entries", [value])
