"""Docker service definitions: the original connector's format, the additions, and every
refusal naming its field. No engine needed."""

import json

import pytest

from genisys.connector.definitions import load_definitions_file
from genisys.connector.docker.definition import DockerDefinition, Port, parse_port
from genisys.errors import ConfigError, Invalid


def test_the_original_connectors_definition_is_accepted():
    # The original Docker connector's README example, as JSON.
    body = {"name": "helloworld", "image": "tutum/hello-world:latest",
            "command": "/run.sh --verbose", "ports": ["8080", "8081"],
            "environment": {"VAR_A": "value", "VAR_B": "value"}}
    d = DockerDefinition.from_body(body)
    assert d.command == ("/run.sh", "--verbose")
    assert d.ports == (Port(8080), Port(8081))
    assert d.to_json() == {
        "name": "helloworld", "image": "tutum/hello-world:latest",
        "command": ["/run.sh", "--verbose"], "environment": {"VAR_A": "value", "VAR_B": "value"},
        "ports": ["8080", "8081"], "labels": {}, "restart": "no", "limits": {}, "network": None}
    # Its GET showed unset fields as null: those are accepted back.
    d = DockerDefinition.from_body({"image": "tutum/hello-world:latest", "command": None,
                                    "environment": None, "ports": None}, name="helloworld")
    assert (d.command, d.environment, d.ports) == (None, (), ())


def test_every_field_round_trips_through_json():
    body = {"name": "api", "image": "registry.example:5000/team/api:2.1",
            "command": ["serve", "--port", "80"], "environment": {"MODE": "prod"},
            "ports": ["80", "9000:8080", "127.0.0.1:9001:81/udp", "127.0.0.1::82", 83],
            "labels": {"team": "payments", "com.example.tier": "web"},
            "restart": "on-failure:3", "limits": {"cpu": 0.5, "memory": "256m"},
            "network": "backend-net"}
    d = DockerDefinition.from_body(body)
    assert (d.cpu, d.memory) == (0.5, 256 * 1024 ** 2)
    out = d.to_json()
    assert out["ports"] == ["80", "9000:8080", "127.0.0.1:9001:81/udp", "127.0.0.1::82", "83"]
    assert out["limits"] == {"cpu": 0.5, "memory": 256 * 1024 ** 2}
    assert DockerDefinition.from_body(json.loads(json.dumps(out))) == d


def test_an_image_pinned_by_digest_needs_no_tag():
    image = "busybox@sha256:" + "ab" * 32
    assert DockerDefinition.from_body({"image": image}, name="x").image == image


@pytest.mark.parametrize("port,expected", [
    ("8080", Port(8080)),
    ("53/udp", Port(53, "udp")),
    ("9000:80", Port(80, host=9000)),
    ("127.0.0.1:9000:80/tcp", Port(80, host=9000, host_ip="127.0.0.1")),
    ("127.0.0.1::80", Port(80, host_ip="127.0.0.1")),
])
def test_port_forms(port, expected):
    assert parse_port(port, "ports[0]") == expected
    assert parse_port(str(expected), "ports[0]") == expected


@pytest.mark.parametrize("body,field,words", [
    ({"name": "web"}, "image", "is required"),
    ({"name": "web", "image": "busybox"}, "image", "has no tag"),
    ({"name": "web", "image": "Busybox:1"}, "image", "is not an image reference"),
    ({"name": "web", "image": "busybox:"}, "image", "is not an image reference"),
    ({"name": "web", "image": 3}, "image", "got integer"),
    ({"name": "web_1", "image": "busybox:1"}, "name", "is not a valid name"),
    ({"image": "busybox:1"}, "name", "is required"),
    ({"name": "web", "image": "busybox:1", "cmd": "x"}, "cmd", "unknown field"),
    ({"name": "web", "image": "busybox:1", "command": []}, "command", "empty list"),
    ({"name": "web", "image": "busybox:1", "command": "echo 'unclosed"}, "command",
     "cannot be split"),
    ({"name": "web", "image": "busybox:1", "command": ["sh", 1]}, "command[1]", "string"),
    ({"name": "web", "image": "busybox:1", "environment": ["A=1"]}, "environment",
     "must be an object"),
    ({"name": "web", "image": "busybox:1", "environment": {"A": 1}}, "environment.A",
     "must be a string"),
    ({"name": "web", "image": "busybox:1", "ports": "8080"}, "ports", "must be a list"),
    ({"name": "web", "image": "busybox:1", "ports": ["80", "http"]}, "ports[1]",
     "is not [IP:][HOST_PORT:]CONTAINER_PORT"),
    ({"name": "web", "image": "busybox:1", "ports": [70000]}, "ports[0]", "from 1 to 65535"),
    ({"name": "web", "image": "busybox:1", "ports": ["80/icmp"]}, "ports[0]", "protocol"),
    ({"name": "web", "image": "busybox:1", "ports": ["::1:80:80"]}, "ports[0]", "IPv6"),
    ({"name": "web", "image": "busybox:1", "ports": ["localhost:80:80"]}, "ports[0]",
     "not an IPv4 address"),
    ({"name": "web", "image": "busybox:1", "ports": ["80", 80]}, "ports[1]", "given twice"),
    ({"name": "web", "image": "busybox:1", "ports": ["80"], "network": "none"}, "ports",
     "can't publish ports"),
    ({"name": "web", "image": "busybox:1", "labels": {"genisys.service": "x"}},
     "labels.genisys.service", "the connector's own"),
    ({"name": "web", "image": "busybox:1", "labels": {"tier": 1}}, "labels.tier",
     "must be a string"),
    ({"name": "web", "image": "busybox:1", "restart": "sometimes"}, "restart",
     "is not a restart policy"),
    ({"name": "web", "image": "busybox:1", "restart": "always:3"}, "restart",
     "is not a restart policy"),
    ({"name": "web", "image": "busybox:1", "limits": {"cpu": 0}}, "limits.cpu",
     "from 0.01"),
    ({"name": "web", "image": "busybox:1", "limits": {"cpu": "1"}}, "limits.cpu",
     "number of CPUs"),
    ({"name": "web", "image": "busybox:1", "limits": {"memory": "1k"}}, "limits.memory",
     "at least 6m"),
    ({"name": "web", "image": "busybox:1", "limits": {"memory": "lots"}}, "limits.memory",
     "a size like 256m"),
    ({"name": "web", "image": "busybox:1", "limits": {"disk": "1g"}}, "limits.disk",
     "unknown field"),
    ({"name": "web", "image": "busybox:1", "limits": 2}, "limits", "must be an object"),
    ({"name": "web", "image": "busybox:1", "network": "my net"}, "network",
     "name of a Docker network"),
])
def test_a_bad_definition_names_the_field(body, field, words):
    with pytest.raises(Invalid) as e:
        DockerDefinition.from_body(body)
    assert (e.value.field, words in e.value.message) == (field, True), e.value


def test_the_name_in_the_url_wins_and_must_match():
    d = DockerDefinition.from_body({"image": "busybox:1"}, name="web")
    assert d.name == "web"
    with pytest.raises(Invalid) as e:
        DockerDefinition.from_body({"name": "api", "image": "busybox:1"}, name="web")
    assert e.value.field == "name"


def test_a_services_file_is_read_as_docker_definitions(tmp_path):
    path = tmp_path / "services.yml"
    path.write_text("web:\n  image: busybox:1\n  command: sleep 60\n"
                    "api:\n  image: busybox\n")
    with pytest.raises(ConfigError) as e:
        load_definitions_file(str(path), DockerDefinition)
    assert "entry api: image:" in str(e.value) and "has no tag" in str(e.value)
    path.write_text("- name: web\n  image: busybox:1\n  network: none\n")
    [d] = load_definitions_file(str(path), DockerDefinition)
    assert (d.name, d.network) == ("web", "none")
