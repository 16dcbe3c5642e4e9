"""Properties of connector service definitions (genisys.connector.definitions): any body
is a Definition or refused with ``Invalid`` naming the field; any --services file (YAML
or JSON) loads or is refused with ``ConfigError``; valid definitions survive their JSON,
a shell-quoted command and a file, exactly."""

import json
import shlex

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from genisys.connector.definitions import Definition, load_definitions_file
from genisys.errors import ConfigError, Invalid
from tests.properties.common import (
    PROPERTY,
    any_json,
    file_text,
    huge_literals,
    name_candidates,
    names,
    nested,
    outcome,
    text,
)

#: Arguments and environment values a definition may hold: any text without NUL.
arguments = text.filter(lambda t: "\x00" not in t)
commands = st.lists(arguments, min_size=1, max_size=5).filter(lambda c: c[0] != "")
environments = st.dictionaries(arguments.filter(lambda k: k and "=" not in k), arguments,
                               max_size=3)


@st.composite
def definitions(draw, *, cwds=(None,), strings=arguments):
    """A valid Definition (``cwds``: the directories it may name)."""
    command = draw(st.lists(strings, min_size=1, max_size=5).filter(lambda c: c[0] != ""))
    environment = draw(st.dictionaries(strings.filter(lambda k: k and "=" not in k),
                                       strings, max_size=3))
    return Definition(name=draw(names), command=tuple(command),
                      environment=tuple(sorted(environment.items())),
                      cwd=draw(st.sampled_from(cwds)))


definition_like_bodies = st.fixed_dictionaries({}, optional={
    "name": names | name_candidates | any_json,
    "command": commands | text | st.lists(text | any_json, max_size=3) | any_json
    | st.sampled_from(["", " ", "'unclosed", "a \\", "\x00", "a\x00b", "''"]),
    "environment": environments | st.dictionaries(text, text | any_json, max_size=3)
    | any_json,
    "cwd": st.none() | text | any_json | st.sampled_from(["", ".", "/", "/nonexistent",
                                                          "a\x00b"]),
    "extra": any_json,
})


@PROPERTY
@given(body=definition_like_bodies | any_json, url_name=st.none() | names | name_candidates,
       check_cwd=st.booleans())
def test_any_body_is_a_definition_or_refused_naming_the_field(body, url_name, check_cwd):
    definition, error = outcome(lambda: Definition.from_body(body, name=url_name,
                                                             check_cwd=check_cwd), Invalid)
    if error is not None:
        assert error.field is not None
        return
    assert definition.command and definition.command[0]
    assert all("\x00" not in arg for arg in definition.command)
    if url_name is not None:
        assert definition.name == url_name


@PROPERTY
@given(st.data())
def test_a_definition_survives_its_json(workdir, data):
    definition = data.draw(definitions(cwds=(None, str(workdir))))
    assert Definition.from_body(definition.to_json()) == definition
    assert Definition.from_body(definition.to_json(), name=definition.name) == definition
    wire = json.loads(json.dumps(definition.to_json()))
    assert Definition.from_body(wire) == definition


@PROPERTY
@given(definitions())
def test_a_command_given_as_one_shell_quoted_string_is_split_back(definition):
    body = dict(definition.to_json(), command=shlex.join(definition.command))
    assert Definition.from_body(body).command == definition.command


# -- the --services file -----------------------------------------------------------------

#: YAML allows keys JSON does not: numbers, booleans, null.
yaml_keys = file_text | st.integers() | st.booleans() | st.none()
yaml_bodies = st.fixed_dictionaries({}, optional={
    "name": names | file_text | st.integers(),
    "command": st.lists(file_text, max_size=3) | file_text | st.integers(),
    "environment": st.dictionaries(yaml_keys, file_text | st.integers() | st.none(),
                                   max_size=3),
    "cwd": st.none() | file_text,
})
services_documents = st.one_of(
    st.lists(yaml_bodies, max_size=3),
    st.dictionaries(names | yaml_keys, yaml_bodies | st.none(), max_size=3),
    any_json.filter(lambda v: not isinstance(v, float)),  # safe_dump writes .nan, not JSON
)


services_files = st.one_of(
    services_documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)
                           .encode("utf-8", "surrogatepass")),
    services_documents.map(lambda d: json.dumps(d).encode()),
    nested("[", "", "]", deep=(999, 3_000)).map(str.encode),
    nested("{a: ", "1", "}").map(str.encode),
    huge_literals.map(lambda n: ("? %s\n: {command: [x]}\n" % n).encode()),
    huge_literals.map(lambda n: ("- {name: a, command: [x], environment: {? %s\n : b}}\n"
                                 % n).encode()),
    file_text.map(str.encode),
    st.binary(),
)


@PROPERTY
@given(services_files, st.sampled_from(["services.yml", "services.json"]))
@example(b"\xff", "services.yml")
@example(b"[" * 5_000, "services.yml")
@example(b"[" * 5_000, "services.json")
@example(b"- {name: a, command: [x], environment: {1: b}}\n", "services.yml")
def test_any_services_file_loads_or_is_a_config_error(workdir, content, filename):
    path = workdir / filename
    path.write_bytes(content)
    loaded, error = outcome(lambda: load_definitions_file(str(path)), ConfigError)
    if error is not None:
        assert error.field == "--services" and str(path) in error.message
        return
    assert all(isinstance(d, Definition) for d in loaded)
    assert len({d.name for d in loaded}) == len(loaded)


@st.composite
def services_file(draw):
    """A valid --services file (either shape, YAML or JSON) and what it defines."""
    as_json = draw(st.booleans())
    # PyYAML does not read back U+0085 (NEL) as it writes it with allow_unicode: a
    # PyYAML quirk, not genisys'; JSON carries any text, lone surrogates too.
    yaml_text = file_text.filter(lambda t: "\x00" not in t and "\x85" not in t)
    wanted = draw(st.lists(definitions(strings=arguments if as_json else yaml_text),
                           unique_by=lambda d: d.name, max_size=3))
    if draw(st.booleans()):
        document = [d.to_json() for d in wanted]
    else:
        document = {}
        for d in wanted:
            body = d.to_json()
            if draw(st.booleans()):
                del body["name"]  # the mapping's key names it
            document[d.name] = body
    name = "services.json" if as_json else draw(st.sampled_from(["services.yml",
                                                                 "services.yaml"]))
    # ensure_ascii: JSON's \ud800 escapes carry lone surrogates, as a client may send.
    content = (json.dumps(document) if as_json
               else yaml.safe_dump(document, allow_unicode=True, sort_keys=False)).encode()
    return name, content, wanted


@PROPERTY
@given(services_file())
def test_a_generated_services_file_loads_to_exactly_its_definitions(workdir, file):
    name, content, wanted = file
    path = workdir / name
    path.write_bytes(content)
    assert load_definitions_file(str(path)) == wanted
