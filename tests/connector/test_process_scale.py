"""``ProcessBackend.scale`` in this process, over real OS processes: what an order leaves
running (counted in /proc, not only by the backend), what the state file records, which
processes a scale-down stops, and concurrent orders for one service.

Written to kill what a mutation run of the process connector's scale left alive (the
per-service lock removed, two "scale to 5" orders started 6 processes)."""

import asyncio
import json
import os

import pytest

from genisys.connector.definitions import Definition
from genisys.connector.process import STATE_DIR_ENV, ProcessBackend
from genisys.errors import ServiceNotDefined
from tests.connector.common import SLEEPER
from tests.support import find_processes, process_alive

#: Seconds a test waits for processes to start or stop before it fails.
DEADLINE = 20.0


def live_pids(backend, service="web"):
    """The processes of ``service`` that run now, as /proc shows them."""
    return set(find_processes(environ="%s=%s" % (STATE_DIR_ENV, backend.state_dir))) & set(
        find_processes(environ="GENISYS_SERVICE=%s" % service))


async def until(condition, *, message):
    """Wait, letting the backend's stop tasks run, until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (DEADLINE, message))
        await asyncio.sleep(0.02)


def recorded(backend):
    """(service, pid, stopping) of every process the state file lists."""
    with open(backend.state_path) as f:
        state = json.load(f)
    return sorted((p["service"], p["pid"], p["stopping"]) for p in state["processes"])


def run(tmp_path, scenario, *, services=("web",)):
    """Run ``scenario(backend)`` on a started backend defining ``services``; close it
    after, and check that nothing it started is left running."""
    async def main():
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=5.0)
        await backend.start()
        try:
            for service in services:
                await backend.put_definition(Definition.from_body({"command": SLEEPER},
                                                                  name=service))
            return await scenario(backend)
        finally:
            await backend.close()
            assert not any(live_pids(backend, s) for s in services)
    return asyncio.run(main())


def test_scale_up_down_and_to_zero_leaves_exactly_what_was_ordered(tmp_path):
    async def scenario(backend):
        assert await backend.scale("web", 3) == 3
        first = live_pids(backend)
        assert len(first) == 3
        assert backend.snapshot() == {"web": 3}
        assert recorded(backend) == sorted(("web", pid, False) for pid in first)
        oldest = [r.pid for r in backend._running["web"]]

        assert await backend.scale("web", 3) == 3  # the same number: nothing changes
        assert live_pids(backend) == first

        assert await backend.scale("web", 1) == 1  # the newest two are stopped
        assert await backend.count("web") == 1
        assert backend.snapshot() == {"web": 1}
        await until(lambda: live_pids(backend) == {oldest[0]}, message="two processes to stop")
        await until(lambda: recorded(backend) == [("web", oldest[0], False)],
                 message="the state file to drop the stopped processes")

        assert await backend.scale("web", 0) == 0
        assert backend.snapshot() == {}
        assert "web" not in backend._running
        await until(lambda: not live_pids(backend), message="the last process to stop")
        await until(lambda: recorded(backend) == [], message="an empty state file")
    run(tmp_path, scenario)


def test_concurrent_orders_for_one_service_end_at_the_last_orders_count(tmp_path):
    async def scenario(backend):
        assert await asyncio.gather(backend.scale("web", 5), backend.scale("web", 5)) == [5, 5]
        assert len(live_pids(backend)) == 5
        assert sorted(await asyncio.gather(backend.scale("web", 2), backend.scale("web", 4),
                                           backend.scale("web", 3))) == [2, 3, 4]
        assert await backend.count("web") == 3
        await until(lambda: len(live_pids(backend)) == 3, message="3 processes of web")
        await until(lambda: [(service, stopping) for service, _, stopping in recorded(backend)]
                    == [("web", False)] * 3, message="the state file to list 3 processes")
    run(tmp_path, scenario)


def test_orders_for_two_services_do_not_touch_each_other(tmp_path):
    async def scenario(backend):
        assert await asyncio.gather(backend.scale("web", 2), backend.scale("db", 1)) == [2, 1]
        assert backend.snapshot() == {"db": 1, "web": 2}
        db = live_pids(backend, "db")
        assert await backend.scale("web", 0) == 0
        assert backend.snapshot() == {"db": 1}
        assert live_pids(backend, "db") == db
    run(tmp_path, scenario, services=("web", "db"))


def test_a_process_that_died_is_replaced_by_the_next_order(tmp_path):
    async def scenario(backend):
        assert await backend.scale("web", 2) == 2
        victim = backend._running["web"][0]
        os.kill(victim.pid, 9)
        await until(lambda: victim.exited(), message="the killed process to exit")
        assert await backend.scale("web", 2) == 2
        pids = live_pids(backend)
        assert len(pids) == 2 and victim.pid not in pids
        assert not process_alive(victim.pid, victim.start_time)
    run(tmp_path, scenario)


def test_an_undefined_service_is_refused_and_nothing_starts(tmp_path):
    async def scenario(backend):
        for number in (0, 1):
            with pytest.raises(ServiceNotDefined) as caught:
                await backend.scale("ghost", number)
            assert caught.value.field == "name"
        assert backend.snapshot() == {}
        assert "ghost" not in backend._running
        assert not live_pids(backend, "ghost")
        assert recorded(backend) == []
    run(tmp_path, scenario)
