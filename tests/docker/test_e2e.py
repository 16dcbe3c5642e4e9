"""End to end: a real genisys, a real docker connector, real containers on the private engine.

What is checked is what the engine runs (`docker ps`, by the connector's label), and
what genisys says in status.
"""

import signal

import pytest

from tests.docker.common import IMAGE
from tests.support import free_port, wait_for

#: Fast loops for tests: resync every 0.5 s, retries from 0.1 s up to 1 s.
FAST = ["--poll-interval", "500ms", "--backoff-initial", "100ms", "--backoff-max", "1s",
        "--connector-timeout", "5s", "--connector-connect-timeout", "1s"]


class Lab:
    """genisys + a docker connector on a fixed port (so it can be restarted), with the
    services ``web`` and ``api`` defined on one image."""

    def __init__(self, start_genisys, start_connector, engine, connector_id):
        self.start_genisys = start_genisys
        self.start_connector = start_connector
        self.engine = engine
        self.connector_id = connector_id
        self.port = free_port()
        self.connector = None
        self.genisys = None

    def start_the_connector(self, state_dir=None):
        self.connector = self.start_connector(
            "--port", str(self.port), "--docker-url", self.engine.url,
            "--connector-id", self.connector_id, "--grace-period", "1s", backend="docker",
            state_dir=state_dir)
        return self.connector

    def start(self):
        self.start_the_connector()
        for service in ("web", "api"):
            r = self.connector.request("PUT", "/service/" + service,
                                       json={"image": IMAGE, "network": "none"})
            assert r.status_code == 201, r.text
        self.genisys = self.start_genisys(*FAST)
        r = self.genisys.request("PUT", "/compute/docker",
                                 json={"connector": "http://127.0.0.1:%d" % self.port})
        assert r.status_code == 201, r.text
        return self

    def scale(self, number, service="web"):
        r = self.genisys.request("POST", "/service/%s/scale" % service,
                                 json={"compute": "docker", "number": number})
        assert r.status_code == 202, r.text

    def entry(self, service="web"):
        r = self.genisys.request("GET", "/service/" + service)
        return r.json()["status"]["computes"].get("docker") if r.status_code == 200 else None

    def containers(self, service="web"):
        return self.engine.containers(self.connector_id, service)

    def converged(self, number, service="web"):
        """Wait until genisys says Converged at ``number`` and exactly that many run."""
        def check():
            entry = self.entry(service) or {}
            return (entry.get("condition") == "Converged" and entry.get("running") == number
                    and len(self.containers(service)) == number)
        wait_for(check, timeout=30, interval=0.05,
                 message="%s converged at %d (status %s, containers %d)"
                 % (service, number, self.entry(service), len(self.containers(service))))
        return self.containers(service)

    def condition(self, condition, service="web", words=""):
        """Wait until genisys shows ``condition`` (with ``words`` in its message); the entry."""
        def check():
            entry = self.entry(service) or {}
            return entry.get("condition") == condition and words in entry["message"] and entry
        return wait_for(check, timeout=30, message="%s %s %r (status %s)"
                        % (service, condition, words, self.entry(service)))


@pytest.fixture
def lab(start_genisys, start_connector, engine, connector_id):
    return Lab(start_genisys, start_connector, engine, connector_id).start()


def test_zero_three_one_zero_real_containers(lab):
    lab.scale(3)
    three = lab.converged(3)
    lab.scale(1)
    [kept] = lab.converged(1)
    assert kept["Id"] in [c["Id"] for c in three]
    lab.scale(0)
    lab.converged(0)
    wait_for(lambda: not lab.engine.containers(lab.connector_id, running=False),
             message="every container removed")
    events = lab.genisys.request("GET", "/service/web/events").json()
    assert any(e["reason"] == "Scaled" and "from 3 to 1" in e["message"] for e in events)


def test_a_container_killed_by_hand_is_replaced_at_the_next_resync(lab):
    lab.scale(3)
    before = lab.converged(3)
    lab.engine.api.kill(before[0]["Id"])
    wait_for(lambda: before[0]["Id"] not in [c["Id"] for c in lab.containers()]
             and len(lab.containers()) == 3, timeout=30, message="a replacement container")
    assert len(lab.converged(3)) == 3


def test_a_connector_sigkilled_and_restarted_keeps_exactly_three(lab):
    lab.scale(3)
    before = {c["Id"] for c in lab.converged(3)}
    lab.connector.stop(signal.SIGKILL)
    lab.condition("Unreachable")  # (forced at the next resync)
    assert {c["Id"] for c in lab.containers()} == before  # the engine keeps them
    lab.start_the_connector(state_dir=lab.connector.state_dir)
    lab.scale(3)  # unchanged intent; the next passes still ask the new connector
    assert {c["Id"] for c in lab.converged(3)} == before
    assert len(lab.engine.containers(lab.connector_id, running=False)) == 3


def test_two_services_on_one_image_are_counted_apart(lab):
    lab.scale(2, "web")
    lab.scale(1, "api")
    lab.converged(2, "web")
    lab.converged(1, "api")
    lab.scale(0, "web")
    lab.converged(0, "web")
    assert len(lab.converged(1, "api")) == 1


def test_a_missing_image_gives_a_clear_condition_message(lab):
    r = lab.connector.request("PUT", "/service/ghost",
                              json={"image": "genisys-test/ghost:1", "network": "none"})
    assert r.status_code == 201
    lab.scale(1, "ghost")
    entry = lab.condition("Error", "ghost")
    assert entry["reason"] == "ConnectorError"
    assert ": 422 image genisys-test/ghost:1 is not on the Docker engine" in entry["message"]
    assert lab.engine.containers(lab.connector_id, "ghost", running=False) == []


def test_engine_stopped_is_unreachable_and_engine_back_converges(lab):
    lab.scale(2)
    lab.converged(2)
    lab.engine.stop()  # dockerd stops its containers as it goes
    # (While dockerd shuts down, the engine may answer oddly for a moment first.)
    entry = lab.condition("Unreachable",
                          words="cannot reach the Docker engine at %s" % lab.engine.url)
    assert entry["reason"] == "ConnectorUnavailable"
    assert ": 503, the connector is unavailable: " in entry["message"]
    lab.engine.start()
    # The engine is back with the two containers exited: they are removed, and replaced.
    assert len(lab.converged(2)) == 2
    wait_for(lambda: len(lab.engine.containers(lab.connector_id, running=False)) == 2,
             timeout=10, message="the exited containers removed")
