"""The ``genisys`` command.

``genisys serve`` runs the controller (``python genisys.py`` does the same);
``genisys connector`` runs the bundled connector. Exit status: 0 after a
clean shutdown, 1 when genisys cannot start or a request fails, 2 for bad
usage or bad configuration. Errors are one line on stderr, never a traceback.
"""

import argparse
import asyncio
import gc
import logging
import os
import re
import sys

from genisys import auth, commands, config
from genisys.errors import ConfigError, GenisysError
from genisys.model import NAME_PATTERN, NAME_RULE
from genisys.serving import check_exposure


def _connector():
    """``genisys.connector.main``, imported when a connector is run or configured: the
    connector server (prometheus, its backends) would cost every CLI command some 90 ms
    of start-up."""
    from genisys.connector import main
    return main

SERVE_EPILOG = """\
Every setting can come from genisys.yml, the environment or a flag; the
later wins: defaults < genisys.yml < GENISYS_* environment < flags.

  genisys.yml key          environment                flag
""" + "\n".join("  %-24s %-26s %s" % (o.key, o.env, o.flag) for o in config.OPTIONS) + """
  -                        GENISYS_CONFIG             --config
  -                        GENISYS_TOKEN              - (admin token(s), comma-separated;
                                                         never a flag: flags show in ps)
  -                        GENISYS_ETCD_PASSWORD      - (the --etcd-user's password, or
                                                         --etcd-password-file)

Durations are written 15s, 500ms, 2m or 1h. Store URLs: sqlite:///relative.db,
sqlite:////absolute/path.db, etcd://host:2379[,host:2379...][/prefix] (several
replicas, one elected leader; etcd+https:// over TLS), memory:// (tests only).

examples:
  genisys serve
  genisys serve --port 7002 --store sqlite:////var/lib/genisys/genisys.db
  GENISYS_POLL_INTERVAL=5s genisys serve --compute-file ./computes.py
  genisys serve --manifests /etc/genisys/manifests     # sidecar mode
  genisys serve --store etcd://10.0.0.1:2379,10.0.0.2:2379 --bind 0.0.0.0
  GENISYS_ETCD_PASSWORD=... genisys serve --store etcd+https://etcd.internal:2379 \
      --etcd-ca-file ca.pem --etcd-cert-file client.pem --etcd-key-file client.key \
      --etcd-user genisys
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def build_parser():
    parser = _Parser(prog="genisys", description="Compute resource management: a reconciling "
                     "controller that makes connectors run the resources services want.")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    serve = subcommands.add_parser("serve", help="run the controller (API and store)",
                                description="Run the genisys controller.", epilog=SERVE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_flags(serve)
    connector = subcommands.add_parser(
        "connector", help="run the bundled connector (processes, containers or simulated "
        "resources)",
        description="Run a connector: the HTTP agent genisys calls to run resources.\n"
        "Every flag is checked before anything starts.", epilog=CONNECTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, metavar, _, _, text in CONNECTOR_FLAGS:
        if metavar is None:  # a switch: given or not
            connector.add_argument(flag, dest=flag, action="store_const", const="true",
                                   default=None, help=text)
        else:
            connector.add_argument(flag, dest=flag, metavar=metavar, default=None, help=text)
    connector.add_argument("--insecure-bind-any", action="store_true",
                           help="allow a non-loopback --bind without GENISYS_CONNECTOR_TOKEN "
                           "(dangerous: anyone who reaches the port runs processes)")
    commands.add_commands(subcommands)
    return parser


def add_setting_flags(parser):
    for option in config.OPTIONS + [config.CONFIG_OPTION]:
        if option.flag_value:
            parser.add_argument(option.flag, dest=option.flag, metavar=option.metavar,
                                default=None, help="%s [%s]" % (option.help.replace("%", "%%"),
                                                                 option.env))
        else:
            parser.add_argument(option.flag, dest=option.flag, action="store_const",
                                const="true", default=None,
                                help="%s [%s]" % (option.help.replace("%", "%%"), option.env))


def setup_logging(level):
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per request is too much at INFO; failures still show (4xx/5xx).
    logging.getLogger("tornado.access").setLevel(max(logging.WARNING, getattr(logging, level)))


def fail(message, status):
    print("genisys: %s" % message, file=sys.stderr)
    return status


# -- genisys connector ------------------------------------------------------------


def parse_backend(value):
    connector_main = _connector()
    if value not in connector_main.BACKENDS:
        raise ValueError("must be one of %s, got %r" % (", ".join(connector_main.BACKENDS),
                                                         value))
    return value


def parse_delay(value):
    """A duration that may be 0 (latency, start delay): "0", "250ms", "2s"."""
    return config.parse_duration(value, allow_zero=True)


def parse_rate(value):
    try:
        rate = float(value)
    except ValueError:
        raise ValueError("must be a number from 0 to 1, got %r" % value) from None
    if not 0 <= rate <= 1:  # also refuses nan
        raise ValueError("must be from 0 to 1, got %s" % value.strip())
    return rate


def parse_directory(value):
    if not value.strip():
        raise ValueError("must be a directory path, got %r" % value)
    return value


def parse_docker_url(value):
    if not re.fullmatch(r"(unix|tcp|http|https|ssh)://\S+", value):
        raise ValueError("must be a Docker engine address like unix:///var/run/docker.sock or "
                         "tcp://host:2376, got %r" % value)
    return value


def parse_connector_id(value):
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError("must be %s, got %r" % (NAME_RULE, value))
    return value


def parse_region(value):
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", value):
        raise ValueError("must be an AWS region like us-east-1, got %r" % value)
    return value


def parse_endpoint_url(value):
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError("must be an http:// or https:// URL like http://127.0.0.1:5000, got %r"
                         % value)
    return value


def parse_capacity(value):
    """The most resources a connector runs at once: a whole number from 1."""
    connector_main = _connector()
    return config._integer(value, 1, connector_main.MAX_CAPACITY)


def parse_off(_value):
    """A switch that turns off a setting that is on by default (--no-batch)."""
    return False


def parse_pull(value):
    if value not in ("missing", "never"):
        raise ValueError("must be missing or never, got %r" % value)
    return value


#: flag, metavar, parser, target in ConnectorServerSettings ("group.field" or "field"),
#: help. A metavar of None makes the flag a switch (its parser gets "true"). A flag not
#: given keeps the default of genisys.connector.main's dataclasses; a
#: flag of a backend's group ("process", "simulated", "docker", "aws") applies to that
#: backend only, and "process|docker.state_dir" to either (into the group of the one chosen).
CONNECTOR_FLAGS = [
    ("--backend", "NAME", parse_backend, "backend", "process (OS processes), docker "
     "(containers), aws (EC2 instances, Auto Scaling groups) or simulated (virtual "
     "resources) (default process)"),
    ("--bind", "ADDRESS", config.parse_bind, "bind", "address to listen on (default "
     "127.0.0.1)"),
    ("--port", "PORT", config.parse_port, "port", "port to listen on (default 7051; 0 picks "
     "a free one)"),
    ("--services", "FILE", config.parse_path, "services_file", "YAML or JSON file of service "
     "definitions to apply at start: a list of definitions or a mapping name -> definition"),
    ("--state-dir", "DIR", parse_directory, "process|docker|aws.state_dir", "process, docker "
     "and aws backends: state file, lock (and process logs) (default ./var/connector, docker "
     "./var/docker-connector, aws ./var/aws-connector)"),
    ("--grace-period", "DURATION", config.parse_duration, "process|docker.grace_period",
     "process and docker backends: time between SIGTERM and SIGKILL when stopping a process "
     "or container (default 10s)"),
    ("--docker-url", "URL", parse_docker_url, "docker.url", "docker backend: the engine's "
     "API (default DOCKER_HOST, else unix:///var/run/docker.sock)"),
    ("--connector-id", "ID", parse_connector_id, "docker|aws.connector_id", "docker and aws "
     "backends: value of the genisys.connector label of its containers (the genisys:connector "
     "tag of its instances); one per connector on an engine (in an AWS account and region) "
     "(default default)"),
    ("--region", "REGION", parse_region, "aws.region", "aws backend: the AWS region (default "
     "AWS_REGION or AWS_DEFAULT_REGION, else the profile's)"),
    ("--endpoint-url", "URL", parse_endpoint_url, "aws.endpoint_url", "aws backend: another "
     "EC2 and Auto Scaling endpoint, such as moto's server or LocalStack (default AWS's own)"),
    ("--in-flight-timeout", "DURATION", config.parse_duration, "aws.in_flight_timeout",
     "aws backend: how long a launch counts while DescribeInstances does not list it yet "
     "(default 2m)"),
    ("--retry-after", "DURATION", config.parse_duration, "aws.retry_after", "aws backend: "
     "the Retry-After of its 503 answers when AWS throttles it (default 5s)"),
    ("--pull", "POLICY", parse_pull, "docker.pull", "docker backend: missing (pull an image "
     "that is not on the engine) or never (default missing)"),
    ("--latency", "DURATION", parse_delay, "simulated.latency", "simulated backend: added to "
     "every status and scale request, once per batch request (default 0)"),
    ("--failure-rate", "RATE", parse_rate, "simulated.failure_rate", "simulated backend: "
     "probability 0..1 that a status or scale call answers 500 SimulatedFailure (default 0)"),
    ("--start-delay", "DURATION", parse_delay, "simulated.start_delay", "simulated backend: "
     "time before a new resource counts as running (default 0)"),
    ("--log-level", "LEVEL", config.parse_log_level, "log_level", "DEBUG, INFO, WARNING or "
     "ERROR (default INFO)"),
    ("--no-batch", None, parse_off, "batch", "do not offer the batch extension: GET "
     "/capabilities (unless there is a --capacity) and POST /batch/status, /batch/scale "
     "answer 404 and genisys calls per service (default: offered)"),
    ("--capacity", "N", parse_capacity, "capacity", "most resources the connector runs at "
     "once, over all its services: a scale order past it answers 409 InsufficientCapacity, "
     "and GET /capabilities reports it (default: no limit; aws backend: the account's "
     "max-instances)"),
]

CONNECTOR_EPILOG = """\
The connector answers the protocol genisys calls (GET /service/NAME/status,
POST /service/NAME/scale {"number": N}) and keeps service definitions
(GET/POST /service, GET/PUT/DELETE /service/NAME): {"name": "web",
"command": ["python3", "-m", "http.server"], "environment": {}, "cwd": null}.
The docker backend's definitions name an image: {"name": "web", "image":
"nginx:1.27", "command": null, "environment": {}, "ports": ["80"]}.
The aws backend's name an AMI and an instance type (or a launch template):
{"name": "web", "imageId": "ami-0abc1234", "instanceType": "t3.micro"}, or
an Auto Scaling group: {"name": "web", "autoScalingGroup": "web-asg"}; its
credentials come from the standard AWS chain (environment, ~/.aws, role).
The simulated backend needs no definition.

It also offers the batch extension, many services per call (GET
/capabilities, POST /batch/status {"services": [NAME, ...]}, POST
/batch/scale {"services": {NAME: N, ...}}), which genisys uses when it is
offered; --no-batch turns it off. With --capacity N it runs at most N
resources at once, over all its services, and reports N and what it uses
in GET /capabilities for genisys' placement.

GENISYS_CONNECTOR_TOKEN (environment only; several separated by commas for
rotation): every request but /healthz must carry Authorization: Bearer
<token>. Give genisys the same token as the compute's "token".

Durations are written 10s, 500ms, 2m or 1h.

examples:
  genisys connector --services services.yml
  genisys connector --backend simulated --port 7052 --latency 200ms --failure-rate 0.1
  genisys connector --services services.yml --capacity 20
  genisys connector --backend docker --port 7053 --docker-url unix:///var/run/docker.sock
  genisys connector --backend aws --port 7054 --region eu-west-1
"""


def connector_settings(args, environ=None):
    """ConnectorServerSettings from the parsed flags and GENISYS_CONNECTOR_TOKEN;
    ConfigError naming the bad flag."""
    connector_main = _connector()
    environ = os.environ if environ is None else environ
    groups = {"": {}, "process": {}, "simulated": {}, "docker": {}, "aws": {}}
    given = []
    for flag, _, parse, target, _ in CONNECTOR_FLAGS:
        raw = getattr(args, flag)
        if raw is None:
            continue
        try:
            value = parse(raw)
        except ValueError as e:
            raise ConfigError(str(e), field=flag) from e
        group, _, field = target.rpartition(".")
        given.append((flag, group.split("|") if group else [], field, value))
    backend = next((v for _, g, field, v in given if not g and field == "backend"), "process")
    for flag, flag_groups, field, value in given:
        if flag_groups and backend not in flag_groups:
            raise ConfigError("applies only to --backend %s (this is --backend %s)"
                              % (" or ".join(flag_groups), backend), field=flag)
        groups[backend if flag_groups else ""][field] = value
    tokens = ()
    if environ.get("GENISYS_CONNECTOR_TOKEN") is not None:
        tokens = tuple(auth.check_unique(auth.tokens_from_environment(
            environ["GENISYS_CONNECTOR_TOKEN"], variable="GENISYS_CONNECTOR_TOKEN",
            name="genisys")))
    check_exposure(connector_main.EXPOSURE, bind=groups[""].get("bind", "127.0.0.1"),
                   has_tokens=bool(tokens), insecure_bind_any=args.insecure_bind_any)
    return connector_main.ConnectorServerSettings(
        process=connector_main.ProcessSettings(**groups["process"]),
        simulated=connector_main.SimulatedSettings(**groups["simulated"]),
        docker=connector_main.DockerSettings(**groups["docker"]),
        aws=connector_main.AwsSettings(**groups["aws"]), tokens=tokens,
        insecure_bind_any=args.insecure_bind_any, **groups[""])


def cmd_connector(args):
    connector_main = _connector()
    try:
        settings = connector_settings(args)
    except ConfigError as e:
        return fail("connector: %s" % e, 2)
    setup_logging(settings.log_level)
    return run_main(connector_main.run_connector(settings), config_prefix="connector: ",
                    error_prefix="connector: ")


# -- genisys serve ------------------------------------------------------------------


def cmd_serve(args):
    from genisys import app
    flags = {o.flag: getattr(args, o.flag) for o in config.OPTIONS + [config.CONFIG_OPTION]}
    try:
        settings = config.load_settings(flags)
    except ConfigError as e:
        return fail("config: %s" % e, 2)
    setup_logging(settings.log_level)
    return run_main(app.run(settings), config_prefix="config: ", error_prefix="")


def _loop_runner():
    """uvloop's run (libuv's event loop) where it is installed; asyncio's elsewhere."""
    try:
        import uvloop
    except ImportError:  # a platform without it: asyncio's own loop, slower
        return asyncio.run
    return uvloop.run


#: The collector's first threshold in a server (CPython's is 700 allocations). A pass
#: keeps many young objects alive across its awaits, which every young collection walks
#: again; at 10,000, converging 10,000 services x 4 took a quarter less CPU (20.2 ->
#: 15.0 CPU-s), and RSS after a burst of upscales did not grow (docs/performance.md).
GC_FIRST_THRESHOLD = 10_000


def tune_gc():
    """Collect young objects less often (``GC_FIRST_THRESHOLD``); a higher threshold
    set by whoever embeds genisys stays."""
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, GC_FIRST_THRESHOLD), second, third)


def run_main(main, *, config_prefix, error_prefix):
    """Run a server's main coroutine to its end (on uvloop where it is installed); the
    exit status its outcome deserves: 0 after a clean stop, 2 for bad configuration,
    1 when it cannot start."""
    tune_gc()
    try:
        _loop_runner()(main)
    except ConfigError as e:
        return fail(config_prefix + str(e), 2)
    except GenisysError as e:
        return fail(error_prefix + str(e), 1)
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130
    return 0


#: Every command and the function that runs it (genisys.py passes these through).
COMMANDS = {"serve": cmd_serve, "connector": cmd_connector,
            **{name: commands.run for name in commands.HANDLERS}}


def main(argv=None):
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
