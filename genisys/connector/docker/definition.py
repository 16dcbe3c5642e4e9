"""Service definitions of the Docker backend: how to run one container of a service.

Compatible with the original Docker connector: ``{"name", "image", "command",
"environment", "ports"}``, where ``image`` must carry a tag (or a digest),
``command`` is a list of arguments or a string (split like a shell would;
absent or null: the image's own), ``environment`` a map of strings and
``ports`` a list of container ports to publish. Beyond it, all optional:
``labels`` (added to every container), ``restart`` (the engine's restart
policy), ``limits`` (``cpu``, in CPUs, and ``memory``, in bytes or like
``256m``) and ``network``. Everything is validated here, with ``Invalid``
naming the field; what only the engine can tell (is the image there? does
the network exist?) is found out when a container starts.
"""

import dataclasses
import ipaddress
import re
from typing import Optional

from genisys.connector.definitions import validate_command, validate_environment
from genisys.errors import Invalid
from genisys.model import (
    ServiceName,
    body_name,
    check_fields,
    describe,
    type_name,
    validate_name,
)

#: Label keys under this prefix are the connector's own (which containers are whose).
RESERVED_LABEL_PREFIX = "genisys."
#: Labels a definition may add to its containers at most.
MAX_LABELS = 64
#: Ports a definition may publish at most.
MAX_PORTS = 64
#: The engine refuses a memory limit under 6 MiB; better said at definition time.
MIN_MEMORY = 6 * 1024 * 1024
#: More CPUs than any machine has: a typo guard (the engine checks the real count).
MAX_CPUS = 1024
#: Restart policies of the engine (``on-failure`` may carry a retry count: ``on-failure:3``).
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
#: Networks a container can't publish ports on.
UNPUBLISHABLE_NETWORKS = ("none", "host")

# An image reference (the distribution project's grammar, simplified): an optional
# registry host, a lowercase path, then a tag and/or a digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_RE = re.compile(
    r"(?:(?P<registry>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?)/)?"
    r"(?P<path>%s(?:/%s)*)" % (_COMPONENT, _COMPONENT)
    + r"(?::(?P<tag>\w[\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?")
_NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_MEMORY_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_PROTOCOLS = ("tcp", "udp", "sctp")


@dataclasses.dataclass(frozen=True)
class Port:
    """One published port: ``container`` (and protocol) on ``host`` (None: any free
    port the engine picks) of ``host_ip`` (None: every address)."""

    container: int
    protocol: str = "tcp"
    host: Optional[int] = None
    host_ip: Optional[str] = None

    def __str__(self):
        text = str(self.container) if self.protocol == "tcp" else "%d/%s" % (
            self.container, self.protocol)
        if self.host_ip is not None:
            return "%s:%s:%s" % (self.host_ip, self.host or "", text)
        if self.host is not None:
            return "%d:%s" % (self.host, text)
        return text

    def binding(self):
        """The Docker SDK's form of the host side."""
        if self.host_ip is not None:
            return (self.host_ip, self.host) if self.host is not None else (self.host_ip,)
        return self.host


@dataclasses.dataclass(frozen=True)
class DockerDefinition:
    """How the Docker backend runs one container of ``name``. Frozen and hashable:
    maps are kept as sorted tuples of pairs."""

    name: ServiceName
    image: str
    #: None: the image's own command.
    command: Optional[tuple] = None
    environment: tuple = ()
    ports: tuple = ()
    labels: tuple = ()
    restart: str = "no"
    #: CPUs (1.5 is one and a half), None: no limit.
    cpu: Optional[float] = None
    #: Bytes, None: no limit.
    memory: Optional[int] = None
    #: None: the engine's default network.
    network: Optional[str] = None

    @classmethod
    def from_body(cls, body, *, name=None):
        """Validate a definition; ``name`` comes from the URL (or a map's key) when given."""
        name = body_name(body, name, required=("image",), optional=(
            "command", "environment", "ports", "labels", "restart", "limits", "network"))
        network = validate_network(body.get("network"), "network")
        ports = validate_ports(body.get("ports"), "ports")
        if ports and network in UNPUBLISHABLE_NETWORKS:
            raise Invalid("containers on network %s can't publish ports" % network,
                          field="ports")
        cpu, memory = validate_limits(body.get("limits"), "limits")
        command = body.get("command")
        environment = body.get("environment")
        return cls(name=validate_name(name, "name"),
                   image=validate_image(body["image"], "image"),
                   command=None if command is None else validate_command(command, "command"),
                   environment=() if environment is None
                   else validate_environment(environment, "environment"),
                   ports=ports, labels=validate_labels(body.get("labels"), "labels"),
                   restart=validate_restart(body.get("restart"), "restart"),
                   cpu=cpu, memory=memory, network=network)

    def to_json(self):
        limits = {}
        if self.cpu is not None:
            limits["cpu"] = self.cpu
        if self.memory is not None:
            limits["memory"] = self.memory
        return {"name": self.name, "image": self.image,
                "command": None if self.command is None else list(self.command),
                "environment": dict(self.environment), "ports": [str(p) for p in self.ports],
                "labels": dict(self.labels), "restart": self.restart, "limits": limits,
                "network": self.network}


def validate_image(value, field):
    if not isinstance(value, str):
        raise Invalid("must be an image reference like busybox:1.36, got %s" % type_name(value),
                      field=field)
    match = _IMAGE_RE.fullmatch(value)
    if match is None or len(value) > 1024:
        raise Invalid("%s is not an image reference (like busybox:1.36 or "
                      "registry.example:5000/team/app:2.1)" % describe(value), field=field)
    if not match.group("tag") and not match.group("digest"):
        raise Invalid("%s has no tag: name the version to run, like %s:1.0 (without one the "
                      "engine would run whatever 'latest' is that day)" % (describe(value), value),
                      field=field)
    return value


def validate_ports(value, field):
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Invalid("must be a list of ports like [\"8080\", \"9000:80\", \"53/udp\"], got %s"
                      % type_name(value), field=field)
    if len(value) > MAX_PORTS:
        raise Invalid("has %d ports, at most %d are allowed" % (len(value), MAX_PORTS),
                      field=field)
    ports = []
    for i, item in enumerate(value):
        port = parse_port(item, "%s[%d]" % (field, i))
        if port in ports:
            raise Invalid("%s is given twice" % describe(item), field="%s[%d]" % (field, i))
        ports.append(port)
    return tuple(ports)


def parse_port(value, field):
    """``8080``, ``"8080"``, ``"8080/udp"``, ``"9000:8080"``, ``"127.0.0.1:9000:8080"`` or
    ``"127.0.0.1::8080"`` (any free host port on that address)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Port(container=_port_number(value, value, field))
    if not isinstance(value, str):
        raise Invalid("must be a port number or a string like \"9000:8080/tcp\", got %s"
                      % type_name(value), field=field)
    text, _, protocol = value.partition("/")
    protocol = protocol or "tcp"
    if protocol not in _PROTOCOLS:
        raise Invalid("%s: the protocol must be one of %s" % (describe(value),
                                                               ", ".join(_PROTOCOLS)),
                      field=field)
    parts = text.split(":")
    if len(parts) > 3:
        raise Invalid("%s is not [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL] (IPv6 addresses "
                      "are not supported)" % describe(value), field=field)
    host_ip = None
    if len(parts) == 3:
        host_ip = parts.pop(0)
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise Invalid("%s: %s is not an IPv4 address" % (describe(value), describe(host_ip)),
                          field=field) from None
    host = None
    if len(parts) == 2:
        host_text = parts.pop(0)
        if host_text or host_ip is None:
            host = _port_number(host_text, value, field)
    return Port(container=_port_number(parts[0], value, field), protocol=protocol, host=host,
                host_ip=host_ip)


def _port_number(text, value, field):
    if isinstance(text, str):
        if not re.fullmatch(r"[0-9]{1,5}", text):
            raise Invalid("%s is not [IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]"
                          % describe(value), field=field)
        text = int(text)
    if not 1 <= text <= 65535:
        raise Invalid("%s: ports are from 1 to 65535" % describe(value), field=field)
    return text


def validate_labels(value, field):
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid("must be an object mapping label names to strings, got %s"
                      % type_name(value), field=field)
    if len(value) > MAX_LABELS:
        raise Invalid("has %d labels, at most %d are allowed" % (len(value), MAX_LABELS),
                      field=field)
    for key, text in value.items():
        if not isinstance(key, str) or not key or "\0" in key or key != key.strip():
            raise Invalid("%s is not a label name" % describe(key), field=field)
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise Invalid("label names starting with %s are the connector's own"
                          % RESERVED_LABEL_PREFIX, field="%s.%s" % (field, key))
        if not isinstance(text, str):
            raise Invalid("must be a string, got %s %s" % (type_name(text), describe(text)),
                          field="%s.%s" % (field, key))
        if "\0" in text:
            raise Invalid("contains a NUL character", field="%s.%s" % (field, key))
    return tuple(sorted(value.items()))


def validate_restart(value, field):
    if value is None:
        return "no"
    if not isinstance(value, str):
        raise Invalid("must be one of %s (or on-failure:N), got %s"
                      % (", ".join(RESTART_POLICIES), type_name(value)), field=field)
    policy, _, retries = value.partition(":")
    if policy not in RESTART_POLICIES or (retries and (
            policy != "on-failure" or not re.fullmatch(r"[0-9]{1,4}", retries))):
        raise Invalid("%s is not a restart policy: one of %s, or on-failure:N (at most N "
                      "restarts)" % (describe(value), ", ".join(RESTART_POLICIES)), field=field)
    return value


def restart_policy(value):
    """The Docker SDK's form of a validated restart policy."""
    policy, _, retries = value.partition(":")
    return {"Name": "" if policy == "no" else policy, "MaximumRetryCount": int(retries or 0)}


def validate_network(value, field):
    if value is None:
        return None
    if not isinstance(value, str) or not _NETWORK_RE.fullmatch(value):
        raise Invalid("must be the name of a Docker network (like bridge, none or my-net), got "
                      "%s %s" % (type_name(value), describe(value)), field=field)
    return value


def validate_limits(value, field):
    """(cpu, memory) of ``{"cpu": 1.5, "memory": "256m"}``; either may be left out."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise Invalid("must be an object like {\"cpu\": 0.5, \"memory\": \"256m\"}, got %s"
                      % type_name(value), field=field)
    check_fields(value, optional=("cpu", "memory"), where=field)
    return (validate_cpu(value.get("cpu"), field + ".cpu"),
            validate_memory(value.get("memory"), field + ".memory"))


def validate_cpu(value, field):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("must be a number of CPUs like 0.5 or 2, got %s" % type_name(value),
                      field=field)
    if not 0.01 <= value <= MAX_CPUS:  # also refuses nan
        raise Invalid("must be from 0.01 to %d CPUs, got %s" % (MAX_CPUS, value), field=field)
    return float(value)


def validate_memory(value, field):
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        memory = value
    elif isinstance(value, str) and _MEMORY_RE.fullmatch(value.strip()):
        number, unit = _MEMORY_RE.fullmatch(value.strip()).groups()
        memory = int(float(number) * _MEMORY_UNITS[unit.lower()])
    else:
        raise Invalid("must be a number of bytes or a size like 256m or 1g, got %s %s"
                      % (type_name(value), describe(value)), field=field)
    if memory < MIN_MEMORY:
        raise Invalid("must be at least 6m (the engine's minimum), got %s" % describe(value),
                      field=field)
    if memory > 2 ** 62:
        raise Invalid("%s is more memory than any machine has" % describe(value), field=field)
    return memory
