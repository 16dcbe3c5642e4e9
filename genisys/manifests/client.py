"""A small client of the genisys HTTP API, for the CLI and the sidecar.

Everything they do goes through the API, so nothing skips its validation,
its limits or its audit trail. Errors come back as ``ApiError`` (genisys
answered with an error: its reason, message and field) or ``Unreachable``
(no answer at all).
"""

import json
import uuid
import warnings

from genisys.errors import GenisysError

# requests (and urllib3) are imported by the methods that use them: ``genisys serve``
# and ``genisys connector`` build the whole command line, client commands included, but
# never talk to genisys as a client, and those imports cost every server process some
# 0.1 s of CPU at start-up.

DEFAULT_SERVER = "http://127.0.0.1:7001"


class Unreachable(GenisysError):
    reason = "Unreachable"


class ApiError(GenisysError):
    """An error answer of genisys."""

    def __init__(self, status, reason, message, field=None):
        super().__init__(message, field=field)
        self.status = status
        self.reason = reason

    def __str__(self):
        where = "%s: " % self.field if self.field else ""
        return "%s%s (%d %s)" % (where, self.message, self.status, self.reason)


class Client:
    """``server``: base URL; ``token``: sent as a bearer token; ``verify``: True, a CA
    bundle path, or False (only for talking to oneself over loopback)."""

    def __init__(self, server=DEFAULT_SERVER, *, token=None, verify=True, timeout=10.0,
                 user_agent="genisys-cli"):
        import requests

        self.server = server.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = user_agent
        if token:
            self.session.headers["Authorization"] = "Bearer " + token

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, body=None, *, headers=None, retries=0):
        """The decoded JSON answer (and its headers) of a 2xx; ApiError or Unreachable.

        ``retries``: how many times to try again after no answer or a 503, for
        requests that are safe to repeat (reads, PUT, DELETE, keyed scales)."""
        import requests
        import urllib3

        url = self.server + path
        for attempt in range(retries + 1):
            try:
                with warnings.catch_warnings():
                    # verify=False is only used against our own loopback listener.
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    answer = self.session.request(method, url, json=body, headers=headers,
                                                  timeout=self.timeout)
            except requests.exceptions.SSLError as e:
                raise Unreachable("cannot talk to genisys at %s: TLS error: %s"
                                  % (self.server, _root_cause(e))) from e
            except requests.RequestException as e:
                if attempt < retries:
                    continue
                raise Unreachable("cannot reach genisys at %s: %s"
                                  % (self.server, _root_cause(e))) from e
            if answer.status_code == 503 and attempt < retries:
                continue
            break
        return self._raise(answer, url), answer.headers

    @staticmethod
    def _raise(answer, url):
        """The decoded JSON of ``answer`` (None: not JSON); ApiError if it is an error."""
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.status_code >= 400:
            error = (data or {}).get("error") if isinstance(data, dict) else None
            if not isinstance(error, dict):
                raise ApiError(answer.status_code, answer.reason or "Error",
                               "unexpected answer from %s: %s" % (url, answer.text[:200]))
            raise ApiError(answer.status_code, error.get("reason", "Error"),
                           error.get("message", ""), error.get("field"))
        return data

    def get(self, path):
        return self.request("GET", path, retries=2)[0]

    def watch(self, path, *, reconnects=5):
        """The Server-Sent Events of a watch (``GET path`` with ?watch=1), as
        (event, data) pairs, for as long as it lasts; a dropped stream is picked up
        again where it was (``Last-Event-ID``), ``reconnects`` times in a row at most."""
        import requests

        last_id, failures = None, 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                # The read timeout outlasts the server's keep-alives (every 15 s).
                with self.session.get(self.server + path, headers=headers, stream=True,
                                      timeout=(self.timeout, 60.0)) as answer:
                    if answer.status_code >= 400:
                        self._raise(answer, self.server + path)
                    failures = 0
                    for event_id, event, data in _server_sent_events(answer):
                        last_id = event_id or last_id
                        yield event, data
                return  # the server ended the watch
            except requests.RequestException as e:
                failures += 1
                if failures > reconnects:
                    raise Unreachable("lost the watch of genisys at %s: %s"
                                      % (self.server, _root_cause(e))) from e

    # A write with ``dry_run`` is sent with ?dryRun=true: genisys answers what it would
    # answer (an error as it is; a success as {"dryRun", "status", "result", "plan",
    # "revision"}) and writes nothing.

    def put(self, path, body, *, if_match=None, dry_run=False):
        headers = {"If-Match": '"%d"' % if_match} if if_match else None
        return self.request("PUT", _dry(path, dry_run), body, headers=headers, retries=2)[0]

    def delete(self, path, *, if_match=None, dry_run=False):
        headers = {"If-Match": '"%d"' % if_match} if if_match else None
        return self.request("DELETE", _dry(path, dry_run), headers=headers, retries=2)[0]

    def change(self, path, body, *, dry_run=False):
        """A scale, upscale or downscale, with an Idempotency-Key so that retrying
        after a lost answer can't apply it twice."""
        headers = {"Idempotency-Key": "genisys-cli-" + uuid.uuid4().hex}
        return self.request("POST", _dry(path, dry_run), body, headers=headers, retries=3)[0]

    def post(self, path, body=None, *, dry_run=False):
        """A POST that is not safe to repeat (a rebalance): sent once."""
        return self.request("POST", _dry(path, dry_run), body)[0]

    # -- what the commands read ------------------------------------------------

    def computes(self):
        return self.get("/compute")

    def services(self):
        return self.get("/service")

    def plan(self, *, since=None):
        """GET /plan: what the controller would do now (with ``since``, a revision: also
        the objects written after it, as "moved")."""
        return self.get("/plan" if since is None else "/plan?since=%d" % since)

    def max_replicas(self):
        """The server's max_replicas, as its OpenAPI document states it (None if unknown)."""
        try:
            document = self.get("/openapi.json")
            return document["components"]["schemas"]["Count"]["maximum"]
        except (ApiError, KeyError, TypeError):
            return None


def _server_sent_events(answer):
    """(id, event, data decoded from JSON) of each message of a text/event-stream."""
    event_id, event, data = None, "message", []
    for line in answer.iter_lines(decode_unicode=False):
        line = line.decode("utf-8", "replace")
        if not line:
            if data:
                yield event_id, event, json.loads("\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a keep-alive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id":
            event_id = value


def _dry(path, dry_run):
    return path + "?dryRun=true" if dry_run else path


def _root_cause(error):
    """The innermost reason of a requests error, short ("Connection refused")."""
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    text = str(cause) or type(cause).__name__
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:200]
