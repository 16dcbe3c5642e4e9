"""The bundled connector as a process: ``genisys connector`` (settings, start-up, shutdown).

Start-up, in an order where a failure costs nothing: read the ``--services``
file (a bad one: exit 2, nothing touched), bind the port (in use: exit 1),
start the backend (take the state directory's lock, re-adopt processes),
apply the file's definitions, serve. SIGTERM or SIGINT: stop accepting, let
in-flight requests finish, ``backend.close()`` (which stops every process it
runs), exit 0. A connector killed with SIGKILL leaves its processes running;
the next one on the same state directory adopts them. The docker backend
leaves its containers running whichever way it stops: the engine keeps them,
and the next connector with the same ``--connector-id`` takes them over; so
does the aws backend its instances (AWS keeps them).
"""

import asyncio
import dataclasses
import logging
import os
from typing import Optional

from genisys.auth import Authenticator
from genisys.connector.batch import MAX_BATCH_BODY_BYTES
from genisys.connector.definitions import load_definitions_file
from genisys.connector.fence import TERMS_FILE, Fence
from genisys.connector.process import ProcessBackend
from genisys.connector.server import make_connector_app
from genisys.connector.simulated import SimulatedBackend
from genisys.errors import ConfigError
from genisys.serving import Exposure, bind_sockets, log_access, stop_on_signals
from genisys.web import SERVER_MAX_HEADER_BYTES, Server, drain

log = logging.getLogger("genisys.connector")

#: Largest body the HTTP server reads at all (past it, the connection is just closed).
#: Handlers refuse more than their own limit with a JSON 413: 64 KiB, 1 MiB for the
#: batch requests; twice the largest, so that a body somewhat over it still gets one.
SERVER_MAX_BODY_BYTES = 2 * MAX_BATCH_BODY_BYTES
#: Seconds a connection may stay idle, and a client may take to send its request
#: head, then its body: one that trickles them (slow-loris) gives its connection up.
#: A minute: genisys keeps its connections alive between resyncs (15 s apart by
#: default), and closing them sooner would only make it connect again.
IDLE_SECONDS = 60.0
BODY_SECONDS = 60.0

BACKENDS = ("process", "simulated", "docker", "aws")
#: Largest --capacity: a typo guard, like the controller's max_replicas, far above
#: what one connector runs.
MAX_CAPACITY = 1_000_000

#: What the connector's refusal to listen without a token, and its warning, say.
EXPOSURE = Exposure(without="a token", risk="start and stop processes",
                    remedy="Set GENISYS_CONNECTOR_TOKEN (and the compute's token in genisys)",
                    field="--bind")


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
class AwsSettings:
    #: The AWS region (None: the standard chain's: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws).
    region: Optional[str] = None
    #: Another EC2 and Auto Scaling endpoint (moto's server, LocalStack); None: AWS's own.
    endpoint_url: Optional[str] = None
    #: The value of the genisys:connector tag of every instance it launches: two connectors
    #: in one account and region need two ids; a restarted one must keep its id.
    connector_id: str = "default"
    #: Where the definitions, the in-flight ledger and the lock live.
    state_dir: str = "./var/aws-connector"
    #: Seconds a launch counts while DescribeInstances does not list its instances yet:
    #: AWS's eventual consistency lasts seconds; two minutes is far beyond it.
    in_flight_timeout: float = 120.0
    #: Seconds genisys is told to wait (Retry-After) when AWS throttles the connector's
    #: calls past botocore's own retries.
    retry_after: float = 5.0


@dataclasses.dataclass(frozen=True)
class ConnectorServerSettings:
    #: "process" (real OS processes), "docker" (containers), "aws" (EC2 instances, Auto
    #: Scaling groups) or "simulated" (virtual resources, for demos and tests).
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
    #: The most resources the connector runs at once, over all its services: a scale
    #: order past it is refused (409 InsufficientCapacity), and GET /capabilities reports
    #: it with what is used, for genisys' placement. None: no limit (the aws backend: the
    #: account's max-instances, if AWS tells it at start).
    capacity: Optional[int] = None
    process: ProcessSettings = ProcessSettings()
    simulated: SimulatedSettings = SimulatedSettings()
    docker: DockerSettings = DockerSettings()
    aws: AwsSettings = AwsSettings()


def _docker_backend_class():
    """The docker backend, imported only when asked for: the Docker SDK it needs is the
    ``genisys[docker]`` extra, which the controller's install does not carry."""
    try:
        from genisys.connector.docker.backend import DockerBackend
    except ImportError as e:
        if e.name != "docker" and not (e.name or "").startswith("docker."):
            raise
        raise ConfigError("the docker backend needs the Docker SDK, which is not installed: "
                          "pip install 'genisys[docker]'", field="--backend") from e
    return DockerBackend


def _aws_backend_class():
    """The aws backend, imported only when asked for (boto3 is the ``genisys[aws]`` extra)."""
    try:
        from genisys.connector.aws.backend import AwsBackend
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("boto3", "botocore"):
            raise
        raise ConfigError("the aws backend needs boto3, which is not installed: "
                          "pip install 'genisys[aws]'", field="--backend") from e
    return AwsBackend


def make_backend(settings):
    if settings.backend == "process":
        return ProcessBackend(state_dir=settings.process.state_dir,
                              grace_period=settings.process.grace_period)
    if settings.backend == "simulated":
        return SimulatedBackend(latency=settings.simulated.latency,
                                failure_rate=settings.simulated.failure_rate,
                                start_delay=settings.simulated.start_delay)
    if settings.backend == "docker":
        docker_backend = _docker_backend_class()
        return docker_backend(url=settings.docker.url, connector_id=settings.docker.connector_id,
                              state_dir=settings.docker.state_dir,
                              grace_period=settings.docker.grace_period,
                              pull=settings.docker.pull)
    if settings.backend == "aws":
        aws_backend = _aws_backend_class()
        return aws_backend(state_dir=settings.aws.state_dir, region=settings.aws.region,
                           endpoint_url=settings.aws.endpoint_url,
                           connector_id=settings.aws.connector_id,
                           in_flight_timeout=settings.aws.in_flight_timeout,
                           retry_after=settings.aws.retry_after)
    raise ValueError("unknown backend %r" % settings.backend)


def _state_dir(settings):
    """The backend's state directory (None: the simulated backend has none)."""
    backend_settings = getattr(settings, settings.backend, None)
    return getattr(backend_settings, "state_dir", None)


async def run_connector(settings, *, stop=None):
    """Serve until ``stop`` (an asyncio.Event) is set or SIGTERM/SIGINT arrives.

    Raises ConfigError for a bad services file, StartupError when it cannot start."""
    backend = make_backend(settings)  # nothing starts yet: it says how to read the file
    definitions = []
    if settings.services_file:
        definitions = load_definitions_file(settings.services_file, backend.definition_class)

    with stop_on_signals(stop or asyncio.Event()) as stop:
        sockets = bind_sockets(bind=settings.bind, port=settings.port)
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
    log.info("stopped")


async def _serve(settings, backend, sockets, stop):
    capacity = settings.capacity
    if capacity is None:
        capacity = await backend.capacity_limit()
        if capacity is not None:
            log.info("capacity %d, as %s reports (--capacity sets another)", capacity,
                     backend.name)
    state_dir = _state_dir(settings)
    fence = Fence(path=os.path.join(state_dir, TERMS_FILE) if state_dir else None)
    app = make_connector_app(backend, auth=Authenticator(settings.tokens), batch=settings.batch,
                             capacity=capacity, fence=fence)
    log_access(log, EXPOSURE, bind=settings.bind, tokens=settings.tokens)
    server = Server(app, max_body_size=SERVER_MAX_BODY_BYTES,
                    max_header_size=SERVER_MAX_HEADER_BYTES,
                    idle_connection_timeout=IDLE_SECONDS, body_timeout=BODY_SECONDS,
                    xheaders=False)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    log.info("genisys connector listening on http://%s:%d (backend %s)", settings.bind, port,
             backend.name)
    try:
        await stop.wait()
    finally:
        await drain(server, app.tracker, logger=log)
