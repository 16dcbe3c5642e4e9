"""Plans of manifests: what applying them would do, saved to be applied later.

``make`` reads GET /plan (what the controller would do now, and the store's
revision), works out the writes the manifests need (``apply.plan``: create,
configure, prune), and sends each of them with ``?dryRun=true``: genisys
checks it as it would the real one, writes nothing, and answers the plan lines
it would change. Those lines, merged over GET /plan's, are what applying the
manifests would do. The dry runs are independent of one another: a service
counting on a compute the same manifests create is sent without that compute,
and its lines there are worked out here (a create of the count asked for).

The plan document (``genisys plan -f ... -o json``) is GET /plan's answer
with what ``genisys apply --plan`` needs: the revision it was made at, the
objects to write (each with its body and the resourceVersion it had: a
replacement is conditional on it, If-Match), and the version of every object
genisys held. ``check_fresh`` lets it be carried out only if nothing moved
since: GET /plan?since=<revision> lists what was written after it, and an
object that is gone is missing from the listings. A compute's token is never
saved: the plan names the variable it came from (tokenFromEnv), and apply
reads it again.
"""

import json

from genisys import files
from genisys.errors import ConfigError, GenisysError
from genisys.manifests import apply as applying
from genisys.manifests.client import ApiError
from genisys.model import describe, type_name, validate_name
from genisys.placement import selects

ACTIONS = (applying.CREATE, applying.CONFIGURE, applying.PRUNE)
KINDS = ("Compute", "Service")


class StalePlan(GenisysError):
    """The store moved since the plan was made: applying it could undo someone's work."""

    reason = "StalePlan"


# -- making a plan ---------------------------------------------------------------


def make(client, paths, *, manager=applying.CLI_MANAGER, prune=False, environ=None,
         stdin=None):
    """The steps the manifests need, and the plan document of applying them. Raises
    ManifestError (bad manifests) or ApiError (genisys would refuse a write: the
    message names the object)."""
    # GET /plan first: whatever is written after its revision shows as moved, even if
    # the listings below already saw it (a stale plan is refused, never a missed write).
    # Since 0, it also lists every object's version (a compute's listing has none).
    base = client.plan(since=0)
    versions = {kind: {} for kind in KINDS}
    for entry in base["moved"]:
        versions[entry["kind"]][entry["name"]] = entry["resourceVersion"]
    computes, services = client.computes(), client.services()
    steps = applying.plan(client, paths, manager=manager, prune=prune, environ=environ,
                          stdin=stdin, live=(computes, services))
    for step in steps:
        if step.kind == "Compute" and step.action != applying.CREATE:
            # A replacement of what the plan saw, or nothing (If-Match).
            step.version = versions["Compute"].get(step.name)
    lines = {_key(line): line for line in base["lines"]}
    notes = []
    created = {s.name: s.body for s in steps
               if s.kind == "Compute" and s.action == applying.CREATE}
    for step in steps:
        if step.action == applying.UNCHANGED:
            continue
        for line in _dry_run(client, step, computes, created, notes):
            lines[_key(line)] = line
    merged = [lines[key] for key in sorted(lines)]
    document = {
        "revision": base["revision"],
        "changes": sum(1 for line in merged if line["action"] != "none"),
        "lines": merged,
        "objects": [_saved(step) for step in steps if step.action != applying.UNCHANGED],
        "live": {kind: dict(sorted(found.items())) for kind, found in versions.items()},
        "notes": notes,
    }
    return steps, document


def _key(line):
    return (line["service"], line["compute"])


def _dry_run(client, step, computes, created, notes):
    """The plan lines one step would change, as genisys answers its dry run."""
    try:
        if step.action == applying.PRUNE:
            return _dry_prune(client, step, notes)
        body, missing = step.body, {}
        if step.kind == "Service" and isinstance(body["replicas"], dict):
            # Counts on computes this plan creates: genisys does not know them yet.
            missing = {c: n for c, n in body["replicas"].items()
                       if c not in computes and c in created}
            body = dict(body, replicas={c: n for c, n in body["replicas"].items()
                                        if c not in missing})
        elif step.kind == "Service":
            _note_new_computes(step, created, notes)
        answer = client.put(step.path, body, dry_run=True, if_match=step.version
                            if step.action == applying.CONFIGURE else None)
    except ApiError as e:  # named by the object, then the field genisys named
        raise ApiError(e.status, e.reason, "%s: %s" % (e.field, e.message) if e.field
                       else e.message, step.ref) from e
    return answer["plan"] + [
        {"service": step.name, "compute": compute, "action": "create", "from": None,
         "to": count, "reason": "intent"} for compute, count in sorted(missing.items()) if count]


def _dry_prune(client, step, notes):
    try:
        return client.delete(step.path, dry_run=True)["plan"]
    except ApiError as e:
        if step.kind == "Compute" and e.status == 409 and e.field == "compute":
            # Used by services: apply waits for them to go (--wait-timeout), which only
            # happens if they are pruned too.
            notes.append("%s: %s; apply waits for them to be gone" % (step.ref, e.message))
            return []
        raise


def _note_new_computes(step, created, notes):
    """A placed service that may also use computes this plan creates: its lines, from a
    dry run that cannot see them, only place it on the computes that exist now."""
    placement = step.body.get("placement") or {}
    if placement.get("computes") is not None:
        reach = [c for c in placement["computes"] if c in created]
    else:
        reach = [c for c, body in sorted(created.items())
                 if selects(placement.get("selector"), body.get("labels") or {})]
    if reach:
        notes.append("%s: its placement may also use %s, which this plan creates; its lines "
                     "place it on the computes that exist now" % (
                         step.ref, ", ".join("compute %s" % c for c in reach)))


def _saved(step):
    """An object write as the plan document keeps it (a token as its variable's name)."""
    body = None
    if step.body is not None:
        body = {k: v for k, v in step.body.items() if k != "token"}
    saved = {"action": step.action, "kind": step.kind, "name": step.name,
             "resourceVersion": step.version, "body": body}
    if step.token_env:
        saved["tokenFromEnv"] = step.token_env
    return saved


# -- reading a saved plan ------------------------------------------------------


def read(path, *, environ):
    """The plan document in ``path`` and the steps of its objects; ConfigError naming
    the file and the problem."""
    text = files.read_text(path, field="--plan")
    try:
        document = json.loads(text)
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s): a plan is what genisys plan -f PATH -o "
                          "json writes" % (path, e)) from None
    return document, steps_of(document, path=path, environ=environ)


def steps_of(document, *, path, environ):
    """The steps of a plan document's objects, each field checked."""
    def bad(field, message):
        return ConfigError("%s: %s: %s" % (path, field, message))

    if not isinstance(document, dict):
        raise bad("plan", "must be a JSON object (the output of genisys plan -o json), got %s"
                  % type_name(document))
    if "revision" not in document:
        raise bad("revision", "is required (the store revision the plan was made at)")
    if not _whole(document["revision"]):
        raise bad("revision", "must be a whole number, got %s" % describe(document["revision"]))
    objects = document.get("objects", [])
    if not isinstance(objects, list):
        raise bad("objects", "must be an array, got %s" % type_name(objects))
    live = document.get("live", {})
    if not isinstance(live, dict) or not all(
            isinstance(live.get(kind, {}), dict) for kind in KINDS):
        raise bad("live", "must be an object of Compute and Service: name -> resourceVersion")
    steps = []
    for i, value in enumerate(objects):
        where = "objects[%d]" % i
        if not isinstance(value, dict):
            raise bad(where, "must be an object, got %s" % type_name(value))
        for field in ("action", "kind", "name"):
            if field not in value:
                raise bad("%s.%s" % (where, field), "is required")
        if value["action"] not in ACTIONS:
            raise bad(where + ".action", "must be one of %s, got %s"
                      % (", ".join(ACTIONS), describe(value["action"])))
        if value["kind"] not in KINDS:
            raise bad(where + ".kind", "must be Compute or Service, got %s"
                      % describe(value["kind"]))
        try:
            validate_name(value["name"], where + ".name")
        except GenisysError as e:
            raise bad(e.field, e.message) from None
        version = value.get("resourceVersion")
        if value["action"] == applying.CONFIGURE and not (_whole(version) and version > 0):
            raise bad(where + ".resourceVersion", "a replacement needs the version it "
                      "replaces, got %s" % describe(version))
        body = value.get("body")
        if value["action"] != applying.PRUNE and not isinstance(body, dict):
            raise bad(where + ".body", "must be an object (what to write), got %s"
                      % type_name(body))
        step = applying.Step(value["action"], value["kind"], value["name"],
                             body=dict(body) if isinstance(body, dict) else None,
                             version=version if _whole(version) else None,
                             token_env=value.get("tokenFromEnv"))
        if step.token_env:
            if not environ.get(step.token_env):
                raise bad(where + ".tokenFromEnv", "the environment variable %s is not set"
                          % describe(step.token_env))
            step.body["token"] = environ[step.token_env]
        steps.append(step)
    return steps


def _whole(value):
    return type(value) is int and value >= 0


# -- applying a saved plan -------------------------------------------------------


def check_fresh(client, document):
    """StalePlan, saying what moved, unless the store is as the plan saw it."""
    since = document["revision"]
    moved = client.plan(since=since).get("moved", [])
    live = document.get("live", {})
    found = []
    for entry in sorted(moved, key=lambda m: (m["kind"], m["name"])):
        known = entry["name"] in live.get(entry["kind"], {})
        found.append("%s %s %s (now at %d)" % (entry["kind"].lower(), entry["name"],
                                               "changed" if known else "was created",
                                               entry["resourceVersion"]))
    if live:
        now = {"Compute": client.computes(), "Service": client.services()}
        found += ["%s %s was deleted" % (kind.lower(), name) for kind in KINDS
                  for name in sorted(live.get(kind, {})) if name not in now[kind]]
    if found:
        raise StalePlan("the plan is stale: since revision %d, %s; make a new plan"
                        % (since, ", ".join(found)))
