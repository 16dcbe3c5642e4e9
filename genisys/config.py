"""Settings: defaults < genisys.yml < GENISYS_* environment < command-line flags.

One table (``OPTIONS``) names every setting once: its genisys.yml key, its
environment variable, its flag, how to parse it and its default. The file,
the environment, the flags and ``genisys serve --help`` are all derived from
it, so they cannot disagree. Settings are validated once, at start-up; a bad
value raises ConfigError naming the setting and where the value came from.
"""

import dataclasses
import ipaddress
import os
import re
import ssl
from typing import Optional

from genisys import auth, files
from genisys.errors import ConfigError
from genisys.model import DEFAULT_MAX_REPLICAS, VISIBLE_ASCII, describe
from genisys.serving import Exposure, check_exposure
from genisys.store import validate_store_url

DEFAULT_CONFIG_FILE = "./genisys.yml"
DEFAULT_COMPUTE_FILE = "./computes.py"

#: What the API's refusal to listen without tokens, and its warning, say.
API_EXPOSURE = Exposure(without="API tokens", risk="create and destroy resources",
                        remedy="Configure tokens (GENISYS_TOKEN or genisys.tokens_file)",
                        field="genisys.bind", tokens_label="API tokens")


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    #: Address to listen on. Loopback by default: genisys creates and destroys
    #: resources, so exposing it is a decision the operator makes explicitly.
    bind: str = "127.0.0.1"
    #: TCP port of the HTTP API (the seed's 7001). 0 picks a free port.
    port: int = 7001
    #: Seconds a connection may stay idle, and the most a client may take to send
    #: its request headers: a slow client (slow-loris) can't hold connections.
    idle_timeout: float = 20.0
    #: Seconds a client may take to send a request body (bodies are tiny).
    body_timeout: float = 20.0
    #: PEM certificate (chain) and private key: with both, the API is served
    #: over HTTPS only. Neither: plain HTTP (fine on loopback).
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    #: Tokens that may call the API (from tokens_file and GENISYS_TOKEN). Empty:
    #: no authentication, which is only allowed on a loopback address.
    tokens: tuple = ()
    #: YAML list of {name, token, role: admin|read-only}; keep it private (chmod 600).
    tokens_file: Optional[str] = None
    #: Listen on a non-loopback address without tokens anyway (anyone who can
    #: reach the port controls the resources): an explicit, logged choice.
    insecure_bind_any: bool = False


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    #: Where intents and status live: sqlite:///path (durable, the default),
    #: etcd://host:port[,...][/prefix] (shared by replicas; etcd+https:// over TLS)
    #: or memory:// (tests only: everything is lost on exit).
    url: str = "sqlite:///./var/genisys.db"
    #: etcd over TLS (docs/distributed.md): PEM bundle of the CAs that sign the
    #: members' certificates (None: the system's); any of the three files turns
    #: TLS on, as etcd+https:// does.
    etcd_ca_file: Optional[str] = None
    #: PEM client certificate and its key, for members that ask for one.
    etcd_cert_file: Optional[str] = None
    etcd_key_file: Optional[str] = None
    #: etcd user (with etcd's authentication on); its role needs readwrite on the
    #: store's key prefix and nothing else.
    etcd_user: Optional[str] = None
    #: File whose first line is that user's password (chmod 600); or the
    #: GENISYS_ETCD_PASSWORD variable. Never a flag: flags show in ps.
    etcd_password_file: Optional[str] = None
    #: The password itself, read from one of those (never logged, nor in a repr).
    etcd_password: Optional[str] = dataclasses.field(default=None, repr=False)

    def etcd_security(self):
        """The ``EtcdSecurity`` of these settings (imported here: the etcd client is not
        loaded by a CLI command that only reads its settings)."""
        from genisys.store.etcd_client import EtcdSecurity
        return EtcdSecurity(ca_file=self.etcd_ca_file, cert_file=self.etcd_cert_file,
                            key_file=self.etcd_key_file, user=self.etcd_user,
                            password=self.etcd_password)


@dataclasses.dataclass(frozen=True)
class IntentSettings:
    #: Highest desired count for one (service, compute): catches typos such as
    #: 10000 for 100 before they cost money.
    max_replicas: int = DEFAULT_MAX_REPLICAS
    #: computes.py in the seed's format, loaded at start (None: no file).
    compute_file: Optional[str] = None
    #: Seconds an Idempotency-Key is remembered: a retry within it is answered
    #: from the record, never applied twice. A day covers any sane retry loop.
    idempotency_ttl: float = 24 * 3600.0
    #: Most services that may exist: a runaway script can't fill the store.
    max_services: int = 10000
    #: Most computes that may be registered.
    max_computes: int = 1000
    #: Host patterns (``*.internal``, ``10.0.*``) connector URLs must match, so
    #: whoever may register a compute can't make genisys call any address
    #: (SSRF). Empty: any host.
    connector_hosts: tuple = ()
    #: Sidecar mode: a folder of manifests applied at start and whenever it
    #: changes; what it applied and no longer names is pruned (None: off).
    manifests: Optional[str] = None
    #: How often the manifests folder is checked for changes (one stat per file).
    manifests_interval: float = 2.0


@dataclasses.dataclass(frozen=True)
class ConnectorSettings:
    #: Seconds between full resyncs of every service (the seed's 15s): the
    #: bound on how long drift (a dead resource, a manual change) goes unseen.
    poll_interval: float = 15.0
    #: Seconds one connector call may take before it counts as failed.
    timeout: float = 10.0
    #: Seconds to establish a connection to a connector: short, because a
    #: connector that can't be reached should show as Unreachable quickly.
    connect_timeout: float = 3.0
    #: Calls in flight to one connector at most: the ceiling of its adaptive limit,
    #: which starts at 1, grows while the connector's latency stays flat and
    #: shrinks when it rises or calls fail (others wait their turn).
    max_in_flight: int = 256
    #: PEM bundle of the CAs that sign connector certificates (https
    #: connectors); None: the system's trusted CAs. Certificates are always
    #: verified.
    ca_file: Optional[str] = None
    #: Bytes of one connector answer read at most; past it the call is cut and
    #: counts as a bad answer. A status is some 30 bytes and an error page a few
    #: KiB: 1 MiB is ample, and with max_in_flight calls to each connector it
    #: bounds what a buggy or hostile connector can make genisys hold. A batch
    #: answer may take 4 KiB more per service it carries, up to 8 times this.
    max_answer_size: int = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ReconcilerSettings:
    #: Services reconciled at the same time. Passes mostly wait on connectors
    #: (calls to each are bounded by their adaptive limit anyway), so this is
    #: about concurrency, not CPU: with batch connectors, it is what lets one
    #: batch request carry hundreds of services.
    workers: int = 256
    #: First retry delay of a failing (service, compute); it doubles with
    #: each failure (with jitter) up to backoff_max.
    backoff_initial: float = 1.0
    #: Longest retry delay: how long a connector back from an outage may go
    #: unnoticed at worst.
    backoff_max: float = 60.0
    #: Seconds a pass waits for a service's connectors (counted from when each call
    #: is sent, not while it waits in line) before writing the status of those
    #: that answered; slower ones finish in the background, so one hanging
    #: connector doesn't hold back the service's other computes.
    pass_budget: float = 1.0
    #: Seconds of the leadership lease (shared etcd store only): a leader that
    #: dies is replaced within about this long; a leader that can't renew stops
    #: reconciling before then. Shorter fails over faster but needs etcd to
    #: answer renewals (every ttl/3) within ttl/4.
    leader_ttl: float = 10.0
    #: This controller's name in the leader election (/readyz, /metrics, logs).
    #: None: host name and process id.
    identity: Optional[str] = None
    #: Compute health (docs/failover.md): a compute goes NotReady once its connector
    #: has failed every call for this long, and Ready again once it has answered
    #: every call for compute_success_threshold (Karmada's thresholds).
    compute_failure_threshold: float = 30.0
    compute_success_threshold: float = 30.0
    #: A compute no call touched for this long gets a probe (GET /capabilities).
    compute_probe_interval: float = 10.0
    #: A compute that went NotReady 3 times within this window flaps: it stays
    #: NotReady until its connector has answered for the whole window.
    compute_flap_window: float = 300.0
    #: Placed services that start a fail-over, per second, at most (all together).
    failover_rate: float = 0.5
    #: Nothing fails over while more than this share of a placement's computes is
    #: NotReady: genisys' own network is then the likelier fault.
    failover_breaker: float = 0.55


@dataclasses.dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    store: StoreSettings = StoreSettings()
    intents: IntentSettings = IntentSettings()
    connector: ConnectorSettings = ConnectorSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    #: Logging level of the controller (DEBUG, INFO, WARNING, ERROR).
    log_level: str = "INFO"
    #: The genisys.yml that was read, if any.
    config_file: Optional[str] = None


# -- parsers: text or YAML value -> setting, or ValueError with the reason --


# ASCII: \d would take other scripts' digits too ("\u0661\u0665s"), which float() reads.
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", re.ASCII)
_INTEGER_RE = re.compile(r"\s*\d+\s*", re.ASCII)
_SIZE_RE = re.compile(r"\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*", re.ASCII)
_SIZE_UNITS = {"B": 1, None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value, *, allow_zero=False):
    """"15s", "500ms", "2m", "1h" or a plain number of seconds, up to 24h; more than 0
    unless ``allow_zero`` (a delay that may be none). The one duration parser: settings,
    the connector's flags and the CLI's timeouts all read durations with it."""
    low = "from 0" if allow_zero else "more than 0"
    if isinstance(value, bool):
        raise ValueError("must be a duration like 15s, 500ms or 2m")
    if isinstance(value, int):
        # Compared as an int: float() of one past 1e308 raises OverflowError.
        if not (value >= 0 if allow_zero else value > 0) or value > 86400:
            raise ValueError("must be %s and at most 24h, got %s" % (low, describe(value)))
        return float(value)
    if isinstance(value, float):
        seconds = value
    else:
        match = _DURATION_RE.fullmatch(str(value))
        if not match:
            raise ValueError("%s is not a duration (like 15s, 500ms or 2m)" % describe(value))
        # A long run of digits reads as inf, never OverflowError: refused just below.
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not (seconds >= 0 if allow_zero else seconds > 0) or not seconds <= 86400:
        raise ValueError("must be %s and at most 24h, got %s" % (low, describe(value)))
    return seconds


def _integer(value, low, high):
    if isinstance(value, bool):
        raise ValueError("must be an integer, got %r" % (value,))
    if isinstance(value, str):
        if not _INTEGER_RE.fullmatch(value):
            raise ValueError("must be an integer, got %s" % describe(value))
        try:
            value = int(value)
        except ValueError:  # more digits than int() converts: out of range anyway
            raise ValueError("must be from %d to %d, got a %d-digit number"
                             % (low, high, len(value.strip()))) from None
    if not isinstance(value, int):
        raise ValueError("must be an integer, got %s" % describe(value))
    if not low <= value <= high:
        raise ValueError("must be from %d to %d, got %s" % (low, high, describe(value)))
    return value


def parse_size(value, low=4 << 10, high=1 << 30):
    """"1MiB", "512KiB", "1GiB" or a plain number of bytes, from 4 KiB to 1 GiB."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
        if not match:
            raise ValueError("%s is not a size (like 1MiB, 512KiB or 65536)" % describe(value))
        if len(match.group(1)) > 12:  # int() of a huge run of digits is slow; out of range
            raise ValueError("must be from 4KiB to 1GiB, got %s" % describe(value))
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if not low <= size <= high:
        # Not the value itself if it is huge: printing 10**5000 raises ValueError.
        shown = describe(value) if abs(size) < 1 << 64 else "a %d-bit number" % size.bit_length()
        raise ValueError("must be from 4KiB to 1GiB, got %s" % shown)
    return size


def parse_port(value):
    return _integer(value, 0, 65535)


def parse_max_replicas(value):
    return _integer(value, 1, 1_000_000)


def parse_max_in_flight(value):
    return _integer(value, 1, 1024)


def parse_workers(value):
    return _integer(value, 1, 1024)


def parse_max_objects(value):
    return _integer(value, 1, 10_000_000)


def parse_host_patterns(value):
    """A YAML list or a comma-separated string of host patterns."""
    items = value if isinstance(value, list) else str(value).split(",")
    patterns = []
    for item in items:
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9*?.:\[\]-]+", item.strip()):
            raise ValueError("%r is not a host pattern (like *.internal or 10.0.*)" % (item,))
        patterns.append(item.strip().lower())
    return tuple(patterns)


def parse_leader_ttl(value):
    seconds = parse_duration(value)
    if not 2 <= seconds <= 300:
        raise ValueError("must be from 2s to 5m, got %s" % describe(value))
    return seconds


def parse_rate(value):
    """Events per second: a number more than 0, at most 1000."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a number of services a second, like 0.5, got %s"
                         % describe(value))
    try:
        rate = float(value)
    except ValueError:
        raise ValueError("must be a number of services a second, like 0.5, got %s"
                         % describe(value)) from None
    if not 0 < rate <= 1000:
        raise ValueError("must be more than 0 and at most 1000, got %s" % describe(value))
    return rate


def parse_share(value):
    """A share of a whole: "55%", or 0.55."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(text, str) and text.endswith("%"):
            share = float(text[:-1]) / 100
        elif isinstance(text, bool) or not isinstance(text, (int, float, str)):
            raise ValueError
        else:
            share = float(text)
    except ValueError:
        raise ValueError("must be a share such as 55%% or 0.55, got %s" % describe(value)) \
            from None
    if not 0 < share <= 1:
        raise ValueError("must be more than 0%% and at most 100%%, got %s" % describe(value))
    return share


def parse_identity(value):
    if not isinstance(value, str) or not re.fullmatch("[%s]{1,128}" % VISIBLE_ASCII, value):
        raise ValueError("must be 1 to 128 visible ASCII characters, got %s" % describe(value))
    return value


def parse_bind(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an IP address or host name, got %r" % (value,))
    value = value.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", value):
            raise ValueError("%r is not an IP address or host name" % value) from None
    return value


def parse_store(value):
    if not isinstance(value, str):
        raise ValueError("must be a store URL, got %r" % (value,))
    try:
        validate_store_url(value)
    except ConfigError as e:
        raise ValueError(e.message) from e
    return value


def parse_etcd_user(value):
    # etcd takes any name; genisys takes what a person would type (no spaces or controls).
    if not isinstance(value, str) or not re.fullmatch(r"[!-~]{1,128}", value):
        raise ValueError("must be an etcd user name (1 to 128 visible ASCII characters), "
                         "got %r" % (value,))
    return value


def parse_path(value):
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a file path, got %r" % (value,))
    return value


def parse_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false, got %r" % (value,))


def parse_log_level(value):
    level = str(value).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, got %r" % (value,))
    return level


@dataclasses.dataclass(frozen=True)
class Option:
    key: str  # genisys.yml, "section.name"
    env: str
    flag: str
    parse: object
    target: str  # "group.field" in Settings, or "field"
    help: str
    metavar: str = "VALUE"
    #: False for a flag that is a switch (``--insecure-bind-any``), not ``--flag VALUE``.
    flag_value: bool = True


OPTIONS = [
    Option("genisys.bind", "GENISYS_BIND", "--bind", parse_bind, "server.bind",
           "address to listen on (default 127.0.0.1)", "ADDRESS"),
    Option("genisys.port", "GENISYS_PORT", "--port", parse_port, "server.port",
           "HTTP API port (default 7001; 0 picks a free one)", "PORT"),
    Option("genisys.tokens_file", "GENISYS_TOKENS_FILE", "--tokens-file", parse_path,
           "auth.tokens_file", "YAML list of API tokens {name, token, role} (default: none; "
           "GENISYS_TOKEN adds one admin token)", "FILE"),
    Option("genisys.insecure_bind_any", "GENISYS_INSECURE_BIND_ANY", "--insecure-bind-any",
           parse_bool, "auth.insecure_bind_any",
           "allow a non-loopback --bind without any token (dangerous)", flag_value=False),
    Option("genisys.max_services", "GENISYS_MAX_SERVICES", "--max-services",
           parse_max_objects, "intents.max_services",
           "most services that may exist (default 10000)", "N"),
    Option("genisys.max_computes", "GENISYS_MAX_COMPUTES", "--max-computes",
           parse_max_objects, "intents.max_computes",
           "most computes that may be registered (default 1000)", "N"),
    Option("genisys.connector_hosts", "GENISYS_CONNECTOR_HOSTS", "--connector-hosts",
           parse_host_patterns, "intents.connector_hosts",
           "allowed connector hosts, comma-separated patterns like *.internal (default: any)",
           "PATTERNS"),
    Option("genisys.idempotency_ttl", "GENISYS_IDEMPOTENCY_TTL", "--idempotency-ttl",
           parse_duration, "intents.idempotency_ttl",
           "how long an Idempotency-Key is remembered (default 24h)", "DURATION"),
    Option("genisys.idle_timeout", "GENISYS_IDLE_TIMEOUT", "--idle-timeout", parse_duration,
           "server.idle_timeout",
           "idle connections and slow request headers are cut after this (default 20s)",
           "DURATION"),
    Option("genisys.body_timeout", "GENISYS_BODY_TIMEOUT", "--body-timeout", parse_duration,
           "server.body_timeout", "most time to send a request body (default 20s)",
           "DURATION"),
    Option("genisys.tls_cert", "GENISYS_TLS_CERT", "--tls-cert", parse_path, "server.tls_cert",
           "PEM certificate chain: serve HTTPS (with --tls-key)", "FILE"),
    Option("genisys.tls_key", "GENISYS_TLS_KEY", "--tls-key", parse_path, "server.tls_key",
           "PEM private key of --tls-cert", "FILE"),
    Option("connector.ca_file", "GENISYS_CONNECTOR_CA_FILE", "--connector-ca-file", parse_path,
           "connector.ca_file",
           "PEM CA bundle that signs https connectors' certificates (default: system CAs)",
           "FILE"),
    Option("genisys.compute_file", "GENISYS_COMPUTE_FILE", "--compute-file", parse_path,
           "intents.compute_file",
           "computes.py to load at start (default ./computes.py if it exists)", "FILE"),
    Option("genisys.manifests", "GENISYS_MANIFESTS", "--manifests", parse_path,
           "intents.manifests", "sidecar mode: folder of manifests to apply at start and "
           "whenever it changes, pruning what it no longer names (default: none)", "DIR"),
    Option("genisys.manifests_interval", "GENISYS_MANIFESTS_INTERVAL", "--manifests-interval",
           parse_duration, "intents.manifests_interval",
           "how often the manifests folder is checked for changes (default 2s)", "DURATION"),
    Option("genisys.store", "GENISYS_STORE", "--store", parse_store, "store.url",
           "state store URL: sqlite:///path, etcd://host:port[,host:port...][/prefix] or "
           "memory:// (default sqlite:///./var/genisys.db)",
           "URL"),
    Option("genisys.etcd_ca_file", "GENISYS_ETCD_CA_FILE", "--etcd-ca-file", parse_path,
           "store.etcd_ca_file", "etcd store over TLS: PEM CA bundle that signs the members' "
           "certificates (default: system CAs)", "FILE"),
    Option("genisys.etcd_cert_file", "GENISYS_ETCD_CERT_FILE", "--etcd-cert-file", parse_path,
           "store.etcd_cert_file", "etcd store over TLS: PEM client certificate", "FILE"),
    Option("genisys.etcd_key_file", "GENISYS_ETCD_KEY_FILE", "--etcd-key-file", parse_path,
           "store.etcd_key_file", "etcd store over TLS: the client certificate's key", "FILE"),
    Option("genisys.etcd_user", "GENISYS_ETCD_USER", "--etcd-user", parse_etcd_user,
           "store.etcd_user", "etcd user to authenticate as; its password comes from "
           "GENISYS_ETCD_PASSWORD or --etcd-password-file", "NAME"),
    Option("genisys.etcd_password_file", "GENISYS_ETCD_PASSWORD_FILE", "--etcd-password-file",
           parse_path, "store.etcd_password_file",
           "file whose first line is the etcd user's password (chmod 600)", "FILE"),
    Option("genisys.max_replicas", "GENISYS_MAX_REPLICAS", "--max-replicas", parse_max_replicas,
           "intents.max_replicas",
           "highest desired count per service and compute (default 1000)", "N"),
    Option("connector.poll_interval", "GENISYS_POLL_INTERVAL", "--poll-interval", parse_duration,
           "connector.poll_interval", "time between full resyncs, e.g. 15s (default 15s)",
           "DURATION"),
    Option("connector.timeout", "GENISYS_CONNECTOR_TIMEOUT", "--connector-timeout",
           parse_duration, "connector.timeout",
           "timeout of one connector call, e.g. 10s (default 10s)", "DURATION"),
    Option("connector.connect_timeout", "GENISYS_CONNECTOR_CONNECT_TIMEOUT",
           "--connector-connect-timeout", parse_duration, "connector.connect_timeout",
           "timeout to connect to a connector (default 3s)", "DURATION"),
    Option("connector.max_in_flight", "GENISYS_CONNECTOR_MAX_IN_FLIGHT",
           "--connector-max-in-flight", parse_max_in_flight, "connector.max_in_flight",
           "ceiling of the adaptive limit of calls in flight to one connector (default 256)",
           "N"),
    Option("connector.max_answer_size", "GENISYS_CONNECTOR_MAX_ANSWER_SIZE",
           "--connector-max-answer-size", parse_size, "connector.max_answer_size",
           "largest connector answer read, e.g. 512KiB; a larger one is cut and is a bad "
           "answer (default 1MiB)", "SIZE"),
    Option("reconciler.workers", "GENISYS_RECONCILER_WORKERS", "--reconciler-workers",
           parse_workers, "reconciler.workers",
           "services reconciled at the same time (default 256)", "N"),
    Option("reconciler.backoff_initial", "GENISYS_BACKOFF_INITIAL", "--backoff-initial",
           parse_duration, "reconciler.backoff_initial",
           "first retry delay of a failing service on a compute (default 1s)", "DURATION"),
    Option("reconciler.backoff_max", "GENISYS_BACKOFF_MAX", "--backoff-max", parse_duration,
           "reconciler.backoff_max", "longest retry delay (default 60s)", "DURATION"),
    Option("reconciler.pass_budget", "GENISYS_PASS_BUDGET", "--pass-budget", parse_duration,
           "reconciler.pass_budget",
           "how long a pass waits for slow connectors before writing the others' status "
           "(default 1s)", "DURATION"),
    Option("reconciler.leader_ttl", "GENISYS_LEADER_TTL", "--leader-ttl", parse_leader_ttl,
           "reconciler.leader_ttl",
           "leadership lease with an etcd store: how soon a dead leader is replaced "
           "(default 10s)", "DURATION"),
    Option("reconciler.identity", "GENISYS_IDENTITY", "--identity", parse_identity,
           "reconciler.identity",
           "this controller's name in the leader election (default: host-pid)", "NAME"),
    Option("reconciler.compute_failure_threshold", "GENISYS_COMPUTE_FAILURE_THRESHOLD",
           "--compute-failure-threshold", parse_duration, "reconciler.compute_failure_threshold",
           "a compute goes NotReady once its connector has failed every call for this long "
           "(default 30s)", "DURATION"),
    Option("reconciler.compute_success_threshold", "GENISYS_COMPUTE_SUCCESS_THRESHOLD",
           "--compute-success-threshold", parse_duration, "reconciler.compute_success_threshold",
           "a NotReady compute goes Ready once its connector has answered every call for this "
           "long (default 30s)", "DURATION"),
    Option("reconciler.compute_probe_interval", "GENISYS_COMPUTE_PROBE_INTERVAL",
           "--compute-probe-interval", parse_duration, "reconciler.compute_probe_interval",
           "probe a compute no call has touched for this long (default 10s)", "DURATION"),
    Option("reconciler.compute_flap_window", "GENISYS_COMPUTE_FLAP_WINDOW",
           "--compute-flap-window", parse_duration, "reconciler.compute_flap_window",
           "a compute NotReady 3 times within this window stays NotReady until it answers "
           "for all of it (default 5m)", "DURATION"),
    Option("reconciler.failover_rate", "GENISYS_FAILOVER_RATE", "--failover-rate", parse_rate,
           "reconciler.failover_rate",
           "placed services that may start a fail-over per second, all together (default "
           "0.5)", "RATE"),
    Option("reconciler.failover_breaker", "GENISYS_FAILOVER_BREAKER", "--failover-breaker",
           parse_share, "reconciler.failover_breaker",
           "nothing fails over while more than this share of a placement's computes is "
           "NotReady (default 55%)", "SHARE"),
    Option("genisys.log_level", "GENISYS_LOG_LEVEL", "--log-level", parse_log_level,
           "log_level", "DEBUG, INFO, WARNING or ERROR (default INFO)", "LEVEL"),
]

CONFIG_OPTION = Option("-", "GENISYS_CONFIG", "--config", parse_path, "config_file",
                       "genisys.yml to read (default ./genisys.yml if it exists)", "FILE")


def _read_config_file(path):
    """The settings of a genisys.yml as {key: value}; unknown keys are errors."""
    data = files.load_yaml(path, field="config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("%s must be a mapping of sections (genisys:, connector:, "
                          "reconciler:)" % path,
                          field="config")
    known = {o.key: o for o in OPTIONS}
    sections = sorted({k.split(".")[0] for k in known})
    values = {}
    for section, entries in data.items():
        if section not in sections:
            raise ConfigError("unknown section %r in %s (known: %s)"
                              % (section, path, ", ".join(sections)),
                              field=str(section) or "config")  # a section named ''
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ConfigError("must be a mapping in %s" % path, field=str(section))
        for name, value in entries.items():
            key = "%s.%s" % (section, name)
            if key not in known:
                raise ConfigError("unknown setting in %s (known: %s)"
                                  % (path, ", ".join(k for k in known if k.startswith(section))),
                                  field=key)
            values[key] = value
    return values


def _assign(groups, target, value):
    if "." in target:
        group, field = target.split(".")
        groups[group][field] = value
    else:
        groups[""][target] = value


def _load_tokens(tokens_file, environ):
    tokens = []
    if tokens_file is not None:
        tokens, exposed = auth.load_tokens_file(tokens_file)
        if exposed:
            raise ConfigError("the tokens file %s can be read by other users: chmod 600 it"
                              % tokens_file, field="genisys.tokens_file")
    if environ.get("GENISYS_TOKEN") is not None:
        tokens += auth.tokens_from_environment(environ["GENISYS_TOKEN"])
    return tuple(auth.check_unique(tokens))


def server_tls_context(cert, key):
    """The SSL context that serves the API, or ConfigError naming what is wrong."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError("cannot use certificate %s with key %s: %s"
                          % (cert, key, getattr(e, "strerror", None) or e),
                          field="genisys.tls_cert") from e
    return context


def _check_tls(cert, key):
    if (cert is None) != (key is None):
        missing = "genisys.tls_key" if key is None else "genisys.tls_cert"
        raise ConfigError("HTTPS needs both a certificate and its key", field=missing)
    if cert is not None:
        server_tls_context(cert, key)


def _check_ca_file(path):
    if path is None:
        return
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError("cannot load CA certificates from %s: %s"
                          % (path, getattr(e, "strerror", None) or e),
                          field="connector.ca_file") from e


def _check_etcd(store, environ):
    """The etcd store's TLS files and user, checked now (a file that can't be read, a
    certificate without its key, a user without a password); sets ``etcd_password``."""
    given = [k for k in ("etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_user",
                         "etcd_password_file") if store.get(k) is not None]
    if environ.get("GENISYS_ETCD_PASSWORD") is not None:
        given.append("GENISYS_ETCD_PASSWORD")
    url = store.get("url", StoreSettings.url)
    if not url.startswith("etcd"):
        if given:
            field = given[0] if given[0].startswith("GENISYS") else "genisys." + given[0]
            raise ConfigError("%s is for an etcd store, and the store is %s" % (field, url),
                              field=field)
        return
    cert, key = store.get("etcd_cert_file"), store.get("etcd_key_file")
    if (cert is None) != (key is None):
        raise ConfigError("a client certificate for etcd needs both --etcd-cert-file and "
                          "--etcd-key-file", field="genisys.etcd_key_file" if key is None
                          else "genisys.etcd_cert_file")
    ca = store.get("etcd_ca_file")
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError("cannot load CA certificates from %s: %s"
                          % (ca, getattr(e, "strerror", None) or e),
                          field="genisys.etcd_ca_file") from e
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError("cannot use certificate %s with key %s: %s"
                              % (cert, key, getattr(e, "strerror", None) or e),
                              field="genisys.etcd_cert_file") from e
    password = environ.get("GENISYS_ETCD_PASSWORD")
    path = store.get("etcd_password_file")
    if path is not None:
        try:
            if os.stat(path).st_mode & 0o077:
                raise ConfigError("the etcd password file %s can be read by other users: "
                                  "chmod 600 it" % path, field="genisys.etcd_password_file")
            with open(path, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("cannot read the etcd password file %s: %s"
                              % (path, getattr(e, "strerror", None) or "not UTF-8 text"),
                              field="genisys.etcd_password_file") from None
    if store.get("etcd_user") is None and password is not None:
        raise ConfigError("an etcd password was given (GENISYS_ETCD_PASSWORD or "
                          "--etcd-password-file) but no --etcd-user",
                          field="genisys.etcd_user")
    if store.get("etcd_user") is not None and not password:
        raise ConfigError("etcd user %r needs a password: set GENISYS_ETCD_PASSWORD, or "
                          "give --etcd-password-file" % store["etcd_user"],
                          field="genisys.etcd_user")
    store["etcd_password"] = password


def load_settings(flags=None, environ=None):
    """Build Settings from ``flags`` ({flag: text or None}) and ``environ``.

    ``flags`` maps flag names such as "--port" to what the command line
    gave (None: not given)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ

    config_path, explicit = DEFAULT_CONFIG_FILE, False
    for value in (environ.get("GENISYS_CONFIG"), flags.get("--config")):
        if value is not None:
            config_path, explicit = value, True
    file_values = {}
    if explicit or os.path.exists(config_path):
        if explicit and not os.path.exists(config_path):
            raise ConfigError("config file %s does not exist" % config_path, field="config")
        file_values = _read_config_file(config_path)
    else:
        config_path = None

    groups = {"server": {}, "auth": {}, "store": {}, "intents": {}, "connector": {},
              "reconciler": {}, "": {}}
    explicit_compute_file = False
    for option in OPTIONS:
        layers = [(option.key + " in " + str(config_path), file_values.get(option.key)),
                  (option.env, environ.get(option.env)),
                  (option.flag, flags.get(option.flag))]
        for source, raw in layers:
            if raw is None:
                continue
            try:
                value = option.parse(raw)
            except ValueError as e:
                raise ConfigError("%s (from %s)" % (e, source), field=option.key) from e
            _assign(groups, option.target, value)
            if option.target == "intents.compute_file":
                explicit_compute_file = True

    compute_file = groups["intents"].get("compute_file")
    if compute_file is None and os.path.exists(DEFAULT_COMPUTE_FILE):
        groups["intents"]["compute_file"] = DEFAULT_COMPUTE_FILE
    elif explicit_compute_file and not os.path.isfile(compute_file):
        raise ConfigError("compute file %s does not exist" % compute_file,
                          field="genisys.compute_file")

    manifests = groups["intents"].get("manifests")
    if manifests is not None and not os.path.isdir(manifests):
        raise ConfigError("%s is not a folder" % manifests, field="genisys.manifests")

    groups["auth"]["tokens"] = _load_tokens(groups["auth"].get("tokens_file"), environ)
    _check_tls(groups["server"].get("tls_cert"), groups["server"].get("tls_key"))
    _check_ca_file(groups["connector"].get("ca_file"))
    _check_etcd(groups["store"], environ)
    check_exposure(API_EXPOSURE, bind=groups["server"].get("bind", ServerSettings.bind),
                   has_tokens=bool(groups["auth"]["tokens"]),
                   insecure_bind_any=groups["auth"].get("insecure_bind_any", False))

    return Settings(server=ServerSettings(**groups["server"]),
                    auth=AuthSettings(**groups["auth"]),
                    store=StoreSettings(**groups["store"]),
                    intents=IntentSettings(**groups["intents"]),
                    connector=ConnectorSettings(**groups["connector"]),
                    reconciler=ReconcilerSettings(**groups["reconciler"]),
                    config_file=config_path, **groups[""])
