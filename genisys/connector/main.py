"""The bundled connector as a process: ``genisys connector`` (settings, start-up, shutdown).

Start-up, in an order where a failure costs nothing: read the ``--services``
file (a bad one: exit 2, nothing touched), bind the port (in use: exit 1),
start the backend (take the state directory's lock, re-adopt processes),
apply the file's definitions, serve. SIGTERM or SIGINT: stop accepting, let
in-flight requests finish, ``backend.close()`` (which stops every process it
runs), exit 0. A connector killed with SIGKILL leaves its processes running;
the next one on the same state directory adopts them. The docker backend
leaves its containers running whichever way it stops: the engine keeps them,
and the next connector with the same ``--connector-id`` takes them over.
"""

import asyncio
import dataclasses
import errno
import logging
import signal
from typing import Optional

import tornado.netutil

from genisys.auth import Authenticator
from genisys.connector.batch import MAX_BODY_BYTES as BATCH_MAX_BODY_BYTES
from genisys.connector.definitions import load_definitions_file
from genisys.connector.docker.backend import DockerBackend
from genisys.connector.process import ProcessBackend
from genisys.connector.server import make_connector_app
from genisys.connector.simulated import SimulatedBackend
from genisys.errors import StartupError
from genisys.model import is_loopback
from genisys.web import Server, drain

log = logging.getLogger("genisys.connector")

#: Largest body the HTTP server reads at all (past it, the connection is just closed).
#: Handlers refuse more than their own limit with a JSON 413: 64 KiB, 1 MiB for the
#: batch requests; twice the largest, so that a body somewhat over it still gets one.
SERVER_MAX_BODY_BYTES = 2 * BATCH_MAX_BODY_BYTES

BACKENDS = ("process", "simulated", "docker")


@dataclasses.dataclass(frozen=True)
class ProcessSettings:
    #: Where the state file, the lock and the processes' logs live. Under ./var,
    #: beside the controller's database, so `make clean` style tidying finds it.
    state_dir: str = "./var/connector"
    #: Seconds a stopped process gets between SIGTERM and SIGKILL: long enough
    #: for a server to finish its requests, short enough for a scale-down to end.
    grace_period: float = 10.0


@dataclasses.dataclass(frozen=True)
class SimulatedSettings:
    #: Seconds added to every status and scale call (0: answer at once).
    latency: float = 0.0
    #: Probability (0 to 1) that a status or scale call answers 500 (0: never).
    failure_rate: float = 0.0
    #: Seconds before a new resource counts as running (0: at once).
    start_delay: float = 0.0


@dataclasses.dataclass(frozen=True)
class DockerSettings:
    #: The engine's API (unix://, tcp://, ssh://). None: DOCKER_HOST, else
    #: unix:///var/run/docker.sock, as the docker command does.
    url: Optional[str] = None
    #: The value of the genisys.connector label on every container it creates: two
    #: connectors on one engine need two ids. A restarted connector must keep its id to
    #: find its containers again, so it is a fixed default, not something generated.
    connector_id: str = "default"
    #: Where the definitions and the lock live. Not ./var/connector, so that it can run
    #: beside the process connector of `make run`.
    state_dir: str = "./var/docker-connector"
    #: Seconds a stopped container gets between its stop signal and SIGKILL (the
    #: engine's own default for `docker stop`).
    grace_period: float = 10.0
    #: "missing": pull an image that is not on the engine before the first container;
    #: "never": refuse (for engines that only run images loaded on purpose).
    pull: str = "missing"


@dataclasses.dataclass(frozen=True)
class ConnectorServerSettings:
    #: "process" (real OS processes), "docker" (containers) or "simulated" (virtual
    #: resources, for demos and tests).
    backend: str = "process"
    #: Address to listen on. Loopback by default: whoever reaches the connector can
    #: start and stop processes, so exposing it is a decision made explicitly.
    bind: str = "127.0.0.1"
    #: TCP port (the seed's connectors listen on 7051). 0 picks a free port.
    port: int = 7051
    #: YAML or JSON file of service definitions applied at start (None: none).
    services_file: Optional[str] = None
    #: Logging level (DEBUG, INFO, WARNING, ERROR).
    log_level: str = "INFO"
    #: Tokens a caller must present (GENISYS_CONNECTOR_TOKEN; genisys sends the
    #: compute's ``token``). Empty: no authentication, loopback only.
    tokens: tuple = ()
    #: Listen beyond loopback without a token anyway (explicit, and warned about).
    insecure_bind_any: bool = False
    #: Offer the batch extension (GET /capabilities, POST /batch/status and /batch/scale):
    #: genisys then asks about many services per call. On by default, as it costs
    #: nothing when unused; off (--no-batch), those paths answer 404 and genisys uses
    #: the per-service protocol (the benchmarks compare the two this way).
    batch: bool = True
    process: ProcessSettings = ProcessSettings()
    simulated: SimulatedSettings = SimulatedSettings()
    docker: DockerSettings = DockerSettings()


def make_backend(settings):
    if settings.backend == "process":
        return ProcessBackend(state_dir=settings.process.state_dir,
                              grace_period=settings.process.grace_period)
    if settings.backend == "simulated":
        return SimulatedBackend(latency=settings.simulated.latency,
                                failure_rate=settings.simulated.failure_rate,
                                start_delay=settings.simulated.start_delay)
    if settings.backend == "docker":
        return DockerBackend(url=settings.docker.url, connector_id=settings.docker.connector_id,
                             state_dir=settings.docker.state_dir,
                             grace_period=settings.docker.grace_period,
                             pull=settings.docker.pull)
    raise ValueError("unknown backend %r" % settings.backend)


def _bind(settings):
    try:
        return tornado.netutil.bind_sockets(settings.port, address=settings.bind)
    except OSError as e:
        hint = " (address already in use)" if e.errno == errno.EADDRINUSE else ""
        raise StartupError("cannot listen on %s:%d: %s%s" % (
            settings.bind, settings.port, e.strerror or e, hint)) from e


async def run_connector(settings, *, stop=None):
    """Serve until ``stop`` (an asyncio.Event) is set or SIGTERM/SIGINT arrives.

    Raises ConfigError for a bad services file, StartupError when it cannot start."""
    backend = make_backend(settings)  # nothing starts yet: it says how to read the file
    definitions = []
    if settings.services_file:
        definitions = load_definitions_file(settings.services_file, backend.definition_class)

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        sockets = _bind(settings)
        try:
            await backend.start()
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        try:
            for definition in definitions:
                created = await backend.put_definition(definition)
                log.info("%s service %s from %s", "defined" if created else "loaded",
                         definition.name, settings.services_file)
            await _serve(settings, backend, sockets, stop)
        finally:
            await backend.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")


async def _serve(settings, backend, sockets, stop):
    app = make_connector_app(backend, auth=Authenticator(settings.tokens), batch=settings.batch)
    if settings.tokens:
        log.info("tokens: %s", ", ".join(t.name for t in settings.tokens))
    elif not is_loopback(settings.bind):
        log.warning("INSECURE: listening on %s without a token (--insecure-bind-any): anyone "
                    "who can reach this port can start and stop processes", settings.bind)
    server = Server(app, max_body_size=SERVER_MAX_BODY_BYTES, xheaders=False)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    log.info("genisys connector listening on http://%s:%d (backend %s)", settings.bind, port,
             backend.name)
    try:
        await stop.wait()
    finally:
        await drain(server, app.tracker, logger=log)
