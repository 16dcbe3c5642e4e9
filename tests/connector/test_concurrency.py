"""Concurrent scale orders for one service: carried out one after the other, they end
at exactly the count the last one asked for, and start no more than needed.

The process backend counts a process being stopped until it has exited, so its answer
to an order is the order's number plus at most what the orders before it stopped
(``answered_within``), and its count is the last order's once the stops are done.

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
    alive,
    answered_within,
    at_once,
    changes,
    define,
    one_after_the_other,
    running,
    scale,
    starts,
)
from tests.support import wait_for

#: Seconds a test waits for stopped processes to exit before it fails.
DEADLINE = 20.0


def ups(numbers, *, start=0):
    """How many resources a series of orders starts, carried out in that order."""
    return sum(max(0, after - before) for before, after in zip([start] + numbers, numbers))


async def give_orders(backend):
    """Eight orders for 5 at once, then MIXED_ORDERS at once; the answers to the second
    burst, and the snapshot (running, not being stopped) after each burst."""
    assert await asyncio.gather(*[backend.scale("web", 5) for _ in range(8)]) == [5] * 8
    after_same = backend.snapshot()
    answers = await asyncio.gather(*[backend.scale("web", n) for n in MIXED_ORDERS])
    return answers, after_same, backend.snapshot()


def test_process_backend_in_process(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="genisys.connector.process")

    async def scenario():
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=2.0)
        await backend.start()
        try:
            await backend.put_definition(Definition.from_body({"command": SLEEPER}, name="web"))
            outcome = await give_orders(backend)
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while await backend.count("web") != MIXED_ORDERS[-1]:
                assert asyncio.get_running_loop().time() < deadline, "the stops never ended"
                await asyncio.sleep(0.02)
            return outcome + (backend.in_use(),)
        finally:
            await backend.close()
    answers, after_same, after_mixed, at_rest = asyncio.run(scenario())
    assert (after_same, after_mixed) == ({"web": 5}, {"web": MIXED_ORDERS[-1]})
    assert at_rest == {"web": MIXED_ORDERS[-1]}
    history = list(zip([0, 5] + MIXED_ORDERS[:-1], [5] + MIXED_ORDERS))
    assert changes(caplog.text, "web") == history
    # Each answer counts what its order left running, and what was still being stopped.
    assert all(answered_within(a, n, history) for a, n in zip(answers, MIXED_ORDERS)), answers
    assert answers[0] == 5  # the 2 it keeps and the 3 it stops, none of them exited yet
    assert starts(caplog.text, "web") == 5 + ups(MIXED_ORDERS, start=5)


def test_simulated_backend_in_process():
    async def scenario():
        return await give_orders(SimulatedBackend())
    # What it lowers is gone at once: each answer is exactly the order's number.
    assert asyncio.run(scenario()) == (MIXED_ORDERS, {"web": 5}, {"web": MIXED_ORDERS[-1]})


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
    history = changes(connector.log(), "web")
    assert sorted(to for _, to in history) == sorted(MIXED_ORDERS)
    assert one_after_the_other(history, start=0), history
    # Each order's answer is the count it left, and those still being stopped then: at
    # least the ones it stopped itself, at most all the orders up to it stopped.
    assert [(r.status_code, r.json()["number"]) for r in answers] == \
        [(200, n) for n in MIXED_ORDERS]
    assert all(answered_within(r.json()["running_resources"], n, history)
               for r, n in zip(answers, MIXED_ORDERS)), [r.json() for r in answers]
    last = history[-1][1]
    assert len(connector.running_pids("web")) == last
    wait_for(lambda: running(connector, "web") == last == len(alive(connector, "web")),
             timeout=DEADLINE, message="the stops to end at the last order's count")
    assert starts(connector.log(), "web") == ups([to for _, to in history])
