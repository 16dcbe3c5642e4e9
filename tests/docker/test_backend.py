"""The Docker backend, in process, against the private engine: every container is real,
and what the tests check is what the engine lists, not what the backend says."""

import asyncio
import json
import threading
import time

import docker.errors
import pytest

from genisys.connector.docker.backend import DockerBackend
from genisys.connector.docker.definition import DockerDefinition
from genisys.errors import BackendUnavailable, Conflict, ServiceNotDefined, StartFailed
from tests.docker.common import IGNORES_SIGTERM, IMAGE, wait_running
from tests.support import wait_for


class Lab:
    """Backends on an event loop that runs in a thread of its own, as in a connector (their
    background stops and tidying go on between calls); closes them all at the end."""

    def __init__(self, tmp_path, engine, connector_id):
        self.tmp_path = tmp_path
        self.engine = engine
        self.connector_id = connector_id
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.backends = []

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def backend(self, cls=DockerBackend, state_dir="state", **kwargs):
        kwargs.setdefault("url", self.engine.url)
        kwargs.setdefault("connector_id", self.connector_id)
        kwargs.setdefault("grace_period", 1.0)
        backend = cls(state_dir=str(self.tmp_path / state_dir), **kwargs)
        self.run(backend.start())
        self.backends.append(backend)
        return backend

    def define(self, backend, name="web", **fields):
        fields.setdefault("image", IMAGE)
        fields.setdefault("network", "none")
        return self.run(backend.put_definition(DockerDefinition.from_body(fields, name=name)))

    def close(self, backend):
        self.backends.remove(backend)
        self.run(backend.close())

    def running(self, service=None):
        return self.engine.containers(self.connector_id, service)

    def finish(self):
        for backend in self.backends:
            self.run(backend.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def lab(tmp_path, engine, connector_id):
    lab = Lab(tmp_path, engine, connector_id)
    yield lab
    lab.finish()


def serial(entry):
    return int(entry["Labels"]["genisys.serial"])


def test_scale_creates_containers_and_stops_the_newest(lab):
    backend = lab.backend()
    lab.define(backend)
    assert lab.run(backend.scale("web", 3)) == 3
    three = wait_running(lab.engine, lab.connector_id, 3)
    assert lab.run(backend.count("web")) == 3
    labels = three[0]["Labels"]
    assert labels["genisys.connector"] == lab.connector_id and labels["genisys.service"] == "web"
    assert json.loads(labels["genisys.definition"])["image"] == IMAGE

    started = time.monotonic()
    assert lab.run(backend.scale("web", 1)) == 1
    assert time.monotonic() - started < 1.0  # the stops go on in the background
    assert lab.run(backend.count("web")) == 1  # those being stopped no longer count
    [kept] = wait_running(lab.engine, lab.connector_id, 1)
    assert serial(kept) == min(serial(c) for c in three)  # the oldest stays
    # Stopped containers are removed, not left exited.
    wait_for(lambda: len(lab.engine.containers(lab.connector_id, running=False)) == 1,
             message="the stopped containers to be removed")
    assert lab.run(backend.scale("web", 0)) == 0
    wait_for(lambda: not lab.engine.containers(lab.connector_id, running=False),
             message="every container removed")


def test_the_container_runs_as_the_definition_says(lab):
    backend = lab.backend()
    lab.define(backend, command=["sh", "-c", "sleep 3600"], environment={"MODE": "test"},
               labels={"team": "payments"}, restart="on-failure:2",
               limits={"cpu": 0.5, "memory": "64m"})
    lab.run(backend.scale("web", 1))
    [entry] = wait_running(lab.engine, lab.connector_id, 1)
    info = lab.engine.api.inspect_container(entry["Id"])
    assert info["Config"]["Image"] == IMAGE
    assert info["Config"]["Cmd"] == ["sh", "-c", "sleep 3600"]
    assert "MODE=test" in info["Config"]["Env"]
    assert info["Config"]["Labels"]["team"] == "payments"
    assert info["Config"]["StopTimeout"] == 1  # `docker stop` by hand gets the same grace
    host = info["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (500_000_000, 64 * 1024 ** 2)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["NetworkMode"] == "none"
    assert info["Name"].startswith("/genisys-%s-web-" % lab.connector_id)


def test_two_services_on_one_image_and_two_connectors_are_counted_apart(lab):
    ours = lab.backend()
    theirs = lab.backend(state_dir="other", connector_id=lab.connector_id + "-b")
    for backend in (ours, theirs):
        lab.define(backend, "web")
        lab.define(backend, "api")
    lab.run(ours.scale("web", 2))
    lab.run(ours.scale("api", 1))
    lab.run(theirs.scale("web", 3))
    assert lab.run(ours.count("web")) == 2
    assert lab.run(ours.count("api")) == 1
    assert lab.run(theirs.count("web")) == 3
    assert lab.run(theirs.count("api")) == 0
    # Scaling one service down never touches the other, on the same image.
    lab.run(ours.scale("web", 0))
    wait_running(lab.engine, lab.connector_id, 0, service="web")
    assert len(lab.running("api")) == 1
    assert len(lab.engine.containers(lab.connector_id + "-b", "web")) == 3


def test_a_container_killed_by_hand_stops_counting_and_is_removed(lab):
    backend = lab.backend()
    lab.define(backend)
    lab.run(backend.scale("web", 2))
    victim = wait_running(lab.engine, lab.connector_id, 2)[0]
    lab.engine.api.kill(victim["Id"])
    assert lab.run(backend.count("web")) == 1  # at once, not at the next tidying
    wait_for(lambda: len(lab.engine.containers(lab.connector_id, running=False)) == 1,
             timeout=10, message="the exited container to be removed")
    # And the next order replaces it.
    assert lab.run(backend.scale("web", 2)) == 2
    assert victim["Id"] not in [c["Id"] for c in wait_running(lab.engine, lab.connector_id, 2)]


def test_a_restarted_backend_sees_exactly_the_containers_that_exist(lab):
    backend = lab.backend()
    lab.define(backend)
    lab.run(backend.scale("web", 3))
    before = {c["Id"] for c in wait_running(lab.engine, lab.connector_id, 3)}
    lab.close(backend)  # a stopped connector leaves its containers to the engine
    assert {c["Id"] for c in lab.running()} == before

    again = lab.backend()
    assert lab.run(again.get_definition("web")).image == IMAGE  # from the state file
    assert lab.run(again.count("web")) == 3
    assert lab.run(again.scale("web", 3)) == 3  # nothing duplicated
    assert {c["Id"] for c in lab.running()} == before
    assert lab.run(again.scale("web", 2)) == 2
    wait_running(lab.engine, lab.connector_id, 2)


def test_a_lost_definition_comes_back_from_the_labels(lab, tmp_path):
    backend = lab.backend()
    lab.define(backend, command="sleep 3600")
    lab.run(backend.scale("web", 1))
    lab.close(backend)
    (tmp_path / "state" / "state.json").unlink()

    again = lab.backend()
    assert lab.run(again.count("web")) == 1  # counted even without a definition
    definition = wait_for(lambda: again._definitions.get("web"), timeout=10,
                          message="the definition recovered by the tidier")
    assert definition.command == ("sleep", "3600")
    # The tidier sets the definition, then writes the file (with fsyncs) on its own
    # thread: wait for the write rather than read it at once.
    state_file = tmp_path / "state" / "state.json"
    saved = wait_for(lambda: json.loads(state_file.read_text())["definitions"].get("web"),
                     timeout=10, message="the recovered definition written to the state file")
    assert saved["command"] == ["sleep", "3600"]


def test_an_undefined_service_is_not_defined(lab):
    backend = lab.backend()
    with pytest.raises(ServiceNotDefined) as e:
        lab.run(backend.count("web"))
    assert '{"image": "name:tag"}' in e.value.message
    with pytest.raises(ServiceNotDefined):
        lab.run(backend.scale("web", 1))


@pytest.mark.parametrize("pull,words", [
    ("never", "does not pull (--pull never)"),
    ("missing", "and pulling it failed"),  # no registry here: the pull fails
])
def test_a_missing_image_is_refused_naming_it(lab, pull, words):
    backend = lab.backend(pull=pull)
    lab.define(backend, image="genisys-test/missing:1")
    with pytest.raises(StartFailed) as e:
        lab.run(backend.scale("web", 2))
    assert e.value.field == "image"
    assert "image genisys-test/missing:1 is not on the Docker engine" in e.value.message
    assert words in e.value.message
    assert lab.engine.containers(lab.connector_id, running=False) == []


def test_a_command_that_cannot_run_leaves_no_container(lab):
    backend = lab.backend()
    lab.define(backend, command=["no-such-program"])
    with pytest.raises(StartFailed) as e:
        lab.run(backend.scale("web", 2))
    assert "no-such-program" in e.value.message
    assert "started 0 of the 2 containers asked for; 0 running" in e.value.message
    assert lab.engine.containers(lab.connector_id, running=False) == []


class FailsThirdCreate(DockerBackend):
    """Fault injection into our own code, not the engine: the third create fails as the
    engine would (a host port taken, say)."""

    creates = 0

    def _create(self, api, definition, name, serial):
        FailsThirdCreate.creates += 1
        if FailsThirdCreate.creates == 3:
            raise docker.errors.APIError("simulated", explanation="port 9000 is already "
                                         "allocated")
        return super()._create(api, definition, name, serial)


def test_a_scale_that_partly_failed_says_how_many_run(lab):
    backend = lab.backend(cls=FailsThirdCreate)
    lab.define(backend)
    lab.run(backend.scale("web", 1))
    with pytest.raises(StartFailed) as e:
        lab.run(backend.scale("web", 4))
    assert "port 9000 is already allocated" in e.value.message
    assert "started 2 of the 3 containers asked for; 3 running" in e.value.message
    assert lab.run(backend.count("web")) == 3
    assert len(wait_running(lab.engine, lab.connector_id, 3)) == 3


def test_a_container_that_ignores_sigterm_is_killed_after_the_grace_period(lab):
    backend = lab.backend(grace_period=1.0)
    lab.define(backend, command=IGNORES_SIGTERM)
    lab.run(backend.scale("web", 1))
    wait_running(lab.engine, lab.connector_id, 1)
    started = time.monotonic()
    lab.run(backend.scale("web", 0))
    wait_for(lambda: not lab.engine.containers(lab.connector_id, running=False), timeout=15,
             message="the container killed and removed")
    # Not before the grace period (a lower bound holds on any machine; how soon after it
    # depends on the machine, and is bounded by the wait above).
    assert time.monotonic() - started > 0.9


def test_a_container_created_but_never_started_is_removed(lab):
    backend = lab.backend()
    lab.define(backend)
    # What a connector killed between create and start leaves behind.
    created = lab.engine.api.create_container(
        IMAGE, labels={"genisys.connector": lab.connector_id, "genisys.service": "web"},
        host_config=lab.engine.api.create_host_config(network_mode="none"))
    assert lab.run(backend.count("web")) == 0
    wait_for(lambda: not lab.engine.containers(lab.connector_id, running=False), timeout=10,
             message="the created container %s to be removed" % created["Id"][:12])


def test_a_definition_in_use_cannot_be_deleted(lab):
    backend = lab.backend()
    lab.define(backend)
    lab.run(backend.scale("web", 1))
    with pytest.raises(Conflict):
        lab.run(backend.delete_definition("web"))
    lab.run(backend.scale("web", 0))
    assert lab.run(backend.delete_definition("web")).name == "web"


def test_an_engine_that_does_not_answer_is_unavailable(lab, tmp_path):
    url = "unix://%s" % (tmp_path / "nothing-here.sock")
    backend = lab.backend(url=url)  # starts anyway: the engine may come later
    lab.define(backend)
    for call in (backend.count("web"), backend.scale("web", 1)):
        with pytest.raises(BackendUnavailable) as e:
            lab.run(call)
        assert e.value.message == ("cannot reach the Docker engine at %s: No such file or "
                                   "directory" % url)
    assert backend.snapshot() == {}


def test_calls_to_the_engine_never_block_the_event_loop(lab, monkeypatch):
    backend = lab.backend()
    lab.define(backend)
    real = backend.engine._run

    def slow(fn, args, kwargs):
        time.sleep(0.5)  # an engine that takes its time
        return real(fn, args, kwargs)
    monkeypatch.setattr(backend.engine, "_run", slow)

    async def scenario():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        task = asyncio.ensure_future(ticker())
        await backend.count("web")
        task.cancel()
        return ticks
    assert lab.run(scenario()) >= 20

