"""`genisys connector --backend docker` as a real process, over HTTP, on the private engine."""

import signal

import pytest

from genisys import cli
from genisys.connector.main import DockerSettings, ProcessSettings
from tests.connector.common import (
    at_once,
    changes,
    error_of,
    one_after_the_other,
    running,
    scale,
    starts,
)
from tests.docker.common import IMAGE, wait_running
from tests.support import run_genisys


def start(start_connector, engine, connector_id, *args, **kwargs):
    return start_connector("--docker-url", engine.url, "--connector-id", connector_id,
                           "--grace-period", "1s", *args, backend="docker", **kwargs)


def test_definitions_api_in_the_original_connectors_format(start_connector, engine,
                                                           connector_id):
    connector = start(start_connector, engine, connector_id)
    r = connector.request("POST", "/service", json={
        "name": "helloworld", "image": "tutum/hello-world:latest", "command": "/run.sh",
        "environment": {"VAR_A": "value"}, "ports": ["8080"]})
    assert r.status_code == 201, r.text
    assert connector.request("GET", "/service/helloworld").json()["command"] == ["/run.sh"]
    r = connector.request("PUT", "/service/helloworld", json={
        "image": "panamax/hello-world-php:latest", "ports": ["8080", "8082"]})
    assert r.status_code == 200, r.text
    listed = connector.request("GET", "/service").json()
    assert listed["helloworld"]["image"] == "panamax/hello-world-php:latest"
    assert listed["helloworld"]["ports"] == ["8080", "8082"]
    error = error_of(connector.request("PUT", "/service/web", json={"image": "busybox"}), 400)
    assert error["field"] == "image" and "has no tag" in error["message"]
    error = error_of(connector.request("PUT", "/service/web", json={
        "image": IMAGE, "limits": {"memory": "1k"}}), 400)
    assert error["field"] == "limits.memory"


def test_scale_status_and_errors_over_http(start_connector, engine, connector_id):
    connector = start(start_connector, engine, connector_id)
    assert connector.request("PUT", "/service/web", json={"image": IMAGE,
                                                          "network": "none"}).status_code == 201
    r = scale(connector, "web", 2)
    assert r.status_code == 200 and r.json() == {"running_resources": 2, "number": 2}
    assert running(connector, "web") == 2
    assert len(wait_running(engine, connector_id, 2)) == 2

    error = error_of(scale(connector, "nope", 1), 404)
    assert error["reason"] == "ServiceNotDefined"
    connector.request("PUT", "/service/ghost", json={"image": "genisys-test/ghost:1",
                                                     "network": "none"})
    error = error_of(scale(connector, "ghost", 1), 422)
    assert (error["reason"], error["field"]) == ("StartFailed", "image")
    assert "image genisys-test/ghost:1 is not on the Docker engine" in error["message"]
    metrics = connector.request("GET", "/metrics").text
    assert 'genisys_connector_resources{service="web"} 2.0' in metrics


def test_concurrent_orders_end_at_the_last_carried_out(start_connector, engine, connector_id):
    """Orders for one service at once: the same one four times starts 3 containers, not
    more; then orders of different sizes are carried out one after the other (the
    connector's log says in which order), and what runs is what the last one asked."""
    connector = start(start_connector, engine, connector_id)
    assert connector.request("PUT", "/service/web", json={"image": IMAGE,
                                                          "network": "none"}).status_code == 201
    answers = at_once([lambda: scale(connector, "web", 3)] * 4)
    assert [(r.status_code, r.json()) for r in answers] == \
        [(200, {"running_resources": 3, "number": 3})] * 4
    assert len(wait_running(engine, connector_id, 3)) == 3
    assert (changes(connector.log(), "web"), starts(connector.log(), "web")) == ([(0, 3)], 3)

    orders = [1, 4, 2, 5]
    answers = at_once([lambda n=n: scale(connector, "web", n) for n in orders])
    assert [(r.status_code, r.json()) for r in answers] == \
        [(200, {"running_resources": n, "number": n}) for n in orders]
    history = changes(connector.log(), "web")[1:]
    assert sorted(to for _, to in history) == sorted(orders)
    assert one_after_the_other(history, start=3), history
    last = history[-1][1]
    assert running(connector, "web") == last
    assert len(wait_running(engine, connector_id, last)) == last
    assert starts(connector.log(), "web") == 3 + sum(to - begin for begin, to in history
                                                      if to > begin)
    # Stopped here, so the containers scaled down are removed before the engine is cleaned.
    assert connector.stop() == 0


def test_an_unreachable_engine_answers_503_and_docker_host_is_honoured(start_connector,
                                                                       tmp_path):
    url = "unix://%s" % (tmp_path / "no-engine.sock")
    connector = start_connector("--connector-id", "x", backend="docker",
                                env={"DOCKER_HOST": url})
    assert connector.request("GET", "/healthz").status_code == 200
    connector.request("PUT", "/service/web", json={"image": IMAGE})
    for r in (connector.request("GET", "/service/web/status"), scale(connector, "web", 1)):
        error = error_of(r, 503)
        assert error["reason"] == "BackendUnavailable"
        assert error["message"] == ("cannot reach the Docker engine at %s: No such file or "
                                    "directory" % url)


def test_a_connector_killed_and_restarted_sees_exactly_its_containers(start_connector, engine,
                                                                     connector_id):
    connector = start(start_connector, engine, connector_id)
    connector.request("PUT", "/service/web", json={"image": IMAGE, "network": "none"})
    assert scale(connector, "web", 3).status_code == 200
    before = {c["Id"] for c in wait_running(engine, connector_id, 3)}
    connector.stop(signal.SIGKILL)

    again = start(start_connector, engine, connector_id, state_dir=connector.state_dir)
    assert running(again, "web") == 3
    assert scale(again, "web", 3).json()["running_resources"] == 3
    assert {c["Id"] for c in engine.containers(connector_id)} == before
    # A graceful stop leaves them running too: the engine keeps them.
    assert again.stop() == 0
    assert {c["Id"] for c in engine.containers(connector_id)} == before


def test_a_services_file_defines_docker_services(start_connector, engine, connector_id,
                                                 tmp_path):
    services = tmp_path / "services.yml"
    services.write_text("web:\n  image: %s\n  network: none\n  command: sleep 600\n" % IMAGE)
    connector = start(start_connector, engine, connector_id, "--services", str(services))
    assert connector.request("GET", "/service/web").json()["command"] == ["sleep", "600"]
    services.write_text("web:\n  image: busybox\n")
    result = run_genisys(["connector", "--backend", "docker", "--port", "0", "--services",
                          str(services)], cwd=str(tmp_path))
    assert result.returncode == 2
    assert ("genisys: connector: --services: %s: entry web: image: 'busybox' has no tag"
            % services) in result.stderr


@pytest.mark.parametrize("args,line", [
    (["--backend", "docker", "--docker-url", "/var/run/docker.sock"],
     "genisys: connector: --docker-url: must be a Docker engine address like unix://"),
    (["--backend", "docker", "--connector-id", "web_1"],
     "genisys: connector: --connector-id: must be 1 to 63 letters, digits or '-'"),
    (["--backend", "docker", "--pull", "always"],
     "genisys: connector: --pull: must be missing or never, got 'always'"),
    (["--docker-url", "unix:///x.sock"],
     "genisys: connector: --docker-url: applies only to --backend docker (this is --backend "
     "process)"),
    (["--backend", "simulated", "--grace-period", "1s"],
     "genisys: connector: --grace-period: applies only to --backend process or docker"),
])
def test_a_bad_docker_flag_exits_2_naming_it(tmp_path, args, line):
    result = run_genisys(["connector", "--port", "0"] + args, cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith(line), result.stderr
    assert not (tmp_path / "var").exists()  # nothing started, nothing created


def test_docker_flags_become_settings():
    def settings(*args):
        return cli.connector_settings(cli.build_parser().parse_args(["connector", *args]))
    assert settings("--backend", "docker").docker == DockerSettings()
    s = settings("--backend", "docker", "--docker-url", "tcp://10.0.0.5:2376", "--state-dir",
                 "/srv/d", "--grace-period", "30s", "--connector-id", "edge-1", "--pull",
                 "never")
    assert s.docker == DockerSettings(url="tcp://10.0.0.5:2376", connector_id="edge-1",
                                      state_dir="/srv/d", grace_period=30.0, pull="never")
    assert s.process == ProcessSettings()  # --state-dir and --grace-period went to docker
