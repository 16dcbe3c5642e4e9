"""The simulated backend: virtual resources in memory, with injected slowness and failures.

For demos and tests of the controller: any valid service name is accepted
(no definition needed), resources cost nothing, and the connector can be
made slow (``latency``, once per request it answers, a batch request
included), flaky (``failure_rate``) or slow to converge
(``start_delay``: a new resource counts as running only after it). Nothing
survives a restart, as nothing real was running.
"""

import asyncio
import random
import time

from genisys.connector.backend import Backend
from genisys.errors import SimulatedFailure


class SimulatedBackend(Backend):
    name = "simulated"
    requires_definitions = False

    def __init__(self, *, latency=0.0, failure_rate=0.0, start_delay=0.0, rng=None,
                 clock=time.monotonic):
        """``latency``, ``start_delay``: seconds; ``failure_rate``: probability 0..1 that a
        status or scale call fails; ``rng``: a ``random.Random`` (seed it for tests)."""
        super().__init__()
        self.latency = latency
        self.failure_rate = failure_rate
        self.start_delay = start_delay
        self.rng = rng or random.Random()
        self.clock = clock
        #: service -> the times its resources start counting as running, oldest first.
        self._ready_at = {}

    async def start(self):
        return None

    async def close(self):
        self._ready_at.clear()

    async def answering(self):
        """The latency: once per request, as a round trip to a remote agent costs."""
        if self.latency:
            await asyncio.sleep(self.latency)

    async def _call(self, what, service):
        # rng.random() is in [0, 1): a rate of 0 never fails, a rate of 1 always does.
        if self.rng.random() < self.failure_rate:
            raise SimulatedFailure("simulated failure of %s for service %s (failure rate %g)"
                                   % (what, service, self.failure_rate))

    def _running(self, service):
        now = self.clock()
        return sum(1 for t in self._ready_at.get(service, ()) if t <= now)

    async def count(self, service):
        self.definition_for(service)
        await self._call("status", service)
        return self._running(service)

    async def scale(self, service, number):
        self.definition_for(service)
        await self._call("scale", service)
        async with self.lock(service):
            resources = self._ready_at.setdefault(service, [])
            if number > len(resources):
                ready = self.clock() + self.start_delay
                resources.extend([ready] * (number - len(resources)))
            else:
                # The newest go first: those still starting, then the youngest running.
                del resources[number:]
            if not resources:
                del self._ready_at[service]
            return self._running(service)

    def snapshot(self):
        return {service: self._running(service) for service in sorted(self._ready_at)}

    def in_use(self):
        """Resources still starting count too: they were ordered, and will run."""
        return {service: len(resources) for service, resources in self._ready_at.items()}
