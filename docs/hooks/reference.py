"""MkDocs hook: the reference pages of the docs site, generated from the code at build time.

A page asks for a generated part with a marker line, ``<!-- generated: NAME -->``;
``on_page_markdown`` replaces it with the Markdown that ``GENERATORS[NAME]`` makes:

* ``http-api``: every operation and schema of the OpenAPI document
  (``genisys.api.openapi.document()``);
* ``configuration``: every setting of ``genisys.config.OPTIONS``.

Only those public names are read (the document is read as any OpenAPI 3.1
document would be, whatever builds it), so the pages follow the code, and
a marker naming no generator fails the build.
"""

import json
import re

from genisys import config
from genisys.api import openapi

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown, page, **kwargs):
    def generate(match):
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError("%s: no generator called %r (known: %s)"
                             % (page.file.src_uri, name, ", ".join(sorted(GENERATORS))))
        return GENERATORS[name]()
    return MARKER.sub(generate, markdown)


# -- Markdown helpers -------------------------------------------------------------------------


def _cell(text):
    """Text fit for one table cell: one line, pipes escaped (but not inside code spans,
    where a table keeps them as they are)."""
    parts = re.split(r"(`[^`]*`)", " ".join(str(text).split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def _text(text):
    """Prose from the code, as Markdown: ``<folder>`` outside code spans is text, not a tag."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else
                   part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                   for part in parts)


def _code(value):
    """``value`` as inline code; a JSON value (not a string) is written as JSON."""
    text = value if isinstance(value, str) else json.dumps(value)
    fence = "``" if "`" in text else "`"
    return "%s%s%s" % (fence, text, fence)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- the HTTP API, from the OpenAPI document --------------------------------------------------


def _schema_anchor(name):
    return "schema-" + name.lower()


def _resolve(doc, item):
    """``item``, or what its ``$ref`` points to inside ``doc``."""
    while isinstance(item, dict) and "$ref" in item:
        target = doc
        for part in item["$ref"].lstrip("#/").split("/"):
            target = target[part]
        item = target
    return item


def _ref_name(schema):
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else None


def _type(schema):
    """What a JSON Schema accepts, in a few words, with links to the named schemas."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    name = _ref_name(schema)
    if name:
        return "[%s](#%s)" % (name, _schema_anchor(name))
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(_code(v) for v in schema["enum"])
    for combiner, word in (("anyOf", " or "), ("oneOf", " or ")):
        if combiner in schema:
            return word.join(_type(s) for s in schema[combiner])
    if "allOf" in schema:
        # A $ref narrowed by an inline part (e.g. which error reasons): the $ref is the type.
        named = [s for s in schema["allOf"] if _ref_name(s)] or schema["allOf"]
        return " and ".join(_type(s) for s in named)
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join(_one_type(kind, schema) for kind in kinds)


def _one_type(kind, schema):
    if kind == "array":
        return "array of " + _type(schema.get("items"))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict) \
            and not schema.get("properties"):
        # Keys are strings; a named schema for them (Name) says which.
        keys = _type(schema["propertyNames"]) if _ref_name(schema.get("propertyNames", {})) \
            else "string"
        return "map of %s → %s" % (keys, _type(schema["additionalProperties"]))
    if "format" in schema:
        return "%s (%s)" % (kind, schema["format"])
    return kind


def _constraints(schema):
    """The limits a schema states beyond its type, in a few words."""
    if not isinstance(schema, dict):
        return ""
    said = []
    for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                      ("exclusiveMaximum", "<")):
        if key in schema:
            said.append("%s %s" % (word, schema[key]))
    for low, high, unit in (("minLength", "maxLength", "characters"),
                            ("minItems", "maxItems", "items"),
                            ("minProperties", "maxProperties", "entries")):
        if low in schema and high in schema:
            said.append("%s to %s %s" % (schema[low], schema[high], unit))
        elif high in schema:
            said.append("at most %s %s" % (schema[high], unit))
        elif low in schema:
            said.append("at least %s %s" % (schema[low], unit))
    if "pattern" in schema:
        said.append("matches " + _code(schema["pattern"]))
    names = schema.get("propertyNames")
    if isinstance(names, dict) and "pattern" in names:
        said.append("keys match " + _code(names["pattern"]))
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and not _ref_name(values) and _constraints(values):
        said.append("values: " + _constraints(values))
    if "default" in schema:
        said.append("default " + _code(schema["default"]))
    if schema.get("readOnly"):
        said.append("read-only")
    if schema.get("writeOnly"):
        said.append("write-only: never in an answer")
    return "; ".join(said)


def _refinements(schema, prefix=""):
    """The values an inline part of an ``allOf`` pins down, as "field: one of …" phrases."""
    said = []
    for part in schema.get("allOf", []) if prefix == "" else [schema]:
        if _ref_name(part):
            continue
        for field, sub in part.get("properties", {}).items():
            path = prefix + field
            if "enum" in sub or "const" in sub:
                said.append("%s: %s" % (_code(path), _type(sub)))
            said += _refinements(sub, path + ".")
    return said


def _fields(schema, prefix=""):
    """Rows (field, type, required, description) of an object schema; inline objects are
    spelled out as ``outer.inner``."""
    rows = []
    required = set(schema.get("required", []))
    for field, sub in schema.get("properties", {}).items():
        path = prefix + field
        description = _text(sub.get("description", ""))
        limits = _constraints(sub)
        if limits:
            description = ("%s (%s)" % (description, limits)) if description else limits
        rows.append((_code(path), _type(sub), "yes" if field in required else "no",
                     description))
        if sub.get("type") == "object" and sub.get("properties") and not _ref_name(sub):
            rows += _fields(sub, path + ".")
    return rows


def _operations(doc):
    """(tag, method, path, operation, the path's own parameters) of every operation."""
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield ((operation.get("tags") or ["other"])[0], method, path, operation,
                       item.get("parameters", []))


def _common_answers(doc):
    """The shared answers (``$ref``s) that every operation gives: listed once, not each time."""
    sets = [{(status, answer["$ref"]) for status, answer in op.get("responses", {}).items()
             if "$ref" in answer} for *_, op, _ in _operations(doc)]
    return set.intersection(*sets) if sets else set()


ANSWER_COLUMNS = ["status", "description", "body", "headers"]


def _answer_row(doc, *, status, answer):
    answer = _resolve(doc, answer)
    schema = answer.get("content", {}).get("application/json", {}).get("schema")
    body = _type(schema) if schema else ("text" if answer.get("content") else "")
    if schema and _refinements(schema):
        body += ", " + ", ".join(_refinements(schema))
    return (_code(status), _text(answer.get("description", "")), body,
            ", ".join(_code(h) for h in answer.get("headers", {})))


def _operation_markdown(doc, *, method, path, operation, path_parameters, common):
    anchor = operation.get("operationId") or re.sub(r"[^a-z0-9]+", "-",
                                                     (method + path).lower()).strip("-")
    out = ["### %s %s {#%s}" % (_code(method.upper()), _code(path), anchor), ""]
    if operation.get("summary"):
        out += ["**%s.**" % _text(operation["summary"].rstrip(".")), ""]
    if operation.get("description"):
        out += [_text(operation["description"]), ""]
    if operation.get("security") == []:
        out += ["No token needed.", ""]
    parameters = [_resolve(doc, p) for p in path_parameters + operation.get("parameters", [])]
    if parameters:
        out += ["Parameters:", "", _table(
            ["name", "in", "type", "required", "description"],
            [(_code(p["name"]), p["in"], _type(p.get("schema")),
              "yes" if p.get("required") else "no",
              " ".join(filter(None, [_text(p.get("description", "")),
                                     _constraints(p.get("schema"))])))
             for p in parameters]), ""]
    body = operation.get("requestBody")
    if body:
        body = _resolve(doc, body)
        schemas = [_type(media.get("schema")) + " (" + _code(kind) + ")"
                   for kind, media in body.get("content", {}).items()]
        out += ["Request body%s: %s. %s" % (" (required)" if body.get("required") else "",
                                            ", ".join(schemas),
                                            _text(body.get("description", ""))),
                ""]
    rows = [_answer_row(doc, status=status, answer=answer)
            for status, answer in operation.get("responses", {}).items()
            if (status, answer.get("$ref")) not in common]
    out += ["Answers (and those of [every operation](#every-operation)):", "",
            _table(ANSWER_COLUMNS, rows), ""]
    return out


def _schema_markdown(name, schema):
    out = ["### %s {#%s}" % (name, _schema_anchor(name)), ""]
    if schema.get("description"):
        out += [_text(schema["description"]), ""]
    if schema.get("properties"):
        closed = schema.get("additionalProperties") is False
        out += ["An object%s." % (" (no other fields)" if closed else ""), "",
                _table(["field", "type", "required", "description"], _fields(schema)), ""]
    else:
        limits = _constraints(schema)
        out += ["Type: %s%s." % (_type(schema), "; " + limits if limits else ""), ""]
    for example in schema.get("examples", [])[:1]:
        out += ["Example: %s" % _code(example), ""]
    return out


def http_api():
    doc = openapi.document()
    info = doc.get("info", {})
    out = ["## About this API", "",
           "Version %s of the document (OpenAPI %s)." % (_code(info.get("version", "?")),
                                                        doc.get("openapi", "?")), ""]
    if info.get("description"):
        out += [_text(info["description"].strip()), ""]
    for scheme, spec in doc.get("components", {}).get("securitySchemes", {}).items():
        out += ["Authentication (%s): %s %s. %s" % (
            _code(scheme), spec.get("type", ""), spec.get("scheme", ""),
            _text(spec.get("description", ""))), ""]

    common = _common_answers(doc)
    out += ["### Every operation", "", "Any operation may also answer:", "",
            _table(ANSWER_COLUMNS, [_answer_row(doc, status=status, answer={"$ref": ref})
                                    for status, ref in sorted(common)]), ""]

    by_tag = {tag["name"]: [] for tag in doc.get("tags", [])}
    for tag, method, path, operation, path_parameters in _operations(doc):
        by_tag.setdefault(tag, []).append(
            _operation_markdown(doc, method=method, path=path, operation=operation,
                                path_parameters=path_parameters, common=common))
    for tag, operations in by_tag.items():
        if operations:
            out += ["## %s" % tag.capitalize(), ""]
            for lines in operations:
                out += lines

    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += _schema_markdown(name, schema)
    return "\n".join(out)


# -- the settings, from the options table -----------------------------------------------------

#: "(default 7001; 0 picks a free one)" in an option's help.
DEFAULT_IN_HELP = re.compile(r"\s*\(default:?\s*([^)]*)\)")


def _default(option):
    """An option's default as its help states it, else the value ``Settings`` starts with."""
    match = DEFAULT_IN_HELP.search(option.help)
    if match:
        return match.group(1)
    value = config.Settings()
    for part in option.target.split("."):
        value = getattr(value, part)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def configuration():
    sections = {}
    for option in config.OPTIONS:
        flag = option.flag + (" " + option.metavar if option.flag_value else "")
        what = DEFAULT_IN_HELP.sub("", option.help).strip()
        # The three names of a setting stacked in one cell: the table stays readable.
        names = " <br> ".join(_code(name) for name in (option.key, option.env, flag))
        sections.setdefault(option.key.split(".", 1)[0], []).append(
            (names, _text(_default(option)), _text(what[:1].upper() + what[1:] + ".")))
    out = []
    for section, rows in sections.items():
        out += ["### %s" % section, "", _table(
            ["genisys.yml <br> environment <br> flag", "default", "what it does"], rows), ""]
    return "\n".join(out)


GENERATORS = {"http-api": http_api, "configuration": configuration}
