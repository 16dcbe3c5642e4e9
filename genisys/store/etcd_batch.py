"""Group commit: the transactions an ``EtcdStore`` sends while others are on their way
leave together, each as a nested transaction of one etcd transaction.

Every etcd call costs far more than the bytes it carries: an HTTP request through
etcd's JSON gateway, a gRPC hop inside etcd, a raft entry and, for a write, a disk
sync. One call that carries sixteen transactions costs etcd about a third as much
per transaction, and this process a sixth (docs/performance.md, "Group commit").

* ``Batcher.txn(body)`` queues ``body`` (an etcd ``TxnRequest`` as JSON) and returns
  its answer shaped as if it had been sent alone: the batch's header (its revision),
  ``succeeded`` and ``responses``.
* At most ``in_flight`` batches are on their way at once. A transaction that finds a
  free slot leaves at the end of the event loop's turn, with the others queued in that
  turn, so a lone one waits for nothing. The rest wait for a slot, then leave
  together, at most ``most`` (and about ``most_bytes``) in one batch.
* etcd decides every nested transaction's comparisons on the store as it was before
  the batch, and refuses a batch that puts one key twice. So a batch never holds two
  transactions where one writes a key that the other compares, reads or writes
  (``_Footprint``): such a transaction waits for the next batch, and so does every
  later one that conflicts with it (conflicting transactions keep their order). The
  transactions of a batch are therefore independent: its outcome is the outcome of
  sending them one by one, in any order.
* A batch etcd refuses as a whole (an error answer: nothing was applied) is sent
  again one transaction at a time, so each gets its own answer. A batch whose fate
  is unknown (no answer) fails each of its transactions with that error, as it would
  have failed alone.
* ``retry_sent``: a batch may be sent again on another member only if all of its
  transactions may.
"""

import asyncio
import base64
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Optional

import orjson

from genisys.errors import StoreUnavailable
from genisys.store.etcd_client import EtcdError, Json
from genisys.tasks import start_task

log = logging.getLogger(__name__)

#: Batches on their way at once (etcd works on one while the next one fills).
IN_FLIGHT = 2
#: Transactions in one batch: well under etcd's --max-txn-ops (128), which bounds
#: the requests at each level of a transaction.
MOST = 64
#: About the most bytes of one batch: etcd's --max-request-bytes is 1.5 MiB.
MOST_BYTES = 512 * 1024

#: ``send(data, retry_sent)``: POST ``data`` (JSON) to /v3/kv/txn.
Send = Callable[[bytes, bool], Awaitable[Json]]


class _Keys:
    """Keys (bytes) and key ranges ``[start, end)`` (end None: every key from start)."""

    __slots__ = ("exact", "ranges")

    def __init__(self) -> None:
        self.exact: set[bytes] = set()
        self.ranges: list[tuple[bytes, Optional[bytes]]] = []

    def add(self, request: Json) -> None:
        """The key or range of an etcd compare or request (base64, as the gateway has it)."""
        key = base64.b64decode(request.get("key") or "")
        end = request.get("range_end")
        if not end:
            self.exact.add(key)
            return
        decoded = base64.b64decode(end)
        self.ranges.append((key, None if decoded == b"\0" else decoded))

    def update(self, *others: "_Keys") -> None:
        for other in others:
            self.exact |= other.exact
            self.ranges += other.ranges

    def overlaps(self, other: "_Keys") -> bool:
        if not self.exact.isdisjoint(other.exact):
            return True
        for mine, theirs in ((self, other), (other, self)):
            for start, end in mine.ranges:
                if any(start <= key and (end is None or key < end) for key in theirs.exact):
                    return True
        return any((e2 is None or s1 < e2) and (e1 is None or s2 < e1)
                   for s1, e1 in self.ranges for s2, e2 in other.ranges)


class _Footprint:
    """The keys a transaction compares or reads, and those it writes, in either branch
    (etcd checks both branches for a key put twice)."""

    __slots__ = ("reads", "writes")

    def __init__(self, body: Json) -> None:
        self.reads, self.writes = _Keys(), _Keys()
        self._add(body)

    def _add(self, txn: Json) -> None:
        for compare in txn.get("compare") or ():
            self.reads.add(compare)
        for branch in ("success", "failure"):
            for request in txn.get(branch) or ():
                if "request_range" in request:
                    self.reads.add(request["request_range"])
                elif "request_put" in request:
                    self.writes.add(request["request_put"])
                elif "request_delete_range" in request:
                    self.writes.add(request["request_delete_range"])
                elif "request_txn" in request:
                    self._add(request["request_txn"])


class _Pending:
    __slots__ = ("text", "retry_sent", "footprint", "future")

    def __init__(self, body: Json, retry_sent: bool) -> None:
        self.text = orjson.dumps(body)
        self.retry_sent = retry_sent
        self.footprint = _Footprint(body)
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()

    def answer(self, answer: Json) -> None:
        if not self.future.done():
            self.future.set_result(answer)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class Batcher:
    def __init__(self, send: Send, *, name: str, in_flight: int = IN_FLIGHT,
                 most: int = MOST, most_bytes: int = MOST_BYTES) -> None:
        self._send = send
        self.name = name
        self.in_flight = in_flight
        self.most = most
        self.most_bytes = most_bytes
        self._queue: collections.deque[_Pending] = collections.deque()
        self._sending: set[asyncio.Task] = set()
        self._flush_soon: Optional[asyncio.Handle] = None
        #: Batches sent, and the transactions they carried (tests and benchmarks).
        self.batches = 0
        self.transactions = 0

    async def txn(self, body: Json, *, retry_sent: bool) -> Json:
        """etcd's answer to the transaction ``body``, as if it had been sent alone."""
        pending = _Pending(body, retry_sent)
        self._queue.append(pending)
        self._schedule()
        return await pending.future  # cancelled: it leaves the queue unsent

    def close(self, error: BaseException) -> None:
        """Fail what waits and stop what is on its way (the store is closing)."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        while self._queue:
            self._queue.popleft().fail(error)
        for task in self._sending:
            task.cancel()

    def _schedule(self) -> None:
        if self._flush_soon is None and self._queue and len(self._sending) < self.in_flight:
            self._flush_soon = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = None
        while self._queue and len(self._sending) < self.in_flight:
            batch = self._take()
            if not batch:
                return
            task = start_task(self._run(batch), name="etcd %s batch" % self.name)
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task) -> None:
        self._sending.discard(task)
        self._schedule()

    def _take(self) -> list[_Pending]:
        """The next batch: queued transactions, oldest first, none of which conflicts
        with another of the batch or with an older one left in the queue."""
        batch: list[_Pending] = []
        size = 0
        writes, touched = _Keys(), _Keys()  # of the batch: written; written or read
        left: list[_Pending] = []
        left_writes, left_touched = _Keys(), _Keys()
        while self._queue and len(batch) < self.most:
            pending = self._queue.popleft()
            if pending.future.done():  # its caller gave up waiting
                continue
            footprint = pending.footprint
            if (footprint.writes.overlaps(touched) or footprint.reads.overlaps(writes)
                    or footprint.writes.overlaps(left_touched)
                    or footprint.reads.overlaps(left_writes)
                    or (batch and size + len(pending.text) > self.most_bytes)):
                left.append(pending)
                left_writes.update(footprint.writes)
                left_touched.update(footprint.writes, footprint.reads)
                continue
            batch.append(pending)
            size += len(pending.text)
            writes.update(footprint.writes)
            touched.update(footprint.writes, footprint.reads)
        self._queue.extendleft(reversed(left))
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.transactions += len(batch)
        try:
            if len(batch) == 1:
                await self._alone(batch[0])
                return
            data = b'{"success":[%s]}' % b",".join(
                b'{"request_txn":%s}' % pending.text for pending in batch)
            try:
                answer = await self._send(data, all(p.retry_sent for p in batch))
            except EtcdError as e:
                # Refused whole, so nothing of it was applied: one at a time, each then
                # gets its own answer (or its own refusal).
                log.debug("etcd refused a batch of %d transactions (%s): sent one by one",
                          len(batch), e)
                await asyncio.gather(*(self._alone(pending) for pending in batch))
                return
            responses = answer.get("responses") or []
            if len(responses) != len(batch):
                raise StoreUnavailable("etcd answered %d transactions of a batch of %d"
                                       % (len(responses), len(batch)))
            for pending, response in zip(batch, responses):
                txn = response.get("response_txn") or {}
                pending.answer({"header": answer.get("header") or {},
                                "succeeded": bool(txn.get("succeeded")),
                                "responses": txn.get("responses") or []})
        except BaseException as e:
            _fail(batch, e)
            if not isinstance(e, Exception):
                raise

    async def _alone(self, pending: _Pending) -> None:
        try:
            pending.answer(await self._send(pending.text, pending.retry_sent))
        except BaseException as e:
            pending.fail(e if isinstance(e, Exception)
                         else StoreUnavailable("the etcd store is closed"))
            if not isinstance(e, Exception):
                raise


def _fail(batch: Iterable[_Pending], error: BaseException) -> None:
    if not isinstance(error, Exception):  # cancelled: the store is closing
        error = StoreUnavailable("the etcd store is closed")
    for pending in batch:
        pending.fail(error)
