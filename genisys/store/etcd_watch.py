"""Watches on an etcd store: events under a prefix, resumed across broken streams.

An etcd watch is a stream of JSON messages (one per revision with events)
over a connection of its own. The stream is opened on first iteration, from
the revision after the last one delivered, and opened again whenever it
breaks, stays silent for WATCH_IDLE_SECONDS (a member that stopped answering
keeps its connections open) or its member failed other calls (then on the
member that is current). History that etcd compacted ends the watch with
``Compacted``: the consumer lists again and watches from there.
"""

import asyncio
import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Optional

from genisys.errors import StoreUnavailable
from genisys.store.base import Compacted, Event, WatchStream
from genisys.store.etcd_client import OUT_OF_RANGE, Endpoint, Json, Stream, b64, range_end, unb64

if TYPE_CHECKING:  # etcd.py imports this module: the name is for the type checker only
    from genisys.store.etcd import EtcdStore

log = logging.getLogger(__name__)

#: A watch stream that delivered nothing for this long is re-opened (from the
#: last revision it delivered): a member that stopped answering is noticed.
WATCH_IDLE_SECONDS = 30.0
#: Events a watch buffers for a slow consumer before it fails with Compacted.
WATCH_LIMIT = 100000


class EtcdWatch(WatchStream):
    """Events under a prefix after a revision: ``async for event in watch``; close() ends it.

    The etcd watch stream is opened on first iteration and re-opened, from the last
    delivered revision, whenever it breaks, stays silent for WATCH_IDLE_SECONDS, or
    its member fails a call (then on the member that is current)."""

    def __init__(self, store: "EtcdStore", prefix: str, *, after: int) -> None:
        self._store = store
        self.prefix = prefix
        #: Events at or before this revision were delivered (or are not wanted).
        self._after = after
        self._queue: collections.deque[Event] = collections.deque()
        self._wake = asyncio.Event()
        self._error: Optional[Exception] = None
        self._closed = False
        self._task: Optional[asyncio.Future[None]] = None
        self._stream: Optional[Stream] = None
        #: The stream was closed on purpose (its member failed other calls).
        self._moving = False

    async def __anext__(self) -> Event:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._pump())
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._store._watches.discard(self)
        if self._task is not None:
            self._task.cancel()
        if self._stream is not None:
            self._stream.close()
        self._wake.set()

    def restart_if_on(self, endpoint: Endpoint) -> None:
        if self._stream is not None and self._stream.endpoint == endpoint:
            self._moving = True
            self._stream.close()

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._wake.set()

    async def _pump(self) -> None:
        failures = 0
        while not self._closed and self._error is None:
            if self._after < 0:
                self._fail(Compacted("revision %d is before the first revision" % self._after))
                return
            self._moving = False
            try:
                await self._follow()
                failures = 0
            except Compacted as e:
                self._fail(e)
                return
            except Exception as e:  # noqa: BLE001 - a watch must outlive any broken stream
                if self._moving:
                    continue  # moved to the current member on purpose: at once
                failures += 1
                delay = min(0.05 * 2 ** failures, 2.0)
                log.info("watch of %s%s broke (%r): resuming from revision %d in %.2fs",
                         self._store.prefix, self.prefix, e, self._after, delay)
                if self._stream is not None:
                    self._store._client.failed(self._stream.endpoint, e)
                await asyncio.sleep(delay)
            finally:
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None

    async def _follow(self) -> None:
        """One watch stream, until it ends or stays silent too long."""
        full = self._store._key(self.prefix)
        created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        activity = asyncio.Event()

        def on_message(message: Json) -> None:
            activity.set()
            try:
                self._message(message, created)
            except Compacted as e:
                if not created.done():
                    created.set_exception(e)
                self._fail(e)
            except StoreUnavailable as e:
                if not created.done():
                    created.set_exception(e)
                if self._stream is not None:
                    self._stream.close()

        client = self._store._client
        stream = self._stream = await client.open_stream(
            client.current, "/v3/watch", {"create_request": {
                "key": b64(full), "range_end": range_end(full),
                "start_revision": self._after + 1}}, on_message)
        done = stream.done
        await asyncio.wait([created, done], timeout=client.timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        if not created.done():
            created.cancel()
            if done.done():
                raise StoreUnavailable("etcd member %s ended the watch before starting it "
                                       "(HTTP %s)" % (stream.endpoint, stream.status))
            raise StoreUnavailable("etcd member %s did not start the watch within %gs"
                                   % (stream.endpoint, client.timeout))
        created.result()  # raises what the member refused
        while not done.done():
            activity.clear()
            waiter = asyncio.ensure_future(activity.wait())
            try:
                finished, _ = await asyncio.wait([waiter, done], timeout=WATCH_IDLE_SECONDS,
                                                 return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if self._error is not None:
                return
            if not finished:
                log.debug("watch of %s silent for %gs: re-opening it", full, WATCH_IDLE_SECONDS)
                return
        with contextlib.suppress(Exception):
            done.result()
        if self._error is None and not self._closed:
            raise StoreUnavailable("the watch stream from %s ended" % stream.endpoint)

    def _message(self, message: Json, created: "asyncio.Future[Any]") -> None:
        if "error" in message:
            error = message["error"]
            text = error.get("message") or error.get("error") if isinstance(error, dict) \
                else str(error)
            code = (error.get("code") or error.get("grpc_code")) if isinstance(error, dict) \
                else None
            if code == OUT_OF_RANGE:
                raise Compacted("watch from revision %d: %s" % (self._after + 1, text))
            self._store._client.token_refused(str(text))
            raise StoreUnavailable("watch refused: %s" % text)
        result = message.get("result") or {}
        if result.get("canceled"):
            compacted = int(result.get("compact_revision", 0))
            if compacted:
                raise Compacted("revisions up to %d were compacted; the watch wanted %d on"
                                % (compacted, self._after + 1))
            raise StoreUnavailable("etcd cancelled the watch: %s"
                                   % (result.get("cancel_reason") or "no reason given"))
        if result.get("created") and not created.done():
            created.set_result(None)
        self._store._client.note_revision(result.get("header"))
        events = result.get("events") or []
        for raw in events:
            kv = raw["kv"]
            revision = int(kv["mod_revision"])
            if revision <= self._after:
                continue
            key = unb64(kv["key"])[len(self._store.prefix):]
            if raw.get("type") == "DELETE":
                event = Event("delete", key, revision)
            else:
                event = Event("put", key, revision, self._store._record(kv))
            if len(self._queue) >= WATCH_LIMIT:
                raise Compacted("watch on %r fell more than %d events behind"
                                % (self.prefix, WATCH_LIMIT))
            self._queue.append(event)
        if events:
            # Every event of a revision comes in one message: resume after the last one.
            self._after = max(self._after, max(int(e["kv"]["mod_revision"]) for e in events))
            self._wake.set()

