"""How genisys calls a connector: the protocol, timeouts, bounded concurrency, errors.

The protocol is the seed project's:

* ``GET  <connector>/service/<name>/status`` → ``{"running_resources": N}``
* ``POST <connector>/service/<name>/scale`` with ``{"number": N}`` → any 2xx

Transport failures become this module's own small error tree, chained with
``from e``, so nothing above knows which HTTP library runs. Each error
carries the status ``condition`` it puts a (service, compute) pair in.
Calls to one connector are bounded (``max_in_flight``) so a slow connector
never holds every connection; tornado's curl client keeps connections alive
between calls (tornado's simple client opens one per request).
"""

import asyncio
import json
import logging
import time
import urllib.parse

import pycurl
import tornado.httpclient
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError

from genisys.errors import GenisysError

log = logging.getLogger(__name__)

#: How much of a connector's answer an error message quotes.
BODY_EXCERPT = 256



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


class ServiceNotDefined(ConnectorError):
    """404: the connector has no definition for this service."""

    reason = "ServiceNotDefined"


class ConnectorUnavailable(ConnectorError):
    """503: the connector answers, but what it drives does not (its Docker engine is
    down): as unreachable as a connector that is down itself."""

    reason = "ConnectorUnavailable"
    condition = "Unreachable"


class ConnectorBadResponse(ConnectorFailure):
    """A 2xx answer that is not what the protocol says (garbage JSON, wrong shape)."""

    reason = "ConnectorBadResponse"


def _excerpt(body):
    text = body[:BODY_EXCERPT].decode("utf-8", errors="replace")
    return text.strip() or "(empty body)"


def _error_message(body):
    """The message of a JSON error body in genisys' shape, else the body itself."""
    try:
        error = json.loads(body)["error"]
        return str(error.get("message") or error.get("reason"))[:BODY_EXCERPT]
    except (ValueError, KeyError, TypeError, AttributeError):
        return _excerpt(body)


class ConnectorClient:
    """Calls connectors; one per controller, closed with ``close()``."""

    def __init__(self, *, connect_timeout, request_timeout, max_in_flight=8, ca_file=None,
                 metrics=None):
        #: Seconds to establish a connection.
        self.connect_timeout = connect_timeout
        #: Seconds for a whole call, connection included.
        self.request_timeout = request_timeout
        #: Calls in flight to one connector at most; others wait their turn.
        self.max_in_flight = max_in_flight
        #: CA bundle that signs https connectors' certificates (None: the system's).
        self.ca_file = ca_file
        self.metrics = metrics
        self._http = None
        self._limits = {}

    def _client(self):
        # Made on first use: the curl client binds to the loop current when it
        # is created. The pool is large enough that the per-connector bound,
        # not the pool, limits calls (a request queued in the pool would time
        # out there).
        if self._http is None:
            self._http = CurlAsyncHTTPClient(force_instance=True, max_clients=512)
        return self._http

    def close(self):
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- the protocol -------------------------------------------------------

    async def running(self, compute, service):
        """How many resources of ``service`` the connector of ``compute`` runs."""
        body = await self._call(compute, service, "status", "GET", None)
        try:
            value = json.loads(body)["running_resources"]
        except (ValueError, KeyError, TypeError) as e:
            raise ConnectorBadResponse(
                "status of %s from %s is not {\"running_resources\": N}: %s"
                % (service, compute.connector, _excerpt(body))) from e
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConnectorBadResponse("status of %s from %s has running_resources %r, not a "
                                       "count" % (service, compute.connector, value))
        return value

    async def scale(self, compute, service, number):
        """Order the connector of ``compute`` to run exactly ``number`` resources.

        Returns the running count the answer reports, if it does (the SDK's
        connectors do; the protocol only asks for a 2xx), else None."""
        body = await self._call(compute, service, "scale", "POST",
                                json.dumps({"number": number}))
        try:
            value = json.loads(body)["running_resources"]
        except (ValueError, KeyError, TypeError):
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        return value

    # -- transport ----------------------------------------------------------

    def _url(self, compute, service, operation):
        base = compute.connector.rstrip("/")
        return "%s/service/%s/%s" % (base, urllib.parse.quote(service, safe=""), operation)

    def _limit(self, connector):
        limit = self._limits.get(connector)
        if limit is None:
            limit = self._limits[connector] = asyncio.Semaphore(self.max_in_flight)
        return limit

    async def _call(self, compute, service, operation, method, body):
        url = self._url(compute, service, operation)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if compute.token is not None:
            headers["Authorization"] = "Bearer " + compute.token
        request = tornado.httpclient.HTTPRequest(
            url, method=method, body=body, connect_timeout=self.connect_timeout,
            request_timeout=self.request_timeout, follow_redirects=False,
            validate_cert=True, ca_certs=self.ca_file, headers=headers)
        limit = self._limit(compute.connector)
        # Waiting for a turn counts against the timeout too: with a connector that
        # hangs, the calls queued behind the hung ones fail as fast as those do.
        try:
            await asyncio.wait_for(limit.acquire(), self.request_timeout)
        except asyncio.TimeoutError:
            self._observe(compute, operation, "queued", self.request_timeout)
            raise ConnectorTimeout("%s %s: %d calls to this connector were still in flight "
                                   "after %gs" % (method, url, self.max_in_flight,
                                                  self.request_timeout)) from None
        started, outcome = time.monotonic(), "error"
        try:
            response = await self._fetch(request, url)
            outcome = "ok" if 200 <= response.code < 300 else str(response.code)
        except ConnectorTimeout:
            outcome = "timeout"
            raise
        except ConnectorUnreachable:
            outcome = "unreachable"
            raise
        finally:
            limit.release()
            self._observe(compute, operation, outcome, time.monotonic() - started)
        if outcome != "ok":
            raise self._status_error(response, method, url)
        return response.body or b""

    def _observe(self, compute, operation, outcome, seconds):
        if self.metrics is not None:
            self.metrics.call_seconds.labels(compute.name, operation, outcome).observe(seconds)

    async def _fetch(self, request, url):
        try:
            return await self._client().fetch(request, raise_error=False)
        except CurlError as e:
            if e.errno == pycurl.E_OPERATION_TIMEDOUT:
                raise ConnectorTimeout("%s %s: no answer within %gs"
                                       % (request.method, url, self.request_timeout)) from e
            raise ConnectorUnreachable("%s %s: %s" % (request.method, url, e.message)) from e
        except tornado.httpclient.HTTPClientError as e:
            # Tornado's own timeout, for a request that waited too long in its queue.
            if e.code == 599:
                raise ConnectorTimeout("%s %s: %s" % (request.method, url, e.message)) from e
            raise ConnectorError("%s %s: %s" % (request.method, url, e),
                                 status=e.code, body=b"") from e
        except OSError as e:
            raise ConnectorUnreachable("%s %s: %s" % (request.method, url, e.strerror or e)) \
                from e

    def _status_error(self, response, method, url):
        body = response.body or b""
        detail = _error_message(body)
        if response.code in (401, 403):
            return ConnectorUnauthorized(
                "%s %s: %d, the connector refused %s: %s"
                % (method, url, response.code, "the compute's token" if response.request.headers
                   .get("Authorization") else "a call without a token (give the compute one)",
                   detail), status=response.code, body=body)
        if response.code == 404:
            return ServiceNotDefined("%s %s: 404, the connector has no such service: %s"
                                     % (method, url, detail), status=404, body=body)
        if response.code == 503:
            return ConnectorUnavailable("%s %s: 503, the connector is unavailable: %s"
                                        % (method, url, detail), status=503, body=body)
        return ConnectorError("%s %s: %d %s" % (method, url, response.code, detail),
                              status=response.code, body=body)
