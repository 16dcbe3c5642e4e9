"""What a connector does, without HTTP: the ``Backend`` interface of the connector SDK.

A backend owns the resources of a connector (processes, virtual resources,
...) and answers the two calls of the protocol: how many resources of a
service run (``count``), and run exactly N of them (``scale``). It also keeps
the service definitions (how to run a service); the definitions part is
implemented here once, in memory, with a hook for backends that persist them.
``genisys.connector.server`` turns HTTP requests into these calls.
"""

import abc
import asyncio
import logging

from genisys.connector.definitions import Definition
from genisys.errors import AlreadyExists, Conflict, Invalid, NotFound, ServiceNotDefined

log = logging.getLogger(__name__)

#: Largest count one scale order may ask for: a typo guard (10000 for 100),
#: like the controller's max_replicas, well above what one machine runs.
MAX_RESOURCES = 10000


class Backend(abc.ABC):
    """The resources of one connector. Subclasses implement count, scale and snapshot."""

    #: Short name, shown in logs and the listening line.
    name = "backend"
    #: True if count and scale need a definition of the service (how to run it).
    requires_definitions = True
    #: What a definition of this backend is: ``from_body(body, name=None)`` validates one
    #: (Definition, or a class of the backend's own such as DockerDefinition).
    definition_class: type = Definition
    #: The smallest definition body, for the message that says a service lacks one.
    definition_hint = '{"command": [...]}'

    def __init__(self):
        self._definitions = {}
        self._locks = {}

    def _load_definitions(self, bodies, source, **options):
        """The definitions a backend kept (its state file, ``source``), read again with
        ``definition_class`` (``options``: what its ``from_body`` takes besides); one that
        is no longer valid is logged and left out, so that the connector still starts."""
        for name, body in bodies.items():
            try:
                self._definitions[name] = self.definition_class.from_body(body, name=name,
                                                                          **options)
            except Invalid as e:
                log.error("ignoring the definition of %s in %s: %s", name, source, e)

    @abc.abstractmethod
    async def start(self):
        """Take ownership of what the backend runs (re-adopt, start background tasks)."""

    @abc.abstractmethod
    async def close(self):
        """Stop everything the backend owns; after it, none of its resources remain."""

    async def answering(self):
        """Awaited once per status or scale request the connector answers, a batch
        request included (once, whatever it carries), before the work: the simulated
        backend's latency is spent here, as a network round trip would be."""
        return None

    @abc.abstractmethod
    async def count(self, service):
        """How many resources of ``service`` run now."""

    @abc.abstractmethod
    async def scale(self, service, number):
        """Take the order to run exactly ``number`` resources of ``service``.

        Returns once the order is taken (resources may still be starting or
        stopping), with the count of running resources at that moment."""

    async def count_many(self, services):
        """{service: count, or the GenisysError counting it raised} of those of
        ``services`` the backend can count in one go (a batch status request); the
        others are counted one by one. Backends whose API lists everything at once
        (the aws backend: one DescribeInstances) answer here; the default counts none."""
        return {}

    async def capacity_limit(self):
        """The most resources the connector may run, from what it drives (the aws
        backend: the account's instance limit), for a connector started without
        ``--capacity``; None: no limit. Asked once, after ``start``."""
        return None

    @abc.abstractmethod
    def snapshot(self):
        """{service: running count} right now; cheap and never failing (for metrics)."""

    def in_use(self):
        """{service: resources} that count against the connector's capacity
        (``genisys.connector.capacity``): ``snapshot`` unless a backend knows better.
        Cheap and never failing, as every scale order of a connector with a capacity
        asks it."""
        return self.snapshot()

    def stopping(self):
        """{service: resources} of ``in_use`` that are being stopped: they hold their
        room until they are gone, and no order counts on them any more."""
        return {}

    def lock(self, service):
        """The lock that keeps two changes of one service from interleaving."""
        return self._locks.setdefault(service, asyncio.Lock())

    def definition_for(self, service):
        """The definition count and scale work from; ServiceNotDefined if it is needed."""
        definition = self._definitions.get(service)
        if definition is None and self.requires_definitions:
            raise ServiceNotDefined(
                "service %s is not defined on this connector: define it with PUT /service/%s "
                "%s or in the --services file" % (service, service, self.definition_hint),
                field="name")
        return definition

    # -- definitions -------------------------------------------------------

    def definitions_changed(self):
        """Called after every change of the definitions; backends that persist them do it here."""
        return None

    async def list_definitions(self):
        return dict(sorted(self._definitions.items()))

    async def get_definition(self, name):
        try:
            return self._definitions[name]
        except KeyError:
            raise NotFound("service %s is not defined on this connector" % name,
                           field="name") from None

    async def create_definition(self, definition):
        """Add a definition; AlreadyExists if the service has one."""
        async with self.lock(definition.name):
            if definition.name in self._definitions:
                raise AlreadyExists("service %s is already defined (PUT /service/%s replaces it)"
                                    % (definition.name, definition.name), field="name")
            self._definitions[definition.name] = definition
            self.definitions_changed()

    async def put_definition(self, definition):
        """Create or replace a definition; True if it was created.

        Resources already running keep the command they were started with."""
        async with self.lock(definition.name):
            created = definition.name not in self._definitions
            self._definitions[definition.name] = definition
            self.definitions_changed()
            return created

    async def delete_definition(self, name):
        """Remove a definition; Conflict while resources of the service run."""
        async with self.lock(name):
            definition = await self.get_definition(name)
            # in_use: resources still being stopped run too, until they are gone.
            running = max(self.snapshot().get(name, 0), self.in_use().get(name, 0))
            if running:
                raise Conflict("service %s has %d running resource(s): scale it to 0 first"
                               % (name, running), field="name")
            del self._definitions[name]
            self.definitions_changed()
            return definition
