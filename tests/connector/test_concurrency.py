"""Concurrent scale orders for one service: carried out one after the other, they end
at exactly the count the last one asked for, and start no more than needed.

In-process, the per-service lock is FIFO, so the last order given is the last carried
out. Over HTTP the connector's log says in which order they were carried out. (The
docker backend's are in tests/docker/test_connector.py, the batch endpoint's in
tests/connector/test_batch.py.)
"""

import asyncio
import logging

import pytest

from genisys.connector.definitions import Definition
from genisys.connector.process import ProcessBackend
from genisys.connector.simulated import SimulatedBackend
from tests.connector.common import (
    MIXED_ORDERS,
    SLEEPER,
    at_once,
    changes,
    define,
    one_after_the_other,
    running,
    scale,
    starts,
)


def ups(numbers, *, start=0):
    """How many resources a series of orders starts, carried out in that order."""
    return sum(max(0, after - before) for before, after in zip([start] + numbers, numbers))


async def give_orders(backend):
    """Eight orders for 5 at once, then MIXED_ORDERS at once; the count after each burst."""
    assert await asyncio.gather(*[backend.scale("web", 5) for _ in range(8)]) == [5] * 8
    after_same = backend.snapshot()
    assert await asyncio.gather(*[backend.scale("web", n) for n in MIXED_ORDERS]) == MIXED_ORDERS
    return after_same, backend.snapshot()


def test_process_backend_in_process(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="genisys.connector.process")

    async def scenario():
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=2.0)
        await backend.start()
        try:
            await backend.put_definition(Definition.from_body({"command": SLEEPER}, name="web"))
            return await give_orders(backend)
        finally:
            await backend.close()
    assert asyncio.run(scenario()) == ({"web": 5}, {"web": MIXED_ORDERS[-1]})
    assert starts(caplog.text, "web") == 5 + ups(MIXED_ORDERS, start=5)
    assert changes(caplog.text, "web") == list(zip([0, 5] + MIXED_ORDERS[:-1],
                                                   [5] + MIXED_ORDERS))


def test_simulated_backend_in_process():
    async def scenario():
        return await give_orders(SimulatedBackend())
    assert asyncio.run(scenario()) == ({"web": 5}, {"web": MIXED_ORDERS[-1]})


@pytest.mark.parametrize("backend", ["process", "simulated"])
def test_the_same_order_eight_times_at_once_over_http(start_connector, backend):
    if backend == "process":
        connector = start_connector("--grace-period", "2s")
        define(connector, "web", SLEEPER)
    else:
        connector = start_connector(backend=backend)
    answers = at_once([lambda: scale(connector, "web", 5)] * 8)
    assert [(r.status_code, r.json()) for r in answers] == \
        [(200, {"running_resources": 5, "number": 5})] * 8
    assert running(connector, "web") == 5
    if backend == "process":
        assert changes(connector.log(), "web") == [(0, 5)]
        assert starts(connector.log(), "web") == 5
        assert len(connector.running_pids("web")) == 5


def test_mixed_orders_at_once_over_http_end_at_the_last_carried_out(start_connector):
    connector = start_connector("--grace-period", "2s")
    define(connector, "web", SLEEPER)
    answers = at_once([lambda n=n: scale(connector, "web", n) for n in MIXED_ORDERS])
    # Each order's answer is the count it left: no other order came in between.
    assert [(r.status_code, r.json()) for r in answers] == \
        [(200, {"running_resources": n, "number": n}) for n in MIXED_ORDERS]
    history = changes(connector.log(), "web")
    assert sorted(to for _, to in history) == sorted(MIXED_ORDERS)
    assert one_after_the_other(history, start=0), history
    last = history[-1][1]
    assert running(connector, "web") == last
    assert len(connector.running_pids("web")) == last
    assert starts(connector.log(), "web") == ups([to for _, to in history])
