"""How genisys calls a connector: the protocol, timeouts, bounded concurrency, errors.

The protocol is the seed project's:

* ``GET  <connector>/service/<name>/status`` → ``{"running_resources": N}``
* ``POST <connector>/service/<name>/scale`` with ``{"number": N}`` → any 2xx

plus an optional batch extension, which a connector advertises at
``GET <connector>/capabilities`` (``{"batch": {"maxServices": M}}``): then
the calls made to it at about the same time (within ``BATCH_WINDOW``) go
out together, as ``POST /batch/status {"services": [names]}`` and ``POST
/batch/scale {"services": {name: N}}``, each answered with one result per
service. Callers see no difference: ``running`` and ``scale`` answer or
fail per service either way. The same answer may carry the connector's
capacity (``{"capacity": {"total": N, "used": U}}``), which ``capacity``
reports for placement; a connector refuses an order past it (409
``InsufficientCapacity``).

Transport failures become this module's own small error tree, chained with
``from e``, so nothing above knows which HTTP library runs. Each error
carries the status ``condition`` it puts a (service, compute) pair in.
Calls to one connector are bounded by a limit that adapts to it
(``genisys.connector.limit``, at most ``max_in_flight``): a fast connector gets
many calls at once, a slow or failing one few, and none holds every connection.
Calls go through aiohttp, over connections kept alive between calls: a third of
the CPU per call of tornado's curl client, which genisys used before
(docs/performance.md). aiohttp never sends a POST twice by itself; genisys sends
a call once more only when its connection closed before any answer (``_fetch``).

What a connector can make genisys hold or believe is bounded too: an answer
is read up to ``max_answer_bytes`` and no further (``genisys.connector.answers``),
a count above what genisys could have ordered is a bad answer, not a count,
and an error body is shown as the one line that says what went wrong.
"""

import asyncio
import dataclasses
import functools
import json
import logging
import os
import ssl
import time
import urllib.parse
from typing import NamedTuple, Optional

import aiohttp
import yarl

from genisys.connector import IDENTITY_HEADER, TERM_HEADER, TERM_SCOPE_HEADER
from genisys.connector.answers import (
    EXCERPT_CHARS,
    MAX_RETRY_AFTER,
    AnswerTooLarge,
    one_line,
    read,
    readable,
)
from genisys.connector.limit import AdaptiveLimit, LoopLag
from genisys.errors import GenisysError
from genisys.model import DEFAULT_MAX_REPLICAS

log = logging.getLogger(__name__)

#: How much of a connector's answer an error message quotes.
BODY_EXCERPT = EXCERPT_CHARS
#: How much of an unexpected answer (an error, a bad body) the debug log shows.
DEBUG_BODY_BYTES = 4096
#: Connections open to connectors at most, all of them together: two connectors' calls
#: at the default ceiling of calls in flight (``max_in_flight``).
MAX_CONNECTIONS = 512
#: Largest answer read from a connector, by default: a status is some 30 bytes and
#: an error page a few KiB, so 1 MiB is ample. An answer cut there halves the
#: connector's limit of calls in flight, so one that answers too much soon has
#: one or two calls, and a few MiB, in flight.
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
#: A batch answer may take this much more per service it carries (an error entry
#: with its message is well under 1 KiB)...
BATCH_ANSWER_BYTES_PER_SERVICE = 4096
#: ...up to this many times the limit of one answer.
BATCH_ANSWER_CEILING = 8
#: Seconds calls to a batch-capable connector wait for others to go out with.
BATCH_WINDOW = 0.002
#: Most services in one batch request (less if the connector says so).
MAX_BATCH = 500
#: Seconds a connector's capabilities are trusted before they are asked again
#: (after a failure to ask: FAILED_CAPABILITIES_TTL, so an outage is not long
#: mistaken for a connector without the extension).
CAPABILITIES_TTL = 60.0
FAILED_CAPABILITIES_TTL = 5.0
#: Seconds a connector's capacity is trusted: what it uses moves with every order,
#: its own or another controller's. A scale order of ours forgets it at once.
CAPACITY_TTL = 1.0
#: Outcomes of a call that halve the connector's limit: it lacks capacity (it times
#: out, refuses connections, says 429 or 503), or answers more than it may.
SHRINKING = frozenset({"timeout", "unreachable", "429", "503", "too_large"})
#: Call URLs kept parsed: aiohttp parses a URL given as text at every call (yarl keeps
#: the last 128), and works out its host, port and origin again; a pass calls each
#: service's URLs two or three times. 2,048 are a thousand services' two URLs on one
#: compute, about 2 MB.
PARSED_URLS = 2048
#: Why a call made after close() fails.
CLOSED = "not sent: this connector client is closed (its reconciler stopped)"


class ConnectorFailure(GenisysError):
    """A connector call failed; ``condition`` is what status shows for the pair."""

    reason = "ConnectorFailure"
    condition = "Error"


class ConnectorUnreachable(ConnectorFailure):
    """No connection: refused, no route, name does not resolve, reset."""

    reason = "ConnectorUnreachable"
    condition = "Unreachable"


class ConnectorTimeout(ConnectorFailure):
    """Connected (or trying to) but no complete answer within the timeout."""

    reason = "ConnectorTimeout"
    condition = "Unreachable"


class ConnectorError(ConnectorFailure):
    """The connector answered with a non-2xx status."""

    reason = "ConnectorError"

    def __init__(self, message, *, status, body):
        super().__init__(message)
        self.status = status
        self.body = body[:BODY_EXCERPT]


class ConnectorUnauthorized(ConnectorError):
    """401/403: the connector wants a token, or another one (the compute's ``token``)."""

    reason = "ConnectorUnauthorized"


class ConnectorNotFound(ConnectorError):
    """404: the connector has no definition for this service, or (a 404 of the batch
    extension's paths) no such endpoint. The status of the pair keeps the reason
    ``ServiceNotDefined``, the connector's own word for the usual case."""

    reason = "ServiceNotDefined"


class ConnectorUnavailable(ConnectorError):
    """503: the connector answers, but what it drives does not (its Docker engine is
    down): as unreachable as a connector that is down itself."""

    reason = "ConnectorUnavailable"
    condition = "Unreachable"


class ConnectorThrottled(ConnectorError):
    """429, or 503 with a Retry-After: the connector (or what it drives: AWS throttling
    its calls) asks genisys to wait ``retry_after`` seconds before calling again. It
    answers, so the pair is not Unreachable; its retry waits at least that long."""

    reason = "ConnectorThrottled"

    def __init__(self, message, *, status, body, retry_after):
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class ConnectorBadResponse(ConnectorFailure):
    """A 2xx answer that is not what the protocol says (garbage JSON, wrong shape)."""

    reason = "ConnectorBadResponse"


class ConnectorFenced(ConnectorError):
    """409 StaleTerm: the connector has had calls of a newer leader's term; this
    controller no longer leads, whatever its own clock says."""

    reason = "StaleTerm"


class ConnectorInsufficientCapacity(ConnectorError):
    """409 InsufficientCapacity: the order would take the connector over its capacity."""

    reason = "InsufficientCapacity"


@dataclasses.dataclass(frozen=True)
class Capacity:
    """What a connector says it can run: ``total`` resources at once over all its
    services, of which ``used`` run now (``used`` may be above ``total``: a connector
    restarted with a lower capacity)."""

    total: int
    used: int

    @property
    def free(self):
        """How many more resources the connector takes now."""
        return max(0, self.total - self.used)


@dataclasses.dataclass
class _Capabilities:
    """What a connector's ``GET /capabilities`` said, and until when each part holds."""

    #: Largest batch it takes (0: no batch extension), asked again after ``until``.
    batch: int
    until: float
    #: Its capacity (None: none), asked again after ``capacity_until``.
    capacity: Optional[Capacity]
    capacity_until: float


class _Batch:
    """Calls of one operation to one connector that go out in one request."""

    def __init__(self, compute, operation):
        self.compute = compute
        self.operation = operation
        self.key = (compute.connector, compute.token, operation)
        #: service -> (number or None, future of its result)
        self.calls = {}
        self.timer = None
        self.sent = False


def _settle(future, *, result=None, exception=None):
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


def _chain(future, coroutine):
    task = asyncio.ensure_future(coroutine)

    def done(task):
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            _settle(future, exception=task.exception())
        else:
            _settle(future, result=task.result())
    task.add_done_callback(done)


def _decode(body, what):
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as e:
        log.debug("%s, %d bytes: %r", what, len(body), bytes(body[:DEBUG_BODY_BYTES]))
        raise ConnectorBadResponse("%s is not {\"running_resources\": N}: %s"
                                   % (what, _excerpt(body))) from e


def most_running(max_replicas):
    """The highest count a connector may report before it is taken for broken: ten
    times what genisys may order (``max_replicas``), plus 100, leaves room for
    resources started by hand beside genisys' own."""
    return 10 * max_replicas + 100


def _number_text(value):
    digits = str(value)
    if len(digits) <= 12:
        return digits
    if digits == "1" + "0" * (len(digits) - 1):
        return "10^%d" % (len(digits) - 1)
    return "a %d-digit number" % len(digits)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _plausible(value, what, *, max_replicas):
    """``value``, or ConnectorBadResponse if genisys could not have ordered that many."""
    if value > most_running(max_replicas):
        raise ConnectorBadResponse(
            "%s reported %s running, more than genisys could have ordered (max_replicas %d; "
            "a count above %d is taken for a broken connector)"
            % (what, _number_text(value), max_replicas, most_running(max_replicas)))
    return value


def _count(answer, what, *, max_replicas):
    """The running_resources of an answer; ConnectorBadResponse if it has none, or
    one genisys could not have ordered."""
    try:
        value = answer["running_resources"]
    except (KeyError, TypeError) as e:
        raise ConnectorBadResponse("%s is not {\"running_resources\": N}: %s"
                                   % (what, one_line(str(answer)))) from e
    if not _is_count(value):
        raise ConnectorBadResponse("%s has running_resources %s, not a count"
                                   % (what, one_line(repr(value), limit=80)))
    return _plausible(value, what, max_replicas=max_replicas)


def _batch_limit(answer):
    """The batch size a /capabilities answer offers: its maxServices, at most MAX_BATCH;
    0 if it offers none (a 200 that is not ours included)."""
    try:
        limit = answer["batch"]["maxServices"]
    except (KeyError, TypeError):
        return 0
    return min(limit, MAX_BATCH) if _is_count(limit) and limit > 0 else 0


def _item_error(error, method, url, with_token):
    """The exception for one service's error entry in a batch answer: the same as
    the per-service call ``method url`` would have raised."""
    status = error.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    retry_after = error.get("retryAfter")
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        retry_after = None
    else:
        retry_after = min(retry_after, MAX_RETRY_AFTER)
    return _status_error(status, json.dumps({"error": error}).encode(), method, url,
                         with_token, retry_after=retry_after)


def _excerpt(body, content_type=""):
    return readable(bytes(body), content_type)


class ConnectorClient:
    """Calls connectors; one per controller, closed with ``close()``."""

    def __init__(self, *, connect_timeout, request_timeout, max_in_flight=256, ca_file=None,
                 metrics=None, max_answer_bytes=DEFAULT_MAX_ANSWER_BYTES,
                 max_replicas=DEFAULT_MAX_REPLICAS, identity=None, term=None):
        #: Seconds to establish a connection.
        self.connect_timeout = connect_timeout
        #: Seconds for a whole call, connection included.
        self.request_timeout = request_timeout
        #: Calls in flight to one connector at most (the ceiling of its adaptive limit);
        #: others wait their turn.
        self.max_in_flight = max_in_flight
        #: CA bundle that signs https connectors' certificates (None: the system's).
        self.ca_file = ca_file
        self.metrics = metrics
        #: Largest answer read (a batch answer may take more, see _batch_answer_limit).
        self.max_answer_bytes = max_answer_bytes
        #: The controller's max_replicas: counts far above it are bad answers.
        self.max_replicas = max_replicas
        #: This controller's name (its --identity), sent as Genisys-Identity with every
        #: call, so a connector can tell who ordered what (None: not sent).
        self.identity = identity
        #: (scope, number) of the leader's term, sent as Genisys-Term-Scope and
        #: Genisys-Term with every call (None: not sent): connectors refuse the orders
        #: of an older term (ConnectorFenced).
        self.term = term
        self._http = None
        #: Set by close(): no call is sent any more, and no new session is opened (a batch
        #: or a capabilities request due after the close would open one nobody closes).
        self._closed = False
        #: The loop the session is bound to, and the task closing it.
        self._loop = None
        self._closing = None
        #: connector URL -> its AdaptiveLimit
        self._limits = {}
        #: How late the event loop runs: taken out of every latency the limits learn from.
        self._lag = LoopLag()
        #: connector URL -> its _Capabilities
        self._capabilities = {}
        #: connector URL -> (its scale orders when it was sent, the future of the
        #: capabilities request in flight)
        self._asking = {}
        #: connector URL -> scale orders of ours it answered (the capacity asked for before
        #: the last one is out of date)
        self._orders = {}
        #: connector URLs whose malformed capacity was logged
        self._malformed = set()
        #: (connector URL, token, operation) -> the calls waiting to go out together
        self._batches = {}
        #: Told the outcome of every call: ``on_outcome(compute name, answered, why
        #: not)``; "answered" is any HTTP answer but a 503 (compute health, see
        #: genisys.reconciler.health).
        self.on_outcome = None

    def _client(self):
        # Made on first use, on the running loop, which the session binds to. The pool
        # holds two connectors' calls at the default ceiling; beyond that, calls queue
        # in the pool (and their time there counts against request_timeout). No
        # User-Agent, and no compressed answers: a connector's answer is bounded by the
        # bytes it sends (``max_answer_bytes``), never inflated past them.
        if self._http is None:
            if self._closed:
                raise ConnectorUnreachable(CLOSED)
            context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file \
                else True
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, limit_per_host=0,
                                               ssl=context),
                skip_auto_headers=("User-Agent", "Accept-Encoding"), auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout,
                                              sock_connect=self.connect_timeout))
            self._loop = asyncio.get_running_loop()
            self._lag.start()
        return self._http

    async def aclose(self):
        """Close every connection (the calls still under way fail), for good: a call made
        after it fails at once, and is sent nowhere."""
        self._closed = True
        self._lag.stop()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def close(self):
        """``aclose`` where no coroutine can wait for it: at once on the session's loop
        if that is not running (a test's teardown), else in a task of it."""
        self._closed = True
        loop = self._loop
        if self._http is None or loop is None or loop.is_closed():
            self._lag.stop()
            self._http = None
        elif loop.is_running():
            self._closing = loop.create_task(self.aclose())  # kept until it is done
        else:
            loop.run_until_complete(self.aclose())

    # -- the protocol -------------------------------------------------------

    async def running(self, compute, service, *, on_sent=None):
        """How many resources of ``service`` the connector of ``compute`` runs.

        ``on_sent()``, if given, is called once the call has its turn (see
        ``genisys.connector.limit``): until then it waits in line behind others. What it
        raises ends the call unsent."""
        what = "status of %s from %s" % (service, compute.connector)
        if await self._batch_size(compute):
            _sent(on_sent)
            answer = await self._batched(compute, "status", service)
        else:
            answer = _decode(await self._call(compute, service, "status", "GET", None,
                                              on_sent=on_sent), what)
        return _count(answer, what, max_replicas=self.max_replicas)

    async def scale(self, compute, service, number, *, on_sent=None):
        """Order the connector of ``compute`` to run exactly ``number`` resources.

        Returns the running count the answer reports, if it does (the SDK's
        connectors do; the protocol only asks for a 2xx), else None. A count
        genisys could not have ordered is a ConnectorBadResponse, as in a status."""
        if await self._batch_size(compute):
            _sent(on_sent)
            answer = await self._order(compute, self._batched(compute, "scale", service,
                                                              number))
        else:
            body = await self._order(compute, self._call(
                compute, service, "scale", "POST", json.dumps({"number": number}),
                on_sent=on_sent))
            try:
                answer = json.loads(body)
            except (ValueError, RecursionError):
                return None
        value = answer.get("running_resources") if isinstance(answer, dict) else None
        if not _is_count(value):
            return None
        return _plausible(value, "scale of %s from %s" % (service, compute.connector),
                          max_replicas=self.max_replicas)

    async def running_many(self, compute, services):
        """{service: running count or the ConnectorFailure for it}, in batch requests;
        None if the connector has no batch extension (ask one by one then)."""
        if not services or not await self._batch_size(compute):
            return None
        futures = [self._batched(compute, "status", service) for service in services]
        answers = await asyncio.gather(*futures, return_exceptions=True)
        counts = {}
        for service, answer in zip(services, answers):
            if isinstance(answer, BaseException):
                counts[service] = answer
                continue
            try:
                counts[service] = _count(answer, "status of %s from %s"
                                         % (service, compute.connector),
                                         max_replicas=self.max_replicas)
            except ConnectorBadResponse as e:
                counts[service] = e
        return counts

    # -- capacity -------------------------------------------------------------

    async def capacity(self, compute) -> Optional[Capacity]:
        """The capacity of the connector of ``compute``; None if it reports none, has no
        /capabilities, or cannot be asked.

        A capacity is asked again after CAPACITY_TTL, and after any scale order of ours
        to the connector; that it has none, with its batch size (CAPABILITIES_TTL: it
        gains one only by restarting). Asking refreshes both."""
        known = self._capabilities.get(compute.connector)
        if known is not None and known.capacity_until > time.monotonic():
            return known.capacity
        return (await self._ask(compute, fresh=True)).capacity

    async def _order(self, compute, call):
        """The answer of ``call``, a scale order to the connector of ``compute``. Once it
        is answered, however, the capacity known of the connector is out of date: the
        order may have started or stopped resources (a refused one too, as the refusal
        says the capacity was fuller than genisys knew)."""
        try:
            return await call
        finally:
            self._orders[compute.connector] = self._orders.get(compute.connector, 0) + 1
            known = self._capabilities.get(compute.connector)
            if known is not None and known.capacity is not None:
                known.capacity_until = 0.0

    def _capacity_of(self, connector, answer):
        """The Capacity in a /capabilities answer; None if it has none, or a malformed
        one (logged at debug once, until the connector reports a good one)."""
        value = answer.get("capacity") if isinstance(answer, dict) else None
        if value is None:
            return None
        if isinstance(value, dict) and _is_count(value.get("total")) \
                and _is_count(value.get("used")):
            self._malformed.discard(connector)
            return Capacity(total=value["total"], used=value["used"])
        if connector not in self._malformed:
            self._malformed.add(connector)
            log.debug("%s/capabilities: the capacity is not {\"total\": N, \"used\": N} "
                      "with counts from 0, taken for none: %s", connector.rstrip("/"),
                      one_line(repr(value), limit=BODY_EXCERPT))
        return None

    # -- the batch extension -------------------------------------------------

    async def _batch_size(self, compute):
        """How many services one batch request to this connector may carry (0: it
        has no batch extension), from its /capabilities, asked now and then."""
        known = self._capabilities.get(compute.connector)
        if known is not None and known.until > time.monotonic():
            return known.batch
        return (await self._ask(compute)).batch

    async def _ask(self, compute, *, fresh=False):
        """The _Capabilities of the connector of ``compute``, from the request in flight to
        it if there is one (``fresh``: one sent after our last scale order to it), else
        from a new one."""
        connector = compute.connector
        orders = self._orders.get(connector, 0)
        asking = self._asking.get(connector)
        if asking is None or (fresh and asking[0] != orders):
            future = asyncio.ensure_future(self._ask_capabilities(compute, orders))
            asking = self._asking[connector] = (orders, future)

            def done(_):
                if self._asking.get(connector, (None, None))[1] is future:
                    del self._asking[connector]
            future.add_done_callback(done)
        return await asyncio.shield(asking[1])

    async def _ask_capabilities(self, compute, orders):
        """GET /capabilities, remembered; ``orders``: our scale orders the connector had
        answered when it was sent (a capacity read before a later one is out of date)."""
        url = compute.connector.rstrip("/") + "/capabilities"
        self._check_open("GET", url)
        answer, ttl = None, CAPABILITIES_TTL
        started, outcome, failure = time.monotonic(), "error", ""
        try:
            code, reader = await self._fetch(self._request(compute, url, "GET", None), url,
                                             limit=self.max_answer_bytes)
            outcome = "ok" if code == 200 else str(code)
            if code == 200:
                answer = json.loads(reader.body)
            elif code != 404:
                ttl = FAILED_CAPABILITIES_TTL  # 401, 500...: ask again soon
            if code == 503:
                failure = "GET %s answered 503" % url
        except (ConnectorTimeout, ConnectorUnreachable) as e:
            ttl = FAILED_CAPABILITIES_TTL  # down: the per-service call will say so
            outcome, failure = "timeout" if isinstance(e, ConnectorTimeout) else "unreachable", \
                str(e)
        except ConnectorFailure:
            ttl = FAILED_CAPABILITIES_TTL  # an answer too large: it answers, though
            outcome = "too_large"
        except (ValueError, RecursionError):
            pass  # a 200 that is not JSON, so not ours: nothing offered
        now = time.monotonic()
        known = _Capabilities(batch=_batch_limit(answer), until=now + ttl, capacity=None,
                              capacity_until=now + ttl)
        known.capacity = self._capacity_of(compute.connector, answer)
        if known.capacity is not None:
            current = orders == self._orders.get(compute.connector, 0)
            known.capacity_until = now + CAPACITY_TTL if current else 0.0
        self._capabilities[compute.connector] = known
        self._observe(compute, "capabilities", outcome, now - started, failure=failure)
        return known

    async def probe(self, compute):
        """Ask the connector of ``compute`` for its capabilities now: the light call that
        tells whether an idle connector still answers (``on_outcome`` hears it), and
        refreshes what is known of its batch size and capacity."""
        await self._ask(compute, fresh=True)

    def known(self):
        """{connector URL: {"batch": largest batch it takes (0: none), "capacity": its
        total or None}} of the connectors asked so far (the dashboard shows it)."""
        return {url: {"batch": known.batch,
                      "capacity": known.capacity.total if known.capacity else None}
                for url, known in self._capabilities.items()}

    def _batched(self, compute, operation, service, number=None):
        """A future of the answer for ``service`` in the next batch of ``operation``."""
        key = (compute.connector, compute.token, operation)
        batch = self._batches.get(key)
        if batch is None or service in batch.calls:
            if batch is not None:
                self._send(batch)  # the same service twice: not in one request
            batch = self._batches[key] = _Batch(compute, operation)
            batch.timer = asyncio.get_running_loop().call_later(BATCH_WINDOW, self._send, batch)
        future = asyncio.get_running_loop().create_future()
        batch.calls[service] = (number, future)
        if len(batch.calls) >= self._capabilities[compute.connector].batch:
            self._send(batch)
        return future

    def _send(self, batch):
        if self._batches.get(batch.key) is batch:
            del self._batches[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if not batch.sent:
            batch.sent = True
            asyncio.ensure_future(self._send_batch(batch))

    async def _send_batch(self, batch):
        compute, calls = batch.compute, batch.calls
        if batch.operation == "status":
            payload = {"services": list(calls)}
        else:
            payload = {"services": {s: number for s, (number, _) in calls.items()}}
        try:
            body = await self._call(compute, None, "batch_" + batch.operation, "POST",
                                    json.dumps(payload),
                                    url=compute.connector.rstrip("/") + "/batch/" +
                                    batch.operation, max_bytes=self._batch_answer_limit(len(calls)))
            results = json.loads(body)["services"]
            if not isinstance(results, dict):
                raise TypeError("not an object")
        except ConnectorNotFound:
            # The connector no longer has the extension (restarted without it, say):
            # these calls go one by one, and so will the next ones.
            known = self._capabilities[compute.connector]
            known.batch, known.until = 0, time.monotonic() + CAPABILITIES_TTL
            for service, (number, future) in calls.items():
                _chain(future, self._one_by_one(compute, batch.operation, service, number))
            return
        except ConnectorFailure as e:
            for _, future in calls.values():
                _settle(future, exception=e)
            return
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            error = ConnectorBadResponse("batch %s from %s is not {\"services\": {...}}: %s"
                                         % (batch.operation, compute.connector,
                                            one_line(str(e))))
            for _, future in calls.values():
                _settle(future, exception=error)
            return
        method = "GET" if batch.operation == "status" else "POST"
        for service, (_, future) in calls.items():
            result = results.get(service)
            where = "%s of %s from %s" % (batch.operation, service, compute.connector)
            if isinstance(result, dict) and isinstance(result.get("error"), dict):
                _settle(future, exception=_item_error(
                    result["error"], method, self._url(compute, service, batch.operation),
                    compute.token is not None))
            elif isinstance(result, dict):
                _settle(future, result=result)
            else:
                _settle(future, exception=ConnectorBadResponse(
                    "%s: the batch answer has no result for it" % where))

    def _batch_answer_limit(self, services):
        """Largest answer to a batch request for ``services`` services."""
        return min(self.max_answer_bytes + services * BATCH_ANSWER_BYTES_PER_SERVICE,
                   BATCH_ANSWER_CEILING * self.max_answer_bytes)

    async def _one_by_one(self, compute, operation, service, number):
        if operation == "status":
            return {"running_resources": await self.running(compute, service)}
        return {"running_resources": await self.scale(compute, service, number)}

    # -- transport ----------------------------------------------------------

    def _url(self, compute, service, operation):
        base = compute.connector.rstrip("/")
        return "%s/service/%s/%s" % (base, urllib.parse.quote(service, safe=""), operation)

    def _request(self, compute, url, method, body):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if compute.token is not None:
            headers["Authorization"] = "Bearer " + compute.token
        if self.identity is not None:
            headers[IDENTITY_HEADER] = self.identity
        if self.term is not None:
            headers[TERM_SCOPE_HEADER], number = self.term
            headers[TERM_HEADER] = str(number)
        return _Request(method, url, body, headers)

    def limit(self, connector):
        """The AdaptiveLimit of calls to ``connector`` (a URL)."""
        limit = self._limits.get(connector)
        if limit is None:
            limit = self._limits[connector] = AdaptiveLimit(self.max_in_flight,
                                                            timeout=self.request_timeout)
        return limit

    def _check_open(self, method, url):
        """A call after close() is not a connector's failure: it fails before it is
        counted (``_observe``) or sent."""
        if self._closed:
            raise ConnectorUnreachable("%s %s: %s" % (method, url, CLOSED))

    async def _call(self, compute, service, operation, method, body, *, url=None,
                    max_bytes=None, on_sent=None):
        url = url or self._url(compute, service, operation)
        self._check_open(method, url)
        request = self._request(compute, url, method, body)
        # A batch request takes no turn: the calls made within BATCH_WINDOW already go
        # out together, up to MAX_BATCH each, so there are few of them; held in line
        # behind each other they would only break into smaller ones.
        turns = self.limit(compute.connector) if service is not None else None
        turn = None
        # A call waiting for its turn fails when the connector answered no call for the
        # timeout: with a connector that hangs, the calls queued behind the hung ones
        # fail as fast as those do; behind one that answers, they wait.
        try:
            if turns is not None:
                turn = await turns.acquire()
        except TimeoutError:
            error = ConnectorTimeout("%s %s: %d calls to this connector still in flight, none "
                                     "answered for %gs" % (method, url, turns.in_flight,
                                                           self.request_timeout))
            self._observe(compute, operation, "queued", self.request_timeout, failure=str(error))
            raise error from None
        try:
            _sent(on_sent)  # the caller may take the call back now (it no longer leads)
        except BaseException:
            if turns is not None:
                turns.release(turn)  # unsent: no latency to learn from
            raise
        started, outcome, failure = time.monotonic(), "error", ""
        try:
            code, answer = await self._fetch(request, url, limit=max_bytes or self.max_answer_bytes,
                                             again=on_sent)
            outcome = "ok" if 200 <= code < 300 else str(code)
            if code == 503:
                failure = "%s %s answered 503" % (method, url)
        except ConnectorTimeout as e:
            outcome, failure = "timeout", str(e)
            raise
        except ConnectorUnreachable as e:
            outcome, failure = "unreachable", str(e)
            raise
        except ConnectorBadResponse:
            outcome = "too_large"  # the only bad answer _fetch finds
            raise
        finally:
            seconds = time.monotonic() - started
            if turns is not None:
                # The time answers waited for a busy event loop to read them is genisys'
                # own, not the connector's.
                turns.release(turn, seconds=seconds, lag=self._lag.seconds,
                              failed=outcome in SHRINKING)
                if self.metrics is not None:
                    self.metrics.connector_limit.labels(compute.name).set(turns.limit)
            self._observe(compute, operation, outcome, seconds, failure=failure)
        if outcome != "ok":
            log.debug("%s %s answered %d, %d bytes: %r", method, url, code, len(answer.body),
                      bytes(answer.body[:DEBUG_BODY_BYTES]))
            raise _status_error(code, bytes(answer.body), method, url, compute.token is not None,
                                content_type=answer.content_type, retry_after=answer.retry_after)
        return bytes(answer.body)

    def _observe(self, compute, operation, outcome, seconds, *, failure=""):
        """Count a call; ``failure``: why the connector did not answer ("" if it did)."""
        if self.metrics is not None:
            self.metrics.call_seconds.labels(compute.name, operation, outcome).observe(seconds)
        if self.on_outcome is not None:
            self.on_outcome(compute.name, not failure, failure)

    async def _fetch(self, request, url, *, limit, again=None):
        """(status code, the Answer that holds its head and body) of ``request``; an
        answer over ``limit`` bytes is a ConnectorBadResponse, and is not read past it.

        Every call of the protocol is idempotent (a status, or a set-point: "run N"), so
        one that lost its connection before any answer (a kept-alive one the connector
        closed meanwhile, a connector restarted) is sent once more, on a new one; if
        ``again()`` lets it (what it raises ends the call: a leader deposed meanwhile
        sends nothing more)."""
        method = request.method
        try:
            try:
                return await self._fetch_once(request, url, limit)
            except aiohttp.ClientConnectorError:
                raise  # no connection (or not to whom it should be): not again
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                _sent(again)
                return await self._fetch_once(request, url, limit)
        except AnswerTooLarge as e:
            raise ConnectorBadResponse("%s %s: the answer is too large: %s" % (
                method, url, e.too_large.describe("connector.max_answer_size"))) from None
        except asyncio.TimeoutError as e:  # aiohttp's timeouts are TimeoutErrors too
            raise ConnectorTimeout("%s %s: no answer within %gs"
                                   % (method, url, self.request_timeout)) from e
        except aiohttp.ServerDisconnectedError as e:
            raise ConnectorUnreachable("%s %s: the connector closed the connection without "
                                       "an answer" % (method, url)) from e
        except (aiohttp.ClientError, OSError) as e:
            # No connection, an answer that is no HTTP, a bad certificate...
            raise ConnectorUnreachable("%s %s: %s" % (method, url, _reason(e))) from e

    async def _fetch_once(self, request, url, limit):
        async with self._client().request(request.method, _parsed(url), data=request.body,
                                          headers=request.headers,
                                          allow_redirects=False) as response:
            answer = await read(response, limit)
        return answer.status, answer


class _Request(NamedTuple):
    method: str
    url: str
    body: Optional[str]
    headers: dict


@functools.lru_cache(maxsize=PARSED_URLS)
def _parsed(url):
    """``url`` as aiohttp takes it (``yarl.URL``), parsed once while it is in use."""
    return yarl.URL(url)


def _reason(error):
    """What went wrong, in a line: "cannot connect to host:port: Connection refused" for
    no connection; else aiohttp's message (a certificate refused says which, and why)."""
    if isinstance(error, aiohttp.ClientConnectorError) \
            and not isinstance(error, aiohttp.ClientSSLError):
        cause = error.os_error
        # (asyncio's own text for a refused connection is "Connect call failed (...)".)
        why = os.strerror(cause.errno) if isinstance(cause.errno, int) and cause.errno > 0 \
            else cause.strerror or str(cause) or type(cause).__name__
        return one_line("cannot connect to %s:%s: %s" % (error.host, error.port, why))
    return one_line(str(error) or type(error).__name__)


def _sent(on_sent):
    if on_sent is not None:
        on_sent()


def _status_error(code, body, method, url, with_token, *, content_type="", retry_after=None):
    """The exception for a non-2xx answer ``code`` with ``body`` to ``method url`` (and
    the seconds of its Retry-After, if it had one)."""
    detail = _excerpt(body, content_type)
    if code == 429 or (code == 503 and retry_after is not None):
        return ConnectorThrottled("%s %s: %d, the connector asks to wait %ds: %s"
                                  % (method, url, code, retry_after or 0, detail), status=code,
                                  body=body, retry_after=retry_after or 0)
    if code == 403 and _error_reason(body) == "BackendForbidden":
        return ConnectorUnauthorized("%s %s: 403, what the connector drives refused the "
                                     "connector's own credentials: %s" % (method, url, detail),
                                     status=code, body=body)
    if code in (401, 403):
        return ConnectorUnauthorized(
            "%s %s: %d, the connector refused %s: %s"
            % (method, url, code, "the compute's token" if with_token
               else "a call without a token (give the compute one)", detail),
            status=code, body=body)
    if code == 404:
        return ConnectorNotFound("%s %s: 404, the connector has no such service: %s"
                                 % (method, url, detail), status=404, body=body)
    if code == 409 and _error_reason(body) == ConnectorFenced.reason:
        return ConnectorFenced("%s %s: 409 %s" % (method, url, detail), status=409, body=body)
    if code == 409 and _error_reason(body) == ConnectorInsufficientCapacity.reason:
        return ConnectorInsufficientCapacity("%s %s: 409 %s" % (method, url, detail),
                                             status=409, body=body)
    if code == 503:
        return ConnectorUnavailable("%s %s: 503, the connector is unavailable: %s"
                                    % (method, url, detail), status=503, body=body)
    return ConnectorError("%s %s: %d %s" % (method, url, code, detail), status=code, body=body)


def _error_reason(body):
    """The ``reason`` of a JSON error answer (``{"error": {"reason": ...}}``), else None."""
    try:
        return json.loads(body)["error"]["reason"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
