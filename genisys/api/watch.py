"""Watches of the API: ``GET /service?watch=1`` and ``GET /service/<name>?watch=1`` as
Server-Sent Events (``text/event-stream``), fed by the store's watch.

A watch of the list first sends every service (matching ``q``) as ``ADDED``, then
``SYNCED``, then one ``ADDED``, ``MODIFIED`` or ``DELETED`` per change of a service's
spec or status, as ``kubectl get -w`` shows them. Each message's ``data`` is the
service as ``GET /service`` shows it (JSON on one line) and its ``id`` the store
revision it reflects. A client that reconnects with ``Last-Event-ID`` (or
``?resourceVersion=``) gets only what changed after that revision, without the
listing; one whose revision is older than the store's history gets ``RESET`` and
the listing again. A watch of one service sends ``SERVICE`` (the service with its
events, as ``GET /service/<name>``) at the start and after each change of its
spec, status or events, and ``DELETED`` once it is gone.

Every view is built from the records this stream has read (a listing, then the
watch's events), never by reading the store per event, and a view is sent only
when one of its records moved: a burst of writes costs each stream one decode per
record. A comment line (``: keep-alive``) goes out when nothing else did for
``heartbeat`` seconds, so proxies keep the connection and a client sees a dead one.
The stream ends when the client leaves, after ``timeoutSeconds``, or as soon as the
server begins to shut down (``InFlight.stopping``), so a drain never waits for it.
"""

import asyncio
import dataclasses
import time
from typing import Optional

import tornado.iostream

from genisys import errors
from genisys.intents import EVENTS, SERVICES, STATUS, recent_events, service_view
from genisys.model import describe, validate_name
from genisys.store import Compacted
from genisys.web import dump_json

#: Seconds of silence after which a stream sends a keep-alive comment.
HEARTBEAT_SECONDS = 15.0
#: Longest ``timeoutSeconds`` a watch may ask for (none: until the client leaves).
MAX_TIMEOUT_SECONDS = 24 * 3600
#: Longest ``q`` (a name is at most 63 characters; a longer filter matches nothing).
MAX_QUERY_LENGTH = 63
#: The SSE ``retry:`` sent first: how long a browser's EventSource waits to reconnect.
RETRY_MILLISECONDS = 2000


def query_value(handler, name):
    """The one value of query parameter ``name`` (None: absent); 400 if repeated."""
    values = handler.request.query_arguments.get(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise errors.Invalid("must be given once, got %d values" % len(values), field=name)
    return values[0].decode("utf-8", "replace")


def query_int(handler, name, *, minimum, maximum):
    value = query_value(handler, name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or not minimum <= int(value) <= maximum:
        raise errors.Invalid("must be an integer from %d to %d, got %s"
                             % (minimum, maximum, describe(value)), field=name)
    return int(value)


def query_flag(handler, name):
    value = query_value(handler, name)
    if value is None:
        return False
    if value not in ("1", "true", "0", "false"):
        raise errors.Invalid("must be 1, true, 0 or false, got %s" % describe(value),
                             field=name)
    return value in ("1", "true")


def name_filter(handler):
    """``q``: the services whose name holds it (case-insensitive); None: all."""
    q = query_value(handler, "q")
    if q is None or q == "":
        return None
    if len(q) > MAX_QUERY_LENGTH or not all(c.isascii() and (c.isalnum() or c == "-")
                                            for c in q):
        raise errors.Invalid("must be up to %d letters, digits or '-' (part of a name), "
                             "got %s" % (MAX_QUERY_LENGTH, describe(q)), field="q")
    return q.lower()


@dataclasses.dataclass(frozen=True)
class Names:
    """Which services a list or a watch is about: those whose name holds ``q`` (lower
    case; None: any) and sorts after ``after`` and before ``before`` (None: no bound).
    A page of the dashboard watches its own range of names only, so 10,000 services
    changing at once send it what it shows, not all of them."""

    q: Optional[str] = None
    after: Optional[str] = None
    before: Optional[str] = None

    def __call__(self, name):
        return ((self.q is None or self.q in name.lower())
                and (self.after is None or name > self.after)
                and (self.before is None or name < self.before))


def names_asked(handler):
    """The Names of ``q``, ``after`` and ``before`` (each checked: a bound is a name)."""
    bounds = {}
    for bound in ("after", "before"):
        value = query_value(handler, bound)
        bounds[bound] = None if value is None else validate_name(value, bound)
    return Names(q=name_filter(handler), **bounds)


class Services:
    """The specs and statuses (and, for one service, events) a stream has read: each
    key's newest record, and a record is replaced only by a newer one."""

    def __init__(self):
        self.records = {}

    def load(self, *listings):
        for listing in listings:
            for record in listing.records:
                self.records[record.key] = record

    def apply(self, event):
        """Take a store event in; the name of the service it touches, or None."""
        for prefix in (SERVICES, STATUS, EVENTS):
            if event.key.startswith(prefix):
                break
        else:
            return None
        current = self.records.get(event.key)
        if current is None or current.version < event.revision:
            if event.type == "put":
                self.records[event.key] = event.record
            else:
                self.records.pop(event.key, None)
        return event.key[len(prefix):]

    def versions(self, name):
        """What a view of ``name`` is built from: its records' versions (0: absent)."""
        return tuple(getattr(self.records.get(prefix + name), "version", 0)
                     for prefix in (SERVICES, STATUS, EVENTS))

    def view(self, name, *, with_events=False):
        spec = self.records.get(SERVICES + name)
        if spec is None:
            return None
        status = self.records.get(STATUS + name)
        events = recent_events(self.records.get(EVENTS + name), status) if with_events \
            else None
        return service_view(spec, status, events=events)

    def names(self):
        return sorted(key[len(SERVICES):] for key in self.records if key.startswith(SERVICES))


class EventStream:
    """Writes Server-Sent Events on a tornado handler and waits for what comes next:
    a store event, a heartbeat, the end of the watch, the client leaving, the server
    stopping."""

    def __init__(self, handler, *, heartbeat, timeout):
        self.handler = handler
        self.heartbeat = heartbeat
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.gone = asyncio.Event()
        self.last_write = time.monotonic()

    def start(self):
        handler = self.handler
        handler.streaming()
        handler.set_status(200)
        handler.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        handler.set_header("Cache-Control", "no-store")
        # Proxies that buffer answers (nginx) pass this one through as it comes.
        handler.set_header("X-Accel-Buffering", "no")
        handler.write(b"retry: %d\n\n" % RETRY_MILLISECONDS)

    async def send(self, kind, body, *, revision):
        if self.gone.is_set():
            return  # nobody reads any more: the loop ends at its next wait
        data = dump_json(body).rstrip(b"\n")  # compact JSON: one line, as SSE wants
        self.handler.write(b"event: %s\nid: %d\ndata: %s\n\n" % (kind.encode(), revision,
                                                                 data))
        await self.flush()

    async def flush(self):
        try:
            await self.handler.flush()
        except tornado.iostream.StreamClosedError:
            self.gone.set()
        self.last_write = time.monotonic()

    async def next_event(self, stream):
        """The next store event, or None once the watch should end. Sends keep-alives
        while it waits."""
        stopping = self.handler.tracker.stopping
        waiters = {asyncio.ensure_future(self.gone.wait()),
                   asyncio.ensure_future(stopping.wait())}
        pending = asyncio.ensure_future(stream.__anext__())
        try:
            while not (self.gone.is_set() or stopping.is_set()):
                wait = self.last_write + self.heartbeat - time.monotonic()
                if self.deadline is not None:
                    wait = min(wait, self.deadline - time.monotonic())
                    if wait <= 0 and time.monotonic() >= self.deadline:
                        return None
                done, _ = await asyncio.wait({pending} | waiters, timeout=max(wait, 0),
                                             return_when=asyncio.FIRST_COMPLETED)
                if pending in done:
                    try:
                        return pending.result()
                    except StopAsyncIteration:
                        return None
                if not done and time.monotonic() >= self.last_write + self.heartbeat:
                    self.handler.write(b": keep-alive\n\n")
                    await self.flush()
            return None
        finally:
            for waiter in waiters:
                waiter.cancel()
            if not pending.done():
                pending.cancel()


def watch_arguments(handler):
    """The watch's query and headers, checked whether it watches or not:
    (watch, timeoutSeconds, the revision it resumes from)."""
    return (query_flag(handler, "watch"),
            query_int(handler, "timeoutSeconds", minimum=0, maximum=MAX_TIMEOUT_SECONDS),
            resume_point(handler))


async def watch_services(handler, *, names, since, timeout, heartbeat):
    """The list watch (see the module's docstring) on ``handler``, an APIHandler: the
    services ``names`` (a Names) takes, from revision ``since`` (None: a listing first),
    for ``timeout`` seconds (None: until the client leaves)."""
    store = handler.intents.store
    out = EventStream(handler, heartbeat=heartbeat, timeout=timeout)
    out.start()
    #: name -> the versions of its last view sent (absent: not sent, or deleted).
    sent = {}
    while not out.gone.is_set():
        cache = Services()
        specs = await store.list(SERVICES)
        cache.load(specs, await store.list(STATUS))
        if since is None:
            for name in cache.names():
                if names(name):
                    await out.send("ADDED", cache.view(name), revision=specs.revision)
                    sent[name] = cache.versions(name)[:2]
            await out.send("SYNCED", {"revision": specs.revision}, revision=specs.revision)
            since = specs.revision
        else:
            # Resumed: the client has every service as of ``since``.
            sent.update((name, (0, 0)) for name in cache.names() if names(name))
        try:
            async with store.watch("", start_revision=since) as stream:
                while True:
                    event = await out.next_event(stream)
                    if event is None:
                        return
                    name = cache.apply(event)
                    if name is None or not names(name) or event.key.startswith(EVENTS):
                        continue
                    versions = cache.versions(name)[:2]
                    if versions[0] == 0:
                        if name in sent:
                            await out.send("DELETED", _gone(name, event), revision=event.revision)
                            del sent[name]
                    elif sent.get(name) != versions:
                        await out.send("MODIFIED" if name in sent else "ADDED",
                                       cache.view(name), revision=event.revision)
                        sent[name] = versions
                    since = event.revision
        except Compacted:
            # Too far behind the store's history: the client starts over from a listing.
            await out.send("RESET", {"revision": since}, revision=since)
            since = None
            sent.clear()


async def watch_service(handler, name, *, timeout, heartbeat):
    """The watch of one service (see the module's docstring)."""
    store = handler.intents.store
    await handler.intents.get_service(name)  # 404 before the stream begins
    out = EventStream(handler, heartbeat=heartbeat, timeout=timeout)
    out.start()
    while not out.gone.is_set():
        cache = Services()
        spec = await store.list(SERVICES + name)
        cache.load(spec, await store.list(STATUS + name), await store.list(EVENTS + name))
        # list() of a prefix: keep only this service's keys, not those of "web-2" too.
        cache.records = {k: r for k, r in cache.records.items()
                         if k in (SERVICES + name, STATUS + name, EVENTS + name)}
        since, sent = spec.revision, None
        try:
            async with store.watch("", start_revision=since) as stream:
                while True:
                    versions = cache.versions(name)
                    if versions[0] == 0:
                        await out.send("DELETED", {"name": name}, revision=since)
                        return
                    if versions != sent:
                        await out.send("SERVICE", cache.view(name, with_events=True),
                                       revision=since)
                        sent = versions
                    event = await out.next_event(stream)
                    if event is None:
                        return
                    if event.key in (SERVICES + name, STATUS + name, EVENTS + name):
                        cache.apply(event)
                        since = event.revision
        except Compacted:
            continue  # start over from the records: the stream sends a full view anyway


def resume_point(handler):
    """The revision a reconnecting client has everything up to: Last-Event-ID (what a
    browser's EventSource sends), or ?resourceVersion=; None: start with a listing."""
    query = query_int(handler, "resourceVersion", minimum=0, maximum=2 ** 63 - 1)
    header = handler.request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        value = header.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise errors.Invalid("must be a store revision (up to 18 digits), got %s"
                                 % describe(value), field="Last-Event-ID")
        return int(value)
    return query


def _gone(name, event):
    return {"name": name, "deleted": True, "revision": event.revision}
