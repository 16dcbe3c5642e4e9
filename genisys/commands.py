"""The API client commands of ``genisys``: apply, diff, delete, get, describe,
scale, upscale and downscale (``genisys serve`` and ``genisys connector`` are
in genisys.cli).

Each talks to a running genisys over its HTTP API (--server, GENISYS_SERVER;
the token in GENISYS_TOKEN). Results go to stdout, errors to stderr as one
line (a manifest error: one line per problem). Exit status: 0 done; 1 the
request failed (genisys refused it, or could not be reached); 2 bad usage or
bad manifests. ``diff`` exits 0 when nothing would change, 1 when something
would, and 2 on any error.
"""

import argparse
import datetime
import json
import os
import sys

from genisys.config import parse_duration
from genisys.errors import ConfigError, GenisysError, Invalid
from genisys.manifests import apply as applying
from genisys.manifests.client import DEFAULT_SERVER, ApiError, Client, Unreachable
from genisys.manifests.load import ManifestError
from genisys.model import validate_name

KINDS = {"compute": "Compute", "computes": "Compute", "service": "Service",
         "services": "Service", "svc": "Service"}
OUTPUTS = ("table", "json", "yaml", "name")

CONNECTION_HELP = """\
connection:
  --server URL or GENISYS_SERVER   genisys to talk to (default %s)
  GENISYS_TOKEN                    API token to send (environment only: flags show in ps)
  --ca-file FILE or GENISYS_CA_FILE  CA bundle that signs an https server's certificate
""" % DEFAULT_SERVER

EXAMPLES = {
    "apply": """\
examples:
  genisys apply -f manifests/                  # every *.yaml and *.yml, recursively
  genisys apply -f web.yaml --dry-run          # what would change; nothing is written
  genisys apply -f manifests/ --prune          # also delete what these manifests no longer name
  cat web.yaml | genisys apply -f -
""",
    "diff": """\
Exit status: 0 nothing would change, 1 something would, 2 an error.

examples:
  genisys diff -f manifests/
  genisys diff -f manifests/ --prune
""",
    "delete": """\
examples:
  genisys delete -f manifests/web.yaml
  genisys delete service web
  genisys delete compute gpu --wait-timeout 2m
""",
    "get": """\
examples:
  genisys get services
  genisys get service web -o yaml
  genisys get computes -o name
  genisys get services -o yaml > backup.yaml   # can be applied back
""",
    "describe": """\
examples:
  genisys describe service web
  genisys describe compute local
""",
    "scale": """\
examples:
  genisys scale service web --compute local --replicas 3
""",
    "upscale": """\
examples:
  genisys upscale service web --compute local
""",
    "downscale": """\
examples:
  genisys downscale service web --compute local
""",
}


def fail(message, status):
    print("genisys: %s" % message, file=sys.stderr)
    return status


def add_connection_flags(parser):
    group = parser.add_argument_group("connection")
    group.add_argument("--server", metavar="URL", default=None,
                       help="genisys to talk to [GENISYS_SERVER] (default %s)" % DEFAULT_SERVER)
    group.add_argument("--ca-file", metavar="FILE", default=None,
                       help="CA bundle of an https server [GENISYS_CA_FILE]")
    group.add_argument("--request-timeout", metavar="DURATION", type=_duration,
                       default=10.0, help="timeout of one request, like 10s or 500ms "
                       "(default 10s)")


def _duration(value):
    """A timeout flag: 10s, 500ms, 2m (genisys.config's duration, as every setting)."""
    try:
        return parse_duration(value)
    except ValueError as e:  # argparse then names the flag: "argument --wait-timeout: ..."
        raise argparse.ArgumentTypeError(str(e)) from None


def _replicas(value):
    if not value.isascii() or not value.isdigit():
        raise argparse.ArgumentTypeError("must be a whole number from 0, got %r" % value)
    return int(value)


def _kind(value):
    if value.lower() not in KINDS:
        raise argparse.ArgumentTypeError("must be computes or services, got %r" % value)
    return KINDS[value.lower()]


def _service_kind(value):
    if KINDS.get(value.lower()) != "Service":
        raise argparse.ArgumentTypeError("only services can be scaled, got %r" % value)
    return "Service"


def add_commands(commands):
    """Add the client commands to the ``genisys`` argument parser."""
    def command(name, help_text, description):
        sub = commands.add_parser(name, help=help_text, description=description,
                                  epilog=EXAMPLES[name] + "\n" + CONNECTION_HELP,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_connection_flags(sub)
        return sub

    files_help = "manifest file or folder (*.yaml, *.yml, recursively); - reads stdin; repeatable"
    sub = command("apply", "create or update what manifests describe",
                  "Make genisys hold what the manifests describe: computes first, then "
                  "services. One line per object: created, configured, unchanged or pruned.")
    sub.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                     help=files_help)
    sub.add_argument("--dry-run", action="store_true", help="print what would be done, do "
                     "nothing")
    sub.add_argument("--prune", action="store_true", help="delete the objects earlier applied "
                     "by this manager that the manifests no longer name")
    sub.add_argument("--manager", default=applying.CLI_MANAGER, help="who applies (managedBy; "
                     "default %s): --prune only touches this manager's objects"
                     % applying.CLI_MANAGER)
    sub.add_argument("--wait-timeout", type=_duration, default=120.0, metavar="DURATION",
                     help="with --prune: how long to wait for a pruned compute's services to "
                     "be gone (default 2m)")

    sub = command("diff", "show what apply would change",
                  "Show, as a unified diff, what `genisys apply` would change.")
    sub.add_argument("-f", "--filename", action="append", required=True, metavar="PATH",
                     help=files_help)
    sub.add_argument("--prune", action="store_true", help="also show what --prune would "
                     "delete")
    sub.add_argument("--manager", default=applying.CLI_MANAGER, help="as for apply")

    sub = command("delete", "delete what manifests describe, or one object by name",
                  "Delete objects: those the manifests name (services first), or one "
                  "compute or service. A service is scaled to 0 everywhere before it goes; "
                  "delete waits for that unless --no-wait.")
    sub.add_argument("kind", nargs="?", type=_kind, metavar="compute|service")
    sub.add_argument("name", nargs="?", metavar="NAME")
    sub.add_argument("-f", "--filename", action="append", metavar="PATH", help=files_help)
    sub.add_argument("--no-wait", action="store_true", help="don't wait for deleted services "
                     "to be gone")
    sub.add_argument("--wait-timeout", type=_duration, default=120.0, metavar="DURATION",
                     help="how long to wait for deleted services to be gone (default 2m)")

    sub = command("get", "list computes or services",
                  "List computes or services, or show one. Services show, per compute, the "
                  "desired and running counts and the condition.")
    sub.add_argument("kind", type=_kind, metavar="computes|services")
    sub.add_argument("name", nargs="?", metavar="NAME")
    sub.add_argument("-o", "--output", choices=OUTPUTS, default="table",
                     help="table (default), json, yaml (manifests that can be applied back) "
                     "or name")

    sub = command("describe", "show one compute or service in detail",
                  "Show a service's spec, its status on each compute and its recent events "
                  "(or a compute and the services that use it).")
    sub.add_argument("kind", type=_kind, metavar="compute|service")
    sub.add_argument("name", metavar="NAME")

    sub = command("scale", "set a service's desired count on a compute",
                  "Set how many resources a service should have on one compute.")
    sub.add_argument("kind", type=_service_kind, metavar="service")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--compute", required=True, metavar="COMPUTE")
    sub.add_argument("--replicas", required=True, type=_replicas, metavar="N")

    for name, word in (("upscale", "one more"), ("downscale", "one fewer")):
        sub = command(name, "ask for %s resource of a service on a compute" % word,
                      "Ask for %s resource of a service on one compute." % word)
        sub.add_argument("kind", type=_service_kind, metavar="service")
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--compute", required=True, metavar="COMPUTE")


def make_client(args, environ=None):
    environ = os.environ if environ is None else environ
    server = args.server or environ.get("GENISYS_SERVER") or DEFAULT_SERVER
    if not server.startswith(("http://", "https://")):
        raise ConfigError("must be an http:// or https:// URL, got %r" % server,
                          field="--server")
    ca_file = args.ca_file or environ.get("GENISYS_CA_FILE")
    if ca_file and not os.path.isfile(ca_file):
        raise ConfigError("%s: no such file" % ca_file, field="--ca-file")
    token = (environ.get("GENISYS_TOKEN") or "").split(",")[0].strip() or None
    return Client(server, token=token, verify=ca_file or True, timeout=args.request_timeout)


def run(args, stdin=None):
    """Run one client command; its exit status."""
    handler = HANDLERS[args.command]
    try:
        for field in ("name", "compute"):
            if getattr(args, field, None) is not None:
                validate_name(getattr(args, field), field)
        with make_client(args) as client:
            return handler(client, args, stdin)
    except ManifestError as e:
        print("genisys: %s" % e.message, file=sys.stderr)
        return 2
    except (ConfigError, Invalid) as e:
        return fail(str(e), 2)
    except (ApiError, Unreachable) as e:
        return fail(str(e), 2 if args.command == "diff" else 1)
    except GenisysError as e:
        return fail(str(e), 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `genisys get services | head -1`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0


def _stdin_text(args, stdin):
    if "-" in (args.filename or []):
        return (stdin or sys.stdin).read()
    return None


# -- apply, diff, delete ------------------------------------------------------


def cmd_apply(client, args, stdin):
    steps = applying.plan(client, args.filename, manager=args.manager, prune=args.prune,
                          stdin=_stdin_text(args, stdin))
    suffix = " (dry run)" if args.dry_run else ""

    def report(step):
        print("%s %s%s" % (step.ref, applying.DONE[step.action], suffix), flush=True)
    applying.apply(client, steps, dry_run=args.dry_run, wait=args.wait_timeout, report=report)
    return 0


def cmd_diff(client, args, stdin):
    steps = applying.plan(client, args.filename, manager=args.manager, prune=args.prune,
                          stdin=_stdin_text(args, stdin))
    text = applying.diff(steps)
    sys.stdout.write(text)
    return 1 if text else 0


def cmd_delete(client, args, stdin):
    if args.filename and (args.kind or args.name):
        raise ConfigError("give either -f or a kind and a name, not both", field="-f")
    if args.filename:
        from genisys.manifests.load import load
        manifests = load(args.filename, stdin=_stdin_text(args, stdin))
        targets = [(m.kind, m.name) for kind in ("Service", "Compute") for m in
                   sorted(manifests, key=lambda m: m.name) if m.kind == kind]
    elif args.kind and args.name:
        targets = [(args.kind, args.name)]
    else:
        raise ConfigError("give a kind and a name (delete service web) or -f FILE",
                          field="name" if args.kind else "kind")
    wait = 0.0 if args.no_wait else args.wait_timeout
    for kind, name in targets:
        ref = "%s/%s" % (kind.lower(), name)
        if not applying.delete(client, kind, name, wait=wait):
            if args.filename:
                print("%s not found (already deleted)" % ref)
                continue
            raise ApiError(404, "NotFound", "%s %r does not exist" % (kind.lower(), name),
                           kind.lower())
        if kind == "Service" and not args.no_wait:
            applying.wait_gone(client, kind, name, timeout=args.wait_timeout)
        print("%s deleted" % ref if kind == "Compute" or not args.no_wait
              else "%s deletion requested" % ref, flush=True)
    return 0


# -- get and describe -----------------------------------------------------------


def _objects(client, kind, name):
    if kind == "Compute":
        if name:
            return {name: client.get("/compute/" + name)}
        return client.computes()
    if name:
        return {name: client.get("/service/" + name)}
    return client.services()


def age(created, now=None):
    """kubectl's AGE: 45s, 12m, 5h, 3d ("-" if unknown)."""
    if not created:
        return "-"
    try:
        then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return "-"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def table(rows, header):
    """Columns as wide as their widest cell, two spaces apart."""
    rows = [header] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                   + "\n" for row in rows)


def _labels(labels):
    return ",".join("%s=%s" % item for item in sorted((labels or {}).items())) or "-"


def compute_rows(computes):
    return [[c["name"], c["connector"], "set" if c.get("token") else "-",
             c.get("managedBy") or "-", _labels(c.get("labels"))]
            for c in sorted(computes.values(), key=lambda c: c["name"])]


def service_rows(services):
    rows = []
    for service in sorted(services.values(), key=lambda s: s["name"]):
        status = service.get("status", {}).get("computes", {})
        computes = sorted(set(service["replicas"]) | set(status)) or [None]
        for compute in computes:
            entry = status.get(compute, {})
            desired = service["replicas"].get(compute, 0) if compute else "-"
            running = entry.get("running")
            condition = entry.get("condition") or ("-" if compute is None else "Pending")
            if service.get("deleting"):
                condition += " (deleting)"
            rows.append([service["name"], compute or "-", desired,
                         "-" if running is None else running, condition,
                         age(service.get("created"))])
    return rows


def _manifest(kind, value):
    return applying.compute_manifest(value) if kind == "Compute" \
        else applying.service_manifest(value)


def cmd_get(client, args, stdin):
    objects = _objects(client, args.kind, args.name)
    if not objects and args.output == "table":
        print("No %ss found." % args.kind.lower(), file=sys.stderr)
        return 0
    if args.output == "name":
        sys.stdout.write("".join("%s/%s\n" % (args.kind.lower(), n) for n in sorted(objects)))
    elif args.output in ("json", "yaml"):
        documents = [_manifest(args.kind, objects[n]) for n in sorted(objects)]
        if args.output == "yaml":
            sys.stdout.write(applying.to_yaml(documents) if documents else "")
        else:
            value = documents[0] if args.name else {"apiVersion": "genisys/v1", "kind": "List",
                                                      "items": documents}
            sys.stdout.write(json.dumps(value, indent=2) + "\n")
    elif args.kind == "Compute":
        sys.stdout.write(table(compute_rows(objects), ["NAME", "CONNECTOR", "TOKEN",
                                                       "MANAGED-BY", "LABELS"]))
    else:
        sys.stdout.write(table(service_rows(objects), ["NAME", "COMPUTE", "DESIRED", "RUNNING",
                                                       "CONDITION", "AGE"]))
    return 0


def _describe_service(client, name):
    service = client.get("/service/" + name)
    status = service.get("status", {})
    lines = ["Name:         %s" % service["name"],
             "Labels:       %s" % _labels(service.get("labels")),
             "Managed-By:   %s" % (service.get("managedBy") or "-"),
             "Created:      %s (%s ago)" % (service.get("created") or "-",
                                             age(service.get("created"))),
             "Generation:   %s (status reflects %s)" % (service.get("generation"),
                                                        status.get("observedGeneration", 0)),
             "Deleting:     %s" % ("yes" if service.get("deleting") else "no"),
             "Replicas:"]
    computes = status.get("computes", {})
    rows = []
    for compute in sorted(set(service["replicas"]) | set(computes)):
        entry = computes.get(compute, {})
        running = entry.get("running")
        rows.append([compute, service["replicas"].get(compute, 0),
                     "-" if running is None else running, entry.get("condition") or "Pending",
                     entry.get("reason") or "-", entry.get("lastTransitionTime") or "-",
                     entry.get("message") or ""])
    lines += ["  " + line for line in table(rows, ["COMPUTE", "DESIRED", "RUNNING", "CONDITION",
                                                   "REASON", "SINCE", "MESSAGE"]).splitlines()]
    events = service.get("events", [])
    lines.append("Events:" if events else "Events:       <none>")
    rows = [[age(e.get("time")), e.get("type", ""), e.get("reason", ""), e.get("compute", ""),
             e.get("count", 1), e.get("message", "")] for e in events]
    if rows:
        lines += ["  " + line for line in table(rows, ["AGE", "TYPE", "REASON", "COMPUTE",
                                                       "COUNT", "MESSAGE"]).splitlines()]
    return "\n".join(lines) + "\n"


def _describe_compute(client, name):
    compute = client.get("/compute/" + name)
    users = [s for s in client.services().values()
             if s["replicas"].get(name) or name in s.get("status", {}).get("computes", {})]
    lines = ["Name:         %s" % compute["name"],
             "Connector:    %s" % compute["connector"],
             "Token:        %s" % ("set" if compute.get("token") else "-"),
             "Labels:       %s" % _labels(compute.get("labels")),
             "Managed-By:   %s" % (compute.get("managedBy") or "-"),
             "Services:" if users else "Services:     <none>"]
    rows = service_rows({s["name"]: dict(s, replicas={name: s["replicas"].get(name, 0)},
                                         status={"computes": {
                                             k: v for k, v in s.get("status", {}).get(
                                                 "computes", {}).items() if k == name}})
                         for s in users})
    if rows:
        lines += ["  " + line for line in table(rows, ["SERVICE", "COMPUTE", "DESIRED",
                                                       "RUNNING", "CONDITION",
                                                       "AGE"]).splitlines()]
    return "\n".join(lines) + "\n"


def cmd_describe(client, args, stdin):
    describe = _describe_compute if args.kind == "Compute" else _describe_service
    sys.stdout.write(describe(client, args.name))
    return 0


# -- scale, upscale, downscale ------------------------------------------------


def _changed(view, name, compute):
    desired = view["replicas"].get(compute, 0)
    print("service/%s scaled: %d desired on %s" % (name, desired, compute))
    return 0


def cmd_scale(client, args, stdin):
    view = client.change("/service/%s/scale" % args.name,
                         {"compute": args.compute, "number": args.replicas})
    return _changed(view, args.name, args.compute)


def cmd_upscale(client, args, stdin):
    view = client.change("/service/%s/upscale" % args.name, {"compute": args.compute})
    return _changed(view, args.name, args.compute)


def cmd_downscale(client, args, stdin):
    view = client.change("/service/%s/downscale" % args.name, {"compute": args.compute})
    return _changed(view, args.name, args.compute)


HANDLERS = {"apply": cmd_apply, "diff": cmd_diff, "delete": cmd_delete, "get": cmd_get,
            "describe": cmd_describe, "scale": cmd_scale, "upscale": cmd_upscale,
            "downscale": cmd_downscale}
