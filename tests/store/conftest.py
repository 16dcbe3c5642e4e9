"""The store contract runs against every backend, etcd included (a real etcd process,
one for the whole session; each test gets keys under a prefix of its own)."""

import pytest

from genisys.store import store_from_url
from tests.conftest import BACKENDS, store_url
from tests.etcd import EtcdCluster, etcd_binary, unique_prefix


@pytest.fixture(scope="session")
def etcd_for_stores():
    """One etcd member shared by the store tests, started on first use."""
    clusters = []

    def get():
        if not clusters:
            etcd_binary()
            clusters.append(EtcdCluster(1).start())
        return clusters[0]
    yield get
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(params=BACKENDS + ["etcd"])
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path, io_loop, etcd_for_stores):
    if backend == "etcd":
        url = etcd_for_stores().url(unique_prefix())
    else:
        url = store_url(backend, tmp_path)
    s = store_from_url(url)
    io_loop.run_sync(s.open)
    yield s
    io_loop.run_sync(s.close)
