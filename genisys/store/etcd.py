"""``etcd://host:port[,host:port...][/prefix]``: the store shared by several replicas
(``etcd+https://`` over TLS; with a user and a client certificate if need be:
``etcd_client.EtcdSecurity``).

The data model is etcd's own: the store revision is etcd's revision and a
record's version its ``mod_revision``. Keys live under a prefix (default
``genisys/``; the URL's path sets another), so several installations can
share one cluster. Values are the same compact JSON the other backends keep.

Writes are optimistic transactions, the way ``apply_op`` (shared with the
in-process backends, so the semantics cannot drift apart) decides them:

1. read, in one linearizable read, every key the write touches or whose
   condition it checks (and, for ``Condition.unchanged``, the newest
   ``mod_revision`` under the prefix);
2. run the ops against that snapshot in memory: a refusal (a version that
   does not match, a compute that does not exist, an update function that
   raises) is raised now, and nothing was written;
3. commit the outcome in one etcd transaction that compares every key read
   against the ``mod_revision`` it had in the snapshot (and the prefixes of
   ``unchanged`` conditions against their revision). If anything moved in
   between, the transaction's failure branch returns a fresh snapshot and
   step 2 runs again: an ``update`` is a compare-and-swap loop.

Step 1 is skipped when the write can guess what it would read: the version a
put expects of its key or a condition names, or else the record this store
read or wrote last (``_Seen``). Steps 2 and 3 run on the guess; a commit proves
it was right (etcd compared every key against it), anything else (a refusal,
nothing to write, a failed compare) is decided again on a snapshot read from
etcd. A key only put with no condition at all is neither read nor compared; one
that only has to exist (the compute an upscale names) is compared only for existing,
so a write of it meanwhile refuses nothing. ``replace`` (a compute written whatever
it held) is one transaction of its own, with no read.

Transactions (reads of several keys, and every write but ``replace`` and blind
ones) leave together when several are made at once: each nested in one etcd
transaction, never with one that writes what another reads (``etcd_batch``).

Writes of one process to the same key wait for each other (a local lock),
so concurrent updates in one process don't retry against each other; only
other replicas' writes cause retries (``replace`` takes no turn: it compares
nothing that another write of the key would break). Blind writes (puts and deletes
with no condition at all, like the audit trail's) skip the snapshot and are split
into transactions of at most ``MAX_TXN_OPS`` (etcd's default limit), so a
large batch of them is not atomic as a whole.

Watches (``etcd_watch``) are etcd watches on the prefix; a broken stream
resumes from the last revision it delivered, on another member if need be,
and a watch of compacted history raises ``Compacted`` so the consumer lists
again. Transport and member fail-over are ``etcd_client``'s.

Leases (for leader election, ``genisys.reconciler.leader``): ``grant_lease``,
``keep_alive``, ``revoke_lease``, ``create_with_lease``.
"""

import asyncio
import builtins
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Optional

from genisys.errors import StoreUnavailable, VersionMismatch
from genisys.store.base import (
    Condition,
    Listing,
    Op,
    Record,
    Store,
    UpdateFn,
    View,
    apply_op,
    decode,
    encode,
)
from genisys.store.etcd_batch import Batcher
from genisys.store.etcd_client import (
    Endpoint,
    EtcdAuthError,
    EtcdClient,
    EtcdError,
    EtcdSecurity,
    Json,
    b64,
    parse_endpoints,
    range_end,
    unb64,
)
from genisys.store.etcd_watch import EtcdWatch

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "genisys/"
#: Most operations in one etcd transaction (etcd's --max-txn-ops default).
MAX_TXN_OPS = 128
#: Records per page when listing (each page reads at the first page's revision).
LIST_PAGE = 1000
#: Rounds of a compare-and-swap before giving up (other replicas keep winning).
MAX_ATTEMPTS = 200
#: Records remembered as the first guess of a compare-and-swap (``_Seen``).
SEEN_RECORDS = 4096


def parse_location(location: str) -> tuple[list[Endpoint], str]:
    """``host:port[,host:port...][/prefix]`` -> (endpoints, prefix); ValueError if bad."""
    members, slash, prefix = location.partition("/")
    if not members:
        raise ValueError("no etcd member given")
    endpoints = parse_endpoints(members)
    if slash:
        prefix = prefix.strip("/")
        if not prefix:
            raise ValueError("the key prefix after the members is empty")
        if not prefix.isascii() or not prefix.isprintable() or " " in prefix:
            raise ValueError("the key prefix %r must be printable ASCII without spaces"
                             % prefix)
        prefix += "/"
    else:
        prefix = DEFAULT_PREFIX
    return endpoints, prefix


class _Snapshot:
    """Keys and prefixes read at one revision."""

    def __init__(self, revision: int, records: dict[str, Optional[Record]],
                 max_versions: dict[str, int]) -> None:
        self.revision = revision
        #: key -> Record or None (absent)
        self.records = records
        #: prefix -> newest mod_revision under it (0: nothing there)
        self.max_versions = max_versions


class _SnapshotView(View):
    """A snapshot plus the writes of the ops run over it (``writes``: key -> Record,
    or None for a delete), in the order they were made. ``assumed`` keys (see
    ``_assumed_keys``) the snapshot did not read are taken to exist: the commit
    compares that they do."""

    def __init__(self, snapshot: _Snapshot, assumed: frozenset[str] = frozenset()) -> None:
        self._snapshot = snapshot
        self._assumed = assumed
        self.writes: dict[str, Optional[Record]] = {}

    def read(self, key: str) -> Optional[Record]:
        if key in self.writes:
            return self.writes[key]
        records = self._snapshot.records
        if key not in records and key in self._assumed:
            return Record(key, {}, 1)  # present; only whether it is matters
        return records[key]

    def max_version(self, prefix: str) -> int:
        newest = self._snapshot.max_versions.get(prefix, 0)
        for key, record in self.writes.items():
            if record is not None and key.startswith(prefix):
                newest = max(newest, record.version)
        return newest

    def write(self, record: Record) -> None:
        self.writes[record.key] = record

    def remove(self, key: str) -> None:
        self.writes[key] = None


class _KeyLock:
    """A key's lock and how many writes hold it or wait for it (0: forget it)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _KeyLocks:
    """One asyncio.Lock per key, held while a write of this process is in flight."""

    def __init__(self) -> None:
        self._locks: dict[str, _KeyLock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        entries = []
        for key in sorted(set(keys)):  # one order for everyone: no deadlock
            entry = self._locks.setdefault(key, _KeyLock())
            entry.users += 1
            entries.append((key, entry))
        acquired = []
        try:
            for _, entry in entries:
                await entry.lock.acquire()
                acquired.append(entry.lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for key, entry in entries:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]


def _assumed_keys(ops: Sequence[Op]) -> frozenset[str]:
    """Keys whose only part in ``ops`` is to exist (``Condition.exists``) before any op
    writes them, and which ops write only by puts that expect no version (the compute an
    upscale names). Nothing depends on what they hold, so the commit compares only that
    they exist (etcd: version > 0): they need no guess and no turn, and a write of one
    meanwhile is no reason to try again."""
    checked: dict[str, int] = {}  # key -> index of the last op that needs it to exist
    out: set[str] = set()
    for i, op in enumerate(ops):
        for cond in op.conditions:
            if cond.kind == "exists":
                checked[cond.key] = i
            else:
                out.add(cond.key)
    for i, op in enumerate(ops):
        if op.key in checked and (op.kind != "put" or op.expect_version is not None
                                  or i < checked[op.key]):
            out.add(op.key)
    return frozenset(checked.keys() - out)


def _blind_keys(ops: Sequence[Op]) -> set[str]:
    """Keys every op of ``ops`` only puts, with no version expected and no condition on."""
    blind = {op.key for op in ops if op.kind == "put" and op.expect_version is None}
    for op in ops:
        if op.kind != "put" or op.expect_version is not None:
            blind.discard(op.key)
        for cond in op.conditions:
            blind.discard(cond.key)
    return blind


class _Seen:
    """The records this process read or wrote last, the newest ``size`` of them: the
    first guess of a compare-and-swap on them. Kept as the JSON text stored, so each
    guess gets a value of its own (callers may change the values they are given)."""

    def __init__(self, size: int) -> None:
        self.size = size
        #: key -> (version, JSON text), or None: seen absent
        self._texts: collections.OrderedDict[str, Optional[tuple[int, str]]] = \
            collections.OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._texts

    def record(self, key: str) -> Optional[Record]:
        seen = self._texts[key]
        return None if seen is None else Record(key, decode(seen[1]), seen[0])

    def note(self, key: str, version: int = 0, text: Optional[str] = None) -> None:
        """``key`` is at ``version``, holding ``text`` (None: it is absent)."""
        self._texts[key] = None if text is None else (version, text)
        self._texts.move_to_end(key)
        if len(self._texts) > self.size:
            self._texts.popitem(last=False)


class EtcdStore(Store):
    #: Several controllers may use one etcd: the reconciler runs only while this
    #: process holds the leadership (genisys.reconciler.leader).
    shared = True

    def __init__(self, endpoints: Iterable[Endpoint], prefix: str = DEFAULT_PREFIX, *,
                 timeout: Optional[float] = None,
                 security: Optional[EtcdSecurity] = None) -> None:
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self._client = EtcdClient(self.endpoints, security=security or EtcdSecurity(),
                                  **({"timeout": timeout} if timeout else {}))
        self._client.on_failover = self._endpoint_failed
        self._closed = True
        self._locks = _KeyLocks()
        self._seen = _Seen(SEEN_RECORDS)
        self._watches: set[EtcdWatch] = set()
        #: Transactions leave in batches (``etcd_batch``): those that may be sent again
        #: on another member (reads, blind writes) apart from those that may not.
        self._batches = {retry: Batcher(self._send_batch, name="reads" if retry else "writes")
                         for retry in (True, False)}
        #: What the members said at open(): version and cluster.
        self.server_version: Optional[str] = None

    @property
    def cluster_id(self) -> Optional[str]:
        """The etcd cluster's ID (None before its first answer)."""
        return self._client.cluster_id

    def __repr__(self) -> str:
        return "EtcdStore(%s, prefix=%r)" % (",".join(map(str, self.endpoints)), self.prefix)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._client.open()
        try:
            status = await self._client.call("/v3/maintenance/status", {})
            self.server_version = status.get("version")
            major_minor = tuple(int(p) for p in (self.server_version or "0.0").split(".")[:2])
            if major_minor < (3, 4):
                raise StoreUnavailable("etcd %s is too old: genisys needs etcd 3.4 or newer"
                                       % self.server_version)
            self._closed = False
            await self._check_permissions()
        except BaseException:
            self._closed = True
            await self._client.close()
            raise
        log.info("etcd store: members %s, key prefix %r, etcd %s",
                 ", ".join(map(str, self.endpoints)), self.prefix, self.server_version)

    async def _check_permissions(self) -> None:
        """Read, then write, under the prefix, as the store will: a user without the
        permissions is refused now, with a line saying which, not at its first write.
        The write is a transaction whose put never runs (its comparison cannot hold),
        but etcd checks the permissions of both its branches all the same."""
        user = self._client.security.user
        try:
            await self.revision()
        except EtcdAuthError:
            raise EtcdAuthError("etcd user %r may not read the keys under %r: its role "
                                "needs readwrite on that prefix (docs/distributed.md, "
                                "\"Least privilege\")" % (user, self.prefix)) from None
        probe = b64(self._key(".write-check"))
        try:
            await self._call("/v3/kv/txn", {
                "compare": [{"key": probe, "target": "VERSION", "result": "LESS",
                             "version": "0"}],
                "success": [{"request_put": {"key": probe, "value": ""}}]})
        except EtcdAuthError:
            raise EtcdAuthError("etcd user %r may read but not write the keys under %r: "
                                "its role needs readwrite on that prefix "
                                "(docs/distributed.md, \"Least privilege\")"
                                % (user, self.prefix)) from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for watch in list(self._watches):
            watch.close()
        for batcher in self._batches.values():
            batcher.close(StoreUnavailable("the store is closed"))
        await self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _endpoint_failed(self, endpoint: Endpoint) -> None:
        # Watch streams on a member that failed a call resume on the current one.
        for watch in list(self._watches):
            watch.restart_if_on(endpoint)

    # -- keys and records -------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _record(self, kv: Json, *, remember: bool = False) -> Record:
        """The record of a key-value etcd answered; ``remember``: as the key's last seen."""
        key = unb64(kv["key"])[len(self.prefix):]
        text = unb64(kv.get("value"))
        try:
            value = decode(text)
        except ValueError as e:
            raise StoreUnavailable("etcd key %s%s holds no JSON object (written by something "
                                   "other than genisys?)" % (self.prefix, key)) from e
        version = int(kv["mod_revision"])
        if remember:
            self._seen.note(key, version, text)
        return Record(key, value, version)

    async def _call(self, path: str, body: Json, **kwargs: Any) -> Json:
        self._check_open()
        return await self._client.call(path, body, **kwargs)

    async def _txn(self, body: Json, *, retry_sent: bool = True) -> Json:
        """etcd's answer to the transaction ``body``, sent with others (``etcd_batch``)."""
        self._check_open()
        return await self._batches[retry_sent].txn(body, retry_sent=retry_sent)

    async def _send_batch(self, data: bytes, retry_sent: bool) -> Json:
        self._check_open()
        return await self._client.call("/v3/kv/txn", data, retry_sent=retry_sent)

    # -- reads ------------------------------------------------------------------

    async def get(self, key: str) -> Optional[Record]:
        answer = await self._call("/v3/kv/range", {"key": b64(self._key(key))})
        kvs = answer.get("kvs") or []
        if not kvs:
            self._seen.note(key)
            return None
        return self._record(kvs[0], remember=True)

    async def get_many(self, keys: Sequence[str]) -> builtins.list[Optional[Record]]:
        """The records of ``keys`` (None: absent), read at one revision in one call."""
        if not keys:
            return []
        unique = sorted(set(keys))
        answer = await self._txn({"success": self._snapshot_reads(unique, [])})
        records = self._snapshot(answer, answer.get("responses"), unique, []).records
        return [records[key] for key in keys]

    async def list(self, prefix: str) -> Listing:
        full = self._key(prefix)
        body: Json = {"key": b64(full), "range_end": range_end(full), "limit": LIST_PAGE}
        records: builtins.list[Record] = []
        revision: Optional[int] = None
        while True:
            answer = await self._call("/v3/kv/range", body)
            if revision is None:
                revision = int(answer["header"]["revision"])
                body["revision"] = revision  # every page at the first one's revision
            kvs = answer.get("kvs") or []
            records += [self._record(kv) for kv in kvs]
            if not answer.get("more") or not kvs:
                return Listing(records, revision)
            body["key"] = b64(unb64(kvs[-1]["key"]) + "\0")

    async def count(self, prefix: str) -> int:
        full = self._key(prefix)
        answer = await self._call("/v3/kv/range", {"key": b64(full), "range_end": range_end(full),
                                                  "count_only": True})
        return int(answer.get("count", 0))

    async def revision(self, *, timeout: Optional[float] = None) -> int:
        answer = await self._call("/v3/kv/range", {"key": b64(self.prefix), "count_only": True},
                                  timeout=timeout)
        return int(answer["header"]["revision"])

    async def check(self) -> None:
        # Readiness probes want an answer quickly, not after every member timed out.
        await self.revision(timeout=2.0)

    # -- writes -----------------------------------------------------------------

    async def put(self, key: str, value: dict, *, expect_version: Optional[int] = None,
                  conditions: Sequence[Condition] = ()) -> Record:
        return (await self._write([Op.put(key, value, expect_version=expect_version,
                                          conditions=conditions)]))[0][0]

    async def delete(self, key: str, *, expect_version: Optional[int] = None,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return (await self._write([Op.delete(key, expect_version=expect_version,
                                             conditions=conditions)]))[0][0]

    async def update(self, key: str, fn: UpdateFn, *,
                     conditions: Sequence[Condition] = ()) -> Optional[Record]:
        return (await self._write([Op.update(key, fn, conditions=conditions)]))[0][0]

    async def replace(self, key: str, value: dict) -> Record:
        # One transaction, no read: if the key exists and holds something else, the
        # value is put; else what it holds is read (nothing: it does not exist).
        # Sent again safely: a second copy finds the value already there.
        self._check_open()
        text = encode(value)
        full = b64(self._key(key))
        # Not batched (``_txn``): concurrent replaces of one key conflict, so they would
        # leave one batch at a time, while sent together etcd syncs them to disk at once.
        answer = await self._call("/v3/kv/txn", {
            "compare": [{"key": full, "target": "VERSION", "result": "GREATER", "version": 0},
                        {"key": full, "target": "VALUE", "result": "NOT_EQUAL",
                         "value": b64(text)}],
            "success": [{"request_put": {"key": full, "value": b64(text)}}],
            "failure": [{"request_range": {"key": full}}]})
        if answer.get("succeeded"):
            revision = int(answer["header"]["revision"])
            self._seen.note(key, revision, text)
            return Record(key, decode(text), revision)
        kvs = ((answer.get("responses") or [{}])[0].get("response_range") or {}).get("kvs")
        if not kvs:
            self._seen.note(key)
            raise VersionMismatch("%s does not exist" % key, field=key)
        return self._record(kvs[0], remember=True)

    async def transaction(self, ops: Sequence[Op]) -> builtins.list[Any]:
        return (await self._write(Op.txn(ops).value))[0]

    async def transaction_then_read(
            self, ops: Sequence[Op], keys: Sequence[str]
    ) -> tuple[builtins.list[Any], builtins.list[Optional[Record]]]:
        """In one call when it commits: ``keys`` are read in the transaction that writes,
        at its revision (with nothing to write, read after)."""
        return await self._write(Op.txn(ops).value, then_read=builtins.list(keys))

    async def _write(self, ops: Sequence[Op], *, then_read: Sequence[str] = ()
                     ) -> tuple[builtins.list[Any], builtins.list[Optional[Record]]]:
        """(the result of each op, the records of ``then_read`` after it)."""
        self._check_open()
        for op in ops:
            if op.kind == "put":
                encode(op.value)  # a value that is not a JSON object fails here, alone
        blind = all(op.kind in ("put", "delete") and op.expect_version is None
                    and not op.conditions for op in ops)
        if blind and len({op.key for op in ops}) == len(ops):
            return await self._write_blind(ops), await self.get_many(then_read)
        touched: set[str] = set()
        watched: set[str] = set()
        for op in ops:
            touched.add(op.key)
            for cond in op.conditions:
                (watched if cond.kind == "unchanged" else touched).add(cond.key)
        if len(touched) + len(watched) > MAX_TXN_OPS:
            raise StoreUnavailable("a transaction over %d keys is more than etcd takes at once "
                                   "(%d)" % (len(touched) + len(watched), MAX_TXN_OPS))
        # A key only put unconditionally is neither read nor compared: nothing depends
        # on what it holds (the reconciler's events, beside its status). One that only
        # has to exist is read only where a snapshot is read anyway, and compared only
        # for existing (``_assumed_keys``).
        assumed = _assumed_keys(ops)
        keys, prefixes = sorted(touched - _blind_keys(ops) - assumed), sorted(watched)
        read_keys = keys + sorted(assumed)
        reads = self._snapshot_reads(read_keys, prefixes)
        async with self._locks.hold(op.key for op in ops if op.key not in assumed):
            # The first round may go on a guess (``_guess``), which spares the read when
            # it is right: only a commit is taken from it, proof that every key compared
            # was at the version guessed. A refusal, or nothing to write, is decided
            # again on a snapshot read from etcd.
            snapshot = None if prefixes else self._guess(keys, ops)
            guessed = snapshot is not None
            for _ in range(MAX_ATTEMPTS):
                if snapshot is None:
                    answer = await self._txn({"success": reads})
                    snapshot = self._snapshot(answer, answer.get("responses"), read_keys,
                                              prefixes)
                view = _SnapshotView(snapshot, assumed)
                placeholder = snapshot.revision + 1
                op = ops[0] if len(ops) == 1 else Op.txn(ops)
                try:
                    result, _ = apply_op(view, op, placeholder)
                except Exception:  # a refusal, or an update function's own exception
                    if not guessed:
                        raise
                    snapshot, guessed = None, False
                    continue
                if not view.writes:
                    if guessed:
                        snapshot, guessed = None, False
                        continue
                    return ([result] if len(ops) == 1 else result,
                            await self.get_many(then_read))
                written = {key: None if record is None else encode(record.value)
                           for key, record in view.writes.items()}
                txn = {"compare": self._compares(snapshot, ops, assumed),
                       "success": [self._request(key, text) for key, text in written.items()]
                       + self._snapshot_reads(builtins.list(then_read), [])}
                if not guessed:
                    # Refused, it reads what the keys hold now, for the next attempt. A
                    # guess carries no such branch: etcd would parse it, log it and
                    # apply it for nothing nearly every time (some 15% of its CPU for
                    # an upscale), and a wrong guess reads with the next attempt.
                    txn["failure"] = reads
                # Never sent twice (retry_sent=False; the HTTP client never repeats a POST
                # either): the compare of a second copy fails if the first landed, and then
                # an update function would run again over its own write (an upscale counted
                # twice), or a put would be refused though it happened.
                answer = await self._txn(txn, retry_sent=False)
                if answer.get("succeeded"):
                    revision = int(answer["header"]["revision"])
                    for key, text in written.items():
                        self._seen.note(key, revision, text)
                    results = [result] if len(ops) == 1 else result
                    read = self._snapshot(answer, (answer.get("responses") or [])[len(written):],
                                          builtins.list(then_read), []).records
                    return ([self._committed(r, placeholder, revision) for r in results],
                            [read[key] for key in then_read])
                snapshot = None if guessed else \
                    self._snapshot(answer, answer.get("responses"), read_keys, prefixes)
                guessed = False
        raise StoreUnavailable("gave up writing %s after %d attempts: other writers kept "
                               "changing it" % (", ".join(keys), MAX_ATTEMPTS))

    def _guess(self, keys: builtins.list[str], ops: Sequence[Op]) -> Optional[_Snapshot]:
        """What ``keys`` probably hold, with no read: the version a write expects of a key
        it only needs the version of (a put with ``expect_version``, a
        ``Condition.version``), else the record last seen of it (``_seen``). None if
        some key is known neither way."""
        versions: dict[str, int] = {}
        needs_value: set[str] = set()
        for op in ops:
            if op.kind == "put" and op.expect_version is not None:
                versions.setdefault(op.key, op.expect_version)
                if versions[op.key] != op.expect_version:
                    return None
            elif op.kind != "put":
                needs_value.add(op.key)
            for cond in op.conditions:
                if cond.kind == "version":
                    versions.setdefault(cond.key, cond.value)
                    if versions[cond.key] != cond.value:
                        return None
                else:
                    needs_value.add(cond.key)
        records: dict[str, Optional[Record]] = {}
        for key in keys:
            if key in versions and key not in needs_value:
                version = versions[key]
                records[key] = Record(key, {}, version) if version else None
            elif key in self._seen:
                records[key] = self._seen.record(key)
            else:
                return None
        newest = max((r.version for r in records.values() if r is not None), default=0)
        return _Snapshot(newest, records, {})

    async def _write_blind(self, ops: Sequence[Op]) -> builtins.list[Optional[Record]]:
        """Unconditional puts and deletes of distinct keys, in chunks of MAX_TXN_OPS.
        Repeating one changes nothing, so they may be retried on another member. Each
        chunk leaves with the other transactions on their way (``_txn``): a call of its
        own would cost etcd far more than the write (the audit trail's, under load)."""
        results: builtins.list[Optional[Record]] = []
        for start in range(0, len(ops), MAX_TXN_OPS):
            chunk = ops[start:start + MAX_TXN_OPS]
            requests: builtins.list[Json] = []
            texts: builtins.list[Optional[str]] = []
            for op in chunk:
                if op.kind == "put":
                    text = encode(op.value)
                    texts.append(text)
                    requests.append({"request_put": {"key": b64(self._key(op.key)),
                                                     "value": b64(text)}})
                else:
                    texts.append(None)
                    requests.append({"request_delete_range": {"key": b64(self._key(op.key)),
                                                              "prev_kv": True}})
            async with self._locks.hold(op.key for op in chunk):
                answer = await self._txn({"success": requests})
            revision = int(answer["header"]["revision"])
            for op, written, response in zip(chunk, texts,
                                             answer.get("responses") or [{}] * len(chunk)):
                if written is not None:
                    results.append(Record(op.key, decode(written), revision))
                    self._seen.note(op.key, revision, written)
                else:
                    prev = (response.get("response_delete_range") or {}).get("prev_kvs") or []
                    results.append(self._record(prev[0]) if prev else None)
                    self._seen.note(op.key)
        return results

    def _snapshot_reads(self, keys: builtins.list[str],
                        prefixes: builtins.list[str]) -> builtins.list[Json]:
        reads: builtins.list[Json] = [{"request_range": {"key": b64(self._key(key))}}
                                      for key in keys]
        for prefix in prefixes:
            full = self._key(prefix)
            reads.append({"request_range": {"key": b64(full), "range_end": range_end(full),
                                            "sort_order": "DESCEND", "sort_target": "MOD",
                                            "limit": 1, "keys_only": True}})
        return reads

    def _snapshot(self, answer: Json, responses: Optional[builtins.list[Json]],
                  keys: builtins.list[str], prefixes: builtins.list[str]) -> _Snapshot:
        responses = responses or []
        ranges = [(r.get("response_range") or {}).get("kvs") or [] for r in responses]
        if len(ranges) != len(keys) + len(prefixes):
            raise StoreUnavailable("etcd answered %d reads for %d asked"
                                   % (len(ranges), len(keys) + len(prefixes)))
        records = {key: self._record(kvs[0], remember=True) if kvs else None
                   for key, kvs in zip(keys, ranges)}
        for key, record in records.items():
            if record is None:
                self._seen.note(key)
        max_versions = {prefix: int(kvs[0]["mod_revision"]) if kvs else 0
                        for prefix, kvs in zip(prefixes, ranges[len(keys):])}
        return _Snapshot(int(answer["header"]["revision"]), records, max_versions)

    def _compares(self, snapshot: _Snapshot, ops: Sequence[Op],
                  assumed: frozenset[str] = frozenset()) -> builtins.list[Json]:
        compares = []
        for key, record in snapshot.records.items():
            if key not in assumed:
                compares.append({"key": b64(self._key(key)), "target": "MOD",
                                 "result": "EQUAL", "mod_revision": record.version
                                 if record else 0})
        for key in sorted(assumed):  # it exists: its version (writes since created) > 0
            compares.append({"key": b64(self._key(key)), "target": "VERSION",
                             "result": "GREATER", "version": 0})
        for op in ops:
            for cond in op.conditions:
                if cond.kind == "unchanged":
                    full = self._key(cond.key)
                    compares.append({"key": b64(full), "range_end": range_end(full),
                                     "target": "MOD", "result": "LESS",
                                     "mod_revision": cond.value + 1})
        return compares

    def _request(self, key: str, text: Optional[str]) -> Json:
        """The request that writes ``text`` (None: deletes ``key``)."""
        if text is None:
            return {"request_delete_range": {"key": b64(self._key(key))}}
        return {"request_put": {"key": b64(self._key(key)), "value": b64(text)}}

    @staticmethod
    def _committed(result: Any, placeholder: int, revision: int) -> Any:
        if isinstance(result, Record) and result.version == placeholder:
            return Record(result.key, result.value, revision)
        return result

    # -- watches ---------------------------------------------------------------

    def watch(self, prefix: str, *, start_revision: Optional[int] = None) -> EtcdWatch:
        self._check_open()
        # "From now" is pinned here, at the newest revision this store has seen, so a
        # write made after this call (by anyone) is never missed.
        after = self._client.seen_revision if start_revision is None else start_revision
        watch = EtcdWatch(self, prefix, after=after)
        self._watches.add(watch)
        return watch

    # -- leases (leader election) ------------------------------------------------

    async def grant_lease(self, ttl: float, *,
                          timeout: Optional[float] = None) -> tuple[str, int]:
        """A new lease of ``ttl`` seconds: returns (lease id, TTL etcd granted)."""
        answer = await self._call("/v3/lease/grant", {"TTL": int(round(ttl))}, timeout=timeout)
        return answer["ID"], int(answer.get("TTL", 0))

    async def keep_alive(self, lease: str, *, timeout: Optional[float] = None) -> int:
        """Renew ``lease``; returns its new TTL in seconds (0: the lease is gone)."""
        answer = await self._call("/v3/lease/keepalive", {"ID": lease}, timeout=timeout)
        result = answer.get("result", answer)
        return int(result.get("TTL", 0))

    async def revoke_lease(self, lease: str, *, timeout: Optional[float] = None) -> None:
        """End ``lease`` now: every key attached to it is deleted."""
        try:
            await self._call("/v3/lease/revoke", {"ID": lease}, timeout=timeout)
        except EtcdError as e:
            if "lease not found" not in e.message:
                raise

    async def create_with_lease(self, key: str, value: dict, lease: str, *,
                                timeout: Optional[float] = None
                                ) -> tuple[bool, Optional[Record]]:
        """Create ``key`` bound to ``lease`` unless it exists. Returns (won, record):
        the record written, or the one that was there."""
        full, text = b64(self._key(key)), encode(value)
        answer = await self._call("/v3/kv/txn", {
            "compare": [{"key": full, "target": "CREATE", "result": "EQUAL",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": full, "value": b64(text),
                                         "lease": lease}}],
            "failure": [{"request_range": {"key": full}}],
        }, retry_sent=False, timeout=timeout)
        if answer.get("succeeded"):
            return True, Record(key, decode(text),
                                int(answer["header"]["revision"]))
        kvs = (answer.get("responses") or [{}])[0].get("response_range", {}).get("kvs") or []
        return False, self._record(kvs[0]) if kvs else None

