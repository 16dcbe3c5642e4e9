"""Loading manifests: what loads, and a table of broken ones, each reported with
its file, document index, field and reason (all of them at once)."""

import os
import textwrap

import pytest

from genisys.manifests.load import ManifestError, Problem, find_files, load

COMPUTE = """\
apiVersion: genisys/v1
kind: Compute
metadata: {name: local}
spec: {connector: "http://127.0.0.1:7051"}
"""

SERVICE = """\
apiVersion: genisys/v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  replicas: {local: 2}
"""


def write(folder, name, text):
    path = os.path.join(str(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def problems_of(paths, **kwargs):
    with pytest.raises(ManifestError) as caught:
        load(paths, **kwargs)
    return caught.value.problems


def test_a_folder_loads_recursively_in_sorted_order(tmp_path):
    write(tmp_path, "b/web.yml", SERVICE)
    write(tmp_path, "a.yaml", COMPUTE + "---\n" + SERVICE.replace("web", "api"))
    write(tmp_path, "notes.txt", "not a manifest")
    write(tmp_path, ".hidden.yaml", "kind: broken")
    manifests = load([str(tmp_path)], known_computes=[])
    assert [(m.kind, m.name, os.path.relpath(m.file, tmp_path), m.document)
            for m in manifests] == [("Compute", "local", "a.yaml", 1),
                                    ("Service", "api", "a.yaml", 2),
                                    ("Service", "web", "b/web.yml", 1)]
    assert manifests[2].labels == {"app": "web"}
    assert manifests[2].spec == {"replicas": {"local": 2}}


def test_empty_documents_and_read_only_fields_are_accepted(tmp_path):
    listing = ("---\n# just a comment\n---\n" + SERVICE.replace(
        "metadata: {name: web, labels: {app: web}}",
        "metadata: {name: web, resourceVersion: 4, generation: 2, managedBy: x, "
        "created: '2026-01-01T00:00:00Z'}") + "status: {anything: [1, 2]}\n")
    path = write(tmp_path, "get-output.yaml", listing)
    [manifest] = load([path], known_computes=["local"])
    assert (manifest.name, manifest.document, manifest.labels) == ("web", 2, {})


def test_configmap_layout_reads_each_file_once(tmp_path):
    """A mounted ConfigMap: files are links into ..data, itself a link to a hidden folder."""
    write(tmp_path, "..2026_11_28_00_00_00.1/web.yaml", SERVICE)
    os.symlink("..2026_11_28_00_00_00.1", str(tmp_path / "..data"))
    os.symlink("..data/web.yaml", str(tmp_path / "web.yaml"))
    assert [os.path.basename(f) for f in find_files(str(tmp_path))] == ["web.yaml"]
    assert [m.name for m in load([str(tmp_path)], known_computes=["local"])] == ["web"]


def test_a_placed_service_loads_and_its_computes_need_not_exist(tmp_path):
    """A total is placed by genisys: the computes its placement lists may be registered
    later, so they are not checked as a map's are."""
    path = write(tmp_path, "web.yaml", SERVICE.replace("{local: 2}", """6
  placement:
    computes: [dc1, later]
    strategy: Spread
    maxSurge: 50%
"""))
    [manifest] = load([path], known_computes=["dc1"])
    # As the API stores it: the default strategy is left out.
    assert manifest.spec == {"replicas": 6, "placement": {"computes": ["dc1", "later"],
                                                          "maxSurge": "50%"}}


def test_a_missing_path_is_a_problem(tmp_path):
    [problem] = problems_of([str(tmp_path / "nope")])
    assert problem == Problem(str(tmp_path / "nope"), None, None, "no such file or folder")


#: name, file content, (document, field, words of the reason) expected among the problems.
BROKEN = [
    ("bad YAML", "apiVersion: genisys/v1\nkind: [Service\n", (1, None, "not valid YAML")),
    ("tab indentation", "apiVersion: genisys/v1\n\tkind: Service\n", (1, None, "not valid YAML")),
    ("not a mapping", "- just\n- a list\n", (1, None, "must be a mapping")),
    ("a scalar", "hello\n", (1, None, "must be a mapping")),
    ("wrong kind", COMPUTE.replace("kind: Compute", "kind: Pod"), (1, "kind", "must be one of")),
    ("missing kind", COMPUTE.replace("kind: Compute\n", ""), (1, "kind", "is required")),
    ("wrong apiVersion", COMPUTE.replace("genisys/v1", "genisys/v2"),
     (1, "apiVersion", "must be genisys/v1")),
    ("missing apiVersion", COMPUTE.replace("apiVersion: genisys/v1\n", ""),
     (1, "apiVersion", "is required")),
    ("missing metadata", COMPUTE.replace("metadata: {name: local}\n", ""),
     (1, "metadata", "is required")),
    ("missing name", COMPUTE.replace("{name: local}", "{labels: {a: b}}"),
     (1, "metadata.name", "is required")),
    ("bad name", COMPUTE.replace("name: local", "name: 'no spaces'"),
     (1, "metadata.name", "not a valid name")),
    ("name not a string", COMPUTE.replace("name: local", "name: [1]"),
     (1, "metadata.name", "must be a string")),
    ("unknown top-level field", COMPUTE + "extra: 1\n", (1, "extra", "unknown field")),
    ("unknown metadata field", COMPUTE.replace("{name: local}", "{name: local, owner: me}"),
     (1, "metadata.owner", "unknown field")),
    ("unknown spec field", COMPUTE.replace("spec: {", "spec: {replicas: 1, "),
     (1, "spec.replicas", "unknown field")),
    ("missing spec", COMPUTE.replace('spec: {connector: "http://127.0.0.1:7051"}\n', ""),
     (1, "spec", "is required")),
    ("spec not a mapping", COMPUTE.replace('{connector: "http://127.0.0.1:7051"}', "[]"),
     (1, "spec", "must be a mapping")),
    ("missing connector", COMPUTE.replace('connector: "http://127.0.0.1:7051"', ""),
     (1, "spec.connector", "is required")),
    ("bad connector URL", COMPUTE.replace("http://127.0.0.1:7051", "ftp://x"),
     (1, "spec.connector", "http:// or https://")),
    ("credentials in the URL", COMPUTE.replace("http://", "http://user:pw@"),
     (1, "spec.connector", "credentials")),
    ("bad tokenFromEnv", COMPUTE.replace("spec: {", "spec: {tokenFromEnv: 'a b', "),
     (1, "spec.tokenFromEnv", "environment variable")),
    ("replicas not a mapping", SERVICE.replace("{local: 2}", "[2]"),
     (1, "spec.replicas", "must be a total (an integer) or an object")),
    ("negative total", SERVICE.replace("{local: 2}", "-1"),
     (1, "spec.replicas", "at least 0")),
    ("bad strategy", SERVICE.replace("{local: 2}", "6\n  placement: {strategy: Random}"),
     (1, "spec.placement.strategy", "must be 'Spread', 'Weighted', 'Capacity' or 'Pack'")),
    ("placement with counts per compute",
     SERVICE + "  placement: {computes: [local]}\n",
     (1, "spec.placement", "only a service with a total")),
    ("computes and a selector",
     SERVICE.replace("{local: 2}", "6\n  placement: {computes: [a], selector: {}}"),
     (1, "spec.placement.selector", "give computes or a selector, not both")),
    ("weights without Weighted",
     SERVICE.replace("{local: 2}", "6\n  placement: {weights: {a: 2}}"),
     (1, "spec.placement.weights", "only for strategy Weighted")),
    ("bad placement compute",
     SERVICE.replace("{local: 2}", "6\n  placement: {computes: ['a b']}"),
     (1, "spec.placement.computes.0", "not a valid name")),
    ("unknown placement field",
     SERVICE.replace("{local: 2}", "6\n  placement: {spread: true}"),
     (1, "spec.placement.spread", "unknown field")),
    ("count not an integer", SERVICE.replace("local: 2", "local: two"),
     (1, "spec.replicas.local", "must be an integer")),
    # An integral number (2.0) is a count, as in JSON Schema; 2.5 is not.
    ("count a fraction", SERVICE.replace("local: 2", "local: 2.5"),
     (1, "spec.replicas.local", "must be an integer")),
    ("count a boolean", SERVICE.replace("local: 2", "local: true"),
     (1, "spec.replicas.local", "must be an integer")),
    ("negative count", SERVICE.replace("local: 2", "local: -1"),
     (1, "spec.replicas.local", "at least 0")),
    ("bad compute name", SERVICE.replace("local: 2", "'a b': 2"),
     (1, "spec.replicas.a b", "not a valid name")),
    ("bad label key", SERVICE.replace("app: web", "'no spaces': web"),
     (1, "metadata.labels.no spaces", "not a label key")),
    ("bad label value", SERVICE.replace("app: web", "app: [web]"),
     (1, "metadata.labels.app", "must be a string")),
    ("duplicate key", SERVICE.replace("replicas: {local: 2}", "replicas: {local: 2, local: 3}"),
     (1, None, "a key appears twice")),
    ("huge number", SERVICE.replace("local: 2", "local: " + "9" * 5000),
     (1, None, "cannot use this value")),
    ("unknown compute", SERVICE.replace("local: 2", "elsewhere: 2"),
     (1, "spec.replicas.elsewhere", "compute 'elsewhere' is not defined")),
    ("second document broken", COMPUTE + "---\n" + SERVICE.replace("kind: Service", "kind: 7"),
     (2, "kind", "must be one of")),
    ("duplicate names", SERVICE + "---\n" + SERVICE,
     (2, "metadata.name", "already defined in")),
    ("not UTF-8", b"apiVersion: \xff\n", (None, None, "not UTF-8")),
]


@pytest.mark.parametrize("name, content, expected", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_manifest(tmp_path, name, content, expected):
    path = str(tmp_path / "broken.yaml")
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)
    problems = problems_of([path], known_computes=["local"])
    document, field, words = expected
    assert any(p.file == path and p.document == document and p.field == field
               and words in p.reason for p in problems), problems
    for problem in problems:
        assert str(problem).startswith(path + ": ")


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    for i, (_, content, _) in enumerate(BROKEN):
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(str(tmp_path / ("%02d.yaml" % i)), mode) as f:
            f.write(content)
    problems = problems_of([str(tmp_path)], known_computes=[])
    assert {os.path.basename(p.file) for p in problems} == {
        "%02d.yaml" % i for i in range(len(BROKEN))}
    message = str(ManifestError(problems))
    assert message.startswith("%d problems in the manifests:" % len(problems))
