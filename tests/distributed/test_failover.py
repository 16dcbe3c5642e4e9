"""Two controllers on one etcd: one reconciles, the other takes over when it dies."""

import concurrent.futures
import signal
import threading
import time

import requests

from tests.distributed.conftest import (
    COMPUTE,
    TTL,
    RoleWatcher,
    add_compute,
    connector_calls,
    leadership,
    role,
    upscale,
    wait_leader,
    wait_running,
)
from tests.support import wait_for


def test_only_the_leader_reconciles_and_a_follower_takes_over_after_sigkill(
        start_etcd, start_controller, start_connector, prefix):
    url = start_etcd(1).url(prefix)
    connector = start_connector(backend="simulated")
    first = start_controller(url, "first")
    assert wait_leader(first) is first
    second = start_controller(url, "second")
    add_compute(second, connector)
    upscale(first, times=2)
    upscale(second, times=1)
    wait_running(connector, 3)

    # Both agree on who leads; only the leader ever called the connector.
    assert leadership(first) == ("leader", "first")
    assert wait_for(lambda: leadership(second) == ("follower", "first"), timeout=5)
    ready = second.request("GET", "/readyz").json()
    assert ready["checks"]["leadership"] == {"role": "follower", "identity": "second",
                                             "leader": "first"}
    assert connector_calls(first, "scale") >= 1
    assert connector_calls(second, "scale") == connector_calls(second, "status") == 0

    watcher = RoleWatcher([second])
    try:
        killed = time.monotonic()
        first.stop(signal.SIGKILL)
        upscale(second, times=2)  # while nobody leads: the API answers all the same
        took_over = wait_for(lambda: watcher.first(second, "leader", after=killed),
                             timeout=4 * TTL, interval=0.02, message="second to lead")
    finally:
        watcher.stop()
    failover = took_over - killed
    print("fail-over after SIGKILL of the leader: %.2fs (TTL %gs)" % (failover, TTL))
    assert failover <= 2 * TTL
    wait_running(connector, 5)  # what was asked meanwhile converges
    status = second.request("GET", "/service/web").json()["status"]["computes"][COMPUTE]
    assert wait_for(lambda: second.request("GET", "/service/web").json()["status"]["computes"]
                    [COMPUTE]["condition"] == "Converged", timeout=5 * TTL), status
    assert connector_calls(second, "scale") >= 1


def test_concurrent_upscales_over_both_apis_add_up_exactly(start_etcd, start_controller,
                                                           start_connector, prefix):
    url = start_etcd(1).url(prefix)
    connector = start_connector(backend="simulated")
    servers = [start_controller(url, "a"), start_controller(url, "b")]
    add_compute(servers[0], connector)
    upscale(servers[1])  # the service exists: every upscale below is an update
    local = threading.local()

    def one(i):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(servers[i % 2].url + "/service/web/upscale",
                               json={"compute": COMPUTE}, timeout=60)
        assert r.status_code == 202, r.text
        return i % 2

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        served = list(pool.map(one, range(300)))
    print("300 upscales over two controllers: %.2fs" % (time.monotonic() - started))
    assert served.count(0) == served.count(1) == 150
    for server in servers:
        assert server.request("GET", "/service/web").json()["replicas"][COMPUTE] == 301
    wait_running(connector, 301)
    leader = wait_leader(*servers)
    follower = servers[1 - servers.index(leader)]
    assert role(follower) == "follower"
    assert connector_calls(follower, "scale") == 0


def test_a_leader_stopped_with_sigterm_hands_over_at_once(start_etcd, start_controller, prefix):
    url = start_etcd(1).url(prefix)
    first = start_controller(url, "first")
    assert wait_leader(first) is first
    second = start_controller(url, "second")
    wait_for(lambda: leadership(second) == ("follower", "first"), timeout=5)
    stopped = time.monotonic()
    assert first.stop(signal.SIGTERM) == 0
    wait_for(lambda: role(second) == "leader", timeout=2 * TTL, interval=0.02,
             message="second to lead")
    handover = time.monotonic() - stopped
    print("hand-over after SIGTERM of the leader (exit included): %.2fs" % handover)
    assert handover < TTL, "the lease was revoked, not left to expire"
    assert "first stops reconciling" in first.log()
