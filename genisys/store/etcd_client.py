"""Talking to etcd: its v3 JSON gateway over HTTP, across the members of a cluster.

Every call is a POST of a JSON body to one member (``/v3/kv/range``,
``/v3/kv/txn``, ``/v3/lease/...``); keys and values travel base64-encoded and
64-bit integers as strings. Unary calls go through aiohttp (connections stay
open between calls, and it never sends a POST twice by itself); watches are
long-lived streams of newline-separated JSON messages, read over a connection
of their own so they can be closed at any moment.

Security (docs/distributed.md, "etcd over TLS, with a user"): with
``EtcdSecurity(tls=True)`` every call and stream is HTTPS, the member's
certificate checked against the CA file (or the system's CAs) and a client
certificate shown when one is given; with a ``user``, the client gets a token
from ``/v3/auth/authenticate`` and sends it with every call and stream, and
gets a new one when etcd says it is no longer valid (simple tokens expire after
five idle minutes; a restarted member forgets them). The password is kept for
that, and never appears in a log line, an error or a ``repr``.

Fail-over: calls go to the *current* member; when it fails, the next listed
member becomes current. A call that is safe to repeat (a read, a lease
keep-alive, a write whose repetition changes nothing) is tried on the next
members at once. Any other write is repeated only when it surely never
reached etcd (no connection could be made, or etcd answered that it has no
leader): once sent, its outcome is unknown, and repeating a compare-and-swap
that did happen would apply it twice. Such a write fails with
StoreUnavailable instead, and the caller decides. While the cluster elects a
leader (a member answers that it has none, or that it changed), a call is made
again, round after round over the members, until its time is up: a member that
was killed costs an election, not a failed call.
"""

import asyncio
import base64
import dataclasses
import json
import logging
import re
import ssl
import time
from typing import Any, Callable, Optional, Union

import aiohttp
import orjson
import tornado.httputil
import tornado.iostream
import tornado.tcpclient
import tornado.util
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters

from genisys.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds one call may take on one member (a linearizable read or a commit
#: takes milliseconds; etcd itself gives up on a proposal after about 7s).
REQUEST_TIMEOUT = 5.0
#: Seconds to open a connection to a member: short, so a dead member is
#: passed over quickly.
CONNECT_TIMEOUT = 2.0
#: Connections kept open to the members, as many calls as may be in flight at once.
MAX_CONNECTIONS = 256
#: gRPC status codes etcd answers with (in the gateway's ``code`` field).
INVALID_ARGUMENT = 3
PERMISSION_DENIED = 7
OUT_OF_RANGE = 11
UNAVAILABLE = 14
UNAUTHENTICATED = 16
#: A decoded JSON answer or message of etcd's gateway.
Json = dict[str, Any]

#: etcd errors that mean a call was refused before it was acted on, so it may be
#: sent again, to this member or another. etcd answers "no leader" and "not capable"
#: before it handles a call at all, and "leader changed" only to a linearizable read
#: (or a lease's time to live) whose leader went while it waited for the read index:
#: nothing was read, and a proposal (any write) never gets it. Each means the cluster
#: is between two leaders.
_NOT_APPLIED_MESSAGES = ("etcdserver: no leader", "etcdserver: not capable",
                         "etcdserver: leader changed")
#: Seconds between two rounds over the members while the cluster elects a leader
#: (doubling up to ELECTION_PAUSE_MAX): an election takes about a second (etcd's
#: default election timeout), often longer on a loaded machine.
ELECTION_PAUSE = 0.05
ELECTION_PAUSE_MAX = 0.4
#: etcd errors that mean the token is no longer good (it expired, the member restarted,
#: or users changed since it was given): authenticate again, then call again.
_STALE_TOKEN_MESSAGES = ("etcdserver: invalid auth token",
                         "etcdserver: revision of auth store is old",
                         "etcdserver: user name is empty")

@dataclasses.dataclass(frozen=True)
class EtcdSecurity:
    """How genisys and etcd prove who they are (docs/distributed.md): TLS, and a user."""

    #: HTTPS to every member (``etcd+https://``, or any of the files below).
    tls: bool = False
    #: PEM bundle of the CAs that sign the members' certificates (None: the system's).
    ca_file: Optional[str] = None
    #: PEM client certificate and its key, for members that ask for one
    #: (``--client-cert-auth``).
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    #: etcd user to authenticate as (None: etcd's authentication is off).
    user: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every call and stream."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


class EtcdAuthError(StoreUnavailable):
    """etcd refused this user: a wrong name or password, or a permission it lacks."""


def _tls_problem(message: str, security: EtcdSecurity) -> str:
    """A TLS failure as a person can act on it: which file or certificate is wrong."""
    lowered = message.lower()
    if "certificate has expired" in lowered or "certificate expired" in lowered:
        if "alert" in lowered:  # the member refused ours
            return "the member refused the client certificate %s: it has expired (%s)" % (
                security.cert_file, message)
        return "the member's certificate has expired (%s)" % message
    if "alert" in lowered and ("certificate" in lowered or "handshake" in lowered):
        return ("the member refused the client certificate%s (%s)" % (
            " " + security.cert_file if security.cert_file else ": none was given "
            "(--etcd-cert-file, --etcd-key-file)", message))
    if "certificate" in lowered or "issuer" in lowered or "verify" in lowered:
        return ("the member's certificate is not signed by a CA of %s (%s)" % (
            security.ca_file or "the system's trusted CAs (--etcd-ca-file)", message))
    return message


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def unb64(text: Optional[str]) -> str:
    return base64.b64decode(text or "").decode("utf-8")


def range_end(prefix: str) -> str:
    """etcd's range_end for every key starting with ``prefix`` (byte-wise)."""
    data = bytearray(prefix.encode("utf-8"))
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return base64.b64encode(bytes(data)).decode("ascii")
        data.pop()
    return base64.b64encode(b"\0").decode("ascii")  # every key


@dataclasses.dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    @property
    def base_url(self) -> str:
        return "http://%s" % self


class EtcdError(StoreUnavailable):
    """etcd answered with an error (``code`` is its gRPC status code)."""

    def __init__(self, message: str, *, code: Optional[int] = None,
                 endpoint: Optional[Endpoint] = None) -> None:
        super().__init__(message)
        self.code = code
        self.endpoint = endpoint


def _reasons(error: BaseException) -> str:
    """``error`` and what caused it (aiohttp wraps the TLS alert a member answers a
    refused certificate with in an error of its own), on one line."""
    reasons: list[str] = []
    cause: Optional[BaseException] = error
    while cause is not None and len(reasons) < 4:
        reasons.append(str(cause) or type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    return ": ".join(reasons)


class _Unsent(Exception):
    """A call failed before etcd could have acted on it: try another member
    (``electing``: the member answered, but the cluster has no leader just now)."""

    def __init__(self, message: str, *, electing: bool = False) -> None:
        super().__init__(message)
        self.electing = electing


class _Failed(Exception):
    """A call failed after it may have reached etcd."""


class _Disconnected(_Failed):
    """The connection closed before an answer came."""


class EtcdClient:
    """Calls to a cluster through its listed members; one per store."""

    def __init__(self, endpoints: list[Endpoint], *, timeout: float = REQUEST_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 security: EtcdSecurity = EtcdSecurity()) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.security = security
        #: The token etcd gave ``security.user`` (None: none yet, or no user).
        self._token: Optional[str] = None
        self._authenticating: Optional[asyncio.Future[str]] = None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._current = 0
        self._http: Optional[aiohttp.ClientSession] = None
        self._ssl: Optional[ssl.SSLContext] = None
        #: Called with an Endpoint when it failed and another one became current.
        self.on_failover: Optional[Callable[[Endpoint], None]] = None
        #: The highest store revision seen in any answer.
        self.seen_revision = 0
        #: The cluster's ID, as its answers say (None before the first).
        self.cluster_id: Optional[str] = None

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self._current]

    def open(self) -> None:
        # Made on the running loop, which the session binds to. Kept-alive connections,
        # as many as calls in flight; aiohttp never sends a POST twice by itself.
        self._ssl = self.security.ssl_context() if self.security.tls else None
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=self._ssl or True),
            skip_auto_headers=("User-Agent",))

    async def close(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def failed(self, endpoint: Endpoint, reason: object) -> None:
        """``endpoint`` did not answer: make the next member current (and tell
        ``on_failover``, so streams on the failed member move too)."""
        if self.current != endpoint or len(self.endpoints) == 1:
            return
        self._current = (self._current + 1) % len(self.endpoints)
        log.warning("etcd member %s failed (%s): switching to %s", endpoint, reason,
                    self.current)
        if self.on_failover is not None:
            self.on_failover(endpoint)

    async def call(self, path: str, body: Union[Json, bytes], *, retry_sent: bool = True,
                   timeout: Optional[float] = None) -> Json:
        """POST ``body`` (or its JSON text) to ``path`` on the current member, failing
        over as the module docstring says; returns the decoded answer or raises
        StoreUnavailable.

        ``retry_sent``: the call may be repeated on another member even after it was
        sent (reads, keep-alives, blind writes); otherwise it is sent once (aiohttp
        never repeats a POST by itself). ``timeout``: seconds in all."""
        http = self._http
        if http is None:
            raise StoreUnavailable("the etcd store is closed")
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            return await self._call_members(http, path, body, deadline, retry_sent=retry_sent)
        except EtcdError as e:
            if self.security.user is None or not any(
                    m in str(e) for m in _STALE_TOKEN_MESSAGES):
                raise
        # The token went stale (it expired, or the member restarted): a new one, and the
        # call again. etcd refused the call before acting on it, so it may be repeated.
        await self.authenticate(stale=self._token)
        return await self._call_members(http, path, body, deadline, retry_sent=retry_sent)

    async def authenticate(self, *, stale: Optional[str] = None) -> str:
        """A token for ``security.user`` (a new one if the current one is ``stale``); one
        request at a time, however many calls found the token stale together."""
        if self._token is not None and self._token != stale:
            return self._token
        if self._authenticating is None:
            self._authenticating = asyncio.ensure_future(self._authenticate())
        authenticating = self._authenticating
        try:
            return await asyncio.shield(authenticating)
        finally:
            if self._authenticating is authenticating and authenticating.done():
                self._authenticating = None

    async def _authenticate(self) -> str:
        http = self._http
        if http is None:
            raise StoreUnavailable("the etcd store is closed")
        body = {"name": self.security.user, "password": self.security.password or ""}
        try:
            answer = await self._call_members(http, "/v3/auth/authenticate", body,
                                              time.monotonic() + self.timeout,
                                              retry_sent=True, token=False)
        except EtcdError as e:
            if e.code == INVALID_ARGUMENT and "authentication failed" in str(e):
                raise EtcdAuthError("etcd refused user %r: wrong user name or password "
                                    "(--etcd-user, GENISYS_ETCD_PASSWORD)"
                                    % self.security.user) from None
            if "authentication is not enabled" in str(e):
                raise EtcdAuthError("etcd has authentication off, but --etcd-user %r was "
                                    "given: enable it (etcdctl auth enable), or drop the user"
                                    % self.security.user) from None
            raise
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise StoreUnavailable("etcd answered /v3/auth/authenticate without a token")
        self._token = token
        return token

    def token_refused(self, message: str) -> None:
        """A stream was refused with ``message``: if it says the token is stale, the next
        call or stream gets a new one."""
        if any(m in message for m in _STALE_TOKEN_MESSAGES):
            self._token = None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._token} if self._token else {}

    async def _call_members(self, http: aiohttp.ClientSession, path: str,
                            body: Union[Json, bytes],
                            deadline: float, *, retry_sent: bool,
                            token: bool = True) -> Json:
        if token and self.security.user is not None and self._token is None:
            await self.authenticate()
        reconnected = False
        pause = ELECTION_PAUSE
        while True:
            errors = []
            electing = False
            # One round over the members, from the current one. A member between two
            # leaders stays current (it is alive; the next one is likely electing too).
            first = self._current
            for tried in range(len(self.endpoints)):
                endpoint = self.endpoints[(first + tried) % len(self.endpoints)]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # A call that may go elsewhere leaves time for the other members: one
                # that stalls doesn't use it all up.
                share = remaining / (len(self.endpoints) - tried) if retry_sent else remaining
                try:
                    try:
                        return await self._call_one(http, endpoint, path, body, share,
                                                    token=token)
                    except _Disconnected:
                        # A kept-alive connection the member had closed (it restarted,
                        # say) is found dead only when used: a call safe to repeat is,
                        # once, on a new connection to the same member.
                        if not retry_sent or reconnected:
                            raise
                        reconnected = True
                        return await self._call_one(http, endpoint, path, body,
                                                    max(deadline - time.monotonic(), 0.001),
                                                    token=token)
                except _Unsent as e:
                    errors.append("%s: %s" % (endpoint, e))
                    if e.electing:
                        electing = True
                    else:
                        self.failed(endpoint, e)
                except _Failed as e:
                    errors.append("%s: %s" % (endpoint, e))
                    self.failed(endpoint, e)
                    if not retry_sent:
                        raise StoreUnavailable("etcd %s: %s; the write may or may not have "
                                               "happened" % (path, "; ".join(errors))) from None
            # A cluster electing a leader refused the call unapplied: it is made again,
            # round after round, until the new leader answers or the call's time is up
            # (clientv3 retries a read that etcd answers "unavailable" so, until its
            # deadline). A round without such an answer (every member down, say) fails
            # at once.
            if not electing or deadline - time.monotonic() <= pause:
                break
            await asyncio.sleep(pause)
            pause = min(2 * pause, ELECTION_PAUSE_MAX)
        raise StoreUnavailable("etcd %s: no member answered (%s)"
                               % (path, "; ".join(errors) or "out of time"))

    async def _call_one(self, http: aiohttp.ClientSession, endpoint: Endpoint, path: str,
                        body: Union[Json, bytes], timeout: float, *,
                        token: bool = True) -> Json:
        security = self.security
        headers = {"Content-Type": "application/json"}
        if token:
            headers.update(self.auth_headers())
        try:
            async with http.post(
                    "%s://%s%s" % (security.scheme, endpoint, path),
                    data=body if isinstance(body, bytes) else orjson.dumps(body),
                    headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=timeout, sock_connect=min(self.connect_timeout, timeout))
            ) as response:
                status, content = response.status, await response.read()
        except aiohttp.ClientSSLError as e:
            raise _Unsent(_tls_problem(str(e), security)) from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise _Unsent(str(e)) from None
        except aiohttp.ClientError as e:
            # A member that refuses our certificate says so with a TLS alert, which TLS 1.3
            # delivers after the handshake: the request was never read. aiohttp may say
            # only that the connection closed, so the alert is asked for again.
            reasons = _reasons(e)
            alert = reasons if "alert" in reasons.lower() else None
            if security.tls and alert is None:
                alert = await self._tls_refusal(endpoint)
            if alert is not None:
                raise _Unsent(_tls_problem(alert, security)) from None
            if isinstance(e, aiohttp.ServerDisconnectedError):
                raise _Disconnected(str(e) or "the member closed the connection") from None
            raise _Failed(reasons) from None
        except asyncio.TimeoutError:
            raise _Failed("no answer within %.1fs" % timeout) from None
        try:
            answer = orjson.loads(content or b"null")
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict) or "error" in answer:
            code = answer.get("code") if isinstance(answer, dict) else None
            message = (answer.get("message") or answer.get("error")) if isinstance(answer, dict) \
                else content[:200].decode("utf-8", "replace")
            message = "%s (HTTP %d)" % (message, status)
            if code == UNAVAILABLE or status in (502, 503, 504):
                if any(m in message for m in _NOT_APPLIED_MESSAGES):
                    raise _Unsent(message, electing=True)
                raise _Failed(message)
            if code == PERMISSION_DENIED:
                raise EtcdAuthError("etcd %s at %s: %s: etcd user %r lacks a permission it "
                                    "needs (docs/distributed.md gives its role)"
                                    % (path, endpoint, message, security.user))
            raise EtcdError("etcd %s at %s: %s" % (path, endpoint, message), code=code,
                            endpoint=endpoint)
        self.note_revision(answer.get("header"))
        return answer

    async def _tls_refusal(self, endpoint: Endpoint) -> Optional[str]:
        """The TLS alert ``endpoint`` refuses this client with, if it does: read over a
        connection of our own, as a request is sent and its answer awaited (the alert
        of TLS 1.3 comes then). None if the member answers, or fails otherwise."""
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=self._ssl), self.connect_timeout)
            writer.write(b"POST /v3/maintenance/status HTTP/1.1\r\nHost: %s\r\n"
                         b"Content-Length: 2\r\n\r\n{}" % str(endpoint).encode("ascii"))
            await asyncio.wait_for(reader.read(1), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:  # ssl.SSLError is an OSError
            return str(e) if "alert" in str(e).lower() else None
        finally:
            if writer is not None:
                writer.close()
        return None

    def note_revision(self, header: Optional[Json]) -> None:
        if header and header.get("cluster_id"):
            self.cluster_id = str(header["cluster_id"])
        if header and "revision" in header:
            revision = int(header["revision"])
            if revision > self.seen_revision:
                self.seen_revision = revision

    # -- streams ------------------------------------------------------------------

    async def open_stream(self, endpoint: Endpoint, path: str, body: Json,
                          on_message: Callable[[Json], None]) -> "Stream":
        """Start a streaming call on ``endpoint``; returns a Stream whose ``done``
        finishes when the stream ends. ``on_message(dict)`` gets each message."""
        if self.security.user is not None and self._token is None:
            await self.authenticate()
        stream = Stream(endpoint, on_message, security=self.security,
                        headers=self.auth_headers())
        await stream.open(path, body, connect_timeout=self.connect_timeout)
        return stream


class Stream:
    """One streaming answer (a watch): newline-separated JSON messages."""

    #: Finishes (possibly with an exception) when the stream ends; set by open().
    done: "asyncio.Future[Any]"

    def __init__(self, endpoint: Endpoint, on_message: Callable[[Json], None], *,
                 security: EtcdSecurity = EtcdSecurity(),
                 headers: Optional[dict[str, str]] = None) -> None:
        self.endpoint = endpoint
        self._security = security
        self._extra_headers = headers or {}
        self._on_message = on_message
        self._iostream: Optional[tornado.iostream.IOStream] = None
        self._buffer = b""
        self.status: Optional[int] = None

    async def open(self, path: str, body: Json, *, connect_timeout: float) -> None:
        try:
            iostream = await tornado.tcpclient.TCPClient().connect(
                self.endpoint.host, self.endpoint.port, timeout=connect_timeout,
                ssl_options=self._security.ssl_context() if self._security.tls else None)
        except ssl.SSLError as e:
            raise StoreUnavailable("cannot connect to etcd member %s: %s" % (
                self.endpoint, _tls_problem(str(e), self._security))) from e
        except (OSError, tornado.iostream.StreamClosedError, asyncio.TimeoutError,
                tornado.util.TimeoutError) as e:
            raise StoreUnavailable("cannot connect to etcd member %s: %s"
                                   % (self.endpoint, e)) from e
        self._iostream = iostream
        conn = HTTP1Connection(iostream, True, HTTP1ConnectionParameters(
            no_keep_alive=True, max_body_size=1 << 60, decompress=False))
        data = json.dumps(body).encode("utf-8")
        conn.write_headers(
            tornado.httputil.RequestStartLine("POST", path, "HTTP/1.1"),
            tornado.httputil.HTTPHeaders({"Host": str(self.endpoint),
                                          "Content-Type": "application/json",
                                          "Content-Length": str(len(data)),
                                          **self._extra_headers}))
        conn.write(data)
        conn.finish()
        self.done = asyncio.ensure_future(conn.read_response(_Delegate(self)))
        # Closing the stream is how a watch ends: that error is expected, not news.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def close(self) -> None:
        if self._iostream is not None:
            self._iostream.close()

    def _headers(self, start_line: tornado.httputil.ResponseStartLine) -> None:
        self.status = start_line.code

    def _data(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            if line.strip():
                self._message(line)

    def _finish(self) -> None:
        if self._buffer.strip():
            self._message(self._buffer)
        self._buffer = b""

    def _message(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
        except ValueError:
            message = {"error": {"message": "not JSON: %r" % line[:200]}}
        self._on_message(message if isinstance(message, dict) else {"error": {}})


class _Delegate(tornado.httputil.HTTPMessageDelegate):
    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def headers_received(
        self,
        start_line: "tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine",
        headers: tornado.httputil.HTTPHeaders,
    ) -> None:
        if isinstance(start_line, tornado.httputil.ResponseStartLine):  # always: a client's
            self.stream._headers(start_line)

    def data_received(self, chunk: bytes) -> None:
        self.stream._data(chunk)

    def finish(self) -> None:
        self.stream._finish()

    def on_connection_close(self) -> None:
        self.stream._finish()


#: A member's host: a DNS name or an IPv4 address (IPv6 goes in brackets).
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", re.ASCII)
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+", re.ASCII)


def parse_endpoints(text: str) -> list[Endpoint]:
    """``host:port[,host:port...]`` -> [Endpoint]; ValueError says what is wrong."""
    endpoints = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError("empty member address")
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            good_host = bool(_IPV6.fullmatch(host)) and ":" in host
            port = None if not rest else rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = item.partition(":") if ":" in item else (item, "", None)
            good_host = bool(_HOST.fullmatch(host))
        if not good_host:
            raise ValueError("%r is not host:port (a host name, an IPv4 address or an "
                             "[IPv6] address)" % item)
        if port is None:
            number = 2379
        elif port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            number = int(port)
        else:
            raise ValueError("%r: the port must be a number from 1 to 65535" % item)
        endpoints.append(Endpoint(host, number))
    return endpoints
