"""Fixtures of the Docker connector tests: a private Docker engine, and a test image.

The engine is the real one (Debian's docker.io, installed by
scripts/ensure-docker.sh): ``dockerd`` on its own data, exec and config
directories and its own socket, with the vfs storage driver and no
networking of its own, so it needs nothing from the machine but root and
touches nothing of any other engine. It starts once per session, with its
containerd, and the session stops both, and every container, at the end.

There is no registry to pull from: the test image is imported from a root
filesystem holding Debian's static busybox (``IMAGE``), whose default command
runs until SIGTERM. Containers run on network ``none``.

Without dockerd or busybox (or root) the Docker tests are skipped with the
reason (under CI, tests/conftest.py makes that a failure).
"""

import os
import shutil
import tempfile
import uuid

import docker.errors
import pytest

from tests.docker.common import BUSYBOX, DockerEngine, EngineUnavailable, dockerd


def unavailable(reason):
    pytest.skip("no private Docker engine: %s (make test installs docker.io and "
                "busybox-static with scripts/ensure-docker.sh)" % reason)


@pytest.fixture(scope="session")
def docker_engine():
    """The session's private engine, with IMAGE loaded; stopped, with everything it ran,
    at the end."""
    if dockerd() is None:
        unavailable("dockerd is not installed")
    if not os.path.exists(BUSYBOX):
        unavailable("%s (busybox-static) is not installed" % BUSYBOX)
    if os.geteuid() != 0:
        unavailable("dockerd needs root")
    # Short and private: unix socket paths are limited to 107 bytes.
    engine = DockerEngine(tempfile.mkdtemp(prefix="genisys-docker-"))
    try:
        engine.start()
        engine.import_image()
    except (EngineUnavailable, docker.errors.DockerException) as e:
        engine.stop()
        unavailable(str(e))
    yield engine
    try:
        if engine.running():
            engine.remove_test_containers()
    finally:
        engine.stop()
        shutil.rmtree(engine.root, ignore_errors=True)
    assert engine.processes() == [], "processes of the engine are left"


@pytest.fixture
def engine(docker_engine):
    """The private engine, running (a test that stopped it gets it started again); every
    container of any connector is removed after the test."""
    if not docker_engine.running():
        docker_engine.start()
    yield docker_engine
    if not docker_engine.running():
        docker_engine.start()
    docker_engine.remove_test_containers()


@pytest.fixture
def connector_id():
    """A connector id no other test uses: what tells this test's containers apart."""
    return "t" + uuid.uuid4().hex[:12]
