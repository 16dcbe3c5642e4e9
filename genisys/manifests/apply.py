"""Applying manifests through the API: plan, diff, apply, prune, delete.

``plan`` compares the manifests with what genisys holds and decides, per
object, to create, configure (replace), leave unchanged or prune it;
``apply`` carries the plan out in a safe order: computes before the services
that use them, and, when removing, services before computes. Every write
goes through the API (``Client``); a replacement carries ``If-Match`` with
the version the plan was made from, so a change made meanwhile by someone
else is refused (412), not silently overwritten.

Objects applied from manifests record who applied them (``managedBy``): a
prune only ever removes objects of its own manager that the manifests no
longer name, never what was made through the API or by another manager.
"""

import dataclasses
import difflib
import os
import time
from typing import Optional

import yaml

from genisys.manifests.client import ApiError
from genisys.manifests.load import API_VERSION, ManifestError, load
from genisys.model import ServiceSpec

#: The wire names of a Service manifest's spec fields.
SERVICE_SPEC_FIELDS = tuple(f.alias or name for name, f in ServiceSpec.model_fields.items())

#: ``managedBy`` of what ``genisys apply`` writes (a sidecar writes sidecar:<folder>).
CLI_MANAGER = "genisys-cli"

CREATE, CONFIGURE, UNCHANGED, PRUNE = "create", "configure", "unchanged", "prune"
#: How each action reads once done (kubectl's words).
DONE = {CREATE: "created", CONFIGURE: "configured", UNCHANGED: "unchanged", PRUNE: "pruned"}
PATHS = {"Compute": "/compute/", "Service": "/service/"}


@dataclasses.dataclass
class Step:
    action: str
    kind: str
    name: str
    #: The object as the manifests want it (manifest form; None for a prune).
    desired: Optional[dict] = None
    #: The object as genisys holds it (manifest form; None for a create).
    live: Optional[dict] = None
    #: The body of the PUT that creates or replaces it.
    body: Optional[dict] = None
    #: Version the plan saw: a replacement is conditional on it (If-Match).
    version: Optional[int] = None
    #: A compute's tokenFromEnv: the variable ``body["token"]`` was read from.
    token_env: Optional[str] = None

    @property
    def ref(self):
        return "%s/%s" % (self.kind.lower(), self.name)

    @property
    def path(self):
        return PATHS[self.kind] + self.name


# -- manifest form: what get -o yaml prints and diff compares ----------------


def _metadata(name, labels, managed_by, **read_only):
    metadata = {"name": name}
    if labels:
        metadata["labels"] = dict(sorted(labels.items()))
    if managed_by:
        metadata["managedBy"] = managed_by
    metadata.update((k, v) for k, v in read_only.items() if v is not None)
    return metadata


def compute_manifest(record, *, read_only=True):
    """A compute as genisys shows it (GET /compute/<name>), in manifest form."""
    document = {"apiVersion": API_VERSION, "kind": "Compute",
                "metadata": _metadata(record["name"], record.get("labels"),
                                      record.get("managedBy") if read_only else None),
                "spec": {"connector": record["connector"]}}
    if record.get("token"):
        # The token is never shown; its presence is (status, ignored when applied).
        document["status"] = {"token": "set"}
    return document


def _service_spec(value):
    """The spec of a Service manifest (the fields of ``ServiceSpec``) from a service or a
    spec: replicas (a map sorted, or a total) and, for a total, its placement (an empty
    one, which genisys does not keep, left out)."""
    spec = {wire: value[wire] for wire in SERVICE_SPEC_FIELDS if wire in value}
    if isinstance(spec["replicas"], dict):
        spec["replicas"] = dict(sorted(spec["replicas"].items()))
    if not spec.get("placement"):
        spec.pop("placement", None)
    return spec


def service_manifest(view, *, read_only=True, status=True):
    """A service as genisys shows it (GET /service/<name>), in manifest form."""
    extra = dict(resourceVersion=view.get("resourceVersion"), generation=view.get("generation"),
                 created=view.get("created")) if read_only else {}
    document = {"apiVersion": API_VERSION, "kind": "Service",
                "metadata": _metadata(view["name"], view.get("labels"),
                                      view.get("managedBy") if read_only else None, **extra),
                "spec": _service_spec(view)}
    if status:
        document["status"] = view.get("status", {})
        if view.get("deleting"):
            document["status"] = dict(document["status"], deleting=True)
    return document


def _desired_manifest(manifest):
    spec = {"connector": manifest.spec["connector"]} if manifest.kind == "Compute" \
        else _service_spec(manifest.spec)
    document = {"apiVersion": API_VERSION, "kind": manifest.kind,
                "metadata": _metadata(manifest.name, manifest.labels, None), "spec": spec}
    if manifest.spec.get("tokenFromEnv"):
        document["status"] = {"token": "set"}
    return document


def _live_manifest(kind, record):
    if kind == "Compute":
        return compute_manifest(record, read_only=False)
    return service_manifest(record, read_only=False, status=False)


def to_yaml(documents):
    """Documents as multi-document YAML, keys in a stable, readable order."""
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False,
                              explicit_start=len(documents) > 1)


# -- the plan -----------------------------------------------------------------


def _body(manifest, manager, environ):
    body = {"labels": dict(manifest.labels), "managedBy": manager}
    if manifest.kind == "Service":
        body.update(manifest.spec)  # a Service's spec fields are fields of its PUT body
        return body
    body["connector"] = manifest.spec["connector"]
    variable = manifest.spec.get("tokenFromEnv")
    if variable:
        body["token"] = environ[variable]
    return body


def _replicas(replicas):
    """Replicas as compared: a map without its zeros, or a total."""
    if not isinstance(replicas, dict):
        return replicas
    return {compute: count for compute, count in replicas.items() if count}


def _same(kind, live, body, manager):
    """True if the object genisys holds is what the manifest asks for. A connector
    token's value is never shown, so only its presence can be compared."""
    if live.get("managedBy") != manager or (live.get("labels") or {}) != body["labels"]:
        return False
    if kind == "Compute":
        return live["connector"] == body["connector"] \
            and bool(live.get("token")) == ("token" in body)
    return not live.get("deleting") and _replicas(live["replicas"]) == _replicas(body["replicas"]) \
        and all((live.get(f) or None) == (body.get(f) or None)
                for f in SERVICE_SPEC_FIELDS if f != "replicas")


def _check_environment(manifests, environ):
    problems = []
    for manifest in manifests:
        variable = manifest.spec.get("tokenFromEnv") if manifest.kind == "Compute" else None
        if variable and not environ.get(variable):
            problems.append(manifest.problem("spec.tokenFromEnv", "the environment variable %s "
                                             "is not set" % variable))
    return problems


def _check_counts(manifests, maximum):
    problems = []
    for manifest in manifests:
        if manifest.kind != "Service" or maximum is None:
            continue
        replicas = manifest.spec["replicas"]
        counts = replicas.items() if isinstance(replicas, dict) else [(None, replicas)]
        for compute, count in counts:
            if count > maximum:
                problems.append(manifest.problem(
                    "spec.replicas" + (".%s" % compute if compute else ""), "must be at most "
                    "%d (max_replicas of this server), got %d" % (maximum, count)))
    return problems


def plan(client, paths, *, manager=CLI_MANAGER, prune=False, environ=None, stdin=None,
         live=None):
    """Read the manifests and what genisys holds (``live``: the computes and services
    already read, if given); the steps that make genisys hold what the manifests say,
    computes first. ManifestError (every problem) if the manifests can't be applied as
    a whole: then nothing must be."""
    environ = os.environ if environ is None else environ
    computes, services = live if live is not None else (client.computes(), client.services())
    manifests = load(paths, known_computes=computes, stdin=stdin)
    problems = _check_environment(manifests, environ)
    problems += _check_counts(manifests, client.max_replicas())
    if problems:
        raise ManifestError(problems)
    return plan_for(manifests, computes, services, manager=manager, prune=prune,
                    environ=environ)


def plan_for(manifests, computes, services, *, manager, prune, environ):
    live_objects = {"Compute": computes, "Service": services}
    named = {m.key for m in manifests}
    steps = []
    for kind in ("Compute", "Service"):
        for manifest in sorted((m for m in manifests if m.kind == kind), key=lambda m: m.name):
            live = live_objects[kind].get(manifest.name)
            body = _body(manifest, manager, environ)
            step = Step(CREATE, kind, manifest.name, desired=_desired_manifest(manifest),
                        body=body, token_env=manifest.spec.get("tokenFromEnv")
                        if kind == "Compute" else None)
            if live is not None:
                step.live = _live_manifest(kind, live)
                step.action = UNCHANGED if _same(kind, live, body, manager) else CONFIGURE
                step.version = live.get("resourceVersion")
            steps.append(step)
    if prune:
        for kind in ("Service", "Compute"):
            for name, live in sorted(live_objects[kind].items()):
                if live.get("managedBy") == manager and (kind, name) not in named:
                    steps.append(Step(PRUNE, kind, name, live=_live_manifest(kind, live),
                                      version=live.get("resourceVersion")))
    return steps


# -- carrying it out -----------------------------------------------------------


def _computes_in_use(error):
    return isinstance(error, ApiError) and error.status == 409 and error.field == "compute"


def apply(client, steps, *, dry_run=False, wait=0.0, report=None):
    """Carry out the steps in order, calling ``report(step)`` after each. A pruned
    compute still used by services being removed is retried for up to ``wait``
    seconds (0: ApiError at once). Stops at the first failure (ApiError)."""
    for step in steps:
        if not dry_run and step.action in (CREATE, CONFIGURE):
            # A replacement is conditional: a change made since the plan is a 412.
            client.put(step.path, step.body,
                       if_match=step.version if step.action == CONFIGURE else None)
        elif not dry_run and step.action == PRUNE:
            delete(client, step.kind, step.name, wait=wait)
        if report is not None:
            report(step)


def delete(client, kind, name, *, wait=0.0):
    """Delete one object; a compute still in use is retried for ``wait`` seconds (the
    services using it may be on their way out). False if it was already gone."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            client.delete(PATHS[kind] + name)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            if not (kind == "Compute" and _computes_in_use(e)) or time.monotonic() >= deadline:
                raise
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 1.0)


def wait_gone(client, kind, name, *, timeout):
    """Wait until genisys no longer holds the object (a deleted service is removed
    once scaled to 0 everywhere); ApiError(408) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            client.get(PATHS[kind] + name)
        except ApiError as e:
            if e.status == 404:
                return
            raise
        if time.monotonic() >= deadline:
            raise ApiError(408, "Timeout", "%s/%s is still there after %.0fs (its resources "
                           "are being scaled down)" % (kind.lower(), name, timeout))
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def diff(steps):
    """A unified diff of every object the steps would change (empty: none)."""
    chunks = []
    for step in steps:
        if step.action == UNCHANGED:
            continue
        before = to_yaml([step.live]).splitlines(keepends=True) if step.live else []
        after = to_yaml([step.desired]).splitlines(keepends=True) if step.desired else []
        chunks.append("".join(difflib.unified_diff(
            before, after, fromfile="%s (live)" % step.ref,
            tofile="%s (manifests)" % step.ref if step.desired else "/dev/null")))
    return "".join(chunks)

