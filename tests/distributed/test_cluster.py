"""A three-member etcd cluster on loopback: members die or stall, controllers carry on."""

import time

from tests.distributed.conftest import (
    TTL,
    RoleWatcher,
    add_compute,
    connector_calls,
    leadership,
    metrics,
    upscale,
    wait_leader,
    wait_running,
)
from tests.support import wait_for


def test_a_dead_member_stops_nothing_and_controllers_fail_over_to_another(
        start_etcd, start_controller, start_connector, prefix):
    cluster = start_etcd(3)
    m0, m1, m2 = cluster.members
    connector = start_connector(backend="simulated")
    # Each controller talks to the first member it lists until that one fails.
    first = start_controller(cluster.url(prefix, [m0, m1, m2]), "first")
    second = start_controller(cluster.url(prefix, [m1, m2, m0]), "second")
    add_compute(first, connector)
    upscale(first, times=2)
    wait_running(connector, 2)

    killed = time.monotonic()
    m0.kill()
    upscale(first, times=3)  # through the member first talked to: it moves to the next
    upscale(second, times=1)
    wait_running(connector, 6)
    print("a member killed: 4 upscales answered and reconciled %.2fs later"
          % (time.monotonic() - killed))
    for server in (first, second):
        r = server.request("GET", "/readyz")
        assert r.status_code == 200 and r.json()["checks"]["store"] == "ok", r.text
        assert server.request("GET", "/service/web").json()["replicas"]["sim"] == 6
    leader = wait_leader(first, second)
    assert connector_calls(leader, "scale") >= 1
    assert "etcd member %s failed" % m0.endpoint in first.log()


def test_a_leader_cut_off_from_etcd_stops_before_its_lease_expires_and_another_takes_over(
        start_etcd, start_controller, start_connector, prefix):
    cluster = start_etcd(3)
    m0, m1, m2 = cluster.members
    connector = start_connector(backend="simulated")
    cut_off = start_controller(cluster.url(prefix, [m0]), "cut-off")
    assert wait_leader(cut_off) is cut_off
    other = start_controller(cluster.url(prefix, [m1, m2]), "other")
    add_compute(other, connector)
    upscale(other, times=2)
    wait_running(connector, 2)
    wait_for(lambda: leadership(other) == ("follower", "cut-off"), timeout=5)

    watcher = RoleWatcher([cut_off, other])
    try:
        stalled = time.monotonic()
        m0.pause()  # SIGSTOP: connections open, nothing answers
        took_over = wait_for(lambda: watcher.first(other, "leader", after=stalled),
                             timeout=10 * TTL, interval=0.02, message="the other to lead")
        stepped_down = watcher.first(cut_off, "follower", after=stalled)
        scale_calls_after_step_down = connector_calls(cut_off, "scale")
        active = metrics(cut_off)[("genisys_reconciler_active", ())]
        upscale(other, times=2)  # meanwhile, through the new leader's side
        wait_running(connector, 4)
    finally:
        watcher.stop()
        m0.resume()
    print("etcd member stalled: old leader stepped down after %.2fs, the other led after "
          "%.2fs (TTL %gs)" % (stepped_down - stalled, took_over - stalled, TTL))
    assert stepped_down is not None and stepped_down < took_over
    assert stepped_down - stalled <= TTL
    assert active == 0
    # Back in touch, the old leader follows and has called no connector since.
    wait_for(lambda: leadership(cut_off) == ("follower", "other"), timeout=10 * TTL)
    assert leadership(other) == ("leader", "other")
    assert connector_calls(cut_off, "scale") == scale_calls_after_step_down
