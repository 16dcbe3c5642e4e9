"""Properties of the tokens file (genisys.auth.load_tokens_file): any file loads to tokens
or is refused with ``ConfigError`` naming the file; a file of valid entries loads to
exactly its tokens; and no refusal quotes a secret the file holds."""

import os
import string

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from genisys.auth import ADMIN, MIN_SECRET_LENGTH, ROLES, Token, load_tokens_file
from genisys.errors import ConfigError
from tests.properties.common import (
    PROPERTY,
    file_text,
    huge_literals,
    nested,
    outcome,
)

token_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)
#: Visible ASCII, as a header carries it; a marker no message has of its own.
secrets = st.text(string.ascii_letters + string.digits + string.punctuation,
                  min_size=MIN_SECRET_LENGTH, max_size=40).map(lambda s: "SeCrEt" + s)

#: YAML-representable values (no huge ints: they come in as text below).
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | file_text | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(file_text, children,
                                                                      max_size=3),
    max_leaves=8)

entries = st.fixed_dictionaries({}, optional={
    "name": token_names | yaml_values,
    "token": secrets | yaml_values,
    "role": st.sampled_from(ROLES) | yaml_values,
    "scope": yaml_values,
})
structured = (st.lists(entries | yaml_values, max_size=4) | yaml_values).map(
    lambda doc: yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))

tokens_files = st.one_of(
    structured,
    nested("[", "", "]").map(str.encode),
    nested("- ", "1").map(str.encode),
    huge_literals.map(lambda n: ("- name: %s\n  token: admin-secret-0123456789\n" % n)
                      .encode()),
    st.sampled_from([b"- &a {name: ops, token: *a}\n", b"- &a [*a]\n", b"\xef\xbb\xbf- x\n",
                     b"- name: ops\n  token: !!binary aGk=\n", b"- name: 2020-13-01\n"]),
    file_text.map(str.encode),
    st.binary(),
)


def _write(path, content):
    path.write_bytes(content)
    os.chmod(path, 0o600)


@PROPERTY
@given(tokens_files)
@example(b"\x80")
@example(b"[" * 999)
@example(b"- name: 0x" + b"f" * 4000 + b"\n  token: admin-secret-0123456789\n")
def test_any_tokens_file_loads_or_is_a_config_error(workdir, content):
    path = workdir / "tokens.yml"
    _write(path, content)
    loaded, error = outcome(lambda: load_tokens_file(str(path)), ConfigError)
    if error is not None:
        assert error.field in ("genisys.tokens_file", "auth")
        assert str(path) in error.message
        return
    tokens, exposed = loaded
    assert tokens and all(isinstance(t, Token) and t.role in ROLES for t in tokens)
    assert exposed is False


@st.composite
def tokens_yml(draw):
    """A valid tokens file, and the tokens it holds."""
    wanted = draw(st.lists(st.builds(Token, name=token_names, secret=secrets,
                                     role=st.sampled_from(ROLES)),
                           min_size=1, max_size=4, unique_by=lambda t: t.name))
    document = []
    for token in wanted:
        entry = {"name": token.name, "token": token.secret}
        if token.role != ADMIN or draw(st.booleans()):
            entry["role"] = token.role
        document.append(entry)
    return yaml.safe_dump(document, sort_keys=draw(st.booleans())), wanted


@PROPERTY
@given(tokens_yml())
def test_a_valid_tokens_file_loads_to_exactly_its_tokens(workdir, file):
    text, wanted = file
    path = workdir / "tokens.yml"
    _write(path, text.encode())
    assert load_tokens_file(str(path)) == (wanted, False)


@st.composite
def damaged_tokens_yml(draw):
    """A valid tokens file with a few bytes cut out or put in, and its secrets."""
    text, wanted = draw(tokens_yml())
    raw = text.encode()
    start = draw(st.integers(0, len(raw)))
    end = draw(st.integers(start, min(len(raw), start + 4)))
    junk = draw(st.binary(max_size=3) | st.sampled_from([b"[", b"{", b":", b"\t", b"\n ",
                                                         b"'", b'"', b"&", b"*", b"!"]))
    return raw[:start] + junk + raw[end:], [t.secret for t in wanted]


@PROPERTY
@given(damaged_tokens_yml())
@example((b"- name: ops\n  token: SeCrEt-0123456789abcdef: x\n", ["SeCrEt-0123456789abcdef"]))
@example((b"- name: ops\n  token: *SeCrEt-0123456789abcdef\n", ["SeCrEt-0123456789abcdef"]))
@example((b"- name: ops\n  token: !SeCrEt-0123456789abcdef x\n", ["SeCrEt-0123456789abcdef"]))
def test_a_refusal_never_quotes_a_secret(workdir, file):
    # PyYAML quotes the offending line when it reads a string (a token's line, perhaps),
    # and an alias or a tag by name (an unquoted secret that starts with * or !).
    content, secret_list = file
    path = workdir / "tokens.yml"
    _write(path, content)
    _, error = outcome(lambda: load_tokens_file(str(path)), ConfigError)
    if error is not None:
        assert not any(s in str(error) for s in secret_list), str(error)
