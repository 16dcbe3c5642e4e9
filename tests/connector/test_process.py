"""The process backend with real OS processes, through real connectors on loopback.

Scaling starts and stops processes (newest first, SIGTERM then SIGKILL), a process
being stopped counts until it has exited (in status, in the capacity used, against
orders), processes that die on their own stop counting, and a connector that is
SIGKILLed and started again on the same state directory adopts what was running:
nothing orphaned, nothing duplicated. A SIGTERMed connector leaves no process behind.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from genisys.connector.definitions import Definition
from genisys.connector.process import (
    KEEP_LOGS,
    ProcessBackend,
    Resource,
    adoptable,
    read_proc_stat,
)
from genisys.errors import ServiceNotDefined
from tests.connector.common import (
    IGNORES_SIGTERM,
    SLEEPER,
    define,
    error_of,
    output_of,
    running,
    scale,
    slow_to_stop,
)
from tests.support import process_alive, wait_for

#: Seconds a test waits for processes to stop before it fails.
DEADLINE = 20.0


def write_state(tmp_path, processes):
    """A state directory whose state file defines ``web`` and lists ``processes``."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state = {"version": 1, "definitions": {"web": {"name": "web", "command": SLEEPER}},
             "processes": [p.to_state() for p in processes]}
    (state_dir / "state.json").write_text(json.dumps(state))
    return state_dir


def count_on_a_new_backend(state_dir, grace_period=5.0):
    """Start a process backend on ``state_dir``, count ``web``, close it (stopping
    what it adopted)."""
    async def scenario():
        backend = ProcessBackend(state_dir=str(state_dir), grace_period=grace_period)
        await backend.start()
        try:
            return await backend.count("web")
        finally:
            await backend.close()
    return asyncio.run(scenario())


def all_gone(pids):
    return not any(process_alive(pid) for pid in pids)


def test_scale_starts_and_stops_processes_newest_first(start_connector):
    connector = start_connector("--grace-period", "5s")
    define(connector, "sleeper", SLEEPER)

    r = scale(connector, "sleeper", 3)
    assert r.status_code == 200 and r.json() == {"running_resources": 3, "number": 3}
    assert running(connector, "sleeper") == 3
    entries = connector.recorded("sleeper")  # in start order
    pids = [e["pid"] for e in entries]
    assert len(set(pids)) == 3 and all(process_alive(pid) for pid in pids)
    # Each in a session (and process group) of its own, so a stop reaches its children.
    assert all(os.getsid(pid) == pid and os.getpgid(pid) == pid for pid in pids)

    r = scale(connector, "sleeper", 1)
    # The two being stopped count until they have exited: the answer is given before.
    assert r.status_code == 200 and r.json() == {"running_resources": 3, "number": 1}
    # The newest two are stopping, or already gone (a sleeper exits at once on SIGTERM,
    # and its record goes with it).
    stopping = {e["pid"]: e["stopping"] for e in connector.recorded("sleeper")}
    assert stopping[pids[0]] is False and all(stopping.get(pid, True) for pid in pids[1:])
    wait_for(lambda: all_gone(pids[1:]), timeout=DEADLINE,
             message="the two newest processes to stop")
    wait_for(lambda: running(connector, "sleeper") == 1, timeout=DEADLINE,
             message="the stopped processes to stop counting")
    assert process_alive(pids[0])
    log = wait_for(lambda: connector.log().count("killed by SIGTERM") == 2 and connector.log(),
                   message="the stops in the connector's log")
    for pid in pids[1:]:
        assert "stopped process %d of sleeper: killed by SIGTERM" % pid in log
    assert connector.running_pids("sleeper") == [pids[0]]


def test_a_process_that_dies_stops_counting(start_connector):
    connector = start_connector()
    define(connector, "sleeper", SLEEPER)
    assert scale(connector, "sleeper", 2).status_code == 200
    victim, survivor = connector.running_pids("sleeper")
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: running(connector, "sleeper") == 1, message="the dead process to be reaped")
    assert "process %d of sleeper killed by SIGKILL" % victim in connector.log()
    assert connector.running_pids("sleeper") == [survivor]
    # The set-point holds again once asked: one more is started, not two.
    assert scale(connector, "sleeper", 2).json()["running_resources"] == 2
    assert len(connector.running_pids("sleeper")) == 2


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period(start_connector):
    """It runs, and counts, until the SIGKILL at the end of the grace period."""
    connector = start_connector("--grace-period", "1s")
    define(connector, "stubborn", IGNORES_SIGTERM)
    assert scale(connector, "stubborn", 1).status_code == 200
    (entry,) = connector.recorded("stubborn")
    wait_for(lambda: "ready" in output_of(entry), message="the process to ignore SIGTERM")
    ordered = time.monotonic()
    assert scale(connector, "stubborn", 0).json() == {"running_resources": 1, "number": 0}

    def gone():
        counted = running(connector, "stubborn")
        if process_alive(entry["pid"]):  # alive after it was counted: it was counted
            assert counted == 1
        return counted == 0
    wait_for(gone, timeout=DEADLINE, message="the SIGKILLed process to stop counting")
    # It ignored SIGTERM: only the SIGKILL, a grace period after the order, ended it.
    assert time.monotonic() - ordered >= 1.0
    assert not process_alive(entry["pid"])
    assert "stopped process %d of stubborn: killed by SIGKILL" % entry["pid"] in connector.log()
    assert ("process %d of stubborn did not exit within 1s of SIGTERM: sending SIGKILL"
            % entry["pid"]) in connector.log()
    wait_for(lambda: connector.recorded() == [], message="the state file to forget it")


def test_a_process_slow_to_exit_counts_and_holds_its_capacity_until_it_has_exited(
        start_connector):
    """SIGTERMed, it takes 2 s to exit: meanwhile it counts in status and in the used
    capacity, and an order that needs its room is refused; once it has exited, not."""
    connector = start_connector("--capacity", "2", "--grace-period", "30s")
    define(connector, "slow", slow_to_stop(2))
    define(connector, "other", SLEEPER)
    assert scale(connector, "slow", 2).status_code == 200
    entries = connector.recorded("slow")
    wait_for(lambda: all("ready" in output_of(e) for e in entries),
             message="the processes to trap SIGTERM")
    pid = entries[-1]["pid"]  # the newest: the one a scale-down stops

    def used():
        r = connector.request("GET", "/capabilities")
        assert r.status_code == 200, r.text
        return r.json()["capacity"]["used"]
    ordered = time.monotonic()
    assert scale(connector, "slow", 1).json() == {"running_resources": 2, "number": 1}
    assert running(connector, "slow") == 2 and used() == 2
    error = error_of(scale(connector, "other", 1), 409)
    assert error == {"reason": "InsufficientCapacity", "field": "number", "message":
                     "capacity is 2 resources and 2 run (2 of them other services'): "
                     "cannot run 1 of other"}
    assert [e["stopping"] for e in connector.recorded("slow")] == [False, True]
    assert process_alive(pid), "it exited before the checks were done: too slow a machine"

    def exited():
        counted = running(connector, "slow"), used()
        if process_alive(pid):  # alive after it was counted: it was counted
            assert counted == (2, 2)
        return counted == (1, 1)
    wait_for(exited, timeout=DEADLINE, message="the stopped process to stop counting")
    assert not process_alive(pid)  # it stopped counting only once it had exited
    assert time.monotonic() - ordered >= 2.0
    assert "stopped process %d of slow: exited with status 0" % pid in connector.log()
    # Its room is free now.
    assert scale(connector, "other", 1).json() == {"running_resources": 1, "number": 1}
    assert used() == 2


def test_definition_environment_cwd_and_string_command(start_connector, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    command = ("%s -c 'import os, time; print(os.getcwd(), os.environ[\"GREETING\"], "
               "os.environ[\"GENISYS_SERVICE\"], flush=True); time.sleep(600)'" % sys.executable)
    connector = start_connector()
    definition = define(connector, "greeter", command, environment={"GREETING": "hello there"},
                        cwd=str(workdir))
    assert definition["command"][1:3] == ["-c", definition["command"][2]]
    assert len(definition["command"]) == 3  # split like a shell would, quotes respected
    assert scale(connector, "greeter", 1).status_code == 200
    (entry,) = connector.recorded("greeter")
    assert entry["argv"] == definition["command"]
    wait_for(lambda: "greeter" in output_of(entry), message="the process's output in its log")
    assert output_of(entry).strip() == "%s hello there greeter" % workdir


def test_a_command_that_cannot_start_fails_the_order_and_starts_nothing(start_connector,
                                                                       tmp_path):
    connector = start_connector()
    define(connector, "missing", ["/nonexistent/program", "--flag"])
    error = error_of(scale(connector, "missing", 2), 422)
    assert error["reason"] == "StartFailed"
    assert "/nonexistent/program" in error["message"]
    assert "No such file or directory" in error["message"]
    assert running(connector, "missing") == 0
    assert connector.recorded() == []

    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nsleep 600\n")
    define(connector, "noexec", [str(script)])
    error = error_of(scale(connector, "noexec", 1), 422)
    assert error["reason"] == "StartFailed" and "Permission denied" in error["message"]

    gone = tmp_path / "gone"
    gone.mkdir()
    define(connector, "nocwd", SLEEPER, cwd=str(gone))
    gone.rmdir()
    error = error_of(scale(connector, "nocwd", 1), 422)
    assert "working directory" in error["message"] and str(gone) in error["message"]
    assert connector.recorded() == []
    assert not [name for name in os.listdir(os.path.join(connector.state_dir, "logs"))
                if "starting" in name]


def test_definition_cannot_be_deleted_while_it_runs(start_connector):
    connector = start_connector()
    define(connector, "sleeper", SLEEPER)
    assert scale(connector, "sleeper", 1).status_code == 200
    error = error_of(connector.request("DELETE", "/service/sleeper"), 409)
    assert error["reason"] == "Conflict" and "scale it to 0" in error["message"]
    assert scale(connector, "sleeper", 0).status_code == 200
    # Its process runs until it has exited (SIGTERM ends SLEEPER at once): then it may go.
    wait_for(lambda: connector.request("DELETE", "/service/sleeper").status_code == 200,
             timeout=20, message="the definition to be deletable once its process exited")
    assert error_of(connector.request("GET", "/service/sleeper/status"),
                    404)["reason"] == "ServiceNotDefined"


def test_sigkilled_connector_is_adopted_by_the_next_one_and_sigterm_leaves_nothing(
        start_connector):
    first = start_connector("--grace-period", "5s")
    define(first, "sleeper", SLEEPER)
    assert scale(first, "sleeper", 3).status_code == 200
    entries = first.recorded("sleeper")
    pids = [e["pid"] for e in entries]
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert all(process_alive(pid) for pid in pids), "the processes outlive a SIGKILLed connector"

    second = start_connector("--grace-period", "5s", state_dir=first.state_dir)
    assert running(second, "sleeper") == 3  # adopted, none duplicated
    assert second.running_pids("sleeper") == sorted(pids)
    assert "adopted process %d of sleeper" % pids[0] in second.log()
    assert all(process_alive(pid) for pid in pids)
    # The definition came back with the state file, and the adopted ones scale like ours
    # (those being stopped count until they have exited).
    assert scale(second, "sleeper", 1).json()["running_resources"] == 3
    wait_for(lambda: all_gone(pids[1:]), timeout=DEADLINE,
             message="the two newest adopted processes to stop")
    wait_for(lambda: running(second, "sleeper") == 1, timeout=DEADLINE,
             message="the stopped adopted processes to stop counting")
    assert process_alive(pids[0])
    assert scale(second, "sleeper", 0).json()["running_resources"] == 1
    wait_for(lambda: all_gone(pids), timeout=DEADLINE, message="every adopted process to stop")
    wait_for(lambda: running(second, "sleeper") == 0, timeout=DEADLINE,
             message="the last adopted process to stop counting")

    assert scale(second, "sleeper", 2).status_code == 200
    new_pids = second.running_pids("sleeper")
    assert len(new_pids) == 2
    assert second.stop(signal.SIGTERM) == 0
    assert all_gone(new_pids), "a SIGTERMed connector stops every process it runs"
    assert second.recorded() == []
    assert "stopped process %d of sleeper" % new_pids[0] in second.log()


def test_a_process_being_stopped_when_the_connector_dies_is_stopped_by_the_next_one(
        start_connector):
    first = start_connector("--grace-period", "30s")
    define(first, "stubborn", IGNORES_SIGTERM)
    assert scale(first, "stubborn", 1).status_code == 200
    (entry,) = first.recorded("stubborn")
    wait_for(lambda: "ready" in output_of(entry), message="the process to be ready")
    assert scale(first, "stubborn", 0).json() == {"running_resources": 1, "number": 0}
    assert first.recorded("stubborn")[0]["stopping"] is True
    assert running(first, "stubborn") == 1  # being stopped: it runs until it exits
    first.stop(signal.SIGKILL)

    second = start_connector("--grace-period", "2s", state_dir=first.state_dir)
    # Still being stopped, by the next connector now: it still counts.
    assert running(second, "stubborn") == 1
    assert second.recorded("stubborn")[0]["stopping"] is True
    assert process_alive(entry["pid"]), "it was killed before the checks: too slow a machine"
    assert "adopted process %d of stubborn, which was being stopped" % entry["pid"] \
        in second.log()
    wait_for(lambda: not process_alive(entry["pid"]), timeout=DEADLINE,
             message="the next connector to stop it")
    wait_for(lambda: running(second, "stubborn") == 0, timeout=DEADLINE,
             message="it to stop counting")
    wait_for(lambda: second.recorded() == [], message="the state file to forget it")


# -- adoption, in-process ---------------------------------------------------------------


def test_adoption_checks_the_start_time_against_pid_reuse(tmp_path):
    sleeper = subprocess.Popen(SLEEPER, start_new_session=True)
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        exited.wait()
        stat = read_proc_stat(sleeper.pid)

        def resource(pid, start_time):
            return Resource(service="web", pid=pid, pgid=pid, start_time=start_time,
                            argv=tuple(SLEEPER), log="", started="")
        assert adoptable(resource(sleeper.pid, stat.start_time))
        assert not adoptable(resource(sleeper.pid, stat.start_time - 1))  # pid reused
        assert not adoptable(resource(exited.pid, 0))

        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        wait_for(lambda: read_proc_stat(zombie.pid).state == "Z", message="a zombie")
        assert not adoptable(resource(zombie.pid, read_proc_stat(zombie.pid).start_time))
        zombie.wait()

        # A state file that names a process with the wrong start time: the backend
        # neither counts it nor touches it (it is someone else's process).
        state_dir = write_state(tmp_path, [resource(sleeper.pid, stat.start_time + 7)])
        assert count_on_a_new_backend(state_dir, grace_period=1.0) == 0
        assert process_alive(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_adopted_process_is_counted_and_stopped_in_process(tmp_path):
    sleeper = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        start_time = read_proc_stat(sleeper.pid).start_time
        entry = Resource(service="web", pid=sleeper.pid, pgid=sleeper.pid,
                         start_time=start_time, argv=tuple(SLEEPER), log="", started="")
        assert count_on_a_new_backend(write_state(tmp_path, [entry])) == 1
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_a_process_the_state_file_missed_is_found_in_proc_and_adopted(tmp_path):
    """The connector died between starting a process and recording it: the next
    one finds it by the state directory in its environment, and only it."""
    state_dir = write_state(tmp_path, [])
    env = dict(os.environ, GENISYS_SERVICE="web",
               GENISYS_CONNECTOR_STATE_DIR=os.path.realpath(str(state_dir)))
    unrecorded = subprocess.Popen(SLEEPER, start_new_session=True, env=env)
    other_dir = dict(env, GENISYS_CONNECTOR_STATE_DIR=str(tmp_path / "elsewhere"))
    stranger = subprocess.Popen(SLEEPER, start_new_session=True, env=other_dir)
    try:
        assert count_on_a_new_backend(state_dir) == 1
        assert unrecorded.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None  # another connector's process: untouched
    finally:
        for process in (unrecorded, stranger):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_a_stop_reaches_the_whole_process_group(start_connector):
    connector = start_connector("--grace-period", "5s")
    # The shell forks a child and waits: stopping the resource must stop both.
    define(connector, "family", ["sh", "-c", "sleep 600 & echo child $!; wait"])
    assert scale(connector, "family", 1).status_code == 200
    (entry,) = connector.recorded("family")
    child = int(wait_for(lambda: re.search(r"child (\d+)", output_of(entry)),
                         message="the child's pid").group(1))
    assert process_alive(child) and os.getpgid(child) == entry["pid"]
    assert scale(connector, "family", 0).status_code == 200
    wait_for(lambda: all_gone([entry["pid"], child]), message="the group to stop")


def test_what_a_process_leaves_behind_when_it_exits_is_killed(start_connector):
    connector = start_connector()
    define(connector, "daemonizer", ["sh", "-c", "sleep 600 & echo child $!"])
    assert scale(connector, "daemonizer", 1).status_code == 200
    (entry,) = connector.recorded("daemonizer")
    child = int(wait_for(lambda: re.search(r"child (\d+)", output_of(entry)),
                         message="the child's pid").group(1))
    wait_for(lambda: running(connector, "daemonizer") == 0, message="the exit to be seen")
    assert "exited with status 0" in connector.log()
    wait_for(lambda: not process_alive(child), message="the orphan to be killed")


def test_a_big_order_is_recorded_whole(start_connector):
    connector = start_connector()
    define(connector, "many", ["sleep", "600"])
    assert scale(connector, "many", 40).json()["running_resources"] == 40
    pids = connector.running_pids("many")
    assert len(pids) == 40
    assert connector.stop(signal.SIGTERM) == 0
    assert all_gone(pids)


def test_processes_without_a_definition_still_count_and_stop(tmp_path):
    """Only a hand-edited state file can do this; the processes must not become invisible."""
    sleeper = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        entry = Resource(service="ghost", pid=sleeper.pid, pgid=sleeper.pid,
                         start_time=read_proc_stat(sleeper.pid).start_time,
                         argv=tuple(SLEEPER), log="", started="")
        state_dir = tmp_path / "state"
        state_dir.mkdir()
        (state_dir / "state.json").write_text(json.dumps(
            {"version": 1, "definitions": {}, "processes": [entry.to_state()]}))

        async def scenario():
            backend = ProcessBackend(state_dir=str(state_dir), grace_period=5.0)
            await backend.start()
            try:
                assert await backend.count("ghost") == 1
                with pytest.raises(ServiceNotDefined):
                    await backend.scale("ghost", 2)
                # Being stopped, it still runs, and still counts: no 404 yet.
                assert await backend.scale("ghost", 0) == 1
                assert await backend.count("ghost") == 1
                assert backend.snapshot() == {}
                deadline = time.monotonic() + DEADLINE
                while backend.in_use():
                    assert time.monotonic() < deadline, "the process never stopped"
                    await asyncio.sleep(0.02)
                with pytest.raises(ServiceNotDefined):
                    await backend.count("ghost")
            finally:
                await backend.close()
        asyncio.run(scenario())
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_logs_of_exited_processes_are_pruned_per_service(tmp_path):
    """A command that keeps exiting must not leave one log per attempt for ever."""
    async def scenario():
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=1.0)
        await backend.start()
        try:
            for name in ("web", "web-api"):
                await backend.put_definition(Definition.from_body(
                    {"name": name, "command": [sys.executable, "-c", "pass"]}))
            for _ in range(KEEP_LOGS + 5):
                await backend.scale("web", 1)
                await wait_until_counted(backend, "web", 0)
            await backend.scale("web-api", 1)
            await wait_until_counted(backend, "web-api", 0)
        finally:
            await backend.close()
        return sorted(os.listdir(tmp_path / "state" / "logs"))

    async def wait_until_counted(backend, service, number):
        for _ in range(500):
            if await backend.count(service) == number:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("%s never reached %d" % (service, number))

    logs = asyncio.run(scenario())
    assert len([n for n in logs if re.fullmatch(r"web-\d+-\d+\.log", n)]) == KEEP_LOGS
    assert len([n for n in logs if re.fullmatch(r"web-api-\d+-\d+\.log", n)]) == 1


def test_a_kept_definition_no_longer_valid_is_left_out_and_the_rest_start(tmp_path, caplog):
    """A state file whose definition of ``bad`` is no longer valid (an empty command):
    the backend starts with ``web`` only, and says what it left out and where."""
    state_dir = write_state(tmp_path, [])
    state = json.loads((state_dir / "state.json").read_text())
    state["definitions"]["bad"] = {"name": "bad", "command": []}
    (state_dir / "state.json").write_text(json.dumps(state))

    async def scenario():
        backend = ProcessBackend(state_dir=str(state_dir), grace_period=1.0)
        await backend.start()
        try:
            return list(await backend.list_definitions())
        finally:
            await backend.close()
    with caplog.at_level("ERROR", logger="genisys.connector.backend"):
        assert asyncio.run(scenario()) == ["web"]
    [record] = [r for r in caplog.records if "ignoring the definition" in r.message]
    assert record.message.startswith("ignoring the definition of bad in %s: "
                                     % (state_dir / "state.json"))
    assert "command" in record.message
