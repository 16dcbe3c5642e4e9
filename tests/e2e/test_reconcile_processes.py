"""End to end: a real genisys, a real process connector, real OS processes.

Every resource is a process whose command line carries a marker unique to
the test, so the tests count what really runs (as `ps` would), not what
anyone reports.
"""

import os
import signal

from tests.e2e.lab import processes
from tests.support import wait_for


def test_upscale_makes_processes_and_downscale_stops_one(lab):
    lab.start_the_connector()
    lab.start()
    for _ in range(3):
        r = lab.genisys.request("POST", "/service/web/upscale", json={"compute": "local"})
        assert r.status_code == 202
    three = lab.converged(3)
    r = lab.genisys.request("POST", "/service/web/downscale", json={"compute": "local"})
    assert r.status_code == 202
    two = lab.converged(2)
    assert set(two) < set(three)
    stopped = (set(three) - set(two)).pop()
    wait_for(lambda: not os.path.exists("/proc/%d" % stopped) or stopped not in
             processes(lab.marker), message="the stopped process to be gone")
    events = lab.genisys.request("GET", "/service/web/events").json()
    assert any(e["reason"] == "Scaled" and "from 3 to 2" in e["message"] for e in events)


def test_a_process_killed_by_hand_is_replaced_at_the_next_resync(lab):
    lab.start_the_connector()
    lab.start()
    lab.scale(3)
    before = lab.converged(3)
    os.kill(before[0], signal.SIGKILL)
    wait_for(lambda: len(processes(lab.marker)) == 3 and before[0] not in processes(lab.marker),
             timeout=30, message="a replacement process")
    assert len(lab.converged(3)) == 3


def test_connector_down_shows_unreachable_and_recovers_without_overshoot(lab):
    lab.start_the_connector()
    lab.start()
    lab.scale(3)
    lab.converged(3)
    assert lab.connector.stop() == 0  # a graceful stop stops its processes
    assert processes(lab.marker) == []
    lab.scale(4)
    entry = wait_for(lambda: (lab.entry() or {}).get("condition") == "Unreachable"
                     and lab.entry(), timeout=30, message="status Unreachable")
    assert entry["reason"] == "ConnectorUnreachable"
    assert str(lab.connector_port) in entry["message"] and entry["failures"] >= 1
    lab.start_the_connector()
    lab.converged(4)
    assert lab.most_alive() == 4  # never one too many, not even for a moment


def test_a_controller_killed_mid_convergence_converges_exactly_after_restart(lab):
    lab.start_the_connector()
    genisys = lab.start()
    lab.scale(12)
    wait_for(lambda: processes(lab.marker), message="the first processes")
    genisys.kill()  # SIGKILL, while the connector is starting processes
    lab.start()  # same store
    assert len(lab.converged(12)) == 12
    assert lab.most_alive() == 12  # the restarted controller started none twice
    lab.scale(5)
    assert len(lab.converged(5)) == 5


def test_a_connector_killed_with_running_processes_readopts_them(lab):
    lab.start_the_connector()
    lab.start()
    lab.scale(3)
    before = lab.converged(3)
    lab.connector.kill()  # SIGKILL: no chance to stop anything
    assert processes(lab.marker) == before  # still running, nobody's child now
    lab.start_the_connector()
    r = lab.connector.request("GET", "/service/web/status")
    assert r.json() == {"running_resources": 3}
    assert lab.converged(3) == before  # re-adopted: none duplicated, none orphaned
    assert lab.most_alive() == 3
    lab.scale(1)
    assert len(lab.converged(1)) == 1


def test_deleting_a_service_stops_everything_then_removes_it(lab):
    lab.start_the_connector()
    lab.start()
    lab.scale(2)
    lab.converged(2)
    r = lab.genisys.request("DELETE", "/service/web")
    assert r.status_code == 202 and r.json()["deleting"] is True
    wait_for(lambda: lab.genisys.request("GET", "/service/web").status_code == 404,
             timeout=30, message="the service record to go")
    assert processes(lab.marker) == []
    r = lab.genisys.request("DELETE", "/compute/local")
    assert r.status_code == 200, r.text


def test_a_service_the_connector_does_not_define_shows_its_own_reason(lab):
    lab.start_the_connector()
    lab.start()
    lab.scale(1, service="ghost")
    entry = wait_for(lambda: (lab.entry("ghost") or {}).get("failures") and lab.entry("ghost"),
                     timeout=30, message="ghost to fail")
    assert entry["condition"] == "Error" and entry["reason"] == "ServiceNotDefined"
    assert "ghost" in entry["message"]
