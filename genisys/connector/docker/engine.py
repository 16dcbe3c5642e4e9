"""The Docker engine, reached through the (blocking) Docker SDK in worker threads.

Every call runs in a thread pool (``call``), so the connector's event loop
never waits on the engine. Stopping a container can take its whole grace
period, so stops have a pool of their own (``call(..., slow=True)``) and can
never starve the quick calls (list, create, start, remove) that status and
scale answers wait on.

The SDK's client is created on first use, not at start: it asks the engine
for its API version, and a connector must start (and answer 503) while its
engine is down. Transport failures (no socket, connection refused, reset,
no answer in time) become ``BackendUnavailable`` naming the engine's
address; the engine's own refusals (``docker.errors.APIError``) go back to
the caller, who knows what they mean for its operation.
"""

import asyncio
import concurrent.futures
import functools
import logging
import threading

import docker
import docker.errors
import requests.exceptions

from genisys.errors import BackendUnavailable

log = logging.getLogger(__name__)

#: Seconds one call may wait for the engine before it counts as not answering.
#: Generous: creating a container of a big image on a slow storage driver takes a
#: while; a stop waits this on top of its grace period.
ENGINE_TIMEOUT = 30.0
#: Threads for quick calls: status and scale of several services at once, and a
#: few containers of one scale created concurrently.
CALL_THREADS = 8
#: Threads for stops, each of which may wait a whole grace period.
STOP_THREADS = 16
#: Where the engine listens when neither --docker-url nor DOCKER_HOST says.
DEFAULT_URL = "unix:///var/run/docker.sock"


class Engine:
    """One Docker engine: ``call(fn, ...)`` runs ``fn(api, ...)`` in a worker thread, with
    ``api`` the SDK's low-level ``docker.APIClient``. ``close()`` when done."""

    def __init__(self, *, url=None, environ=None, timeout=ENGINE_TIMEOUT):
        """``url``: the engine's API (``unix://``, ``tcp://``, ``ssh://``); None: DOCKER_HOST
        of ``environ`` (the process environment by default), else the usual socket.
        DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply either way."""
        self._kwargs = docker.utils.kwargs_from_env(environment=environ)
        if url:
            self._kwargs["base_url"] = url
        self.url = self._kwargs.get("base_url") or DEFAULT_URL
        self.timeout = timeout
        self._api = None
        self._api_lock = threading.Lock()
        self._calls = concurrent.futures.ThreadPoolExecutor(
            CALL_THREADS, thread_name_prefix="docker-call")
        self._stops = concurrent.futures.ThreadPoolExecutor(
            STOP_THREADS, thread_name_prefix="docker-stop")

    def check_url(self):
        """Raise ValueError if the SDK can't use ``url`` at all (a typo, not an outage)."""
        try:
            docker.utils.parse_host(self._kwargs.get("base_url"), tls=bool(
                self._kwargs.get("tls")))
        except docker.errors.DockerException as e:
            raise ValueError("%s: %s" % (self.url, e)) from e

    async def call(self, fn, *args, slow=False, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._stops if slow else self._calls,
                                          functools.partial(self._run, fn, args, kwargs))

    def close(self):
        """Let calls in flight finish in their threads; refuse new ones."""
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._stops.shutdown(wait=False, cancel_futures=True)
        with self._api_lock:
            if self._api is not None:
                self._api.close()

    # -- in worker threads -----------------------------------------------------------

    def _run(self, fn, args, kwargs):
        try:
            return fn(self._client(), *args, **kwargs)
        except docker.errors.APIError:
            raise  # the engine answered: the caller knows what the refusal means
        except requests.exceptions.Timeout as e:
            raise BackendUnavailable("the Docker engine at %s did not answer within %gs"
                                     % (self.url, self.timeout)) from e
        except requests.exceptions.RequestException as e:
            raise BackendUnavailable("cannot reach the Docker engine at %s: %s"
                                     % (self.url, _reason(e))) from e

    def _client(self):
        with self._api_lock:
            if self._api is None:
                try:
                    self._api = docker.APIClient(
                        version="auto", timeout=self.timeout,
                        max_pool_size=CALL_THREADS + STOP_THREADS, **self._kwargs)
                except docker.errors.DockerException as e:
                    raise BackendUnavailable("cannot reach the Docker engine at %s: %s"
                                             % (self.url, _reason(e))) from e
                log.info("Docker engine at %s: API version %s", self.url,
                         self._api.api_version)
            return self._api


def _reason(exc):
    """The innermost cause of a transport failure, which says what happened ("No such
    file or directory", "Connection refused") without the layers requests adds."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        exc = inner
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
