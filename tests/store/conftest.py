"""The store contract runs against every backend, etcd included (a real etcd process,
one for the whole session; each test gets keys under a prefix of its own), and again
against an etcd that takes clients over TLS only, with a client certificate, and with
authentication on: the store is a user whose role may read and write its keys only."""

import pytest

from genisys.store import store_from_url
from tests.conftest import BACKENDS, store_url
from tests.etcd import EtcdCluster, etcd_binary, unique_prefix

#: The keys the secure etcd's user may read and write: every test prefix
#: (tests.etcd.unique_prefix), nothing else.
SECURE_PREFIX = "test-"


def _shared(make):
    """A session's cluster made by ``make()`` on first use; stopped at the end."""
    clusters = []

    def get():
        if not clusters:
            etcd_binary()
            clusters.append(make())
        return clusters[0]
    return get, clusters


@pytest.fixture(scope="session")
def etcd_for_stores():
    """One etcd member shared by the store tests, started on first use."""
    get, clusters = _shared(lambda: EtcdCluster(1).start())
    yield get
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(scope="session")
def secure_etcd_for_stores():
    """One etcd member over TLS with client certificates and authentication on, with a
    user ``genisys`` that may read and write keys under SECURE_PREFIX only."""
    def make():
        cluster = EtcdCluster(1, tls=True).start()
        cluster.enable_auth({"genisys": ("READWRITE", SECURE_PREFIX)})
        return cluster
    get, clusters = _shared(make)
    yield get
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(params=BACKENDS + ["etcd", "etcd-secure"])
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path, io_loop, etcd_for_stores, secure_etcd_for_stores):
    security = None
    if backend == "etcd":
        url = etcd_for_stores().url(unique_prefix())
    elif backend == "etcd-secure":
        cluster = secure_etcd_for_stores()
        url, security = cluster.url(unique_prefix()), cluster.security("genisys")
    else:
        url = store_url(backend, tmp_path)
    s = store_from_url(url, etcd_security=security)
    io_loop.run_sync(s.open)
    yield s
    io_loop.run_sync(s.close)
