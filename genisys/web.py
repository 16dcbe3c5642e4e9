"""The generic JSON handler every genisys HTTP server is built on (the API, the connector).

JSON in, JSON out, errors mapped in one place. Bodies are streamed in
(``stream_request_body``) so an oversized request is refused with a JSON 413
as soon as its headers arrive, before any of it is read. Every error, ours or
tornado's, leaves as ``{"error": {"reason": ..., "message": ..., "field": ...}}``.
Domain errors (``genisys.errors``) map to HTTP statuses in ``_STATUS_BY_ERROR``
and nowhere else.
"""

import asyncio
import functools
import json
import logging
import math

import orjson
import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.web

from genisys import errors
from genisys.model import describe

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes (every JSON body genisys takes is tiny; a
#: handler's ``max_body_bytes`` may raise it, as the connector's batch requests do).
MAX_BODY_BYTES = 64 * 1024
#: Largest request line and headers answered with anything but a JSON 431. (Servers
#: set a hard cap above it, past which the connection is just closed.)
MAX_HEADER_BYTES = 16 * 1024
#: That hard cap, the HTTPServer's ``max_header_size`` of every genisys server (the
#: API, the connector): a request head past it is not read, the connection closed.
SERVER_MAX_HEADER_BYTES = 4 * MAX_HEADER_BYTES

#: Domain error -> HTTP status. A subclass maps like its nearest listed base,
#: keeping its own ``reason`` (ServiceNotDefined is a 404 that says why).
_STATUS_BY_ERROR = {
    errors.Invalid: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.VersionMismatch: 412,
    errors.StartFailed: 422,
    errors.IdempotencyKeyReused: 422,
    errors.SimulatedFailure: 500,
    errors.StoreUnavailable: 503,
    errors.BackendUnavailable: 503,
}

#: Mapped errors that are still worth a line in the server log (not the client's fault).
_LOGGED_ERRORS = (errors.StoreUnavailable,)


def status_for(exc):
    """The HTTP status of a domain error, or None if it has none (a server fault)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS_BY_ERROR:
            return _STATUS_BY_ERROR[cls]
    return None


class RequestRefused(errors.GenisysError):
    """An HTTP-level refusal that has no domain meaning (413, 415, ...)."""

    def __init__(self, status, message, *, field=None):
        super().__init__(message, field=field)
        self.status = status
        self.reason = reason_for(status)


#: Reasons of HTTP-level errors, fixed here rather than derived from the
#: standard library's phrases (413's phrase changed in Python 3.13).
_HTTP_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 408: "RequestTimeout", 409: "Conflict", 411: "LengthRequired",
    412: "PreconditionFailed", 413: "PayloadTooLarge", 414: "URITooLong",
    415: "UnsupportedMediaType", 422: "UnprocessableEntity", 429: "TooManyRequests",
    431: "RequestHeaderFieldsTooLarge",
    500: "InternalError", 503: "ServiceUnavailable",
}


def dump_json(body, *, sort_keys=True):
    """``body`` as compact JSON text with a final newline, keys sorted or as given:
    orjson, which takes a tenth of the time of ``json``; ``json`` for what orjson
    cannot write (integers past 64 bits)."""
    option = orjson.OPT_APPEND_NEWLINE | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(body, option=option)
    except TypeError:
        return (json.dumps(body, sort_keys=sort_keys, separators=(",", ":")) + "\n").encode()


def reason_for(status):
    return _HTTP_REASONS.get(status, "ClientError" if status < 500 else "ServerError")


def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _finite_float(text):
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON, but not a number genisys can keep
        raise errors.Invalid("request body has a number too large for a float: %s"
                             % describe(text), field="body")
    return value


def _unique_object(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError("duplicate field %r" % key)
        obj[key] = value
    return obj


def parse_json(raw):
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate fields."""
    if not raw.strip():
        raise errors.Invalid("request body is empty, expected a JSON object", field="body")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_object)
    except UnicodeDecodeError as e:
        raise errors.Invalid("request body is not UTF-8: %s" % e, field="body") from e
    except ValueError as e:
        raise errors.Invalid("request body is not valid JSON: %s" % e, field="body") from e
    except RecursionError as e:
        raise errors.Invalid("request body is nested too deeply", field="body") from e


@tornado.web.stream_request_body
class JSONHandler(tornado.web.RequestHandler):
    """Handlers get their dependencies from the route table through initialize().

    ``auth`` (an ``genisys.auth.Authenticator``, or None) checks the caller's
    token before anything else; handlers with ``public = True`` (health
    checks) need none. ``self.current_user`` is the caller's token, if any."""

    #: True for endpoints anyone may call, tokens or not (health checks).
    public = False
    #: Largest request body this handler reads; handlers that take large bodies
    #: (the connector's batch requests) raise it for themselves only.
    max_body_bytes = MAX_BODY_BYTES

    def initialize(self, *, tracker, auth=None):
        self.tracker = tracker
        self.auth = auth
        #: The ``reason`` of the error this request was answered with, if any.
        self.error_reason = None
        self._body = bytearray()
        self._too_large = False
        self._tracked = False
        self._streaming = False

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def _track(self):
        self.tracker.started()
        self._tracked = True

    def streaming(self):
        """This request is a stream (a watch): it no longer counts as being answered."""
        if self._tracked and not self._streaming:
            self._streaming = True
            self.tracker.streams += 1

    def authenticate(self):
        if self.public or self.auth is None or not self.auth.enabled:
            return
        self.current_user = self.auth.identify(self.request.headers.get("Authorization"))
        self.auth.authorize(self.current_user, self.request.method, self.request.path)

    def check_header_size(self):
        request = self.request
        size = len(request.method) + len(request.uri) + len(request.version) + 4
        size += sum(len(k) + len(v) + 4 for k, v in request.headers.get_all())
        if size > MAX_HEADER_BYTES:
            raise RequestRefused(431, "request line and headers are %d bytes, the limit is %d"
                                 % (size, MAX_HEADER_BYTES), field="headers")

    def prepare(self):
        self._track()
        self.check_header_size()
        self.authenticate()
        if self.request.method.upper() not in self.allowed_methods():
            raise tornado.web.HTTPError(405)
        declared = self.request.headers.get("Content-Length")
        if (declared is not None and declared.isascii() and declared.isdigit()
                and int(declared) > self.max_body_bytes):
            raise RequestRefused(413, "request body is %s bytes, the limit is %d"
                                 % (declared, self.max_body_bytes), field="body")
        if self.request.method in ("POST", "PUT", "PATCH"):
            ctype = self.request.headers.get("Content-Type")
            if ctype is not None:
                media = ctype.split(";", 1)[0].strip().lower()
                if media != "application/json" and not media.endswith("+json"):
                    raise RequestRefused(415, "Content-Type must be application/json, got %r"
                                         % ctype, field="Content-Type")

    def data_received(self, chunk):
        if self._too_large:
            return
        self._body += chunk
        if len(self._body) > self.max_body_bytes:
            self._too_large = True
            self._body = bytearray()

    def finish(self, chunk=None):
        if self.tracker.draining:
            self.set_header("Connection", "close")
        return super().finish(chunk)

    def on_finish(self):
        if self._tracked:
            self._tracked = False
            if self._streaming:
                self.tracker.streams -= 1
            self.tracker.finished()

    def decode_argument(self, value, name=None):
        # Path arguments are names; undecodable bytes are a bad name like any other.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.Invalid("%s in the URL is not valid UTF-8" % describe(value),
                                 field="name") from None

    # -- helpers for handlers ---------------------------------------------

    @classmethod
    def allowed_methods(cls):
        return _allowed_methods(cls)

    def json_body(self):
        if self._too_large:
            raise RequestRefused(413, "request body is larger than %d bytes"
                                 % self.max_body_bytes, field="body")
        return parse_json(bytes(self._body))

    def send(self, status, body, *, version=None):
        self.set_status(status)
        if version is not None:
            self.set_header("ETag", '"%d"' % version)
        self.finish(dump_json(body))

    # -- errors ------------------------------------------------------------

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        field = None
        if isinstance(exc, RequestRefused):
            status, reason, message, field = exc.status, exc.reason, exc.message, exc.field
        elif isinstance(exc, errors.GenisysError) and status_for(exc) is not None:
            status, reason, message, field = status_for(exc), exc.reason, exc.message, exc.field
        elif isinstance(exc, tornado.web.HTTPError):
            status, reason = exc.status_code, reason_for(exc.status_code)
            message = exc.log_message % exc.args if exc.log_message else reason_for(status)
            if status == 405:
                message = "method %s is not allowed on %s" % (self.request.method,
                                                               self.request.path)
        else:
            status, reason, message = 500, "InternalError", "internal error, see the server log"
        self.set_status(status)
        self.error_reason = reason
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:  # errors.Throttled: how long the caller should wait
            self.set_header("Retry-After", str(max(1, math.ceil(retry_after))))
        if status == 401:
            challenge = 'Bearer realm="genisys"'
            if self.request.headers.get("Authorization"):
                challenge += ', error="invalid_token"'
            self.set_header("WWW-Authenticate", challenge)
        error = {"reason": reason, "message": message}
        if field:
            error["field"] = field
        self.finish(dump_json({"error": error}, sort_keys=False))  # reason first

    def _handle_request_exception(self, e):
        # Domain errors are answers, not server faults: map them without a traceback.
        # An unmapped GenisysError is a bug somewhere: it takes tornado's path (logged).
        answer = isinstance(e, RequestRefused) or (isinstance(e, errors.GenisysError)
                                             and status_for(e) is not None)
        if answer and not isinstance(e, _LOGGED_ERRORS):
            if self._finished:
                return
            self.send_error(exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        if isinstance(value, _LOGGED_ERRORS):
            log.error("%s on %s %s: %s", value.reason, self.request.method, self.request.path,
                      value)
            return
        super().log_exception(typ, value, tb)


@functools.cache
def _allowed_methods(handler_class):
    """The methods a handler class answers (those it defines), worked out once per
    class: every request checks its own against them."""
    return tuple(m for m in ("GET", "POST", "PUT", "DELETE")
                 if getattr(handler_class, m.lower())
                 is not getattr(tornado.web.RequestHandler, m.lower()))


class NotFoundHandler(JSONHandler):
    """Unknown paths get a JSON 404 like everything else."""

    def prepare(self):
        self._track()
        self.check_header_size()
        self.authenticate()  # an unknown path tells a stranger nothing
        raise RequestRefused(404, "no such endpoint: %s %s"
                             % (self.request.method, self.request.path), field="path")


class InFlight:
    """Counts requests being handled, so shutdown can wait for them to finish.

    ``draining`` is set when shutdown begins: from then on every answer says
    ``Connection: close``, so no client sends another request on its connection."""

    def __init__(self):
        self.count = 0
        #: Of them, streams (watches): they last as long as their client listens.
        self.streams = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Set when shutdown begins: requests that would never end by themselves (a
        #: watch) wait on it and end, so the drain does not wait out its grace for them.
        self.stopping = asyncio.Event()

    @property
    def draining(self):
        return self.stopping.is_set()

    @draining.setter
    def draining(self, value):
        if value:
            self.stopping.set()
        else:
            self.stopping.clear()

    def started(self):
        self.count += 1
        self._idle.clear()

    def finished(self):
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    @property
    def answering(self):
        """Requests being answered, streams left out: how busy the API is now (the
        reconciler's passes yield to it, ``genisys.reconciler.workers.PassGate``)."""
        return self.count - self.streams

    async def wait_idle(self, timeout):
        """True once no request is in flight, False if ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


class _FirstHeaders(tornado.httputil.HTTPMessageDelegate):
    """Passes one request through to ``delegate``, calling ``arrived()`` when its headers
    are in, before anything of the request is handled."""

    def __init__(self, delegate, arrived):
        self.delegate = delegate
        self.arrived = arrived

    def headers_received(self, start_line, headers):
        self.arrived()
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        self.delegate.finish()

    def on_connection_close(self):
        self.arrived()
        self.delegate.on_connection_close()


class Server(tornado.httpserver.HTTPServer):
    """tornado's HTTPServer, able to drain without cutting a request in two.

    While draining, a kept-alive connection is closed only while it waits for
    the headers of its next request and they are not all in: closing it then
    drops what little was read, and nothing of that request was handled. A
    request whose headers are in is served to the end, its answer written
    before its connection closes. (Closing a connection whose next request is
    already buffered would not stop tornado reading it from its buffer, and
    handling it with no way left to answer.)"""

    def initialize(self, *args, **kwargs):
        super().initialize(*args, **kwargs)
        self.draining = False
        #: Connections between two requests: waiting for the headers of the next.
        self._between_requests = set()
        self._all_closed = asyncio.Event()

    def start_request(self, server_conn, request_conn):
        self._between_requests.add(server_conn)
        if self.draining:
            # Once tornado has begun reading this request (right after this returns)
            # its connection is either waiting, and closed, or has the headers, and
            # that request is served.
            tornado.ioloop.IOLoop.current().add_callback(self._close_if_waiting, server_conn)
        return _FirstHeaders(super().start_request(server_conn, request_conn),
                             lambda: self._between_requests.discard(server_conn))

    def _close_if_waiting(self, server_conn):
        # A pending read is one its buffer cannot satisfy: the headers are not all in.
        if server_conn in self._between_requests and server_conn.stream.reading():
            server_conn.stream.close()

    def on_close(self, server_conn):
        self._between_requests.discard(server_conn)
        super().on_close(server_conn)
        if self.draining and not self._connections:
            self._all_closed.set()

    async def drain(self, timeout):
        """Stop reading new requests: close the connections waiting for one now and
        every other one once its current request is answered. True once all are
        closed, False if ``timeout`` passed first."""
        self.draining = True
        for server_conn in list(self._between_requests):
            self._close_if_waiting(server_conn)
        if not self._connections:
            return True
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


#: How long a server that is shutting down waits for its connections to finish
#: their requests, then for the requests whose clients went away.
SHUTDOWN_GRACE_SECONDS = 10.0


async def drain(server, tracker, *, logger=log, grace=SHUTDOWN_GRACE_SECONDS):
    """Stop ``server`` (a ``Server``) accepting connections and reading requests, answer
    the requests it has begun (each with ``Connection: close``), then wait for the
    handlers still running whose clients left (``tracker``: its InFlight); ``logger``
    says so. A connection still open after ``grace`` is closed, answered or not."""
    logger.info("shutting down: no new connections, finishing %d request(s)", tracker.count)
    server.stop()
    tracker.draining = True
    if not await server.drain(grace):
        logger.warning("some connections did not finish their request within %gs: "
                       "closing them", grace)
        try:
            await asyncio.wait_for(server.close_all_connections(), grace)
        except asyncio.TimeoutError:
            logger.warning("some connections did not close within %gs", grace)
    if not await tracker.wait_idle(grace):
        logger.warning("%d request(s) still running after %gs", tracker.count, grace)
