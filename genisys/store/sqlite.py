"""``sqlite:///path/genisys.db``: the embedded, durable default store.

Durability: WAL journal with ``synchronous=FULL``, so a transaction is on
disk (fsync) when COMMIT returns, and no write is acknowledged before that.

Group commit: one writer thread owns the write connection. It takes every
write that is waiting, runs each in its own SAVEPOINT (a refused write rolls
back alone) inside one transaction, and commits them with a single fsync.
Under load, fsyncs are shared instead of queued, which is what lets the API
go past one-fsync-per-request throughput without giving up durability.

Reads run on the event loop thread through a second connection: WAL readers
never block on the writer and see every committed write.

A lock file beside the database stops a second genisys from opening the same
file (two reconcilers on one machine would fight over the connectors).
"""

import asyncio
import builtins
import collections
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from typing import IO, Any, Optional

from genisys.errors import StoreUnavailable
from genisys.store.base import (
    Condition,
    Event,
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

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""

#: Most writes committed by one fsync; bounds the latency of the first in line.
_MAX_BATCH = 512
#: Rows the writer thread remembers (the most recently used).
_CACHED_ROWS = 4096
_STOP = object()

#: A row of kv as stored: (JSON text, version); None for a key known to be absent.
_Row = Optional[tuple[str, int]]
#: A write waiting for the writer thread, and the future its caller awaits.
_Pending = tuple[Op, "asyncio.Future[Any]"]


def _range_clause(prefix: str) -> tuple[str, tuple[str, ...]]:
    end = prefix_end(prefix)
    if end is None:
        return "", ()
    return " WHERE key >= ? AND key < ?", (prefix, end)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class _SqliteView(View):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, key: str) -> Optional[Record]:
        row = self._row(key)
        return Record(key, decode(row[0]), row[1]) if row else None

    def _row(self, key: str) -> _Row:
        return self._conn.execute("SELECT value, version FROM kv WHERE key = ?", (key,)).fetchone()

    def version(self, key: str) -> int:
        row = self._row(key)
        return row[1] if row else 0

    def max_version(self, prefix: str) -> int:
        clause, args = _range_clause(prefix)
        row = self._conn.execute("SELECT MAX(version) FROM kv" + clause, args).fetchone()
        return row[0] or 0

    def write(self, record: Record) -> None:
        self._store_row(record.key, encode(record.value), record.version)

    def _store_row(self, key: str, text: str, version: int) -> None:
        self._conn.execute(
            "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
            (key, text, version))

    def remove(self, key: str) -> None:
        self._conn.execute("DELETE FROM kv WHERE key = ?", (key,))


class _WriterView(_SqliteView):
    """The writer thread's view: every write goes through it, so it can remember the
    rows it read and wrote (as stored text, decoded afresh on each read) and spare
    the hot keys (a service upscaled again and again, the compute it names) a query.

    What an operation writes is only remembered once its transaction commits: a
    refused operation (ROLLBACK TO its savepoint) or a failed batch leaves nothing."""

    def __init__(self, conn: sqlite3.Connection,
                 cache: collections.OrderedDict[str, _Row]) -> None:
        super().__init__(conn)
        self._cache = cache  # key -> (text, version) or None (absent); oldest first
        self._batch: dict[str, _Row] = {}  # written by committed operations of this batch
        self._op: dict[str, _Row] = {}  # written by the operation in progress

    def _row(self, key: str) -> _Row:
        for layer in (self._op, self._batch):
            if key in layer:
                return layer[key]
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        row = super()._row(key)
        self._remember({key: row})
        return row

    def _store_row(self, key: str, text: str, version: int) -> None:
        super()._store_row(key, text, version)
        self._op[key] = (text, version)

    def remove(self, key: str) -> None:
        super().remove(key)
        self._op[key] = None

    def end_op(self, committed: bool) -> None:
        if committed:
            self._batch.update(self._op)
        self._op = {}

    def end_batch(self, committed: bool) -> None:
        if committed:
            self._remember(self._batch)
        self._batch = {}

    def _remember(self, rows: dict[str, _Row]) -> None:
        self._cache.update(rows)
        for key in rows:
            self._cache.move_to_end(key)
        while len(self._cache) > _CACHED_ROWS:
            self._cache.popitem(last=False)


class SqliteStore(Store):
    # Set by open(); used only while the store is open.
    _reader: sqlite3.Connection
    _writer: threading.Thread
    _loop: asyncio.AbstractEventLoop
    _hub: WatchHub
    #: What SQLite actually applied (2 = FULL: fsync at every commit), and its journal.
    synchronous: int
    journal_mode: str

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_file: Optional[IO[str]] = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = True

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            self._acquire_lock()
            writer_conn = _connect(self.path)
            writer_conn.execute("PRAGMA journal_mode = WAL")
            writer_conn.execute("PRAGMA synchronous = FULL")
            self.synchronous = writer_conn.execute("PRAGMA synchronous").fetchone()[0]
            self.journal_mode = writer_conn.execute("PRAGMA journal_mode").fetchone()[0]
            writer_conn.executescript(_SCHEMA)
            self._reader = _connect(self.path)
            revision = self._read_revision(self._reader)
        except (OSError, sqlite3.Error) as e:
            self._release_lock()
            raise StoreUnavailable("cannot open sqlite store %s: %s" % (self.path, e)) from e
        self._hub = WatchHub(revision)
        self._closed = False
        self._writer = threading.Thread(target=self._writer_main, args=(writer_conn, revision),
                                        name="sqlite-writer", daemon=True)
        self._writer.start()

    def _acquire_lock(self) -> None:
        lock_path = self.path + ".lock"
        lock_file = open(lock_path, "a+")  # noqa: SIM115 (held until close())
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            lock_file.close()
            raise StoreUnavailable(  # noqa: B904 (the BlockingIOError says nothing more)
                "%s is in use by %s: only one genisys may use a sqlite store "
                "(use etcd to run several)" % (self.path, holder))
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write("pid %d\n" % os.getpid())
        lock_file.flush()
        self._lock_file = lock_file

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._reader.close()
        self._hub.close()
        self._release_lock()

    @staticmethod
    def _read_revision(conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()[0]

    # -- the writer thread -------------------------------------------------

    def _writer_main(self, conn: sqlite3.Connection, revision: int) -> None:
        cache: collections.OrderedDict[str, _Row] = collections.OrderedDict()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                revision = self._commit(conn, batch, revision, cache)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: builtins.list[_Pending], revision: int,
                cache: collections.OrderedDict[str, _Row]) -> int:
        """Apply a batch in one transaction; returns the revision after it."""
        view = _WriterView(conn, cache)
        outcomes: builtins.list[tuple[bool, Any]] = []
        events: builtins.list[Event] = []
        start_revision = revision
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, _ in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result, op_events = apply_op(view, op, revision + 1)
                except Exception as e:  # refused (GenisysError) or a bug in an update fn
                    view.end_op(committed=False)
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((False, e))
                    continue
                view.end_op(committed=True)
                conn.execute("RELEASE op")
                if op_events:
                    revision = op_events[-1].revision
                    events += op_events
                outcomes.append((True, result))
            if revision != start_revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
            conn.execute("COMMIT")
            view.end_batch(committed=True)
        except Exception as e:  # the writer thread must outlive any failure
            view.end_batch(committed=False)
            log.error("sqlite commit of %d writes failed: %s", len(batch), e)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_error:
                log.error("sqlite rollback failed too: %s", rollback_error)
            error = StoreUnavailable("write to %s failed: %s" % (self.path, e))
            outcomes = [(False, error)] * len(batch)
            events, revision = [], start_revision
        try:
            self._loop.call_soon_threadsafe(self._deliver, batch, outcomes, events)
        except RuntimeError:
            pass  # the event loop is gone: nobody is waiting for these answers
        return revision

    def _deliver(self, batch: builtins.list[_Pending],
                 outcomes: builtins.list[tuple[bool, Any]],
                 events: builtins.list[Event]) -> None:
        # Publish first: whoever is woken by a write's answer can already watch it.
        self._hub.publish(events)
        for (_, future), (ok, value) in zip(batch, outcomes):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _submit(self, op: Op) -> Any:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        future = self._loop.create_future()
        self._queue.put((op, future))
        # The write happens whether or not the caller is still waiting.
        return await asyncio.shield(future)

    # -- the interface -----------------------------------------------------

    def _reading(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        return self._reader

    async def get(self, key: str) -> Optional[Record]:
        conn = self._reading()
        try:
            return _SqliteView(conn).read(key)
        except sqlite3.Error as e:
            raise StoreUnavailable("read from %s failed: %s" % (self.path, e)) from e

    async def get_many(self, keys: Sequence[str]) -> builtins.list[Optional[Record]]:
        """One query for all of ``keys`` (a pass and a GET read three)."""
        conn = self._reading()
        try:
            rows = {key: (value, version) for key, value, version in conn.execute(
                "SELECT key, value, version FROM kv WHERE key IN (%s)"
                % ",".join("?" * len(keys)), tuple(keys))}
        except sqlite3.Error as e:
            raise StoreUnavailable("read from %s failed: %s" % (self.path, e)) from e
        return [Record(key, decode(rows[key][0]), rows[key][1]) if key in rows else None
                for key in keys]

    async def count(self, prefix: str) -> int:
        conn = self._reading()
        clause, args = _range_clause(prefix)
        try:
            return conn.execute("SELECT COUNT(*) FROM kv" + clause, args).fetchone()[0]
        except sqlite3.Error as e:
            raise StoreUnavailable("read from %s failed: %s" % (self.path, e)) from e

    async def list(self, prefix: str) -> Listing:
        conn = self._reading()
        clause, args = _range_clause(prefix)
        try:
            # One read transaction, so the records and the revision agree.
            conn.execute("BEGIN")
            try:
                rows = conn.execute("SELECT key, value, version FROM kv" + clause + " ORDER BY key",
                                    args).fetchall()
                revision = self._read_revision(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as e:
            raise StoreUnavailable("read from %s failed: %s" % (self.path, e)) from e
        return Listing([Record(k, decode(v), ver) for k, v, ver in rows], revision)

    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: Sequence[Condition] = ()) -> Record:
        return await self._submit(Op.put(key, value, expect_version=expect_version,
                                     conditions=conditions))

    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return await self._submit(Op.delete(key, expect_version=expect_version,
                                        conditions=conditions))

    async def update(self, key: str, fn: UpdateFn, *,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return await self._submit(Op.update(key, fn, conditions=conditions))

    async def transaction(self, ops: Sequence[Op]) -> builtins.list[Any]:
        return await self._submit(Op.txn(ops))

    async def revision(self) -> int:
        conn = self._reading()
        try:
            return self._read_revision(conn)
        except sqlite3.Error as e:
            raise StoreUnavailable("read from %s failed: %s" % (self.path, e)) from e

    def watch(self, prefix: str, *, start_revision: Optional[int] = None) -> Watch:
        self._reading()
        return self._hub.subscribe(prefix, start_revision)
