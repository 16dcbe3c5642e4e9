"""Properties of manifest loading (genisys.manifests.load): any text, and any data a
YAML document can hold, either loads to manifests or is refused as a list of
problems, each naming its file (and document and field where there is one);
never another exception. Well-formed documents load to exactly what they say."""

import yaml
from hypothesis import given
from hypothesis import strategies as st

from genisys.errors import Invalid
from genisys.manifests.load import (
    KINDS,
    Manifest,
    Problem,
    check_together,
    parse_document,
    parse_text,
)
from tests.properties.common import (
    PROPERTY,
    any_json,
    connector_urls,
    file_text,
    names,
    nested,
    text,
)

FILE = "m.yaml"

label_keys = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
label_values = st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True)


@st.composite
def documents(draw):
    """Well-formed documents."""
    kind = draw(st.sampled_from(KINDS))
    metadata = {"name": draw(names)}
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(label_keys, label_values, max_size=3))
    if kind == "Compute":
        spec = {"connector": draw(connector_urls())}
    else:
        spec = {"replicas": draw(st.dictionaries(names, st.integers(0, 1000), max_size=4))}
    return {"apiVersion": "genisys/v1", "kind": kind, "metadata": metadata, "spec": spec}


def mutate(draw, document):
    """A document with one part replaced by anything at all."""
    paths = [("apiVersion",), ("kind",), ("metadata",), ("metadata", "name"), ("spec",),
             ("spec", "connector"), ("spec", "replicas"), ("extra",), ("metadata", "labels")]
    path = draw(st.sampled_from(paths))
    value = draw(any_json)
    target = document
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return document


@st.composite
def mutated_documents(draw):
    document = draw(documents())
    for _ in range(draw(st.integers(1, 3))):
        document = mutate(draw, document)
    return document


def check_problems(problems, *, file=FILE):
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.file == file and problem.reason
        assert str(problem).startswith(file + ": ")


@PROPERTY
@given(st.one_of(file_text, text.map(lambda t: t.replace("\x00", "")),
                 nested("[", "", "]"), nested("{a: ", "1", "}"),
                 st.lists(file_text, max_size=4).map("\n---\n".join)))
def test_any_text_loads_or_is_refused_with_problems(source):
    manifests, problems = parse_text(source, file=FILE)
    assert all(isinstance(m, Manifest) for m in manifests)
    check_problems(problems)


@PROPERTY
@given(any_json | mutated_documents() | documents())
def test_any_document_data_loads_or_names_its_problems(data):
    try:
        manifest, problems = parse_document(data, file=FILE, document=3)
    except Invalid as e:  # never: problems are collected, not raised
        raise AssertionError("parse_document raised %r" % e) from e
    assert (manifest is None) == bool(problems)
    check_problems(problems)
    for problem in problems:
        assert problem.document == 3


@PROPERTY
@given(st.lists(documents(), max_size=6))
def test_well_formed_documents_load_to_exactly_what_they_say(docs):
    manifests, problems = parse_text(yaml.safe_dump_all(docs), file=FILE)
    assert problems == []
    assert [(m.kind, m.name, m.labels, m.spec, m.document) for m in manifests] == [
        (d["kind"], d["metadata"]["name"], d["metadata"].get("labels", {}), d["spec"], i + 1)
        for i, d in enumerate(docs)]
    together = check_together(manifests, known_computes=[])
    seen, duplicates = set(), 0
    for manifest in manifests:
        duplicates += manifest.key in seen
        seen.add(manifest.key)
    assert sum("already defined" in p.reason for p in together) == duplicates
