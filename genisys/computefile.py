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

from genisys.errors import ConfigError, Invalid
from genisys.model import Compute


def load_compute_file(path):
    """The computes a file defines, in file order; ConfigError with file:line on error."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("cannot read %s: %s" % (path, e), field="genisys.compute_file") from e
    return parse_computes(source, path)


def parse_computes(source, path="computes.py"):
    def fail(line, message):
        return ConfigError("%s:%s: %s" % (path, line, message), field="genisys.compute_file")

    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise fail(e.lineno, "invalid Python syntax: %s" % e.msg) from e

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
        try:
            definition = ast.literal_eval(node.value)
        except ValueError as e:
            raise fail(node.lineno, "%s: the value must be a literal dict (%s)" % (variable, e)) \
                from e
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
