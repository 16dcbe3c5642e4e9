"""A connector's capacity through real connectors: --capacity N, reported in GET
/capabilities with what is used, kept by every scale order (409 InsufficientCapacity,
per service and in a batch, concurrent orders included, processes being stopped
holding their room until they have exited), and read by genisys'
client (``ConnectorClient.capacity``): cached a second, forgotten after a scale
order, None where there is none."""

import asyncio
import json
import logging
import os
import signal
import sys

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from genisys import cli
from genisys.connector import client as client_module
from genisys.connector.capacity import CapacityGuard
from genisys.connector.client import Capacity, ConnectorClient, ConnectorInsufficientCapacity
from genisys.connector.definitions import Definition
from genisys.connector.process import ProcessBackend
from genisys.errors import InsufficientCapacity
from genisys.model import Compute
from tests.connector.common import (
    SLEEPER,
    at_once,
    define,
    error_of,
    output_of,
    running,
    scale,
    slow_to_stop,
)
from tests.connector.test_batch import CAPABILITIES, batch_scale, services_of
from tests.reconciler.conftest import eventually
from tests.reconciler.test_batch import requests_by_endpoint
from tests.support import free_port, process_alive, run_genisys, wait_for

REFUSED = "InsufficientCapacity"
#: Seconds a test waits for stopped processes to exit before it fails.
DEADLINE = 20.0


def capabilities(connector):
    r = connector.request("GET", "/capabilities")
    assert r.status_code == 200, r.text
    return r.json()


def used(connector):
    return capabilities(connector)["capacity"]["used"]


def defined(connector, *names):
    for name in names:
        define(connector, name, SLEEPER)
    return connector


# -- the flag --------------------------------------------------------------------------


@pytest.mark.parametrize("value,words", [
    ("0", "must be from 1 to 1000000, got 0"),
    ("-2", "must be an integer, got '-2'"),
    ("1.5", "must be an integer, got '1.5'"),
    ("ten", "must be an integer, got 'ten'"),
    ("", "must be an integer, got ''"),
    ("1000001", "must be from 1 to 1000000, got 1000001"),
])
def test_a_bad_capacity_exits_2_naming_the_flag(tmp_path, value, words):
    result = run_genisys(["connector", "--capacity=" + value], cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "genisys: connector: --capacity: " + words
    assert not (tmp_path / "var").exists()  # nothing started, nothing created


def test_the_flag_becomes_the_setting_of_every_backend(tmp_path):
    def settings(*args):
        return cli.connector_settings(cli.build_parser().parse_args(["connector", *args]),
                                      environ={})
    assert settings().capacity is None
    for backend in ("process", "simulated", "docker"):
        assert settings("--backend", backend, "--capacity", "12").capacity == 12
    assert "--capacity N" in run_genisys(["connector", "--help"], cwd=str(tmp_path)).stdout


# -- GET /capabilities -----------------------------------------------------------------


def test_capabilities_report_the_capacity_only_when_there_is_one(start_connector):
    assert capabilities(start_connector(backend="simulated")) == CAPABILITIES
    connector = start_connector("--capacity", "3", backend="simulated")
    assert capabilities(connector) == dict(CAPABILITIES, capacity={"total": 3, "used": 0})


def test_without_batch_the_capacity_is_still_reported(start_connector):
    connector = start_connector("--capacity", "3", "--no-batch", backend="simulated")
    assert capabilities(connector) == {"capacity": {"total": 3, "used": 0}}
    for path, body in (("/batch/status", {"services": ["web"]}),
                       ("/batch/scale", {"services": {"web": 1}})):
        assert error_of(connector.request("POST", path, json=body), 404)["field"] == "path"
    plain = start_connector("--no-batch", backend="simulated")
    assert error_of(plain.request("GET", "/capabilities"), 404)["field"] == "path"


def test_used_follows_the_processes_that_run(start_connector):
    connector = defined(start_connector("--capacity", "5", "--grace-period", "2s"),
                        "web", "api")
    assert scale(connector, "web", 2).status_code == 200
    assert used(connector) == 2
    assert scale(connector, "api", 3).status_code == 200
    assert used(connector) == 5 == len(connector.running_pids())
    # Those being stopped are used until they have exited.
    assert scale(connector, "web", 0).json() == {"running_resources": 2, "number": 0}
    assert 3 <= used(connector) <= 5
    wait_for(lambda: used(connector) == 3, timeout=DEADLINE, message="used to drop to 3")
    assert len(connector.running_pids()) == 3
    # A process that exits on its own stops counting (once the connector sees it).
    os.kill(connector.running_pids("api")[0], signal.SIGKILL)
    wait_for(lambda: used(connector) == 2, message="used to drop to 2")
    assert running(connector, "api") == 2


def test_starting_resources_count_as_used(start_connector):
    connector = start_connector("--capacity", "3", "--start-delay", "60s", backend="simulated")
    assert scale(connector, "web", 3).json() == {"running_resources": 0, "number": 3}
    assert used(connector) == 3
    assert error_of(scale(connector, "api", 1), 409)["reason"] == REFUSED


# -- refusals -------------------------------------------------------------------------------


def test_an_order_past_the_capacity_is_refused_and_changes_nothing(start_connector):
    connector = defined(start_connector("--capacity", "2", "--grace-period", "2s"),
                        "web", "api")
    assert scale(connector, "web", 2).status_code == 200
    web = connector.running_pids("web")
    error = error_of(scale(connector, "api", 1), 409)
    assert error == {"reason": REFUSED, "field": "number", "message":
                     "capacity is 2 resources and 2 run (2 of them other services'): "
                     "cannot run 1 of api"}
    entries = services_of(batch_scale(connector, {"api": 1}))
    assert entries == {"api": {"error": {"status": 409, "reason": REFUSED,
                                         "message": error["message"]}}}
    assert error_of(scale(connector, "web", 3), 409)["message"] == (
        "capacity is 2 resources and 2 run (0 of them other services'): cannot run 3 of web")
    # Nothing changed: no process started or stopped, none recorded.
    assert connector.running_pids("web") == web and connector.running_pids("api") == []
    assert running(connector, "api") == 0 and used(connector) == 2
    assert "scaling api" not in connector.log() and "Traceback" not in connector.log()
    # An undefined service is a 404, whatever the room.
    assert error_of(scale(connector, "ghost", 5), 404)["reason"] == "ServiceNotDefined"


def test_a_batch_lowers_first_so_resources_can_move_between_services(start_connector):
    """Where what a service lowers is gone at once (simulated), the room it gives up is
    there for a service the same batch raises."""
    connector = start_connector("--capacity", "2", backend="simulated")
    assert scale(connector, "web", 2).status_code == 200
    # api is first in the body, and still gets the room web gives up.
    assert services_of(batch_scale(connector, {"api": 1, "web": 1})) == {
        "api": {"running_resources": 1}, "web": {"running_resources": 1}}
    entries = services_of(batch_scale(connector, {"api": 2, "web": 1}))
    assert entries["web"] == {"running_resources": 1}
    assert entries["api"]["error"]["status"] == 409
    assert used(connector) == 2
    assert services_of(batch_scale(connector, {"api": 2, "web": 0})) == {
        "api": {"running_resources": 2}, "web": {"running_resources": 0}}


def test_a_process_being_stopped_keeps_its_room_until_it_has_exited(start_connector):
    """A process connector: the room a batch lowers a service by is there for another
    service once the processes stopped have exited, not before (2 s, here)."""
    connector = start_connector("--capacity", "2", "--grace-period", "30s")
    define(connector, "web", slow_to_stop(2))
    define(connector, "api", SLEEPER)
    assert scale(connector, "web", 2).status_code == 200
    wait_for(lambda: all("ready" in output_of(e) for e in connector.recorded("web")),
             message="web's processes to trap SIGTERM")
    [_, stopped] = [e["pid"] for e in connector.recorded("web")]  # the newest is stopped
    entries = services_of(batch_scale(connector, {"api": 1, "web": 1}))
    assert entries["web"] == {"running_resources": 2}  # one running, one being stopped
    assert entries["api"]["error"] == {
        "status": 409, "reason": REFUSED, "message": "capacity is 2 resources and 2 run "
        "(2 of them other services'): cannot run 1 of api"}
    assert used(connector) == 2
    assert process_alive(stopped), "it exited before the checks were done: too slow a machine"
    wait_for(lambda: used(connector) == 1, timeout=DEADLINE, message="web's stop to end")
    assert not process_alive(stopped)
    assert services_of(batch_scale(connector, {"api": 1, "web": 1})) == {
        "api": {"running_resources": 1}, "web": {"running_resources": 1}}
    assert len(connector.running_pids()) == used(connector) == 2


def test_scaling_down_is_taken_over_the_capacity(start_connector):
    """A connector restarted with a lower capacity than what it adopts: it says so, takes
    every order that lowers a service, and refuses the others."""
    first = defined(start_connector("--capacity", "3", "--grace-period", "2s"), "web")
    assert scale(first, "web", 3).status_code == 200
    first.kill()  # SIGKILL: its processes keep running, for the next one to adopt
    second = start_connector("--capacity", "1", "--grace-period", "2s",
                             state_dir=first.state_dir)
    assert capabilities(second)["capacity"] == {"total": 1, "used": 3}
    # The one being stopped runs, and is used, until it has exited.
    assert scale(second, "web", 2).json() == {"running_resources": 3, "number": 2}
    wait_for(lambda: used(second) == 2, timeout=DEADLINE, message="the stopped one to exit")
    assert error_of(scale(second, "web", 3), 409)["message"] == (
        "capacity is 1 resource and 2 run (0 of them other services'): cannot run 3 of web")
    assert scale(second, "web", 1).json() == {"running_resources": 2, "number": 1}
    wait_for(lambda: used(second) == 1, timeout=DEADLINE, message="the stopped one to exit")
    assert len(second.running_pids("web")) == 1


def test_concurrent_orders_never_take_the_connector_over_its_capacity(start_connector):
    """Eight services ordered 6 processes each at once, half per service and half in
    batches, on a connector with room for 10: one order is taken, the seven others are
    refused (while it starts its processes too), and 6 processes run. Three rounds, as
    how the orders interleave differs from one to the next."""
    names = ["s%d" % i for i in range(8)]
    connector = defined(start_connector("--capacity", "10", "--grace-period", "2s"), *names)

    def order(name, i):
        if i % 2:
            return lambda: scale(connector, name, 6)
        return lambda: batch_scale(connector, {name: 6})

    def outcome(answer):
        if answer.request.path_url.startswith("/batch/"):
            [entry] = services_of(answer).values()
            return entry.get("error", {}).get("status", 200)
        return answer.status_code

    for _ in range(3):
        outcomes = [outcome(a) for a in at_once([order(n, i) for i, n in enumerate(names)])]
        assert sorted(outcomes) == [200] + [409] * 7, outcomes
        assert len(connector.running_pids()) == used(connector) == 6
        assert sum(running(connector, name) for name in names) == 6
        assert services_of(batch_scale(connector, dict.fromkeys(names, 0)))
        # The 6 stopped hold their room until they have exited: the next round waits.
        wait_for(lambda: used(connector) == 0, timeout=DEADLINE, message="the stops to end")


# -- the client ---------------------------------------------------------------------------


@pytest.fixture
def client(io_loop):
    c = ConnectorClient(connect_timeout=2, request_timeout=10)
    yield c
    c.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_client_reads_the_capacity_and_forgets_it_after_a_scale_order(
        start_connector, client, monkeypatch):
    monkeypatch.setattr(client_module, "CAPACITY_TTL", 3600.0)  # only an order forgets it
    connector = start_connector("--capacity", "4", backend="simulated")
    compute = Compute("sim", connector.url)
    assert await client.capacity(compute) == Capacity(total=4, used=0)
    assert Capacity(total=4, used=1).free == 3 and Capacity(total=1, used=3).free == 0
    # Concurrent callers share one request; it told the batch size too.
    assert await asyncio.gather(*(client.capacity(compute) for _ in range(10))) \
        == [Capacity(4, 0)] * 10
    assert await client.running(compute, "web") == 0
    assert requests_by_endpoint(connector)["capabilities"] == 1

    scale(connector, "other", 1)  # an order that is not the client's: not known yet
    assert await client.capacity(compute) == Capacity(4, 0)
    assert await client.scale(compute, "web", 2) == 2
    assert await client.capacity(compute) == Capacity(4, 3)
    with pytest.raises(ConnectorInsufficientCapacity) as refused:  # a batch scale
        await client.scale(compute, "web", 4)
    assert refused.value.status == 409 and "cannot run 4 of web" in refused.value.message
    assert await client.running(compute, "web") == 2
    assert await client.capacity(compute) == Capacity(4, 3)  # the refusal forgot it too
    assert requests_by_endpoint(connector)["capabilities"] == 3


@pytest.mark.gen_test(timeout=60)
async def test_the_capacity_is_asked_again_once_its_time_is_up(
        start_connector, client, monkeypatch):
    monkeypatch.setattr(client_module, "CAPACITY_TTL", 0.05)
    connector = start_connector("--capacity", "4", "--no-batch", backend="simulated")
    compute = Compute("sim", connector.url)
    assert await client.capacity(compute) == Capacity(4, 0)
    scale(connector, "other", 3)

    async def refreshed():
        return await client.capacity(compute) == Capacity(4, 3)
    await eventually(refreshed, message="the capacity to show the order")
    # Per service without the extension; refused the same way.
    with pytest.raises(ConnectorInsufficientCapacity):
        await client.scale(compute, "web", 2)
    assert requests_by_endpoint(connector).get("batch_scale", 0) == 0


@pytest.mark.gen_test(timeout=60)
async def test_no_capacity_is_none(start_connector, client):
    for args in ((), ("--no-batch",)):
        connector = start_connector(*args, backend="simulated")
        assert await client.capacity(Compute("sim", connector.url)) is None
    gone = Compute("gone", "http://127.0.0.1:%d" % free_port())
    assert await client.capacity(gone) is None


class _Capabilities(tornado.web.RequestHandler):
    """GET /capabilities answers what the test puts in ``answer``; ``asked`` counts."""

    def initialize(self, state):
        self.state = state

    def get(self):
        self.state["asked"] += 1
        self.finish(json.dumps(self.state["answer"]))


@pytest.fixture
def odd_connector(io_loop):
    """A connector on a loopback port whose /capabilities answers what a test says."""
    state = {"answer": {}, "asked": 0}
    server = tornado.httpserver.HTTPServer(tornado.web.Application(
        [(r"/capabilities", _Capabilities, {"state": state})]))
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=2)
    server.add_sockets([sock])
    state["compute"] = Compute("odd", "http://127.0.0.1:%d" % sock.getsockname()[1])
    yield state
    server.stop()


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("capacity", [
    {"total": -1, "used": 0}, {"total": 2}, {"total": "2", "used": 0},
    {"total": 2.0, "used": 1}, {"total": True, "used": 0}, [2, 0], "full",
])
async def test_a_malformed_capacity_is_none_and_logged_once(
        odd_connector, client, monkeypatch, caplog, capacity):
    monkeypatch.setattr(client_module, "CAPABILITIES_TTL", 0.0)  # every call asks
    monkeypatch.setattr(client_module, "CAPACITY_TTL", 0.0)
    caplog.set_level(logging.DEBUG, logger=client_module.__name__)
    compute = odd_connector["compute"]
    odd_connector["answer"] = {"batch": {"maxServices": 7}, "capacity": capacity}
    for _ in range(3):
        assert await client.capacity(compute) is None
    assert odd_connector["asked"] == 3
    assert await client._batch_size(compute) == 7  # the rest of the answer still holds
    logged = [r for r in caplog.records if "capacity is not" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.DEBUG
    # Reported as is, used above total included; malformed again: logged again.
    odd_connector["answer"] = {"capacity": {"total": 1, "used": 3}}
    assert await client.capacity(compute) == Capacity(total=1, used=3)
    odd_connector["answer"] = {"capacity": capacity}
    assert await client.capacity(compute) is None
    assert len([r for r in caplog.records if "capacity is not" in r.getMessage()]) == 2


def test_a_service_own_processes_still_stopping_hold_their_room(tmp_path):
    """Capacity 3, three processes that ignore SIGTERM: ordered to 0, they still run
    until SIGKILL, and an order for 3 more of the same service needs room for 6."""
    async def scenario():
        # They ignore SIGTERM: stopped, they run until the grace period ends (3 s, plenty
        # for what follows, which takes milliseconds), then are killed.
        backend = ProcessBackend(state_dir=str(tmp_path / "state"), grace_period=3.0)
        await backend.start()
        try:
            await backend.put_definition(Definition.from_body({"command": [
                sys.executable, "-c", "import signal, time; "
                "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]}, name="web"))
            guard = CapacityGuard(backend, 3)
            with guard.order("web", 3):
                await backend.scale("web", 3)
            with guard.order("web", 0):
                await backend.scale("web", 0)
            assert (guard.used(), backend.stopping()) == (3, {"web": 3})
            with pytest.raises(InsufficientCapacity) as refused, guard.order("web", 3):
                raise AssertionError("taken over the capacity")
            assert refused.value.message == (
                "capacity is 3 resources and 3 run (0 of them other services'), 3 of web are "
                "still stopping: cannot run 3 of web")
            assert guard.used() == 3
        finally:
            await backend.close()
    asyncio.run(scenario())
