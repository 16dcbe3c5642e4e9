"""computes.py in the seed's format, read without ever executing it.

The seed defines computes as Python assignments::

    myCompute = {
        "name": "myCompute",
        "connector": "http://localhost:7051"
    }

The file is parsed with ``ast`` and only literal assignments are accepted
(``ast.literal_eval``): an import, a call or any other statement is an
error, so a computes.py can never run code inside the controller.
"""

import ast
import io
import tokenize

from genisys import files
from genisys.errors import ConfigError, Invalid
from genisys.model import Compute


def load_compute_file(path):
    """The computes a file defines, in file order; ConfigError with file:line on error."""
    return parse_computes(files.read_text(path, field="genisys.compute_file"), path)


def parse_computes(source, path="computes.py"):
    def fail(line, message):
        where = path if line is None else "%s:%d" % (path, line)
        return ConfigError("%s: %s" % (where, message), field="genisys.compute_file")

    if "\0" in source:
        # Python refuses it too, but without a line (SyntaxError.lineno is None).
        raise fail(files.line_of(source, source.index("\0")), "contains a NUL character")
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise fail(e.lineno, "invalid Python syntax: %s" % e.msg) from e
    except ValueError as e:  # a lone surrogate: not text Python can read
        raise fail(None, "cannot be parsed as Python: %s" % e) from e
    except (RecursionError, MemoryError) as e:
        # CPython's parser gives up on deep nesting (a RecursionError building the
        # tree, a MemoryError when its own stack is full), without saying where.
        raise fail(_too_deep_line(source), "nested too deeply for Python's parser") from e

    computes, seen = [], {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise fail(node.lineno, "only assignments like name = {\"name\": ..., "
                                    "\"connector\": ...} are allowed, found %s"
                       % type(node).__name__)
        variable = node.targets[0].id
        for leaf in ast.walk(node.value):
            # A hex literal makes an int too long for str(), which error messages need.
            if isinstance(leaf, ast.Constant) and type(leaf.value) is int \
                    and not files.printable_int(leaf.value):
                raise fail(leaf.lineno, "%s: a number with more than %d digits"
                           % (variable, files.digit_limit()))
            # {"name": "a", "name": "b"} would silently be "b": say so instead.
            if isinstance(leaf, ast.Dict):
                keys = [k.value for k in leaf.keys if isinstance(k, ast.Constant)]
                twice = sorted({repr(k) for k in keys if keys.count(k) > 1})
                if twice:
                    raise fail(leaf.lineno, "%s: key %s appears twice" % (variable, twice[0]))
        try:
            definition = ast.literal_eval(node.value)
        except ValueError as e:
            raise fail(node.lineno, "%s: the value must be a literal dict (%s)" % (variable, e)) \
                from e
        except TypeError as e:  # {[]: 1}, {1, []}: a list as a dict key or set member
            raise fail(node.lineno, "%s: dict keys and set members must be hashable (%s)"
                       % (variable, e)) from e
        except RecursionError as e:
            raise fail(node.lineno, "%s: the value is nested too deeply" % variable) from e
        try:
            compute = Compute.from_body(definition)
        except Invalid as e:
            raise fail(node.lineno, "%s: %s" % (variable, e)) from e
        if compute.name in seen:
            raise fail(node.lineno, "%s: compute %r is already defined on line %d"
                       % (variable, compute.name, seen[compute.name]))
        seen[compute.name] = node.lineno
        computes.append(compute)
    return computes


def _too_deep_line(source):
    """The line of the first statement Python's parser can't nest that deep, or None.

    Only called once parsing the whole file failed: each logical line is parsed on
    its own (nesting never spans statements) until one fails the same way."""
    text = io.StringIO(source, newline=None)  # \r and \r\n end lines, as for Python
    lines, first = text.readlines(), None
    tokens = tokenize.generate_tokens(io.StringIO("".join(lines)).readline)
    while True:
        try:
            token = next(tokens)
        except (StopIteration, tokenize.TokenError, SyntaxError):
            return None  # the end, or a syntax error past every complete statement
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                          tokenize.ENDMARKER):
            continue
        if first is None:
            first = token.start
        if token.type == tokenize.NEWLINE:
            (row, column), end = first, token.end[0]
            first = None
            try:
                ast.parse("".join(lines[row - 1:end])[column:])
            except (RecursionError, MemoryError):
                return row
            except (SyntaxError, ValueError):
                pass  # a line of a compound statement, such as "if x:", alone
