"""Distributed mode, for real: etcd members and genisys controllers as processes.

Every test starts its own etcd (one member or a three-member cluster on
loopback) and controllers with a short leadership lease (TTL), and reads what
they do from outside: /readyz and /metrics of each controller, and the
simulated connector's own count of running resources. The etcd takes clients
over TLS only, with a client certificate, and has authentication on (the
controllers are a user whose role may read and write the test's keys only), as
production clusters do. A plain etcd is the chaos run's (test_chaos.py) and the
store contract's (tests/store), so these tests run only secure: that covers
everything a plain run would, and the suite stays short.
"""

import functools
import threading
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.etcd import EtcdCluster, etcd_binary, unique_prefix
from tests.support import wait_for

#: The leadership lease of the controllers under test, in seconds.
TTL = 2.0
COMPUTE = "sim"


#: The user the controllers are, and the keys its role may use (every test prefix:
#: tests.etcd.unique_prefix).
USER, USER_KEYS = "genisys", "test-"


def store_security(clusters):
    """The EtcdSecurity of an in-process store on the test's last cluster."""
    return clusters[-1].security(USER)


@pytest.fixture
def etcd_clusters():
    """The clusters a test started (``start_etcd``)."""
    clusters = []
    yield clusters
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def start_etcd(tmp_path, etcd_clusters):
    """Factory: ``start_etcd(size)`` runs an etcd cluster of ``size`` members over TLS,
    with USER for the controllers; all are killed at the end of the test."""
    etcd_binary()

    def start(size=1):
        cluster = EtcdCluster(size, workdir=str(tmp_path / ("etcd-%d" % len(etcd_clusters))),
                              tls=True)
        etcd_clusters.append(cluster)
        cluster.start()
        cluster.enable_auth({USER: ("READWRITE", USER_KEYS)})
        return cluster
    return start


@pytest.fixture
def prefix():
    return unique_prefix()


@pytest.fixture
def start_controller(start_genisys, etcd_clusters):
    """Factory: ``start_controller(store_url, name)`` runs a genisys on that etcd with a
    TTL-second lease, named ``name`` in the election, with the client certificate and
    as USER (its password in GENISYS_ETCD_PASSWORD)."""
    def start(url, name, *args):
        cluster = etcd_clusters[-1]
        args = tuple(cluster.tls.flags()) + ("--etcd-user", USER) + args
        env = {"GENISYS_ETCD_PASSWORD": cluster.users[USER]}
        return start_genisys("--store", url, "--identity", name, "--leader-ttl", "%gs" % TTL,
                             "--poll-interval", "2s", "--backoff-max", "2s", *args,
                             store=False, name=name, env=env)
    return start


def metrics(server):
    r = server.request("GET", "/metrics", timeout=5)
    assert r.status_code == 200, r.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def connector_calls(server, operation):
    """How many calls of ``operation`` (scale, status) this controller made, one by
    one or in batch requests (a batch request counts once)."""
    return sum(v for (name, labels), v in metrics(server).items()
               if name == "genisys_connector_call_seconds_count"
               and dict(labels).get("operation") in (operation, "batch_" + operation))


def leadership(server):
    """(role, leader) as the controller's /metrics says (no store involved)."""
    for (name, labels), value in metrics(server).items():
        if name == "genisys_leadership" and value == 1:
            labels = dict(labels)
            return labels["role"], labels["leader"] or None
    return None, None


def role(server):
    try:
        return leadership(server)[0]
    except requests.RequestException:
        return None


def wait_leader(*servers, timeout=8 * TTL):
    """The one of ``servers`` that leads, once exactly one does."""
    def one():
        leaders = [s for s in servers if role(s) == "leader"]
        return leaders[0] if len(leaders) == 1 else None
    return wait_for(one, timeout=timeout, interval=0.05, message="exactly one leader")


def add_compute(server, connector):
    r = server.request("POST", "/compute", json={"name": COMPUTE, "connector": connector.url})
    assert r.status_code == 201, r.text


def upscale(server, service="web", times=1):
    """``times`` upscales, each as docs/distributed.md tells a client to make them: with an
    Idempotency-Key, and again with the same key after a 503 (the store could not say
    whether it happened: an etcd election that outlasts the call, on a loaded machine)."""
    for _ in range(times):
        key = uuid.uuid4().hex
        wait_for(functools.partial(_upscale_once, server, service, key), timeout=60,
                 interval=0.2, message="an upscale answered 202")


def _upscale_once(server, service, key):
    """The answer of one try, None if it is to be tried again (a 503 of the store)."""
    r = server.request("POST", "/service/%s/upscale" % service, json={"compute": COMPUTE},
                       headers={"Idempotency-Key": key})
    if r.status_code == 503 and r.json()["error"]["reason"] == "StoreUnavailable":
        return None
    assert r.status_code == 202, r.text
    return r


def running(connector, service="web"):
    r = connector.request("GET", "/service/%s/status" % service, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["running_resources"]


def wait_running(connector, count, service="web", timeout=10 * TTL):
    wait_for(lambda: running(connector, service) == count, timeout=timeout, interval=0.05,
             message="%d resources of %s on the connector" % (count, service))


class RoleWatcher:
    """Polls the role of controllers in a thread, recording when each one changes."""

    def __init__(self, servers, interval=0.05):
        self.servers = servers
        self.changes = {s: [] for s in servers}  # server -> [(monotonic time, role)]
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for server in self.servers:
                now, current = time.monotonic(), role(server)
                history = self.changes[server]
                if not history or history[-1][1] != current:
                    history.append((now, current))
            self._stop.wait(self._interval)

    def first(self, server, wanted, after=0.0):
        """When ``server`` was first seen in role ``wanted`` after ``after``."""
        for when, seen in self.changes[server]:
            if when >= after and seen == wanted:
                return when
        return None

    def stop(self):
        self._stop.set()
        self._thread.join(5)
