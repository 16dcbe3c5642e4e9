"""Fixtures for reconciler tests: a Reconciler over a real store, fake connectors."""

import asyncio
import time

import pytest

from genisys.connector.client import ConnectorClient
from genisys.intents import Intents
from genisys.metrics import Metrics
from genisys.model import Compute
from genisys.reconciler.controller import Reconciler
from genisys.reconciler.queue import Backoff
from tests.reconciler.fake_connector import FakeConnector


async def eventually(condition, *, timeout=20.0, message="condition"):
    """Await until ``condition()`` (sync or async) is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, message))
        await asyncio.sleep(0.02)


class Harness:
    """A started Reconciler, its Intents and the fake connectors of a test."""

    def __init__(self, store):
        self.store = store
        self.intents = Intents(store, max_replicas=1000)
        self.metrics = Metrics()
        self.connectors = {}
        self.reconciler = None

    async def start(self, *, poll_interval=30.0, timeout=5.0, backoff=(0.05, 1.0), workers=4,
                    pass_budget=1.0, store=None, max_in_flight=4, leadership=None):
        """Start the reconciler (over ``store``, default: the harness's; under
        ``leadership``, if given)."""
        client = ConnectorClient(connect_timeout=timeout, request_timeout=timeout,
                                 max_in_flight=max_in_flight, metrics=self.metrics)
        self.reconciler = Reconciler(store or self.store, client, metrics=self.metrics,
                                     poll_interval=poll_interval, workers=workers,
                                     backoff=Backoff(initial=backoff[0], maximum=backoff[1]),
                                     progress_check=0.02, pass_budget=pass_budget,
                                     leadership=leadership)
        await self.reconciler.start()
        return self

    async def connector(self, compute):
        """A fake connector registered as ``compute``."""
        fake = FakeConnector()
        self.connectors[compute] = fake
        await self.intents.create_compute(Compute(compute, fake.url))
        return fake

    async def status(self, service, compute=None):
        view = await self.intents.get_service(service)
        if compute is None:
            return view["status"]
        return view["status"]["computes"].get(compute)

    async def converged(self, service, compute, number):
        entry = await self.status(service, compute)
        return bool(entry and entry["condition"] == "Converged" and entry["running"] == number)

    async def stop(self):
        if self.reconciler is not None:
            await self.reconciler.stop()
            await self.reconciler.client.aclose()
        for fake in self.connectors.values():
            await fake.stop()


@pytest.fixture
def harness(store, io_loop):
    h = Harness(store)
    yield h
    io_loop.run_sync(h.stop)
