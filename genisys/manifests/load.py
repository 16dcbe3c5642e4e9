"""Reading manifests: multi-document YAML files of computes and services.

Each document is one object::

    apiVersion: genisys/v1
    kind: Service            # or Compute
    metadata:
      name: web
      labels: {app: web}     # optional
    spec:
      replicas: {local: 2}   # a Compute's spec: connector (and tokenFromEnv)

or a total that genisys places (the computes a placement lists need not exist:
a placement may name a compute before it is registered)::

    spec:
      replicas: 6
      placement: {computes: [dc1, dc2], strategy: Spread}

Loading never stops at the first mistake: every problem of every file is
collected, each with its file, document index, field path and reason, and
nothing is returned unless there are none. Only YAML's safe subset is read.
"""

import dataclasses
import os
from typing import Optional

from pydantic import ValidationError

from genisys import files
from genisys.errors import ConfigError, Invalid
from genisys.model import (
    MANIFEST_MAX_COUNT,
    ComputeSpec,
    ServiceSpec,
    describe,
    type_name,
    validate_labels,
    validate_name,
)
from genisys.model import problems as problems_of

API_VERSION = "genisys/v1"
KINDS = ("Compute", "Service")
#: What ``genisys get -o yaml`` writes besides name and labels: read-only, so
#: accepted (a listing can be applied back) and ignored.
READ_ONLY_METADATA = ("resourceVersion", "generation", "managedBy", "created")
SUFFIXES = (".yaml", ".yml")
#: The model of each kind's spec (genisys.model).
SPECS = {"Compute": ComputeSpec, "Service": ServiceSpec}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests, and where."""

    file: str
    #: Index of the YAML document in its file, from 1 (None: the file as a whole).
    document: Optional[int]
    #: Path of the field at fault, e.g. spec.replicas.local (None: the document).
    field: Optional[str]
    reason: str

    def __str__(self):
        where = [self.file]
        if self.document is not None:
            where.append("document %d" % self.document)
        if self.field:
            where.append(self.field)
        return "%s: %s" % (": ".join(where), self.reason)


class ManifestError(ConfigError):
    """Manifests that can't be applied: every problem found, one per line."""

    reason = "InvalidManifest"

    def __init__(self, problems):
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__("%d problem%s in the manifests:\n%s" % (
            count, "" if count == 1 else "s", "\n".join("  %s" % p for p in self.problems)))


@dataclasses.dataclass(frozen=True)
class Manifest:
    kind: str
    name: str
    spec: dict
    labels: dict
    file: str
    document: int

    @property
    def key(self):
        return (self.kind, self.name)

    @property
    def where(self):
        return "%s: document %d" % (self.file, self.document)

    def problem(self, field, reason):
        return Problem(self.file, self.document, field, reason)


# -- one document ------------------------------------------------------------


def parse_document(data, *, file, document):
    """A Manifest from one document's data, and the problems found in it (every
    field is checked, so one pass reports them all)."""
    problems = []

    def check(function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Invalid as e:
            problems.append(Problem(file, document, e.field, e.message))
            return None

    if not isinstance(data, dict):
        return None, [Problem(file, document, None, "must be a mapping with apiVersion, kind, "
                              "metadata and spec, got %s" % type_name(data))]
    for field in data:
        if field not in ("apiVersion", "kind", "metadata", "spec", "status"):
            problems.append(Problem(file, document, str(field), "unknown field"))
    for field in ("apiVersion", "kind", "metadata", "spec"):
        if field not in data:
            problems.append(Problem(file, document, field, "is required"))
    if "apiVersion" in data and data["apiVersion"] != API_VERSION:
        problems.append(Problem(file, document, "apiVersion", "must be %s, got %s"
                                % (API_VERSION, describe(data["apiVersion"]))))
    kind = data.get("kind")
    if "kind" in data and kind not in KINDS:
        problems.append(Problem(file, document, "kind", "must be one of %s, got %s"
                                % (", ".join(KINDS), describe(kind))))
    name, labels = None, {}
    if "metadata" in data:
        metadata = data["metadata"]
        if not isinstance(metadata, dict):
            problems.append(Problem(file, document, "metadata", "must be a mapping with a "
                                    "name, got %s" % type_name(metadata)))
        else:
            for field in metadata:
                if field not in ("name", "labels") + READ_ONLY_METADATA:
                    problems.append(Problem(file, document, "metadata.%s" % field,
                                            "unknown field"))
            if "name" not in metadata:
                problems.append(Problem(file, document, "metadata.name", "is required"))
            else:
                name = check(validate_name, metadata["name"], "metadata.name")
            if metadata.get("labels") is not None:
                labels = check(validate_labels, metadata["labels"], "metadata.labels") or {}
    spec = None
    if "spec" in data:
        if not isinstance(data["spec"], dict):
            problems.append(Problem(file, document, "spec", "must be a mapping, got %s"
                                    % type_name(data["spec"])))
        elif kind in KINDS:
            try:
                spec = SPECS[kind].model_validate(data["spec"], context={
                    "maximum": MANIFEST_MAX_COUNT, "limit": "the largest count a manifest "
                                                            "may hold",
                    "name": name}).to_store()
            except ValidationError as e:
                problems.extend(Problem(file, document, p.field, p.message)
                                for p in problems_of(e, where="spec"))
    if problems:
        return None, problems
    return Manifest(kind=kind, name=name, spec=spec, labels=labels, file=file,
                    document=document), []


def parse_text(text, *, file):
    """(manifests, problems) of one file's text; empty documents are skipped."""
    manifests, problems = [], []
    try:
        for index, data in files.load_yaml_documents(text, name=file):
            if data is None:
                continue
            manifest, wrong = parse_document(data, file=file, document=index)
            if manifest is not None:
                manifests.append(manifest)
            problems += wrong
    except ConfigError as e:  # unreadable YAML: the documents after it are lost too
        document = int(e.field.split()[-1]) if e.field else None
        message = e.message
        if message.startswith(file + " is "):
            message = message[len(file) + 4:]
        elif message.startswith(file + ": "):
            message = message[len(file) + 2:]
        problems.append(Problem(file, document, None, message))
    return manifests, problems


# -- files and folders -------------------------------------------------------


def find_files(path):
    """The manifest files a -f argument names: the file itself, or every *.yaml and
    *.yml under a folder, recursively, in sorted order. Hidden entries (a leading
    '.') are skipped, as are Kubernetes' ..data links of a mounted ConfigMap, so
    each file is read once. Raises ConfigError if ``path`` does not exist."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise ConfigError("%s: no such file or folder" % path, field="-f")
    found = []
    for folder, subfolders, names in os.walk(path, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [os.path.join(folder, n) for n in names
                  if n.endswith(SUFFIXES) and not n.startswith(".")]
    return sorted(found)


def read_manifests(paths, *, stdin=None):
    """(manifests, problems) of every file the paths name ("-": ``stdin``'s text)."""
    manifests, problems = [], []
    for path in paths:
        if path == "-":
            found, wrong = parse_text(stdin if stdin is not None else "", file="<stdin>")
            manifests += found
            problems += wrong
            continue
        try:
            names = find_files(path)
        except ConfigError as e:
            problems.append(Problem(path, None, None, "no such file or folder"))
            del e
            continue
        for name in names:
            try:
                text = files.read_text(name, field="-f")
            except ConfigError as e:
                problems.append(Problem(name, None, None, e.message))
                continue
            found, wrong = parse_text(text, file=name)
            manifests += found
            problems += wrong
    return manifests, problems


def check_together(manifests, *, known_computes=None):
    """Problems of the manifests as a set: an object defined twice, a service whose
    counts per compute name a compute that is neither in the manifests nor in
    ``known_computes`` (None: don't check). A placed service (a total) is not checked:
    its placement may name computes that do not exist yet."""
    problems, seen = [], {}
    for manifest in manifests:
        first = seen.setdefault(manifest.key, manifest)
        if first is not manifest:
            problems.append(manifest.problem("metadata.name", "%s %s is already defined in %s"
                                             % (manifest.kind, manifest.name, first.where)))
    if known_computes is not None:
        computes = set(known_computes) | {m.name for m in manifests if m.kind == "Compute"}
        for manifest in manifests:
            if manifest.kind != "Service" or not isinstance(manifest.spec["replicas"], dict):
                continue
            for compute in manifest.spec["replicas"]:
                if compute not in computes:
                    problems.append(manifest.problem(
                        "spec.replicas.%s" % compute, "compute %r is not defined in the "
                        "manifests nor registered in genisys" % compute))
    return problems


def load(paths, *, known_computes=None, stdin=None):
    """Every manifest the paths name, checked one by one and together; ManifestError
    listing every problem if there is any (then nothing should be applied)."""
    manifests, problems = read_manifests(paths, stdin=stdin)
    problems += check_together(manifests, known_computes=known_computes)
    if problems:
        raise ManifestError(problems)
    return manifests
