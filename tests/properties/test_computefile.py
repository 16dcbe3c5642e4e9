"""Properties of computes.py loading (genisys.computefile): any file either loads to
computes or is refused with ``ConfigError`` naming the file; a file of literal dict
assignments loads to exactly the computes it spells, in file order."""

import json
import keyword
import re

from hypothesis import example, given
from hypothesis import strategies as st

from genisys.computefile import load_compute_file
from genisys.errors import ConfigError
from genisys.model import Compute
from tests.properties.common import (
    PROPERTY,
    computes,
    connector_urls,
    file_text,
    huge_literals,
    name_candidates,
    names,
    nested,
    outcome,
    text,
    url_candidates,
)

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True) \
    .filter(lambda s: not keyword.iskeyword(s))

# -- Python source, mostly literals ---------------------------------------------------

literal_leaves = st.one_of(
    st.integers().map(repr), st.floats().map(repr), text.map(repr), st.binary().map(repr),
    huge_literals,
    st.sampled_from(["None", "True", "...", "1j", "-1", "+1.5", "- -1", "1 + 2j", "~1",
                     "x", "f()", "os.system", "1 if 1 else 2", "[*x]", "{**x}", "b'\\xff'",
                     "'a' 'b'", "f'{x}'", "lambda: 0"]),
    names.map(repr), connector_urls().map(repr), url_candidates.map(repr),
)


def _containers(children):
    items = st.lists(children, max_size=4)
    return st.one_of(
        items.map(lambda xs: "[%s]" % ", ".join(xs)),
        items.map(lambda xs: "(%s,)" % ", ".join(xs)),
        items.filter(bool).map(lambda xs: "{%s}" % ", ".join(xs)),  # a set
        # A dict; its keys can be anything, lists and sets included.
        st.lists(st.tuples(children, children), max_size=4)
        .map(lambda kv: "{%s}" % ", ".join("%s: %s" % p for p in kv)),
        children.map(lambda x: "-" + x),
    )


literals = st.recursive(literal_leaves, _containers, max_leaves=12)

compute_literals = st.builds(
    lambda name, connector, extra: "{'name': %s, 'connector': %s%s}" % (name, connector,
                                                                        extra),
    names.map(repr) | name_candidates.map(repr) | literals,
    connector_urls().map(repr) | literals,
    st.sampled_from(["", ", 'x': 1", ", 'name': 'other'"])
    | literals.map(lambda k: ", %s: 1" % k))

statements = st.one_of(
    st.builds("%s = %s".__mod__, st.tuples(identifiers, compute_literals | literals)),
    st.builds("%s: dict = %s".__mod__, st.tuples(identifiers, compute_literals)),
    text.map(repr),  # a docstring
    file_text.map(lambda t: "# " + t.replace("\n", " ").replace("\r", " ")),
    st.sampled_from(["import os", "x += 1", "x = y = {}", "x.y = {}", "x, y = {}, {}",
                     "del x", "pass", "if True:\n    x = {}", "def f():\n    pass", "f()",
                     "x = {\n", "\tx = 1", "x = (", "", "\\", "x = 1 # é", "async def f(): 0"]),
    file_text,
)

#: Deep enough for CPython's own limits: 200 nested brackets, about 3000 levels when it
#: builds the tree, about 6000 on the parser's stack.
PARSER_DEPTHS = (201, 999, 3_000, 6_000)
sources = st.one_of(
    st.lists(statements, max_size=6).map("\n".join),
    st.lists(statements, max_size=6).map("\r\n".join),
    st.lists(statements, max_size=6).map("; ".join),
    nested("-", deep=PARSER_DEPTHS).map(lambda s: "x = %s1" % s),
    nested("not ", deep=PARSER_DEPTHS).map(lambda s: "x = %s1" % s),
    nested("[", "", "]", deep=PARSER_DEPTHS).map(lambda s: "x = " + s),
    nested("{'a': ", "1", "}", deep=PARSER_DEPTHS).map(lambda s: "x = " + s),
    nested("(", "1", ")", deep=PARSER_DEPTHS).map(lambda s: "x = " + s),
)

#: What a computes.py can hold: source in UTF-8 (or UTF-8 with lone surrogates, which
#: is not UTF-8), in another encoding, or any bytes at all.
computes_files = st.one_of(
    sources.map(lambda s: s.encode("utf-8", "surrogatepass")),
    sources.map(lambda s: s.encode("utf-16")),
    st.binary(),
)


@PROPERTY
@given(computes_files)
@example(b"x = {[]: 1}")
@example(b"x = {0x" + b"f" * 4000 + b": 1}")
@example(b"x = " + b"-" * 3_000 + b"1")  # RecursionError building the tree
@example(b"x = " + b"-" * 6_000 + b"1")  # MemoryError from the parser (its stack)
def test_any_computes_py_loads_or_is_a_config_error(workdir, content):
    path = workdir / "computes.py"
    path.write_bytes(content)
    loaded, error = outcome(lambda: load_compute_file(str(path)), ConfigError)
    if error is not None:
        assert error.field == "genisys.compute_file"
        assert str(path) in error.message
        return
    assert all(isinstance(c, Compute) for c in loaded)
    assert len({c.name for c in loaded}) == len(loaded)
    assert all(Compute.from_body(c.to_json()) == c for c in loaded)


@PROPERTY
@given(sources.map(lambda s: s.encode("utf-8", "surrogatepass")) | st.binary())
@example(b"\x00")
def test_a_computes_py_parse_error_names_the_line(workdir, content):
    path = workdir / "computes.py"
    path.write_bytes(content)
    _, error = outcome(lambda: load_compute_file(str(path)), ConfigError)
    if error is not None and not error.message.startswith("cannot read"):
        assert re.match(re.escape(str(path)) + r":\d+: ", error.message), error.message


# -- files that must load exactly -------------------------------------------------------


def _render(compute, style):
    """One way a person writes a compute: repr, JSON, or by hand over several lines."""
    body = compute.to_json()
    if style == "repr":
        return repr(body)
    if style == "json":
        return json.dumps(body, indent=4)
    return "{\n    'connector': %r,  # where\n    \"name\": %r,\n}" % (compute.connector,
                                                                    compute.name)


@st.composite
def computes_py(draw):
    """A valid computes.py and the computes it defines, in order."""
    wanted = draw(st.lists(computes, unique_by=lambda c: c.name, max_size=4))
    lines = []
    if draw(st.booleans()):
        lines.append(repr(draw(file_text)))  # a module docstring
    for compute in wanted:
        lines += draw(st.lists(st.sampled_from(["", "# " + draw(identifiers), "'''doc'''"]),
                               max_size=2))
        variable = draw(identifiers)
        lines.append("%s = %s" % (variable, _render(compute, draw(st.sampled_from(
            ["repr", "json", "by hand"])))))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"])), wanted


@PROPERTY
@given(computes_py())
def test_a_computes_py_of_literal_dicts_loads_to_exactly_its_computes(workdir, file):
    source, wanted = file
    path = workdir / "computes.py"
    path.write_text(source, encoding="utf-8")
    assert load_compute_file(str(path)) == wanted


@PROPERTY
@given(st.lists(computes, unique_by=lambda c: c.name, min_size=1, max_size=4), st.data())
def test_a_compute_defined_twice_is_refused(workdir, defined, data):
    again = data.draw(st.sampled_from(defined))
    at = data.draw(st.integers(0, len(defined)))
    order = defined[:at] + [again] + defined[at:]
    path = workdir / "computes.py"
    path.write_text("\n".join("c%d = %r" % (i, c.to_json()) for i, c in enumerate(order)),
                    encoding="utf-8")
    _, error = outcome(lambda: load_compute_file(str(path)), ConfigError)
    assert error is not None and "already defined" in error.message
