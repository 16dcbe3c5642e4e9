"""The API client commands of ``genisys``: apply, diff, plan, delete, get,
describe, scale, upscale, downscale and rebalance (``genisys serve`` and
``genisys connector`` are in genisys.cli).

Each talks to a running genisys over its HTTP API (--server, GENISYS_SERVER;
the token in GENISYS_TOKEN). Results go to stdout, errors to stderr as one
line (a manifest error: one line per problem). Exit status: 0 done; 1 the
request failed (genisys refused it, or could not be reached); 2 bad usage or
bad manifests. ``diff`` exits 0 when nothing would change, 1 when something
would, and 2 on any error; ``plan``, as ``terraform plan -detailed-exitcode``,
0 when there is nothing to do, 2 when there is, and 1 on any error (bad usage
included).
"""

import argparse
import datetime
import json
import os
import sys

from genisys.config import parse_duration
from genisys.errors import ConfigError, GenisysError, Invalid
from genisys.manifests import apply as applying
from genisys.manifests import plan as planning
from genisys.manifests.client import DEFAULT_SERVER, ApiError, Client, Unreachable
from genisys.manifests.load import ManifestError
from genisys.model import validate_name

KINDS = {"compute": "Compute", "computes": "Compute", "service": "Service",
         "services": "Service", "svc": "Service"}
OUTPUTS = ("table", "json", "yaml", "name")
#: The exit status of any error, for commands whose statuses say something else
#: (diff: 1 means "differences"; plan: 2 means "changes").
ERROR_STATUS = {"diff": 2, "plan": 1}
#: The widest PLACEMENT cell of ``get services`` (describe shows it whole).
PLACEMENT_WIDTH = 40

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
  genisys apply -f web.yaml --dry-run          # what would change; genisys checks, writes nothing
  genisys apply -f manifests/ --prune          # also delete what these manifests no longer name
  cat web.yaml | genisys apply -f -
  genisys plan -f manifests/ -o json > p.json; genisys apply --plan p.json
                                               # only if nothing moved since the plan
""",
    "diff": """\
Exit status: 0 nothing would change, 1 something would, 2 an error.

examples:
  genisys diff -f manifests/
  genisys diff -f manifests/ --prune
""",
    "plan": """\
What the controller would do, one line per service and compute: the ACTION
(create, scale up, scale down, delete, none), FROM what runs TO what should,
and the REASON (intent, placement, rebalance, drift, paced). With -f, what applying
the manifests would do: genisys checks each write (?dryRun=true) and writes
nothing. -o json with -f is a plan that `genisys apply --plan` carries out,
only if nothing moved since it was made.

Exit status: 0 nothing to do (with -f: the manifests match genisys), 2 there
is something to do (with -f: applying them would write), 1 an error.

examples:
  genisys plan
  genisys plan -f manifests/
  genisys plan -f manifests/ --prune -o json > p.json
  genisys apply --plan p.json
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
  genisys scale service web --replicas 8       # a placed service: its total
  genisys scale service web --replicas 8 --dry-run
""",
    "upscale": """\
examples:
  genisys upscale service web --compute local
  genisys upscale service web                  # a placed service: one more in total
""",
    "downscale": """\
examples:
  genisys downscale service web --compute local
  genisys downscale service web                # a placed service: one fewer in total
""",
    "rebalance": """\
examples:
  genisys rebalance service web
  genisys rebalance service web --dry-run      # which lines of the plan would change
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


def _services_only(done):
    """The kind argument of a command that only services take (scale: "scaled")."""
    def service_kind(value):
        if KINDS.get(value.lower()) != "Service":
            raise argparse.ArgumentTypeError("only services can be %s, got %r" % (done, value))
        return "Service"
    return service_kind


class _ExitOne(argparse.ArgumentParser):
    """A command whose exit status 2 means something else (plan: "changes"): its bad
    usage, an unknown flag included, exits 1."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error("unrecognized arguments: %s" % " ".join(extras))
        return namespace, extras

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(1, "%s: error: %s\n" % (self.prog, message))


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
                  "services. One line per object: created, configured, unchanged or pruned. "
                  "With --plan, carry out a plan saved by `genisys plan -f ... -o json`, "
                  "only if nothing moved since it was made.")
    sub.add_argument("-f", "--filename", action="append", metavar="PATH",
                     help=files_help + " (or --plan)")
    sub.add_argument("--plan", metavar="FILE", help="apply the plan in FILE (JSON of "
                     "`genisys plan -f ... -o json`) if the store has not moved since")
    sub.add_argument("--dry-run", action="store_true", help="print what would be done; "
                     "genisys checks each write (?dryRun=true) and nothing is written")
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

    sub = command("plan", "show what the controller would do, or what applying manifests "
                  "would", "Show the plan: what the controller would do now, or with -f, "
                  "what applying the manifests would do (nothing is written).")
    sub.__class__ = type("PlanParser", (_ExitOne, type(sub)), {})
    sub.add_argument("-f", "--filename", action="append", metavar="PATH", help=files_help)
    sub.add_argument("-o", "--output", choices=("table", "json"), default="table",
                     help="table (default) or json (with -f: a plan for apply --plan)")
    sub.add_argument("--prune", action="store_true", help="with -f: also plan deleting what "
                     "the manifests no longer name (as apply --prune)")
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
    sub.add_argument("-w", "--watch", action="store_true",
                     help="services: after the list, print the rows of each service that "
                     "changes, as it changes, until Ctrl-C (table output only)")

    sub = command("describe", "show one compute or service in detail",
                  "Show a service's spec, its status on each compute and its recent events "
                  "(or a compute and the services that use it).")
    sub.add_argument("kind", type=_kind, metavar="compute|service")
    sub.add_argument("name", metavar="NAME")

    compute_help = "the compute (a service with counts per compute); leave it out for a " \
        "placed service, whose total genisys places"
    dry_run_help = "print what would change (the plan lines); genisys checks, writes nothing"
    sub = command("scale", "set a service's desired count on a compute, or its total",
                  "Set how many resources a service should have on one compute, or, for a "
                  "service genisys places, in total.")
    sub.add_argument("kind", type=_services_only("scaled"), metavar="service")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--compute", metavar="COMPUTE", help=compute_help)
    sub.add_argument("--replicas", required=True, type=_replicas, metavar="N")
    sub.add_argument("--dry-run", action="store_true", help=dry_run_help)

    for name, word in (("upscale", "one more"), ("downscale", "one fewer")):
        sub = command(name, "ask for %s resource of a service (on a compute, or in total)"
                      % word, "Ask for %s resource of a service on one compute, or, for a "
                      "service genisys places, in total." % word)
        sub.add_argument("kind", type=_services_only("scaled"), metavar="service")
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--compute", metavar="COMPUTE", help=compute_help)
        sub.add_argument("--dry-run", action="store_true", help=dry_run_help)

    sub = command("rebalance", "move a placed service to its shares",
                  "Ask genisys to move a placed service's assignment to its shares (what "
                  "its placement gives each compute now), at most maxSurge at a time: it "
                  "adds before it removes.")
    sub.add_argument("kind", type=_services_only("rebalanced"), metavar="service")
    sub.add_argument("name", metavar="NAME")
    sub.add_argument("--dry-run", action="store_true", help=dry_run_help)


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
        return ERROR_STATUS.get(args.command, 2)
    except (ConfigError, Invalid) as e:
        return fail(str(e), ERROR_STATUS.get(args.command, 2))
    except (ApiError, Unreachable) as e:
        return fail(str(e), ERROR_STATUS.get(args.command, 1))
    except GenisysError as e:
        return fail(str(e), ERROR_STATUS.get(args.command, 1))
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
    if args.plan is not None:
        if args.filename or args.prune:
            raise ConfigError("a saved plan already says what to write: give it without -f "
                              "and --prune", field="--plan")
        document, steps = planning.read(args.plan, environ=os.environ)
        if not steps:
            print("the plan has no objects to write: nothing applied (a plan of manifests "
                  "comes from genisys plan -f PATH -o json)")
            return 0
        planning.check_fresh(client, document)
    elif not args.filename:
        raise ConfigError("give the manifests (-f PATH) or a saved plan (--plan FILE)",
                          field="-f")
    elif args.dry_run:  # genisys checks each write
        steps, _ = planning.make(client, args.filename, manager=args.manager,
                                 prune=args.prune, stdin=_stdin_text(args, stdin))
    else:
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


def cmd_plan(client, args, stdin):
    if args.filename:
        _, document = planning.make(client, args.filename, manager=args.manager,
                                    prune=args.prune, stdin=_stdin_text(args, stdin))
        to_do = bool(document["objects"])
    elif args.prune:
        raise ConfigError("plans a prune of manifests: give them with -f", field="--prune")
    else:
        document = client.plan()
        to_do = document["changes"] > 0
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(plan_text(document))
    return 2 if to_do else 0


PLAN_HEADER = ["SERVICE", "COMPUTE", "ACTION", "FROM", "TO", "REASON"]


def plan_rows(lines):
    return [[line["service"], line["compute"], line["action"],
             "-" if line["from"] is None else line["from"], line["to"], line["reason"] or "-"]
            for line in lines]


def plan_text(document):
    """A plan as a table, with what applying would write (a plan of manifests) and a
    summary."""
    lines = document["lines"]
    text = table(plan_rows(lines), PLAN_HEADER) + "\n" if lines else ""
    if "objects" in document:
        writes = ["%s %s/%s" % (o["action"], o["kind"].lower(), o["name"])
                  for o in document["objects"]]
        text += "Apply would %s.\n" % (", ".join(writes) if writes
                                       else "write nothing: the manifests match genisys")
    text += "".join("note: %s\n" % note for note in document.get("notes", []))
    changes = document["changes"]
    text += "Revision %d: %d line%s, %d with something to do.\n" % (
        document["revision"], len(lines), "" if len(lines) == 1 else "s", changes)
    return text


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


def indented(rows, header):
    """A table's lines, indented (as describe shows its sections)."""
    return ["  " + line for line in table(rows, header).splitlines()]


def _labels(labels):
    return ",".join("%s=%s" % item for item in sorted((labels or {}).items())) or "-"


def compute_rows(computes, conditions):
    """``conditions``: compute -> its GET /compute/<name>/status (absent: gone since)."""
    return [[c["name"], conditions.get(c["name"], {}).get("condition", "-"), c["connector"],
             "set" if c.get("token") else "-", c.get("managedBy") or "-",
             _labels(c.get("labels"))]
            for c in sorted(computes.values(), key=lambda c: c["name"])]


def compute_conditions(client, names):
    """compute -> its condition (GET /compute/<name>/status), for the computes table."""
    found = {}
    for name in names:
        try:
            found[name] = client.get("/compute/%s/status" % name)
        except ApiError as e:
            if e.status != 404:  # deleted since the listing: its row says "-"
                raise
    return found


def placed(service):
    """True for a service genisys places (a total), False for counts per compute."""
    return not isinstance(service["replicas"], dict)


def total(service):
    """A placed service's total, or the sum of its counts per compute."""
    return service["replicas"] if placed(service) else sum(service["replicas"].values())


def desired_counts(service):
    """What a service should run on each compute: its counts, or the assignment genisys
    placed its total in (empty until it has)."""
    if not placed(service):
        return service["replicas"]
    return (service.get("status", {}).get("placement") or {}).get("assignment", {})


def selector_text(selector):
    """A label selector as Kubernetes writes it: region=eu,tier in (a,b),gpu,!spot."""
    words = {"In": "%s in (%s)", "NotIn": "%s notin (%s)"}
    parts = ["%s=%s" % item for item in sorted((selector.get("matchLabels") or {}).items())]
    for rule in selector.get("matchExpressions") or ():
        if rule["operator"] in words:
            parts.append(words[rule["operator"]] % (rule["key"], ",".join(rule["values"])))
        else:
            parts.append(("" if rule["operator"] == "Exists" else "!") + rule["key"])
    return ",".join(parts) or "all"


def placement_text(service):
    """Strategy: where (Spread: dc1,dc2; Weighted: region=eu; Spread: all); "-" for
    counts per compute."""
    if not placed(service):
        return "-"
    placement = service.get("placement") or {}
    if placement.get("computes"):
        where = ",".join(placement["computes"])
    else:
        where = selector_text(placement.get("selector") or {})
    return "%s: %s" % (placement.get("strategy", "Spread"), where)


def _cut(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def service_rows(services, *, compute_only=None):
    """One row per service and compute (``compute_only``: that compute's rows only):
    NAME TOTAL PLACEMENT COMPUTE DESIRED RUNNING CONDITION AGE."""
    rows = []
    for service in sorted(services.values(), key=lambda s: s["name"]):
        status = service.get("status", {})
        entries = status.get("computes", {})
        counts = desired_counts(service)
        computes = sorted(set(counts) | set(entries)) or [None]
        for compute in computes:
            if compute_only is not None and compute != compute_only:
                continue
            entry = entries.get(compute, {})
            desired = counts.get(compute, 0) if compute else "-"
            running = entry.get("running")
            condition = entry.get("condition") or (
                "Pending" if compute else (status.get("placement") or {}).get("condition")
                or ("Pending" if placed(service) else "-"))
            if service.get("deleting"):
                condition += " (deleting)"
            rows.append([service["name"], total(service),
                         _cut(placement_text(service), PLACEMENT_WIDTH), compute or "-",
                         desired, "-" if running is None else running, condition,
                         age(service.get("created"))])
    return rows


SERVICE_HEADER = ["NAME", "TOTAL", "PLACEMENT", "COMPUTE", "DESIRED", "RUNNING", "CONDITION",
                  "AGE"]


def _manifest(kind, value):
    return applying.compute_manifest(value) if kind == "Compute" \
        else applying.service_manifest(value)


def cmd_get(client, args, stdin):
    if args.watch:
        return _watch_services(client, args)
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
        conditions = compute_conditions(client, sorted(objects))
        sys.stdout.write(table(compute_rows(objects, conditions),
                               ["NAME", "STATUS", "CONNECTOR", "TOKEN", "MANAGED-BY", "LABELS"]))
    else:
        sys.stdout.write(table(service_rows(objects), SERVICE_HEADER))
    return 0


def _watch_services(client, args):
    """``get services -w``: the table, then the rows of each service that changes (a
    deleted one once more, DELETED), as ``kubectl get -w``; Ctrl-C ends it (exit 0)."""
    if args.kind != "Service" or args.output != "table":
        raise Invalid("only `get services` with table output can watch", field="--watch")
    path = "/service?watch=1"
    if args.name:
        path += "&q=" + args.name  # a name is letters, digits and '-': nothing to quote
    widths, listed = None, []
    #: Service -> its rows last printed, without AGE.
    printed = {}

    def show(rows):
        for row in rows:
            line = "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths))
            print(line.rstrip(), flush=True)

    try:
        for event, data in client.watch(path):
            if event == "SYNCED" and widths is None:
                rows = service_rows({s["name"]: s for s in listed})
                # The columns of the listing; a wider cell later pushes the rest along.
                widths = [max(len(str(row[i])) for row in [SERVICE_HEADER] + rows)
                          for i in range(len(SERVICE_HEADER))]
                show([SERVICE_HEADER] + rows)
                printed.update((s["name"], [row[:-1] for row in service_rows({s["name"]: s})])
                               for s in listed)
            elif event == "RESET":
                continue  # the listing that follows comes as ADDED: rows of the present
            elif args.name and data.get("name") != args.name:
                continue
            elif widths is None:
                listed.append(data)
            elif event in ("ADDED", "MODIFIED"):
                rows = service_rows({data["name"]: data})
                # A change the columns do not show (a status's timestamps) is no line.
                if printed.get(data["name"]) != [row[:-1] for row in rows]:
                    show(rows)
                    printed[data["name"]] = [row[:-1] for row in rows]
            elif event == "DELETED":
                show([[data["name"], "-", "-", "-", "-", "-", "DELETED", "-"]])
                printed.pop(data["name"], None)
    except KeyboardInterrupt:
        pass  # the operator has seen enough: that is how a watch ends
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
             "Deleting:     %s" % ("yes" if service.get("deleting") else "no")]
    lines += _describe_placement(service)
    lines += _describe_scaling(service)
    lines.append("Replicas:")
    computes = status.get("computes", {})
    counts = desired_counts(service)
    rows = []
    for compute in sorted(set(counts) | set(computes)):
        entry = computes.get(compute, {})
        running = entry.get("running")
        rows.append([compute, counts.get(compute, 0),
                     "-" if running is None else running, entry.get("condition") or "Pending",
                     entry.get("reason") or "-", entry.get("lastTransitionTime") or "-",
                     entry.get("message") or ""])
    lines += indented(rows, ["COMPUTE", "DESIRED", "RUNNING", "CONDITION", "REASON", "SINCE",
                             "MESSAGE"])
    events = service.get("events", [])
    lines.append("Events:" if events else "Events:       <none>")
    rows = [[age(e.get("time")), e.get("type", ""), e.get("reason", ""), e.get("compute", ""),
             e.get("count", 1), e.get("message", "")] for e in events]
    if rows:
        lines += indented(rows, ["AGE", "TYPE", "REASON", "COMPUTE", "COUNT", "MESSAGE"])
    return "\n".join(lines) + "\n"


def _describe_placement(service):
    """Total:, Placement: and, for a placed service, its condition and assignment."""
    if not placed(service):
        return ["Total:        %d (counts per compute, set by hand)" % total(service),
                "Placement:    -"]
    placement = service.get("placement") or {}
    lines = ["Total:        %d (placed by genisys)" % total(service),
             "Placement:    %s" % placement_text(service)]
    details = [("Weights", ", ".join("%s=%s" % w for w in sorted(
                   (placement.get("weights") or {}).items())) or None),
               ("Max-Per-Compute", placement.get("maxPerCompute")),
               ("Max-Surge", placement.get("maxSurge", "25% (default)"))]
    failover = placement.get("failover")
    if failover is not None:
        details.append(("Fail-Over", "after %ss NotReady, purge %s, grace %ss" % (
            failover.get("tolerationSeconds", 300), failover.get("purgeMode", "Graceful"),
            failover.get("gracePeriodSeconds", 600))))
    lines += ["  %-17s %s" % (label + ":", value) for label, value in details
              if value is not None]
    state = service.get("status", {}).get("placement")
    if not state:
        return lines + ["Condition:    Pending (not placed yet)"]
    message = state.get("message") or "-"
    if not message.startswith(state["condition"]):  # "Unschedulable: 7 wanted, 5 fit" says it
        message = "%s: %s" % (state["condition"], message)
    lines += ["Condition:    %s" % message,
              "Rebalance:    %d asked, %d done" % (service.get("rebalance", 0),
                                                  state.get("rebalanced", 0)),
              "Assignment:   %d placed of %d" % (state["placed"], state["total"])]
    capacity = state.get("capacity", {})
    rows = [[compute, state["assignment"].get(compute, 0), state["shares"].get(compute, 0),
             "%d of %d to others" % (capacity[compute]["usedByOthers"],
                                     capacity[compute]["total"])
             if compute in capacity else "-", state["reasons"].get(compute, "")]
            for compute in sorted(set(state["assignment"]) | set(state["shares"])
                                  | set(state["reasons"]))]
    if rows:
        lines += indented(rows, ["COMPUTE", "ASSIGNED", "SHARE", "CAPACITY", "WHY"])
    failing = state.get("failover")
    if failing:
        lines.append("Fail-Over:    %s" % failing["condition"])
        lines += indented([[compute, record["state"], record["originals"], record["message"]]
                           for compute, record in sorted(failing["computes"].items())],
                          ["COMPUTE", "STATE", "ORIGINALS", "MESSAGE"])
    return lines


def _describe_scaling(service):
    """Bounds: and Pacing: (docs/scaling.md), for a service that has them."""
    def span(bounds):
        low, high = bounds.get("minReplicas"), bounds.get("maxReplicas")
        return "%s..%s" % (low if low is not None else 0, high if high is not None else "")
    bounds = []
    if service.get("minReplicas") is not None or service.get("maxReplicas") is not None:
        bounds.append("in all %s" % span(service))
    if service.get("perCompute"):
        bounds.append("per compute %s" % span(service["perCompute"]))
    lines = ["Bounds:       %s" % "; ".join(bounds)] if bounds else []
    if service.get("behavior") is not None:
        pacing = service.get("status", {}).get("pacing")
        lines.append("Pacing:       %s" % ("Pending (not looked at yet)" if pacing is None
                                          else pacing["message"] or "at the intent"))
    return lines


def _describe_compute(client, name):
    compute = client.get("/compute/" + name)
    users = [s for s in client.services().values()
             if desired_counts(s).get(name) or name in s.get("status", {}).get("computes", {})]
    health = client.get("/compute/%s/status" % name)
    since = health.get("lastTransitionTime")
    lines = ["Name:         %s" % compute["name"],
             "Status:       %s (%s%s): %s" % (health["condition"], health["reason"],
                                              ", since %s" % since if since else "",
                                              health["message"]),
             "Connector:    %s" % compute["connector"],
             "Token:        %s" % ("set" if compute.get("token") else "-"),
             "Labels:       %s" % _labels(compute.get("labels")),
             "Managed-By:   %s" % (compute.get("managedBy") or "-"),
             "Services:" if users else "Services:     <none>"]
    rows = service_rows({s["name"]: s for s in users}, compute_only=name)
    if rows:
        lines += indented(rows, ["SERVICE"] + SERVICE_HEADER[1:])
    return "\n".join(lines) + "\n"


def cmd_describe(client, args, stdin):
    describe = _describe_compute if args.kind == "Compute" else _describe_service
    sys.stdout.write(describe(client, args.name))
    return 0


# -- scale, upscale, downscale, rebalance ------------------------------------------


def _written(answer, args, say):
    """Print what a change did (``say(view)``); of a dry run, what it would do and the
    plan lines it would change."""
    if not args.dry_run:
        print(say(answer))
        return 0
    print("%s (dry run)" % say(answer["result"]))
    if answer["plan"]:
        print("\n".join(indented(plan_rows(answer["plan"]), PLAN_HEADER)))
    return 0


def _step(client, args, step, body):
    if args.compute:
        body = dict(body, compute=args.compute)
    try:
        answer = client.change("/service/%s/%s" % (args.name, step), body,
                               dry_run=args.dry_run)
    except ApiError as e:
        if e.status != 409 or e.field != "compute":
            raise
        # The other form of service: say it in flags, not in JSON fields.
        raise ApiError(e.status, e.reason, "%s (with genisys %s: %s)" % (
            e.message, step, "leave out --compute" if args.compute else "give --compute NAME"),
            e.field) from None

    def say(view):
        if args.compute:
            return "service/%s scaled: %d desired on %s" % (
                args.name, view["replicas"].get(args.compute, 0), args.compute)
        return "service/%s scaled: %d desired in total" % (args.name, view["replicas"])
    return _written(answer, args, say)


def cmd_scale(client, args, stdin):
    return _step(client, args, "scale", {"number": args.replicas})


def cmd_upscale(client, args, stdin):
    return _step(client, args, "upscale", {})


def cmd_downscale(client, args, stdin):
    return _step(client, args, "downscale", {})


def _counts(counts):
    return " ".join("%s=%d" % item for item in sorted(counts.items())) or "none"


def cmd_rebalance(client, args, stdin):
    answer = client.post("/service/%s/rebalance" % args.name, dry_run=args.dry_run)

    def say(view):
        state = view.get("status", {}).get("placement")
        if not state:
            return "service/%s rebalance requested" % args.name
        return "service/%s rebalance requested: assignment %s, shares %s" % (
            args.name, _counts(state["assignment"]), _counts(state["shares"]))
    return _written(answer, args, say)


HANDLERS = {"apply": cmd_apply, "diff": cmd_diff, "plan": cmd_plan, "delete": cmd_delete,
            "get": cmd_get, "describe": cmd_describe, "scale": cmd_scale,
            "upscale": cmd_upscale, "downscale": cmd_downscale, "rebalance": cmd_rebalance}
