"""Fixtures shared by every topic: real genisys processes and stores on every backend."""

import os

import pytest

from genisys.api import make_app
from genisys.intents import Intents
from genisys.store import store_from_url
from tests.support import GenisysProcess

#: Store backends the contract and API tests run against (etcd joins later).
BACKENDS = ["memory", "sqlite"]


def store_url(backend, tmp_path):
    if backend == "memory":
        return "memory://"
    return "sqlite:///" + os.path.join(str(tmp_path), "genisys.db")


@pytest.fixture
def start_genisys(tmp_path):
    """Factory: start(args..., env=...) runs a real genisys on a free port.

    Every process it started is killed at the end of the test."""
    started = []

    def start(*args, env=None, store=True, name="genisys", workdir=None):
        args = list(args)
        if store is True:
            args = ["--store", "sqlite:///" + os.path.join(str(tmp_path), "genisys.db")] + args
        process = GenisysProcess(str(workdir or tmp_path), args, env=env,
                                 name="%s-%d" % (name, len(started)))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path, io_loop):
    """An open store of each backend, closed after the test."""
    s = store_from_url(store_url(backend, tmp_path))
    io_loop.run_sync(s.open)
    yield s
    io_loop.run_sync(s.close)


@pytest.fixture
def max_replicas():
    return 1000


@pytest.fixture
def intents(store, max_replicas):
    return Intents(store, max_replicas=max_replicas)


@pytest.fixture
def app(intents):
    """The API over each backend, served by pytest-tornado's http_server on a free port."""
    return make_app(intents)
