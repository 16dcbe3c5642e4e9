"""``ProcessBackend.scale`` in this process, over real OS processes: what an order leaves
running (counted in /proc, not only by the backend), what the state file records, which
processes a scale-down stops, and concurrent orders for one service. A process being
stopped counts (``count``, the answer of ``scale``) until it has exited, so an order's
answer may be above its number; once the stops are done, the count is what was ordered.

Written to kill what a mutation run of the process connector's scale left alive (the
per-service lock removed, two "scale to 5" orders started 6 processes)."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import time

import pytest

from genisys.connector.definitions import Definition
from genisys.connector.process import STATE_DIR_ENV, ProcessBackend, Resource, read_proc_stat
from genisys.errors import ServiceNotDefined, StartFailed
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


def run(tmp_path, scenario, *, services=("web",), command=SLEEPER):
    """Run ``scenario(backend)`` on a started backend defining ``services``; close it
    after, and check that nothing it started is left running."""
    async def main():
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=5.0)
        await backend.start()
        try:
            for service in services:
                await backend.put_definition(Definition.from_body({"command": command},
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

        # The newest two are stopped; they count until they have exited.
        assert await backend.scale("web", 1) == 3
        assert await backend.count("web") == 3
        assert backend.snapshot() == {"web": 1}  # what runs and is not being stopped
        assert recorded(backend) == sorted(("web", pid, pid != oldest[0]) for pid in first)
        await until(lambda: live_pids(backend) == {oldest[0]}, message="two processes to stop")
        await until(lambda: recorded(backend) == [("web", oldest[0], False)],
                    message="the state file to drop the stopped processes")
        assert await backend.count("web") == 1

        assert await backend.scale("web", 0) == 1
        assert backend.snapshot() == {}
        assert "web" not in backend._running
        await until(lambda: not live_pids(backend), message="the last process to stop")
        await until(lambda: recorded(backend) == [], message="an empty state file")
        assert await backend.count("web") == 0
    run(tmp_path, scenario)


def test_concurrent_orders_for_one_service_end_at_the_last_orders_count(tmp_path):
    async def scenario(backend):
        assert await asyncio.gather(backend.scale("web", 5), backend.scale("web", 5)) == [5, 5]
        assert len(live_pids(backend)) == 5
        # Carried out in that order (the lock is FIFO): 5 -> 2 stops 3, 2 -> 4 starts 2
        # (while up to 3 stop), 4 -> 3 stops 1 more (while up to 3 others stop).
        two, four, three = await asyncio.gather(backend.scale("web", 2), backend.scale("web", 4),
                                                backend.scale("web", 3))
        assert two == 2 + 3  # answered before anything of it could exit
        assert 4 <= four <= 4 + 3 and 3 <= three <= 3 + 4, (four, three)
        assert backend.snapshot() == {"web": 3}
        await until(lambda: len(live_pids(backend)) == 3, message="3 processes of web")
        await until(lambda: backend.in_use() == {"web": 3}, message="the stops to be done")
        assert await backend.count("web") == 3
        await until(lambda: [(service, stopping) for service, _, stopping in recorded(backend)]
                    == [("web", False)] * 3, message="the state file to list 3 processes")
    run(tmp_path, scenario)


def test_orders_for_two_services_do_not_touch_each_other(tmp_path):
    async def scenario(backend):
        assert await asyncio.gather(backend.scale("web", 2), backend.scale("db", 1)) == [2, 1]
        assert backend.snapshot() == {"db": 1, "web": 2}
        db = live_pids(backend, "db")
        assert await backend.scale("web", 0) == 2  # being stopped: counted until they exit
        assert backend.snapshot() == {"db": 1}
        assert await backend.count("db") == 1  # web's stops are not db's
        assert live_pids(backend, "db") == db
        await until(lambda: not live_pids(backend, "web"), message="web's processes to stop")
        await until(lambda: backend.in_use() == {"db": 1}, message="web's stops to be done")
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


def test_each_order_says_what_it_changes_in_the_log(tmp_path, caplog):
    async def scenario(backend):
        await backend.scale("web", 3)
        await backend.scale("web", 3)
        await backend.scale("web", 1)
    with caplog.at_level(logging.INFO, logger="genisys.connector.process"):
        run(tmp_path, scenario)
    scaling = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scaling")]
    assert scaling == ["scaling web up from 0 to 3", "scaling web down from 3 to 1"]


def test_a_start_that_fails_mid_order_leaves_nothing_of_the_order_running(tmp_path):
    """The command removes itself when it runs: the first process of the order starts,
    the second cannot, and the order is refused whole."""
    script = tmp_path / "once.sh"
    script.write_text("#!/bin/sh\nrm -f \"$0\"\nexec sleep 600\n")
    script.chmod(0o755)

    async def scenario(backend):
        async def once_the_first_has_started():
            # Runs while the order yields after its first start: blocks until that
            # process has removed the command, so the next start finds it gone.
            while not backend._running.get("web"):
                await asyncio.sleep(0)
            deadline = time.monotonic() + DEADLINE
            while script.exists():
                assert time.monotonic() < deadline, "the first process never ran"
                time.sleep(0.01)
        order = asyncio.ensure_future(backend.scale("web", 3))
        await once_the_first_has_started()
        with pytest.raises(StartFailed) as caught:
            await order
        assert caught.value.field == "command"
        # Nothing of the order runs: its first process is being stopped, and counts
        # only until it has exited.
        assert backend.snapshot().get("web", 0) == 0
        assert [r.service for r in backend._stopping] in (["web"], [])
        assert await backend.count("web") <= 1
        await until(lambda: not live_pids(backend), message="the first process to stop")
        await until(lambda: recorded(backend) == [], message="an empty state file")
        assert await backend.count("web") == 0
    run(tmp_path, scenario, command=[str(script)])


def test_processes_without_a_definition_can_be_kept_and_scaled_down(tmp_path):
    """Only a hand-edited state file does this: a process of a service with no definition.
    An order that starts nothing needs no definition; one that would start does."""
    sleepers = [subprocess.Popen(SLEEPER, start_new_session=True) for _ in range(2)]
    try:
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        entries = [Resource(service="ghost", pid=p.pid, pgid=p.pid, argv=tuple(SLEEPER),
                            start_time=read_proc_stat(p.pid).start_time, log="", started="")
                   for p in sleepers]
        (state_dir / "state.json").write_text(json.dumps(
            {"version": 1, "definitions": {}, "processes": [e.to_state() for e in entries]}))

        async def scenario(backend):
            assert await backend.scale("ghost", 2) == 2
            with pytest.raises(ServiceNotDefined):
                await backend.scale("ghost", 3)
            assert await backend.scale("ghost", 1) == 2  # one running, one being stopped
            assert backend.snapshot() == {"ghost": 1}
            # Nothing yielded to the stop tasks yet: both still count, without a definition.
            assert await backend.scale("ghost", 0) == 2
            assert await backend.count("ghost") == 2
            assert backend.snapshot() == {}
            await until(lambda: not backend.in_use(), message="both processes to stop")
            with pytest.raises(ServiceNotDefined):
                await backend.count("ghost")
        run(tmp_path, scenario, services=())
        assert [p.wait(timeout=DEADLINE) for p in sleepers] == [-signal.SIGTERM] * 2
    finally:
        for p in sleepers:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_big_order_lets_the_event_loop_run_between_starts_and_does_not_wait(tmp_path):
    """Between two starts the backend yields to the event loop (other requests are
    served meanwhile), and it yields without waiting: four starts take well under the
    second that one wait of a second per start would add."""
    async def scenario(backend):
        seen = []
        done = asyncio.Event()

        async def watch():
            while not done.is_set():
                seen.append(len(backend._running.get("web", ())))
                await asyncio.sleep(0)
        watcher = asyncio.ensure_future(watch())
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await backend.scale("web", 4) == 4
        took = loop.time() - began
        done.set()
        await watcher
        assert {1, 2, 3} <= set(seen), seen
        assert took < 3.0, "an order of 4 took %.1fs" % took
        assert len(live_pids(backend)) == 4
    run(tmp_path, scenario)
