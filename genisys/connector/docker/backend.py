"""The Docker backend: the resources of a service are containers on one Docker engine.

Which containers are whose is in their labels, never in their image: every
container this connector creates carries ``genisys.connector=<connector id>``
and ``genisys.service=<service>`` (plus its creation order and the
definition it was made from), and every question is a label query. So the
engine is the only record of what runs: a connector that restarts, even
after SIGKILL, sees exactly the containers that exist, and two services on
one image, or two connectors (with different ids) on one engine, never count
each other's containers.

* **status** counts the service's *running* containers (not those being
  stopped).
* **scale** up creates and starts containers (a few at a time; the image is
  pulled first if it is missing, unless ``pull="never"``); a container that
  fails to start is removed, and an order that partly failed says how many
  run. Scale down stops the newest containers in the background (SIGTERM,
  or the image's stop signal, then SIGKILL after the grace period) and
  removes them; from that moment they no longer count.
* A background **tidier** removes containers that exited or died (and
  containers created but never started, left by a crash), so they stop
  counting at once and disappear soon after; genisys then scales the service
  back up. It also keeps the counts ``snapshot`` (metrics) reports, and
  brings back from a container's labels the definition of a service whose
  containers run but whose definition the state file lacks.

Stopping the connector leaves its containers running: the engine owns them,
and the next connector with the same id takes over. The Docker SDK blocks,
so every call to the engine goes through ``engine.Engine`` (threads).
"""

import asyncio
import collections
import dataclasses
import json
import logging
import math
import secrets
import time

import docker.errors

from genisys.connector.backend import Backend
from genisys.connector.docker.definition import DockerDefinition, restart_policy
from genisys.connector.docker.engine import Engine
from genisys.connector.statedir import StateDir
from genisys.errors import (
    BackendUnavailable,
    Conflict,
    GenisysError,
    Invalid,
    StartFailed,
    StartupError,
)
from genisys.model import validate_name
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

#: The labels that make a container a resource of a service of this connector.
LABEL_CONNECTOR = "genisys.connector"
LABEL_SERVICE = "genisys.service"
#: Creation order (nanoseconds, zero-padded): scale-down stops the newest first.
LABEL_SERIAL = "genisys.serial"
#: The definition (JSON) the container was made from: what brings a lost one back.
LABEL_DEFINITION = "genisys.definition"

#: Container states that are a resource (running, or about to run again).
LIVE_STATES = ("running", "restarting", "paused")
#: States of containers that are over: removed by the tidier, never counted.
GONE_STATES = ("exited", "dead")
#: Seconds between two looks at every container of the connector (removing the
#: exited ones, refreshing the counts /metrics shows). Status never waits for it.
TIDY_INTERVAL = 2.0
#: Containers of one scale order created and started at the same time.
PARALLEL_STARTS = 4
#: Seconds close() waits, beyond the grace period, for stops in flight.
CLOSE_EXTRA_SECONDS = 10.0
#: The version of the state file this code writes and reads.
STATE_VERSION = 1
#: What the connector does when a definition's image is not on the engine.
PULL_POLICIES = ("missing", "never")


@dataclasses.dataclass(frozen=True)
class Container:
    """One container of this connector, as the engine lists it."""

    id: str
    name: str
    service: str
    #: created, running, restarting, paused, removing, exited or dead.
    state: str
    #: The engine's words for it ("Exited (137) 3 seconds ago").
    status: str
    serial: int
    created: int
    #: The definition it was made from (JSON text), "" if the label is missing.
    definition: str

    @classmethod
    def from_api(cls, entry):
        labels = entry.get("Labels") or {}
        try:
            serial = int(labels.get(LABEL_SERIAL, "0"))
        except ValueError:
            serial = 0
        names = entry.get("Names") or ["/" + entry["Id"][:12]]
        return cls(id=entry["Id"], name=names[0].lstrip("/"),
                   service=labels.get(LABEL_SERVICE, ""), state=entry.get("State", ""),
                   status=entry.get("Status", ""), serial=serial,
                   created=int(entry.get("Created") or 0),
                   definition=labels.get(LABEL_DEFINITION, ""))

    def describe(self):
        return "container %s (%s) of %s" % (self.name, self.id[:12], self.service)


class _PullFailed(Exception):
    """The engine answered a pull, with an error in its progress stream."""


class DockerBackend(Backend):
    name = "docker"
    requires_definitions = True
    definition_class = DockerDefinition
    definition_hint = '{"image": "name:tag"}'

    def __init__(self, *, state_dir, url=None, connector_id="default", grace_period=10.0,
                 pull="missing", environ=None):
        """``state_dir``: where the definitions and the lock live; ``url``: the engine's API
        (None: DOCKER_HOST, else the usual socket); ``connector_id``: the label value that
        tells this connector's containers from others' on the same engine;
        ``grace_period``: seconds between the stop signal and SIGKILL; ``pull``: "missing"
        (pull an image that is not on the engine) or "never"."""
        super().__init__()
        self.connector_id = validate_name(connector_id, "connector_id")
        if pull not in PULL_POLICIES:
            raise Invalid("must be one of %s, got %r" % (", ".join(PULL_POLICIES), pull),
                          field="pull")
        self.engine = Engine(url=url, environ=environ)
        self.grace_period = grace_period
        self.pull = pull
        self.state = StateDir(state_dir, kind="docker", version=STATE_VERSION,
                              at_stake="the definitions in it will be lost")
        #: Container id -> the task stopping it (those no longer count).
        self._stopping = {}
        #: Names of the containers being created and started by a scale order.
        self._creating = set()
        #: Service -> running containers when last seen, for snapshot().
        self._running = {}
        self._last_serial = 0
        self._tidy_wanted = None
        self._tidier = None
        self._engine_trouble = None

    # -- life cycle --------------------------------------------------------------

    async def start(self):
        try:
            self.engine.check_url()
        except ValueError as e:
            raise StartupError("cannot use the Docker engine address %s" % e) from e
        with self.state.taken_back(self.connector_id,
                                   marks="containers labelled %s=%%s" % LABEL_CONNECTOR) as state:
            self._load_definitions(state.get("definitions", {}), self.state.state_path)
            self.definitions_changed()
        self._tidy_wanted = asyncio.Event()
        self._tidier = start_task(self._tidy_forever(), name="docker tidier")
        log.info("containers of this connector are labelled %s=%s, on the Docker engine at %s",
                 LABEL_CONNECTOR, self.connector_id, self.engine.url)

    async def close(self):
        """Let scale orders and stops in flight finish; leave the containers running."""
        await stop_tasks([self._tidier])
        self._tidier = None
        for service in sorted(self._locks):
            await self.lock(service).acquire()
        stopping = list(self._stopping.values())
        if stopping:
            log.info("waiting for %d container(s) being stopped", len(stopping))
            await asyncio.wait(stopping, timeout=self.grace_period + CLOSE_EXTRA_SECONDS)
        running = sum(self._running.values())
        if running:
            log.info("leaving %d running container(s) to the engine: a connector with id %s "
                     "takes them over", running, self.connector_id)
        self.engine.close()
        self.state.close()

    # -- definitions ----------------------------------------------------------------

    def definitions_changed(self):
        self.state.write({"connector_id": self.connector_id,
                          "definitions": {n: d.to_json()
                                          for n, d in sorted(self._definitions.items())}})

    async def delete_definition(self, name):
        """Remove a definition; Conflict while containers of the service run."""
        async with self.lock(name):
            definition = await self.get_definition(name)
            live = self._live(await self._list(name))
            if live:
                raise Conflict("service %s has %d container(s): scale it to 0 first"
                               % (name, len(live)), field="name")
            del self._definitions[name]
            self.definitions_changed()
            return definition

    # -- the protocol -------------------------------------------------------------

    async def count(self, service):
        containers = await self._list(service)
        running = self._note(service, containers)
        if not containers:
            # Containers count even without a definition (the state file was lost):
            # they must stay visible, and stoppable.
            self.definition_for(service)
        return running

    async def scale(self, service, number):
        async with self.lock(service):
            live = self._live(await self._list(service))
            if number > len(live) or not live:
                definition = self.definition_for(service)  # before anything changes
            started = 0
            if number > len(live):
                started = await self._scale_up(definition, live, number)
            elif number < len(live):
                log.info("scaling %s down from %d to %d", service, len(live), number)
                for container in reversed(live[number:]):
                    self._begin_stop(container)
                live = live[:number]
            running = sum(1 for c in live if c.state == "running") + started
            self._running[service] = running
            return running

    def snapshot(self):
        return {service: n for service, n in sorted(self._running.items()) if n}

    # -- containers -------------------------------------------------------------------

    async def _list(self, service=None):
        """The containers of this connector (of ``service`` only, if given), oldest first."""
        labels = ["%s=%s" % (LABEL_CONNECTOR, self.connector_id)]
        if service is not None:
            labels.append("%s=%s" % (LABEL_SERVICE, service))
        try:
            entries = await self.engine.call(
                lambda api: api.containers(all=True, filters={"label": labels}))
        except docker.errors.APIError as e:
            raise BackendUnavailable("the Docker engine at %s cannot list containers: %s"
                                     % (self.engine.url, _explain(e))) from e
        return sorted((Container.from_api(e) for e in entries),
                      key=lambda c: (c.serial, c.created, c.id))

    def _live(self, containers):
        """The resources among ``containers``: those to keep first (running, oldest
        first), then those that are not running, which scale-down stops before any
        running one."""
        live = [c for c in containers if c.state in LIVE_STATES and c.id not in self._stopping]
        return sorted(live, key=lambda c: c.state != "running")  # stable: oldest first

    def _note(self, service, containers):
        """Running containers of ``service`` in ``containers``; wakes the tidier if
        some should go."""
        running = sum(1 for c in containers
                      if c.state == "running" and c.id not in self._stopping)
        self._running[service] = running
        if any(self._is_litter(c) for c in containers):
            self._tidy_wanted.set()
        return running

    def _is_litter(self, container):
        if container.id in self._stopping:
            return False
        if container.state == "created":
            return container.name not in self._creating
        return container.state in GONE_STATES

    async def _scale_up(self, definition, live, number):
        """Create and start ``number - len(live)`` containers; returns how many started.
        Raises StartFailed (or BackendUnavailable) if any did not, saying how many run."""
        missing = number - len(live)
        log.info("scaling %s up from %d to %d", definition.name, len(live), number)
        await self._ensure_image(definition)
        gate = asyncio.Semaphore(PARALLEL_STARTS)

        async def start_one():
            async with gate:
                await self._run_container(definition)
        results = await asyncio.gather(*[start_one() for _ in range(missing)],
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if not isinstance(failure, GenisysError):
                raise failure  # a bug, or a cancellation: not an answer
        if not failures:
            return missing
        started = missing - len(failures)
        running = sum(1 for c in live if c.state == "running") + started
        self._running[definition.name] = running
        failure = next((f for f in failures if isinstance(f, BackendUnavailable)), failures[0])
        message = "%s (started %d of the %d containers asked for; %d running)" % (
            failure.message, started, missing, running)
        log.error("scaling %s to %d: %s", definition.name, number, message)
        raise type(failure)(message, field=failure.field) from failure

    async def _ensure_image(self, definition):
        image = definition.image
        try:
            await self.engine.call(lambda api: api.inspect_image(image))
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as e:
            raise StartFailed("cannot look up image %s on the Docker engine: %s"
                              % (image, _explain(e)), field="image") from e
        if self.pull == "never":
            raise StartFailed("image %s is not on the Docker engine at %s, and this connector "
                              "does not pull (--pull never): load it there first"
                              % (image, self.engine.url), field="image")
        log.info("image %s is not on the engine: pulling it", image)
        try:
            await self.engine.call(_pull, image, slow=True)
        except (docker.errors.APIError, _PullFailed) as e:
            raise StartFailed("image %s is not on the Docker engine at %s, and pulling it "
                              "failed: %s" % (image, self.engine.url, _explain(e)),
                              field="image") from e
        log.info("pulled image %s", image)

    async def _run_container(self, definition):
        name = "genisys-%s-%s-%s" % (self.connector_id, definition.name, secrets.token_hex(4))
        self._creating.add(name)
        try:
            try:
                created = await self.engine.call(self._create, definition, name,
                                                 self._next_serial())
            except docker.errors.ImageNotFound as e:
                raise StartFailed("image %s is not on the Docker engine at %s (it went away "
                                  "during the scale order)" % (definition.image,
                                                               self.engine.url),
                                  field="image") from e
            except docker.errors.APIError as e:
                raise StartFailed("cannot create a container of %s: %s"
                                  % (definition.name, _explain(e))) from e
            container_id = created["Id"]
            try:
                await self.engine.call(lambda api: api.start(container_id))
            except docker.errors.APIError as e:
                await self._remove(container_id, name, force=True)
                raise StartFailed("cannot start a container of %s: %s"
                                  % (definition.name, _explain(e))) from e
            log.info("started container %s (%s) of %s", name, container_id[:12],
                     definition.name)
        finally:
            self._creating.discard(name)

    def _next_serial(self):
        self._last_serial = max(time.time_ns(), self._last_serial + 1)
        return self._last_serial

    def _create(self, api, definition, name, serial):
        """In a worker thread: create (not start) one container of ``definition``."""
        bindings = collections.defaultdict(list)
        for port in definition.ports:
            bindings["%d/%s" % (port.container, port.protocol)].append(port.binding())
        host_config = api.create_host_config(
            port_bindings={k: v if len(v) > 1 else v[0] for k, v in bindings.items()} or None,
            restart_policy=None if definition.restart == "no"
            else restart_policy(definition.restart),
            nano_cpus=None if definition.cpu is None else int(definition.cpu * 1e9),
            mem_limit=definition.memory, network_mode=definition.network)
        labels = dict(definition.labels)
        labels.update({LABEL_CONNECTOR: self.connector_id, LABEL_SERVICE: definition.name,
                       LABEL_SERIAL: "%020d" % serial,
                       LABEL_DEFINITION: json.dumps(definition.to_json(), sort_keys=True)})
        return api.create_container(
            definition.image, name=name, detach=True, labels=labels,
            command=None if definition.command is None else list(definition.command),
            environment=dict(definition.environment) or None,
            ports=[(int(k.split("/")[0]), k.split("/")[1]) for k in bindings] or None,
            # `docker stop` by hand, and the engine's own shutdown, give the same grace.
            stop_timeout=math.ceil(self.grace_period), host_config=host_config)

    def _begin_stop(self, container):
        """Stop and remove ``container`` in the background; it no longer counts."""
        self._stopping[container.id] = start_task(self._stop(container),
                                                  name="stop %s" % container.describe())

    async def _stop(self, container):
        try:
            await self.engine.call(
                lambda api: api.stop(container.id, timeout=math.ceil(self.grace_period)),
                slow=True)
            await self._remove(container.id, container.name, force=False)
            log.info("stopped and removed %s", container.describe())
        except docker.errors.NotFound:
            log.info("%s is gone already", container.describe())
        except (docker.errors.APIError, BackendUnavailable) as e:
            # It counts again from now on, so genisys' next order stops it.
            log.warning("cannot stop %s: %s", container.describe(), _explain(e))
        finally:
            del self._stopping[container.id]

    async def _remove(self, container_id, name, *, force):
        """Remove a container; one that is gone, being removed or (without ``force``)
        running again is left alone."""
        try:
            await self.engine.call(
                lambda api: api.remove_container(container_id, v=True, force=force))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
            log.debug("not removing container %s: %s", name, _explain(e))

    # -- the tidier ---------------------------------------------------------------------

    async def _tidy_forever(self):
        first = True
        while True:
            self._tidy_wanted.clear()
            try:
                await self._tidy(first=first)
                first = False
                if self._engine_trouble is not None:
                    log.info("the Docker engine at %s answers again", self.engine.url)
                    self._engine_trouble = None
            except (BackendUnavailable, docker.errors.APIError) as e:
                if self._engine_trouble is None:  # said once, not every pass
                    log.warning("%s", e)
                self._engine_trouble = str(e)
            except OSError as e:  # the state file could not be written: next time
                log.error("cannot write the state file %s: %s", self.state.state_path, e)
            try:
                await asyncio.wait_for(self._tidy_wanted.wait(), TIDY_INTERVAL)
            except asyncio.TimeoutError:
                pass

    async def _tidy(self, *, first=False):
        containers = await self._list()
        running = collections.Counter()
        for container in containers:
            if container.state == "running" and container.id not in self._stopping:
                running[container.service] += 1
        self._running = dict(running)
        if first:
            log.info("found %d running container(s) of this connector%s", sum(running.values()),
                     "".join(" %s: %d," % kv for kv in sorted(running.items())).rstrip(","))
        self._recover_definitions(containers)
        for container in containers:
            if self._is_litter(container):
                await self._remove(container.id, container.name, force=False)
                log.info("removed %s: %s", container.describe(), container.status or
                         container.state)

    def _recover_definitions(self, containers):
        """Define, from its newest running container's label, each service that runs
        containers but has no definition (a lost or older state file)."""
        for container in reversed(containers):  # newest first
            service = container.service
            if (service in self._definitions or container.state != "running"
                    or container.id in self._stopping or not container.definition):
                continue
            try:
                definition = DockerDefinition.from_body(json.loads(container.definition),
                                                        name=service)
            except (ValueError, Invalid) as e:
                log.warning("cannot read the definition of %s in %s: %s", service,
                            container.describe(), e)
                continue
            self._definitions[service] = definition
            self.definitions_changed()
            log.warning("defined %s from the labels of %s: the state file %s had no "
                        "definition of it", service, container.describe(),
                        self.state.state_path)


def _pull(api, image):
    """In a worker thread: pull ``image``; the engine reports errors in the stream."""
    for line in api.pull(image, stream=True, decode=True):
        if isinstance(line, dict) and line.get("error"):
            raise _PullFailed(line["error"])


def _explain(exc):
    """What the engine said, without the SDK's request line."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()

