"""Reading the files genisys is configured with, whatever they hold.

genisys.yml, the tokens file, a connector's --services file (YAML or JSON) and
computes.py are written by hand, so any of them can be malformed in ways the
parsers report with their own exceptions: UnicodeDecodeError for bytes that are
not UTF-8, RecursionError for brackets nested past Python's limit, ValueError
for an integer of more digits than Python converts. Every function here turns
those into a ConfigError that names the file (and the line, when known), so a
loader gets text or data, or a message for the operator.

Loaded data is also checked for what would break the code that validates it:
integers too long to print in an error message (YAML's hex literals have no
digit limit) and nesting deep enough that ``repr`` or ``==`` would recurse past
the limit (including a YAML alias inside its own anchor, which nests forever).
"""

import io
import json
import re
import sys

import yaml

from genisys.errors import ConfigError

#: Deepest nesting of lists and mappings a data file may have. Settings, tokens
#: and service definitions need three or four levels; far below Python's
#: recursion limit (1000), so an error message can always show a value.
MAX_DEPTH = 32

_LINE_END = re.compile(r"\r\n|\r|\n")


def line_of(text, index):
    """The line number (from 1) of ``text[index]``, counting line ends as Python does."""
    return len(_LINE_END.findall(text, 0, index)) + 1


def digit_limit():
    """CPython's cap on the decimal digits of an int it converts (3.11+), or None."""
    get = getattr(sys, "get_int_max_str_digits", None)
    return (get() or None) if get else None


def printable_int(value):
    """True if ``str(value)`` works: CPython refuses ints of more decimal digits than
    its limit (4300 by default), though a hex literal in a file makes one easily."""
    limit = digit_limit()
    # Below 8**limit, which is below 10**limit: a cheap bound before the exact test.
    if limit is None or value.bit_length() <= 3 * limit:
        return True
    try:
        str(value)
    except ValueError:
        return False
    return True


def _too_long_a_number():
    return "a number with more than %d digits" % digit_limit()


def read_text(path, *, field, name=None):
    """The text of the UTF-8 file ``path`` (a leading byte order mark is dropped).

    ``name`` is how messages call the file (default: its path); ``field`` is the
    ConfigError's field (the setting or flag that named the file)."""
    name = name or path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (name, e.strerror or e), field=field) from e
    try:
        # Editors on Windows start files with a byte order mark: it is not content.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError("cannot read %s: line %d is not UTF-8 text (byte 0x%02x)"
                          % (name, line, data[e.start]), field=field) from e


class _Unusable(yaml.constructor.ConstructorError):
    """Valid YAML holding a value Python can't represent (2020-13-01, a 5000-digit number)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing values Python can't use with the line they are on."""

    def construct_object(self, node, deep=False):
        try:
            value = super().construct_object(node, deep=deep)
        except ValueError as e:  # int() past its digit limit, an impossible date
            problem = _too_long_a_number() if node.tag == "tag:yaml.org,2002:int" else str(e)
            raise _Unusable(None, None, problem, node.start_mark) from e
        if type(value) is int and not printable_int(value):
            raise _Unusable(None, None, _too_long_a_number(), node.start_mark)
        return value

    def construct_mapping(self, node, deep=False):
        # A key given twice would silently keep the last value: refuse it, as the
        # API refuses duplicate JSON fields.
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                merge = key_node.tag == "tag:yaml.org,2002:merge"
                if isinstance(key_node, yaml.ScalarNode) and not merge:
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise _Unusable(None, None, "a key appears twice in this mapping",
                                        key_node.start_mark)
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(error):
    return " ".join(str(error).split())


#: A value PyYAML quotes in a message (with %r): an alias, a tag, a character.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'" r'|"(?:[^"\\]|\\.)*"')


def _yaml_problem(error, quote):
    """What is wrong and where, on one line; with ``quote=False``, none of the file's
    text: the values PyYAML quotes (an undefined alias, a tag) are left out."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return _one_line(error)  # a ReaderError: a character code and a position
    text = ", ".join(part for part in (error.context, error.problem) if part)
    if not quote:
        text = _QUOTED.sub("...", text)
    mark = error.problem_mark or error.context_mark
    if mark is not None:
        text += " (line %d, column %d)" % (mark.line + 1, mark.column + 1)
    return " ".join(text.split())


def load_yaml(path, *, field, name=None, quote=True):
    """The data of the YAML file ``path`` (None if it is empty); ConfigError if it
    can't be read, is not YAML, or holds what genisys can't use (see the module doc).

    ``quote=False`` for a file of secrets: no message then quotes its content (an
    unquoted secret starting with ``*`` is an alias PyYAML would name)."""
    name = name or path
    text = read_text(path, field=field, name=name)
    # From a stream, not a string: PyYAML then leaves the offending line out of its
    # messages, which could show a token's secret.
    stream = io.StringIO(text)
    stream.name = path  # marks say 'in "genisys.yml", line 3', not '<file>'
    loader = None
    try:
        loader = _Loader(stream)  # reads the first characters already
        data = loader.get_single_data()
    except (RecursionError, yaml.YAMLError) as e:
        raise _unreadable(e, loader, name=name, field=field, quote=quote) from e
    finally:
        if loader is not None:
            loader.dispose()
    check_nesting(data, field=field, name=name)
    return data


def _unreadable(error, loader, *, name, field, quote):
    """The ConfigError for what stopped PyYAML reading ``name``."""
    if isinstance(error, RecursionError):  # PyYAML composes nested nodes recursively
        where = "" if loader is None else " (at line %d)" % (loader.get_mark().line + 1)
        return ConfigError("%s is nested too deeply%s" % (name, where), field=field)
    if isinstance(error, _Unusable):
        return ConfigError("%s: line %d, column %d: cannot use this value: %s"
                           % (name, error.problem_mark.line + 1, error.problem_mark.column + 1,
                              error.problem), field=field)
    return ConfigError("%s is not valid YAML: %s" % (name, _yaml_problem(error, quote)),
                       field=field)


def load_yaml_documents(text, *, name):
    """Every document of a multi-document YAML text, in order, as (index, data) from
    index 1, then None, or a ConfigError for the document that could not be read
    (documents before it are still yielded: each is complete on its own).

    The ConfigError's field is "document N"; its message names ``name`` and the line."""
    stream = io.StringIO(text)
    stream.name = name
    loader = None
    index = 0
    try:
        while True:
            index += 1
            field = "document %d" % index
            try:
                if loader is None:
                    loader = _Loader(stream)  # reads the first characters already
                if not loader.check_node():
                    return
                data = loader.construct_document(loader.get_node())
            except (RecursionError, yaml.YAMLError) as e:
                raise _unreadable(e, loader, name=name, field=field, quote=True) from e
            check_nesting(data, field=field, name=name)
            yield index, data
    finally:
        if loader is not None:
            loader.dispose()


def _parse_int(text):
    digits = len(text.lstrip("-"))
    limit = digit_limit()
    if limit is not None and digits > limit:
        # json.loads would say so too, but advising sys.set_int_max_str_digits().
        raise ValueError("%s (%d)" % (_too_long_a_number(), digits))
    return int(text)


def load_json(path, *, field, name=None):
    """The data of the JSON file ``path``; ConfigError as ``load_yaml``."""
    name = name or path
    text = read_text(path, field=field, name=name)
    try:
        data = json.loads(text, parse_int=_parse_int)
    except RecursionError as e:
        raise ConfigError("%s is nested too deeply" % name, field=field) from e
    except ValueError as e:
        raise ConfigError("%s is not valid JSON: %s" % (name, _one_line(e)), field=field) \
            from e
    check_nesting(data, field=field, name=name)
    return data


def load_data(path, *, field, name=None):
    """A ``.json`` file read as JSON, anything else as YAML.

    JSON is YAML except for details (tabs, duplicate keys), so a JSON file is
    read as JSON to mean exactly what it says."""
    load = load_json if path.endswith(".json") else load_yaml
    return load(path, field=field, name=name)


def _children(value):
    if isinstance(value, dict):
        return value.values()  # keys are hashable: scalars, never lists or mappings
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    return ()


def _is_container(value):
    return isinstance(value, (dict, list, tuple, set, frozenset))


def check_nesting(data, *, field, name):
    """ConfigError if ``data`` nests lists and mappings more than MAX_DEPTH deep, or
    contains itself (a YAML alias used inside its own anchor).

    Iterative, so that it can't hit the recursion limit it guards against, and each
    list or mapping is measured once however many aliases share it."""
    if not _is_container(data):
        return
    heights = {}  # id -> levels of nesting at and below a container already measured
    on_path = {id(data)}
    stack = [[data, iter(_children(data)), 1]]  # container, children left, its height so far
    while stack:
        frame = stack[-1]
        for child in frame[1]:
            if not _is_container(child):
                continue
            if id(child) in on_path:
                raise ConfigError("%s holds a value that contains itself (a YAML alias "
                                  "inside its own anchor)" % name, field=field)
            below = heights.get(id(child))
            if below is None and len(stack) < MAX_DEPTH:
                on_path.add(id(child))
                stack.append([child, iter(_children(child)), 1])
                break
            if below is None or len(stack) + below > MAX_DEPTH:
                raise ConfigError("%s is nested too deeply (more than %d levels of lists "
                                  "and mappings)" % (name, MAX_DEPTH), field=field)
            frame[2] = max(frame[2], below + 1)
        else:
            stack.pop()
            on_path.discard(id(frame[0]))
            heights[id(frame[0])] = frame[2]
            if stack:
                stack[-1][2] = max(stack[-1][2], frame[2] + 1)
