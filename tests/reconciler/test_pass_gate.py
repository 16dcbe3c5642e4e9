"""The gate that makes reconcile passes yield to a busy API (genisys.reconciler.workers):
its rules, then workers behind it on a real work queue."""

import asyncio

import pytest

from genisys.metrics import Metrics
from genisys.reconciler.queue import WorkQueue
from genisys.reconciler.workers import PassGate, worker


class Api:
    """What the gate asks: how many requests the API is answering now."""

    def __init__(self):
        self.answering = 0

    def __call__(self):
        return self.answering


@pytest.mark.gen_test
async def test_a_busy_api_halves_the_passes_allowed_down_to_the_floor_then_they_climb_back():
    api = Api()
    seen = []
    gate = PassGate(64, answering=api, floor=4, busy=8, on_look=seen.append)
    api.answering = 8
    for _ in range(6):
        gate.look()
    assert seen == [32, 16, 8, 4, 4, 4]
    api.answering = 7  # below busy: the floor more at each look, up to the ceiling
    for _ in range(20):
        gate.look()
    assert seen[6:] == [8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 64, 64,
                        64, 64, 64]


@pytest.mark.gen_test
async def test_passes_beyond_those_allowed_wait_their_turn_first_come_first_served():
    api = Api()
    gate = PassGate(4, answering=api, floor=1, busy=1)
    for _ in range(4):
        await gate.acquire()
    waiting = [asyncio.ensure_future(gate.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting) and gate.running == 4
    api.answering = 5
    gate.look()  # 2 allowed now: the passes running go on, none starts
    gate.release()
    gate.release()
    await asyncio.sleep(0)
    assert gate.running == 2 and not any(w.done() for w in waiting)
    waiting[0].cancel()  # a worker stopped while it waited takes no turn
    gate.release()
    await asyncio.sleep(0)
    assert waiting[1].done() and not waiting[2].done() and gate.running == 2
    api.answering = 0
    gate.look()  # 3 allowed
    await asyncio.sleep(0)
    assert waiting[2].done() and gate.running == 3


@pytest.mark.gen_test
async def test_a_worker_stopped_while_its_turn_is_passed_over_stops_cleanly():
    # Shutdown cancels the workers waiting for a turn; a pass that ends in between hands
    # turns on, and passes over the cancelled ones before their workers see it.
    gate = PassGate(1, answering=Api(), floor=1)
    await gate.acquire()
    waiting = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # its turn is cancelled now, its worker told later
    gate.release()  # passes over that turn: nobody else waits
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.running == 0
    await gate.acquire()  # the next worker takes the free turn at once
    assert gate.running == 1


@pytest.mark.gen_test(timeout=30)
async def test_while_the_api_is_busy_services_wait_in_the_queue_where_changes_add_up():
    api = Api()
    api.answering = 100
    gate = PassGate(8, answering=api, floor=2, busy=10)
    for _ in range(3):
        gate.look()
    assert gate.allowed == 2
    queue = WorkQueue()
    release = asyncio.Event()
    running, passes = set(), []

    async def reconcile(name):
        running.add(name)
        passes.append(name)
        await release.wait()
        running.discard(name)
        return None
    workers = [asyncio.ensure_future(worker(queue, reconcile, metrics=Metrics(), gate=gate))
               for _ in range(8)]
    try:
        for name in ("a", "b", "c", "d"):
            queue.add(name)
        for _ in range(100):
            if len(running) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert running == {"a", "b"}  # 8 workers, 2 passes: c and d wait in the queue
        for _ in range(5):  # changes to c while it waits: one pass will take them all
            queue.add("c")
        api.answering = 0
        gate.look()  # 4 allowed
        for _ in range(100):
            if len(running) == 4:
                break
            await asyncio.sleep(0.01)
        assert running == {"a", "b", "c", "d"}
        release.set()
        for _ in range(100):
            if not running and not len(queue):
                break
            await asyncio.sleep(0.01)
        assert sorted(passes) == ["a", "b", "c", "d"]
    finally:
        queue.close()
        await asyncio.gather(*workers)
    assert gate.running == 0
