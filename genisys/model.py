"""Every shape genisys reads or writes, defined once as a typed model.

Computes, services (spec and stored form), the status and event records,
every request body and the manifest specs are pydantic models in strict mode
(``3`` is a count, ``"3"`` is not); their fields use the reusable types below
(Name, ConnectorURL, Count, Labels, ManagedBy, ConnectorToken). From these
models come the validation of requests and manifests (a pydantic error is
mapped once, by ``invalid``, to ``Invalid`` naming the field), the OpenAPI
``components.schemas`` (``component_schemas``) and the stored form
(``to_store``: optional fields are omitted when unset). Nothing unvalidated
reaches the store.

The small functions at the end (``validate_name``, ``validate_count``,
``check_fields``, ...) apply the same rules to one value; the connector's
own bodies and definitions use them.
"""

import copy
import dataclasses
import datetime
import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, NewType, Optional, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypeAliasType, TypedDict

from genisys.errors import Invalid

ComputeName = NewType("ComputeName", str)
ServiceName = NewType("ServiceName", str)

#: Desired counts are bounded by a configurable maximum; this is the default.
DEFAULT_MAX_REPLICAS = 1000

#: Events kept per service, newest first; older ones are dropped.
EVENTS_KEPT = 50


# -- rendering bad values in messages ---------------------------------------


def describe(value: Any) -> str:
    """A short rendering of a bad value for error messages (never huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value: Any) -> str:
    """The JSON name of a value's type ("array", not "list")."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean",
             int: "integer", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _refuse(message: str) -> PydanticCustomError:
    # The message travels in the context: a '{' in a quoted value is not a placeholder.
    return PydanticCustomError("genisys", "{message}", {"message": message})


def _refuse_at(field: str, message: str) -> PydanticCustomError:
    """A rule between fields (a model's validator), naming the field at fault (dotted,
    from the model): pydantic itself would name the model."""
    return PydanticCustomError("genisys", "{message}", {"message": message, "field": field})


# -- the reusable types -------------------------------------------------------

#: Visible ASCII: what a header or a log line carries as it is.
VISIBLE_ASCII = "!-~"

#: RFC 1123 host label: letters, digits and '-', starting and ending with a
#: letter or digit, at most 63 characters. Upper case is allowed because the
#: seed's own examples use names such as "myService" and "myCompute" (RFC 1123
#: allows either case; only Kubernetes insists on lower case). Names are
#: compared exactly: "Web" and "web" are two services.
NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
NAME_RULE = "1 to 63 letters, digits or '-', starting and ending with a letter or digit"

#: Connector URLs as the document states them: http or https, a host of RFC 3986
#: "reg-name" characters (a name or an IPv4 address), an optional port 1-65535, an
#: optional path of visible ASCII without '?' and '#'. genisys accepts a little more
#: (an IPv6 literal, a port with leading zeros, an empty query): the pattern is the
#: part every client can rely on, and everything it matches is accepted.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
CONNECTOR_URL_PATTERN = ("^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=-]+(:" + _PORT + ")?"
                         '(/[!"$->@-~]*)?$')
CONNECTOR_URL_MAX_LENGTH = 2048

#: What a connector token may be: visible ASCII (it travels in a header), long
#: enough not to be a placeholder such as the "set" genisys shows instead of it.
CONNECTOR_TOKEN_PATTERN = "^[%s]{8,4096}$" % VISIBLE_ASCII
#: Who applies an object from manifests (``genisys apply``, a sidecar): visible
#: ASCII, so that a prune can tell its own objects from everyone else's.
MANAGED_BY_PATTERN = "^[%s]{1,253}$" % VISIBLE_ASCII
#: Idempotency keys: 1 to 255 visible ASCII characters (what a header carries safely).
IDEMPOTENCY_KEY_PATTERN = "^[%s]{1,255}$" % VISIBLE_ASCII

#: Label keys: an optional DNS-subdomain prefix and "/", then a name of 1 to 63
#: characters (letters, digits, '-', '_', '.'), as Kubernetes has them.
LABEL_KEY_PATTERN = (r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?"
                     r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$"
MAX_LABELS = 64
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
#: An environment variable's name (a manifest's tokenFromEnv).
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,254}$"

#: What a value that does not match each pattern is told (secrets are not quoted).
_MISMATCH = {
    NAME_PATTERN: lambda v: "%s is not a valid name (%s)" % (describe(v), NAME_RULE),
    CONNECTOR_TOKEN_PATTERN: lambda v: "must be 8 to 4096 visible ASCII characters (got %d "
                                       "characters)" % len(v),
    MANAGED_BY_PATTERN: lambda v: "must be 1 to 253 visible ASCII characters, got %s"
                                  % describe(v),
    IDEMPOTENCY_KEY_PATTERN: lambda v: "must be 1 to 255 visible ASCII characters",
    LABEL_KEY_PATTERN: lambda v: "%s is not a label key (a name of letters, digits, '-', '_' "
                                 "or '.', optionally prefixed by a domain and '/')" % describe(v),
    LABEL_VALUE_PATTERN: lambda v: "%s is not a label value (up to 63 letters, digits, '-', "
                                   "'_' or '.', starting and ending with a letter or digit)"
                                   % describe(v),
    ENV_NAME_PATTERN: lambda v: "must name an environment variable (letters, digits and '_'), "
                                "got %s" % describe(v),
    TIME_PATTERN: lambda v: "%s is not a UTC time such as 2024-01-31T12:00:00Z" % describe(v),
}


#: White space is refused with its own message, after the URL's other rules.
_NOT_VISIBLE_NOR_SPACE = re.compile(r"[^%s\s]" % VISIBLE_ASCII)


def _check_connector_url(value: str) -> str:
    odd = _NOT_VISIBLE_NOR_SPACE.search(value)
    if odd:
        # Control and non-ASCII characters can't go on the wire as they are.
        raise _refuse("%s contains %s, which is not visible ASCII (percent-encode it)"
                      % (describe(value), describe(odd.group())))
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise _refuse("%s is not a valid URL (%s)" % (describe(value), e)) from e
    if parts.scheme not in ("http", "https"):
        raise _refuse("%s must be an absolute http:// or https:// URL" % describe(value))
    if not parts.hostname:
        raise _refuse("%s has no host" % describe(value))
    if parts.username is not None or parts.password is not None:
        raise _refuse("credentials in the URL are not allowed")
    if parts.query or parts.fragment:
        raise _refuse("%s must not have a query or fragment" % describe(value))
    if port == 0:
        raise _refuse("%s has port 0" % describe(value))
    if any(c.isspace() for c in value):
        raise _refuse("%s contains white space" % describe(value))
    return value


def _integral(value: Any) -> Any:
    # JSON Schema, and so the OpenAPI document, counts 3.0 as an integer: so does genisys
    # (as it does a Count, below). 3.5 stays refused.
    return int(value) if type(value) is float and value.is_integer() else value


def _count(value: Any, info: ValidationInfo) -> int:
    # One Python function for the whole rule, as fast as the validate_count it
    # replaces: pydantic's own checks around a function took 15% longer. The schema
    # comes from the json_schema_input_type below.
    if type(value) is not int:
        # JSON Schema, and so the OpenAPI document, counts 912.0 as an integer: so does
        # genisys. 912.5, true and "912" stay refused.
        if type(value) is not float or not value.is_integer():
            raise _refuse("must be an integer, got %s %s" % (type_name(value), describe(value)))
        value = int(value)
    if value < 0:
        raise _refuse("must be at least 0, got %d" % value)
    # The maximum is a setting of the running server (max_replicas), not a constant:
    # it comes with the validation context. Without one (trusted data), no maximum.
    if info.context and value > info.context["maximum"]:
        raise _refuse("must be at most %d (%s), got %d"
                      % (info.context["maximum"], info.context.get("limit", "max_replicas"),
                         value))
    return value


Name = TypeAliasType("Name", Annotated[str, StringConstraints(pattern=NAME_PATTERN), Field(
    description="1 to 63 letters, digits or '-', starting and ending with a letter or digit "
                "(an RFC 1123 label; upper case allowed, case-sensitive).",
    json_schema_extra={"minLength": 1, "maxLength": 63, "examples": ["local"]})])

ConnectorURL = TypeAliasType("ConnectorURL", Annotated[
    str, StringConstraints(max_length=CONNECTOR_URL_MAX_LENGTH),
    AfterValidator(_check_connector_url), Field(
        description="An absolute http:// or https:// URL with a host, without credentials, "
                    "query or fragment, port 0 or white space; a path is a prefix genisys "
                    "puts before /service/... . The server may restrict hosts "
                    "(connector_hosts): another host is a 400.",
        json_schema_extra={"pattern": CONNECTOR_URL_PATTERN,
                           "examples": ["http://127.0.0.1:7051"]})])

Count = TypeAliasType("Count", Annotated[
    int, PlainValidator(_count, json_schema_input_type=Annotated[int, Field(ge=0)]), Field(
        description="A desired count: 0 to max_replicas (%d by default)."
                    % DEFAULT_MAX_REPLICAS)])

ConnectorToken = TypeAliasType("ConnectorToken", Annotated[
    str, StringConstraints(pattern=CONNECTOR_TOKEN_PATTERN), Field(
        description="Sent to the connector as `Authorization: Bearer <token>`. Stored, never "
                    "shown: a compute that has one reads `\"token\": \"set\"`. Absent or null: "
                    "no token (a PUT without it removes it).",
        json_schema_extra={"writeOnly": True})])

LabelKey = TypeAliasType("LabelKey", Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)])
LabelValue = TypeAliasType("LabelValue", Annotated[
    str, StringConstraints(pattern=LABEL_VALUE_PATTERN)])
Labels = TypeAliasType("Labels", Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=MAX_LABELS,
          description="Labels, as Kubernetes has them: [prefix/]name -> value (up to 63 "
                      "letters, digits, '-', '_' or '.'). Absent: none.",
          json_schema_extra={"examples": [{"app": "web", "tier": "frontend"}]})])

ManagedBy = TypeAliasType("ManagedBy", Annotated[
    str, StringConstraints(pattern=MANAGED_BY_PATTERN), Field(
        description="Who applies this object from manifests (`genisys apply` writes "
                    "genisys-cli, a sidecar sidecar:<folder>); `apply --prune` deletes only "
                    "its own objects. Absent: made through the API.")])

IdempotencyKey = TypeAliasType("IdempotencyKey", Annotated[
    str, StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN)])

Time = TypeAliasType("Time", Annotated[str, StringConstraints(pattern=TIME_PATTERN), Field(
    description="UTC, to the second.")])


def utc_text(seconds: float) -> str:
    """Wall-clock ``seconds`` (since the epoch) as a Time."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def utc_seconds(text: str) -> float:
    """A Time as wall-clock seconds since the epoch."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

Replicas = TypeAliasType("Replicas", Annotated[dict[Name, Count], Field(
    description="Compute name -> desired count.", json_schema_extra={"examples": [{"local": 3}]})])


def _replicas_form(value: Any) -> str:
    return "[map]" if isinstance(value, dict) else "[total]"


def _total_or_map(value: Any) -> Any:
    if not isinstance(value, dict) and type(value) not in (int, float):
        raise _refuse("must be a total (an integer) or an object of compute name -> count, "
                      "got %s %s" % (type_name(value), describe(value)))
    return value


#: A service's replicas: a total genisys places (``6``), or counts per compute
#: (``{"dc1": 4, "dc2": 2}``). The tags are dropped from the names of fields at fault.
ReplicasOrTotal = TypeAliasType("ReplicasOrTotal", Annotated[
    Union[Annotated[Count, Tag("[total]")], Annotated[Replicas, Tag("[map]")]],
    Discriminator(_replicas_form), BeforeValidator(_total_or_map),
    Field(description="A total, which genisys places on the computes of the `placement`; "
                      "or compute name -> desired count, set by hand.",
          json_schema_extra={"examples": [6, {"local": 3}]})])

ResourceVersion = TypeAliasType("ResourceVersion", Annotated[int, Field(
    ge=1, description="Grows with every write.")])


# -- models ------------------------------------------------------------------


def _schema_extra(schema: dict, model: type) -> None:
    # An optional field is absent when unset; "default": null would invite clients
    # to send a null that most fields refuse. Titles repeat the names.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]
        prop.pop("title", None)
    schema.pop("title", None)
    examples = getattr(model, "EXAMPLES", None)
    if examples:
        schema["examples"] = examples
    # Rules between fields, which the model's validators check, said in JSON Schema too.
    schema.update(getattr(model, "SCHEMA_RULES", {}))


class Model(BaseModel):
    """Strict (no coercion), closed (unknown fields refused) and immutable; fields are
    written in camelCase on the wire (``managed_by`` is ``managedBy``)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_by_name=True,
                              validate_by_alias=True, json_schema_extra=_schema_extra)

    def named(self: "M", name: str) -> "M":
        """A PUT body whose object is named by the URL: a ``name`` it repeats must agree
        (a rule JSON Schema cannot state)."""
        given = getattr(self, "name", None)
        if given is not None and given != name:
            raise Invalid("%s does not match the name in the URL (%s)"
                          % (describe(given), describe(name)), field="name")
        return self

    def to_store(self) -> dict:
        """The stored (and shown) form: wire names; required fields first, then the
        optional ones that differ from their default (the seed's computes read exactly
        {"connector", "name"}, as stored records always have)."""
        fields = self.__dict__
        return {wire: _stored(fields[name]) for name, wire, required, default
                in _STORED[type(self)] if required or fields[name] != default}

    @classmethod
    def trusted(cls: type["M"], value: dict) -> "M":
        """A model of a record genisys wrote itself, without validating it again: the
        reconciler reads every service and compute on every pass and connector call.
        It sets what pydantic's model_construct sets, without that method's search of
        every alias and default, which takes four times as long."""
        fields = {name: value[wire] if wire in value else make_default()
                  for name, wire, make_default in _TRUSTED[cls]}
        model = cls.__new__(cls)
        object.__setattr__(model, "__dict__", fields)
        object.__setattr__(model, "__pydantic_fields_set__", set(fields))
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _VALIDATORS[cls] = cls.__pydantic_validator__
        fields = [(name, field.alias or name, field.is_required(),
                   None if field.is_required() else field.get_default(call_default_factory=True))
                  for name, field in cls.model_fields.items()]
        _STORED[cls] = sorted(fields, key=lambda f: not f[2])  # stable: required first
        # A field a record lacks gets its default: a new one each time (never a dict
        # that two models share).
        _TRUSTED[cls] = [(name, field.alias or name, _default_maker(field))
                         for name, field in cls.model_fields.items()]


def _stored(value: Any) -> Any:
    """A field's stored form: nested models (a placement) as their own stored form."""
    if isinstance(value, Model):
        return value.to_store()
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def _default_maker(field: Any) -> Callable[[], Any]:
    """What makes a field's default: its factory, or a copy of its default value
    (pydantic's own get_default deep-copies every time, ten times as slow)."""
    if field.default_factory is not None:
        return field.default_factory
    return functools.partial(copy.copy, field.default)


M = TypeVar("M", bound=Model)
#: The validator of each type ``parse`` takes (every Model, and the TypedDict bodies).
_VALIDATORS: dict = {}
#: Each model's fields as to_store writes them: (name, wire name, required, default).
_STORED: dict[type, list[tuple[str, str, bool, Any]]] = {}
#: Each model's fields as trusted reads them: (name, wire name, a new default).
_TRUSTED: dict[type, list[tuple[str, str, Callable[[], Any]]]] = {}


def parse(model: Any, body: Any, *, maximum: Optional[int] = None,
          limit: str = "max_replicas", where: str = "") -> Any:
    """``body`` validated as ``model``; the first problem as ``Invalid`` naming its field
    (``where`` prefixes it, e.g. "spec"). Counts go up to ``maximum`` (the setting
    ``limit``)."""
    try:
        # The validator itself: model_validate's Python wrapper doubles the time an
        # upscale's body takes.
        return _VALIDATORS[model].validate_python(
            body, context=None if maximum is None else {"maximum": maximum, "limit": limit})
    except ValidationError as e:
        raise problems(e, where=where)[0] from None


def problems(error: ValidationError, *, where: str = "") -> list[Invalid]:
    """Every problem of a pydantic error, as ``Invalid`` naming its field: unknown
    fields first, then missing ones, then wrong values (the order of the rules
    genisys always had)."""
    order = {"extra_forbidden": 0, "missing": 1}
    found = sorted(error.errors(), key=lambda e: order.get(e["type"], 2))
    return [invalid(e, where=where) for e in found]


def invalid(error: Any, *, where: str = "") -> Invalid:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``Invalid``."""
    # "[key]" (a dict key at fault) and the tags of a union ("[total]", "[map]") are
    # pydantic's, not fields.
    loc = [str(part) for part in error["loc"]
           if not (isinstance(part, str) and part.startswith("[") and part.endswith("]"))]
    at = (error.get("ctx") or {}).get("field")
    if at:
        loc += at.split(".")
    field = ".".join(([where] if where else []) + loc) or "body"
    return Invalid(_message(error, top=not loc), field=field)


def _message(error: Any, *, top: bool) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be %s, got %s" % ("a JSON object" if top else "an object", type_name(value))
    if kind == "string_type":
        return "must be a string, got %s" % type_name(value)
    if kind == "int_type":
        return "must be an integer, got %s %s" % (type_name(value), describe(value))
    if kind == "bool_type":
        return "must be true or false, got %s %s" % (type_name(value), describe(value))
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _MISMATCH:
        return _MISMATCH[ctx["pattern"]](value)
    if kind == "greater_than_equal":
        return "must be at least %s, got %s" % (ctx["ge"], describe(value))
    if kind == "too_short":
        return "must have at least %d item%s" % (ctx["min_length"],
                                                 "" if ctx["min_length"] == 1 else "s")
    if kind == "less_than_equal":
        return "must be at most %s, got %s" % (ctx["le"], describe(value))
    if kind == "too_long" and isinstance(value, list):
        return "must have at most %d items, got %d" % (ctx["max_length"], ctx["actual_length"])
    if kind == "too_long" and isinstance(value, dict):
        return "at most %d entries, got %d" % (ctx["max_length"], ctx["actual_length"])
    if kind == "too_long":
        return "must be at most %d characters long, got %d" % (ctx["max_length"],
                                                               ctx["actual_length"])
    if kind == "literal_error":
        return "must be %s, got %s" % (ctx["expected"], describe(value))
    return error["msg"]


# -- computes ----------------------------------------------------------------


class Compute(Model):
    """A link to a connector that owns resources somewhere: its stored form, and the
    body of POST /compute."""

    name: Name
    connector: ConnectorURL
    #: Sent to the connector as ``Authorization: Bearer <token>``; stored, but never
    #: shown (the API says "set"), logged or put in a repr.
    token: Optional[ConnectorToken] = Field(default=None, repr=False)
    labels: Labels = Field(default_factory=dict)
    #: Who applied it from manifests (None: made through the API).
    managed_by: Optional[ManagedBy] = Field(default=None, alias="managedBy")

    EXAMPLES: ClassVar[list] = [{"name": "local", "connector": "http://127.0.0.1:7051"}]

    def __init__(self, /, *positional: str, **fields: Any) -> None:
        # Compute("local", "http://...") reads well in tests and scripts.
        fields.update(zip(("name", "connector"), positional))
        super().__init__(**fields)

    @classmethod
    def from_body(cls, body: Any, *, name: Optional[str] = None) -> "Compute":
        """Validate a compute definition; ``name`` comes from the URL when given (a
        ``name`` in the body must then agree)."""
        if name is None:
            return parse(cls, body)
        validate_name(name, "name")
        return parse(ComputeUpdate, body).named(name).compute(name)

    @classmethod
    def from_store(cls, value: dict) -> "Compute":
        return cls.trusted(value)

    def to_json(self) -> dict:
        """The stored form, token included (the seed's computes read exactly
        {"connector", "name"})."""
        return self.to_store()


class ComputeUpdate(Model):
    """PUT /compute/<name>: the name is the URL's."""

    connector: ConnectorURL
    token: Optional[ConnectorToken] = None
    labels: Labels = Field(default_factory=dict)
    managed_by: Optional[ManagedBy] = Field(default=None, alias="managedBy")
    name: Optional[Name] = Field(default=None,
                                 description="If given, must equal the name in the path.")

    EXAMPLES: ClassVar[list] = [{"connector": "http://127.0.0.1:7051"}]

    def compute(self, name: str) -> Compute:
        fields = dict(self.__dict__, name=name)
        return Compute.model_construct(**fields)


class ComputeView(Model):
    """A compute as the API shows it: a token, if any, is only "set"."""

    name: Name
    connector: str = Field(pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$",
                           max_length=CONNECTOR_URL_MAX_LENGTH,
                           description="As given (see ConnectorURL).")
    token: Optional[Literal["set"]] = Field(
        default=None, description="Present when the compute has a connector token; the token "
                                  "itself is never shown.")
    labels: Labels = Field(default_factory=dict)
    managed_by: Optional[ManagedBy] = Field(default=None, alias="managedBy")


def public_compute(value: dict) -> dict:
    """A stored compute as the API shows it: the token, if any, is only "set"."""
    shown = dict(value)
    if value.get("token") is not None:
        shown["token"] = "set"
    return shown


# -- services ----------------------------------------------------------------


# -- placement ---------------------------------------------------------------

#: Most computes a placement may list, and weights it may give.
MAX_PLACEMENT_COMPUTES = 256
#: Largest weight (a ratio: 3 and 1 say the same as 3000 and 1000).
MAX_WEIGHT = 1_000_000

Strategy = Literal["Spread", "Weighted", "Capacity", "Pack"]


class LabelExpression(Model):
    """One rule of a selector's matchExpressions (as Kubernetes has them)."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_LABELS,
                                     description="In and NotIn: at least one; Exists and "
                                                 "DoesNotExist: none.")

    SCHEMA_RULES: ClassVar[dict] = {"anyOf": [
        {"properties": {"operator": {"enum": ["In", "NotIn"]}, "values": {"minItems": 1}},
         "required": ["values"]},
        {"properties": {"operator": {"enum": ["Exists", "DoesNotExist"]},
                        "values": {"maxItems": 0}}}]}

    @model_validator(mode="after")
    def _values_fit(self) -> "LabelExpression":
        if self.operator in ("In", "NotIn") and not self.values:
            raise _refuse("values: %s needs at least one value" % self.operator)
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise _refuse("values: %s takes no values" % self.operator)
        return self


class Selector(Model):
    """Computes by their labels: every matchLabels pair and every matchExpressions
    rule must hold (empty: every compute)."""

    match_labels: Labels = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelExpression] = Field(default_factory=list, max_length=MAX_LABELS,
                                                     alias="matchExpressions")


_PERCENT = re.compile(r"^(100|[1-9][0-9]?)%$")


def _max_surge(value: Any) -> Union[int, str]:
    value = _integral(value)
    if type(value) is int and value >= 1:
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        return value
    raise _refuse("must be a count from 1 or a percentage from 1%% to 100%%, got %s"
                  % describe(value))


MaxSurge = TypeAliasType("MaxSurge", Annotated[Union[int, str], PlainValidator(
    _max_surge, json_schema_input_type=Union[Annotated[int, Field(ge=1)], Annotated[
        str, StringConstraints(pattern=_PERCENT.pattern)]])])


class Failover(Model):
    """Fail-over of a placed service off a NotReady compute (docs/failover.md)."""

    toleration_seconds: int = Field(
        default=300, ge=0, le=86400, alias="tolerationSeconds",
        description="How long a compute may be NotReady before its share moves to the "
                    "Ready computes of the placement.")
    purge_mode: Literal["Graceful", "Immediate", "Never"] = Field(
        default="Graceful", alias="purgeMode",
        description="When the originals go once their compute is Ready again: Graceful "
                    "once the replacements run (or after gracePeriodSeconds), Immediate at "
                    "once, Never only on a rebalance.")
    grace_period_seconds: int = Field(
        default=600, ge=0, le=86400, alias="gracePeriodSeconds",
        description="Graceful: the originals go at the latest this long after the "
                    "fail-over, once their compute is Ready again.")

    EXAMPLES: ClassVar[list] = [{"tolerationSeconds": 300, "purgeMode": "Graceful",
                                 "gracePeriodSeconds": 600}]


class Placement(Model):
    """Where genisys puts a service's total, and how it divides it
    (docs/placement.md)."""

    computes: Optional[list[Name]] = Field(
        default=None, min_length=1, max_length=MAX_PLACEMENT_COMPUTES,
        json_schema_extra={"uniqueItems": True},
        description="These computes, in this order (Pack fills them in it). Absent: those "
                    "the selector matches, or every compute.")
    selector: Optional[Selector] = Field(default=None, description="The computes whose labels "
                                                                   "match (not with computes).")
    strategy: Strategy = Field(default="Spread", description=(
        "Spread: evenly. Weighted: by weights. Capacity: by what each connector can still "
        "take. Pack: fill the computes in order, each up to its capacity."))
    weights: dict[Name, Annotated[int, Field(ge=0, le=MAX_WEIGHT),
                                  BeforeValidator(_integral)]] = Field(
        default_factory=dict, max_length=MAX_PLACEMENT_COMPUTES,
        description="Weighted: compute -> weight (a compute not named weighs 1).")
    max_per_compute: Optional[Annotated[int, Field(ge=1), BeforeValidator(_integral)]] = Field(
        default=None, alias="maxPerCompute", description="Most resources on any one compute.")
    max_surge: Optional[MaxSurge] = Field(
        default=None, alias="maxSurge", description="Most resources a rebalance adds before "
                                                    "it removes as many: a count, or a share "
                                                    "of the total such as 25% (the default; "
                                                    "at least 1).")
    failover: Optional[Failover] = Field(
        default=None, description="Move the share of a compute NotReady for longer than "
                                  "tolerationSeconds to the Ready ones (absent: never).")

    EXAMPLES: ClassVar[list] = [{"computes": ["dc1", "dc2"], "strategy": "Spread"},
                                {"selector": {"matchLabels": {"region": "eu"}},
                                 "strategy": "Weighted", "weights": {"dc1": 3, "dc2": 1}}]

    SCHEMA_RULES: ClassVar[dict] = {
        "not": {"properties": {"computes": {"type": "array"}, "selector": {"type": "object"}},
                "required": ["computes", "selector"]},
        "anyOf": [{"properties": {"strategy": {"const": "Weighted"}}, "required": ["strategy"]},
                  {"properties": {"weights": {"maxProperties": 0}}}]}

    @field_validator("computes")
    @classmethod
    def _listed_once(cls, computes: Optional[list]) -> Optional[list]:
        if computes is not None and len(set(computes)) != len(computes):
            twice = sorted({c for c in computes if computes.count(c) > 1})
            raise _refuse("lists %s more than once" % ", ".join(twice))
        return computes

    @field_validator("selector")
    @classmethod
    def _computes_or_selector(cls, selector: Optional[Selector],
                              info: ValidationInfo) -> Optional[Selector]:
        if selector is not None and info.data.get("computes") is not None:
            raise _refuse("give computes or a selector, not both")
        return selector

    @field_validator("weights")
    @classmethod
    def _weights_weighted(cls, weights: dict, info: ValidationInfo) -> dict:
        if weights and info.data.get("strategy") != "Weighted":
            raise _refuse("weights are only for strategy Weighted (this one is %s)"
                          % info.data.get("strategy"))
        return weights


def placement_of(service: "Service") -> dict:
    """A placed service's placement in its stored form (records read back hold a dict,
    requests a Placement; an absent one: Spread over every compute)."""
    placement = service.placement
    if placement is None:
        return {}
    return placement if isinstance(placement, dict) else placement.to_store()


# -- scaling safety: bounds and pacing (docs/scaling.md) --------------------------

#: HPA's limits (autoscaling/v2): a window of up to an hour, a policy's period of up to
#: 30 minutes, at most 10 policies a direction.
MAX_STABILIZATION_WINDOW = 3600
MAX_POLICY_PERIOD = 1800
MAX_POLICIES = 10

#: An integer of the scaling fields (3 or 3.0, not 3.5 or "3").
Whole = Annotated[int, BeforeValidator(_integral)]

Bound = TypeAliasType("Bound", Annotated[int, Field(ge=0), BeforeValidator(_integral), Field(
    description="A bound of a count (an integer from 0).")])


class PerCompute(Model):
    """Bounds of each compute's count, for a service with counts per compute."""

    min_replicas: Optional[Bound] = Field(default=None, alias="minReplicas", description=(
        "The fewest resources on any compute the service names (absent: 0)."))
    max_replicas: Optional[Bound] = Field(default=None, alias="maxReplicas", description=(
        "The most resources on any one compute (absent: max_replicas)."))

    @model_validator(mode="after")
    def _min_within_max(self) -> "PerCompute":
        _check_min_max(self.min_replicas, self.max_replicas, "minReplicas")
        return self


class ScalingPolicy(Model):
    """How much a count may change within a period (HPA's HPAScalingPolicy)."""

    type: Literal["Pods", "Percent"] = Field(description=(
        "Pods: ``value`` resources; Percent: ``value`` % of the count at the start of the "
        "period, rounded up."))
    value: Whole = Field(ge=1, description="How many resources, or what percentage.")
    period_seconds: Whole = Field(ge=1, le=MAX_POLICY_PERIOD, alias="periodSeconds",
                                description="The period, in seconds (1 to 1800).")


class ScalingRules(Model):
    """How fast one direction goes (HPA's HPAScalingRules); a field left out takes
    HPA's default for its direction."""

    stabilization_window_seconds: Optional[Annotated[int, Field(
        ge=0, le=MAX_STABILIZATION_WINDOW), BeforeValidator(_integral)]] = Field(
        default=None, alias="stabilizationWindowSeconds", description=(
            "Seconds of past intents to consider (0 to 3600): a scale-down goes to the "
            "highest intent seen within them, a scale-up to the lowest. Absent: 0 up, 300 "
            "down."))
    select_policy: Optional[Literal["Max", "Min", "Disabled"]] = Field(
        default=None, alias="selectPolicy", description=(
            "Max: the policy that allows the most change; Min: the least; Disabled: no "
            "change in this direction. Absent: Max."))
    policies: Optional[list[ScalingPolicy]] = Field(
        default=None, min_length=1, max_length=MAX_POLICIES, description=(
            "1 to 10 policies. Absent: up, Percent 100 and Pods 4 per 15 s; down, Percent "
            "100 per 15 s."))


class Behavior(Model):
    """How fast the controller moves real resources toward the intent, with the field
    names and defaults of Kubernetes' HPA (autoscaling/v2 HorizontalPodAutoscalerBehavior).
    A part left out takes HPA's default."""

    scale_up: Optional[ScalingRules] = Field(default=None, alias="scaleUp")
    scale_down: Optional[ScalingRules] = Field(default=None, alias="scaleDown")

    EXAMPLES: ClassVar[list] = [
        {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
         "scaleDown": {"stabilizationWindowSeconds": 300}}]


MinReplicas = Annotated[Optional[Bound], Field(alias="minReplicas", description=(
    "The fewest resources in all (a total, or the sum of the counts per compute); an "
    "intent below is refused. Absent: 0."))]
MaxReplicas = Annotated[Optional[Bound], Field(alias="maxReplicas", description=(
    "The most resources in all (a total, or the sum of the counts per compute); an intent "
    "above is refused. Absent: no bound but max_replicas."))]
PerComputeBounds = Annotated[Optional[PerCompute], Field(alias="perCompute", description=(
    "With counts per compute: bounds of each compute's count (a placed service bounds "
    "each compute with placement.maxPerCompute)."))]
BehaviorField = Annotated[Optional[Behavior], Field(description=(
    "Paces how fast the controller moves real resources toward the intent "
    "(docs/scaling.md). Absent: not paced, every intent is ordered at once."))]


def _check_min_max(low: Optional[int], high: Optional[int], field: str) -> None:
    if low is not None and high is not None and low > high:
        raise _refuse_at(field, "%d is more than maxReplicas (%d)" % (low, high))


def _bounds_agree(spec: Any) -> None:
    """The rules between a service's bounds and its replicas' form (a PUT body's, a
    manifest's)."""
    _check_min_max(spec.min_replicas, spec.max_replicas, "minReplicas")
    if spec.per_compute is not None and not isinstance(spec.replicas, dict):
        raise _refuse_at("perCompute", "a placed service (replicas: a total) bounds each "
                                       "compute with placement.maxPerCompute, not perCompute")


@dataclasses.dataclass(frozen=True)
class Breach:
    """Replicas outside a service's bounds: which field is at fault, which bound."""

    #: The replicas field at fault: "replicas", or "replicas.<compute>".
    field: str
    #: The bound's field: "maxReplicas", "perCompute.minReplicas", ...
    bound: str
    #: The bound's value, and the count that breaks it.
    limit: int
    count: int
    #: The compute of a perCompute bound (None: the total).
    compute: Optional[str] = None

    def describe(self, service: Optional[str] = None) -> str:
        """What a refusal says, e.g. "service 'web' allows at most 10 replicas in all
        (maxReplicas): 11 refused" (without ``service``: from "allows")."""
        where = "in all" if self.compute is None else "on %r" % self.compute
        most = "at most" if self.bound.endswith("maxReplicas") else "at least"
        return "%sallows %s %d replicas %s (%s): %d refused" % (
            "service %r " % service if service else "", most, self.limit, where, self.bound,
            self.count)


def breach(replicas: Union[dict, int], *, min_replicas: Optional[int],
           max_replicas: Optional[int], per_compute: Any) -> Optional[Breach]:
    """The first bound ``replicas`` break (each compute's, in name order, then the
    total's), or None. ``per_compute``: a PerCompute or its stored form."""
    if isinstance(replicas, dict) and per_compute is not None:
        # A record read back holds the stored form, a request the model.
        bounds = per_compute if isinstance(per_compute, dict) else per_compute.to_store()
        low, high = bounds.get("minReplicas"), bounds.get("maxReplicas")
        for compute, count in sorted(replicas.items()):
            if high is not None and count > high:
                return Breach("replicas.%s" % compute, "perCompute.maxReplicas", high, count,
                              compute)
            if low is not None and count < low:
                return Breach("replicas.%s" % compute, "perCompute.minReplicas", low, count,
                              compute)
    total = sum(replicas.values()) if isinstance(replicas, dict) else replicas
    if max_replicas is not None and total > max_replicas:
        return Breach("replicas", "maxReplicas", max_replicas, total)
    if min_replicas is not None and total < min_replicas:
        return Breach("replicas", "minReplicas", min_replicas, total)
    return None


def breach_of(spec: Any) -> Optional[Breach]:
    """The bound a service's (or a body's) replicas break, or None."""
    return breach(spec.replicas, min_replicas=spec.min_replicas,
                  max_replicas=spec.max_replicas, per_compute=spec.per_compute)


# -- services ----------------------------------------------------------------


class Service(Model):
    """The intent for one service (its stored form): how many resources it wants on
    each compute, or a total and where genisys places it."""

    name: Name
    replicas: ReplicasOrTotal
    #: Bumped on every change of the spec; status reports which one it reflects.
    generation: int = Field(ge=0, description="Grows with every change of the spec.")
    #: Set by DELETE: the reconciler scales everything to 0, then removes the record.
    deleting: bool = Field(description="Marked for deletion.")
    labels: Labels = Field(default_factory=dict)
    #: Who applied it from manifests (None: made through the API).
    managed_by: Optional[ManagedBy] = Field(default=None, alias="managedBy")
    #: When it was created (RFC 3339, UTC); None for records older than the field.
    created: Optional[Time] = Field(default=None, description="When the service was created.")
    placement: Optional[Placement] = Field(
        default=None, description="With a total: which computes, and how to divide it "
                                  "(absent: Spread over every compute).")
    #: Bumped by POST /service/<name>/rebalance; status.placement.rebalanced catches up.
    rebalance: int = Field(default=0, ge=0, description="Rebalances asked for so far.")
    min_replicas: MinReplicas = None
    max_replicas: MaxReplicas = None
    per_compute: PerComputeBounds = None
    behavior: BehaviorField = None

    @classmethod
    def from_store(cls, value: dict) -> "Service":
        return cls.trusted(value)

    @property
    def placed(self) -> bool:
        """True for a total genisys places, False for counts set per compute."""
        return not isinstance(self.replicas, dict)

    def with_metadata(self, update: "ServiceUpdate") -> "Service":
        """A copy with the other fields of a PUT body than replicas and name (labels,
        managedBy, ...; absent: back to their default)."""
        return self.model_copy(update={field: getattr(update, field)
                                       for field in _SETTABLE})

    def with_replicas(self, replicas: Union[dict, int], placement: Any = ...) -> "Service":
        """A copy with new replicas (and, with a total, ``placement``: a stored form, or
        None; absent, the one it has); the generation moves only if something changed."""
        if placement is ...:
            placement = placement_of(self)
        placement = (placement or None) if not isinstance(replicas, dict) else None
        if replicas == self.replicas and placement == (placement_of(self) or None):
            return self
        return self.model_copy(update={
            "replicas": dict(replicas) if isinstance(replicas, dict) else replicas,
            "placement": placement, "generation": self.generation + 1})


class ServiceUpdate(Model):
    """PUT /service/<name>: replaces the replicas (and placement), labels and managedBy."""

    replicas: ReplicasOrTotal
    placement: Optional[Placement] = Field(
        default=None, description="With a total only (absent: Spread over every compute).")
    labels: Labels = Field(default_factory=dict)
    managed_by: Optional[ManagedBy] = Field(default=None, alias="managedBy")
    name: Optional[Name] = Field(default=None,
                                 description="If given, must equal the name in the path.")
    min_replicas: MinReplicas = None
    max_replicas: MaxReplicas = None
    per_compute: PerComputeBounds = None
    behavior: BehaviorField = None

    EXAMPLES: ClassVar[list] = [{"replicas": {"local": 3}},
                                {"replicas": 6, "placement": {"computes": ["dc1", "dc2"]}},
                                {"replicas": 6, "minReplicas": 2, "maxReplicas": 10}]

    SCHEMA_RULES: ClassVar[dict] = {"allOf": [
        {"anyOf": [{"properties": {"replicas": {"type": "number"}}},
                   {"properties": {"placement": {"type": "null"}}},
                   {"not": {"required": ["placement"]}}]},
        {"anyOf": [{"properties": {"replicas": {"type": "object"}}},
                   {"properties": {"perCompute": {"type": "null"}}},
                   {"not": {"required": ["perCompute"]}}]}]}

    @field_validator("placement")
    @classmethod
    def _with_a_total(cls, placement: Optional[Placement],
                      info: ValidationInfo) -> Optional[Placement]:
        return _placement_with_a_total(placement, info)

    @model_validator(mode="after")
    def _bounds(self) -> "ServiceUpdate":
        # The replicas against the bounds are checked against the stored service too
        # (Intents.put_service), which says which of the two changed.
        _bounds_agree(self)
        return self


def _placement_with_a_total(placement: Optional[Placement],
                            info: ValidationInfo) -> Optional[Placement]:
    if placement is not None and isinstance(info.data.get("replicas"), dict):
        raise _refuse("only a service with a total (replicas: N) has a placement; "
                      "this one has counts per compute")
    return placement


#: What a PUT body replaces besides the replicas (the name is the URL's).
_SETTABLE = tuple(f for f in ServiceUpdate.model_fields
                  if f not in ("replicas", "placement", "name"))


def _body_config(*examples: dict) -> ConfigDict:
    """A TypedDict body's config: strict and closed as every Model."""
    def extra(schema: dict) -> None:
        schema.pop("title", None)
        schema["examples"] = list(examples)
    return ConfigDict(strict=True, extra="forbid", json_schema_extra=extra)


# The two bodies of the hot path (upscale, downscale, scale) are TypedDicts, validated
# into plain dicts: a Model instance costs more to make than the whole validation of
# such a body (an upscale's body took 15% longer than before models).


@with_config(_body_config({"compute": "local"}, {}))
class StepRequest(TypedDict):
    """POST /service/<name>/upscale and /downscale: one more or less on ``compute``, or
    on the total of a placed service (no ``compute``)."""

    compute: NotRequired[Name]


@with_config(_body_config({"compute": "local", "number": 3}, {"number": 6}))
class ScaleRequest(TypedDict):
    """POST /service/<name>/scale: ``number`` on ``compute``, or the total of a placed
    service (no ``compute``)."""

    compute: NotRequired[Name]
    number: Count


_VALIDATORS.update((body, TypeAdapter(body).validator) for body in (StepRequest, ScaleRequest))


# -- status: written only by the reconciler --------------------------------

#: running == desired, as last reported by the connector.
CONVERGED = "Converged"
#: A scale order was sent; waiting for the connector to report desired.
PROGRESSING = "Progressing"
#: The connector can't be reached or didn't answer in time.
UNREACHABLE = "Unreachable"
#: The connector answered with an error or with something that isn't the protocol.
ERROR = "Error"
#: The spec names a compute that does not exist (any more).
COMPUTE_MISSING = "ComputeMissing"

CONDITIONS = (CONVERGED, PROGRESSING, UNREACHABLE, ERROR, COMPUTE_MISSING)
Condition = Literal["Converged", "Progressing", "Unreachable", "Error", "ComputeMissing"]


class ComputeStatus(Model):
    """What the reconciler last observed of a service on one compute."""

    desired: int = Field(ge=0)
    running: Optional[int] = Field(ge=0, description="As last reported by the connector "
                                                     "(null: never).")
    condition: Condition
    reason: str = Field(description="Why, in one word (\"\" when Converged).")
    message: str
    last_transition_time: Time = Field(alias="lastTransitionTime")
    failures: int = Field(ge=0, description="Consecutive failed attempts.")


class ReportedCapacity(Model):
    """What a connector said it can hold (``GET /capabilities``), as this service sees it."""

    total: int = Field(ge=0, description="The most resources it runs, over all services.")
    used_by_others: int = Field(ge=0, alias="usedByOthers", description=(
        "How many the other services ran (or were being given) when it was asked."))


class FailedOverCompute(Model):
    """One compute in status.placement.failover."""

    state: Literal["Tolerating", "FailedOver", "Returned", "Kept"] = Field(description=(
        "Tolerating: NotReady, its share not moved (yet); FailedOver: its share moved, the "
        "originals kept; Returned: Ready again, the originals go once the replacements run "
        "or the grace period ends; Kept: Ready again, the originals stay (purgeMode Never)."))
    not_ready_since: Time = Field(alias="notReadySince")
    failed_over_at: Optional[Time] = Field(default=None, alias="failedOverAt")
    originals: int = Field(ge=0, description="What it held of the service when it failed.")
    message: str


class FailoverStatus(Model):
    """What the fail-over of a placed service does, and why."""

    condition: Literal["Tolerating", "FailedOver", "Kept", "Held", "Pending"] = Field(
        description="Held: the breaker (too many computes NotReady at once); Pending: "
                    "waiting for the global fail-over rate; else the computes' states.")
    message: str
    computes: dict[Name, FailedOverCompute]


class PlacementStatus(Model):
    """Where a placed service's total went, and why (written by the reconciler)."""

    total: int = Field(ge=0, description="The total of the spec this reflects (of a "
                                         "paced service: its paced total).")
    placed: int = Field(ge=0, description="How many the assignment holds.")
    condition: Literal["Placed", "Unschedulable", "Rebalancing"]
    message: str
    assignment: dict[Name, int] = Field(description="Compute -> desired count.")
    shares: dict[Name, int] = Field(description="What a rebalance would move to.")
    reasons: dict[Name, str] = Field(description="Compute -> why it has its count.")
    capacity: dict[Name, ReportedCapacity] = Field(
        default_factory=dict, description="What each connector that reports a capacity said, "
                                          "as this placement used it.")
    rebalanced: int = Field(default=0, ge=0, description="The spec's rebalance count this "
                                                         "assignment has caught up with.")
    failover: Optional[FailoverStatus] = Field(
        default=None, description="Present while a compute of the assignment is NotReady, or "
                                  "has failed over and its originals have not gone yet.")


class ComputeCondition(Model):
    """GET /compute/<name>/status: the compute's health, from the calls to its
    connector (docs/failover.md#compute-health)."""

    name: Name
    condition: Literal["Ready", "NotReady", "Unknown"] = Field(description=(
        "Ready: its connector answers; NotReady: it has failed every call for the failure "
        "threshold (or flaps); Unknown: not observed yet."))
    reason: str = Field(description="Answering, NotAnswering, Flapping or NotObserved.")
    message: str
    last_transition_time: Optional[Time] = Field(default=None, alias="lastTransitionTime",
                                                 description="When the condition last "
                                                             "changed (absent: Unknown "
                                                             "since it was created).")


#: UTC to the millisecond: pacing counts periods of a second.
PreciseTime = TypeAliasType("PreciseTime", Annotated[str, StringConstraints(
    pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"), Field(
    description="UTC, to the millisecond.")])


class PacedIntent(Model):
    """An intent the controller saw, from ``time`` until the next one."""

    time: PreciseTime
    count: int = Field(ge=0)


class PacedChange(Model):
    """A change of the paced count the controller made."""

    time: PreciseTime
    from_: int = Field(ge=0, alias="from")
    to: int = Field(ge=0)


class PacingScope(Model):
    """The pacing of one count: a placed service's total, or one compute's count."""

    intent: int = Field(ge=0, description="What the spec asks for.")
    paced: int = Field(ge=0, description="What the controller orders now.")
    message: str = Field(description="e.g. \"Paced: 120 of 500, next step in 12 s\" "
                                     "(\"\" once the paced count is the intent).")
    next_step: Optional[PreciseTime] = Field(default=None, alias="nextStep", description=(
        "When the paced count moves next (absent: at the intent, or not before the "
        "intent changes)."))
    intents: list[PacedIntent] = Field(description=(
        "The intents seen within the longest stabilization window, oldest first."))
    changes: list[PacedChange] = Field(description=(
        "The changes made within the longest policy period, oldest first."))


class PacingStatus(Model):
    """Where a service with a ``behavior`` stands in moving toward its intent (written
    by the reconciler; docs/scaling.md): a controller restarted, or a new leader, goes
    on from here."""

    message: str = Field(description="Every scope's message (\"\": nothing paced).")
    total: Optional[PacingScope] = Field(default=None, description="A placed service's total.")
    computes: dict[Name, PacingScope] = Field(default_factory=dict, description=(
        "Each compute's count, for a service with counts per compute."))


class ServiceStatus(Model):
    observed_generation: int = Field(
        ge=0, alias="observedGeneration",
        description="The generation this status reflects (0: not looked at yet).")
    computes: dict[Name, ComputeStatus]
    placement: Optional[PlacementStatus] = Field(default=None,
                                                 description="A placed service's placement.")
    pacing: Optional[PacingStatus] = Field(default=None, description=(
        "A service with a behavior: how its counts are paced."))


def empty_status() -> dict:
    """Status of a service the reconciler has not looked at yet."""
    return {"observedGeneration": 0, "computes": {}}


class Event(Model):
    """Something that happened to a service on a compute; a service keeps its
    EVENTS_KEPT most recent ones."""

    time: Time
    type: Literal["Normal", "Warning"]
    reason: str
    compute: Name
    message: str
    count: int = Field(ge=1, description="How many times in a row it happened (time: the "
                                         "last).")


class ServiceView(Service):
    """A service as the API shows it: the spec, its resourceVersion and its status."""

    generation: int = Field(ge=1, description="Grows with every change of the spec.")
    resource_version: ResourceVersion = Field(alias="resourceVersion")
    status: ServiceStatus


class ServiceWithEvents(ServiceView):
    events: list[Event] = Field(max_length=EVENTS_KEPT,
                                description="Recent events, newest first.")


# -- manifests ---------------------------------------------------------------

#: Largest count a manifest may hold; each server checks its own max_replicas.
MANIFEST_MAX_COUNT = 1_000_000


class ComputeSpec(Model):
    """The spec of a Compute manifest."""

    connector: ConnectorURL
    token_from_env: Optional[Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]] = \
        Field(default=None, alias="tokenFromEnv")


class ServiceSpec(Model):
    """The spec of a Service manifest."""

    replicas: ReplicasOrTotal
    placement: Optional[Placement] = None
    min_replicas: MinReplicas = None
    max_replicas: MaxReplicas = None
    per_compute: PerComputeBounds = None
    behavior: BehaviorField = None

    SCHEMA_RULES: ClassVar[dict] = ServiceUpdate.SCHEMA_RULES

    @field_validator("placement")
    @classmethod
    def _with_a_total(cls, placement: Optional[Placement],
                      info: ValidationInfo) -> Optional[Placement]:
        return _placement_with_a_total(placement, info)

    @model_validator(mode="after")
    def _bounds(self, info: ValidationInfo) -> "ServiceSpec":
        _bounds_agree(self)
        found = breach_of(self)
        if found is not None:
            # The manifest's name, when its loader gives it.
            raise _refuse_at(found.field, found.describe((info.context or {}).get("name")))
        return self


# -- what else the API answers ------------------------------------------------

ComputeList = TypeAliasType("ComputeList", dict[Name, ComputeView])
ServiceList = TypeAliasType("ServiceList", dict[Name, ServiceView])


class PlanLine(Model):
    """What the controller would do about one service on one compute."""

    service: Name
    compute: Name
    action: Literal["create", "scale up", "scale down", "delete", "none"]
    from_: Optional[int] = Field(alias="from", ge=0, description="What runs there, as last "
                                                                 "reported (null: never).")
    to: int = Field(ge=0, description="What should run there.")
    reason: Literal["intent", "placement", "rebalance", "drift", "paced", ""] = Field(
        description="intent: the spec asks for a new count; placement: genisys placed a new "
                    "total; rebalance: a rebalance moves it; drift: what runs moved; paced: "
                    "the next step toward the intent, as the service's behavior paces it; "
                    "\"\" with none.")


class MovedObject(Model):
    kind: Literal["Service", "Compute"]
    name: Name
    resource_version: ResourceVersion = Field(alias="resourceVersion")


class Plan(Model):
    """GET /plan: what the controller would do now."""

    revision: int = Field(ge=0, description="The store revision the plan reflects.")
    changes: int = Field(ge=0, description="Lines whose action is not none.")
    lines: list[PlanLine] = Field(description="One per service and compute, sorted.")
    moved: Optional[list[MovedObject]] = Field(
        default=None, description="With ?since=REV: the services and computes written "
                                  "after that revision.")


class DryRunAnswer(Model):
    """The answer of a write with ?dryRun=true that would succeed: nothing was written."""

    dry_run: Literal[True] = Field(alias="dryRun")
    status: int = Field(ge=200, le=299, description="The status the request would get.")
    result: dict = Field(description="The body the request would get.")
    plan: list[PlanLine] = Field(description="The lines of the plan it would change (a line "
                                             "gone: as none).")
    revision: int = Field(ge=0, description="The store revision it was worked out at.")


class ErrorDetail(Model):
    reason: str = Field(description="Machine-readable, e.g. Invalid.")
    message: str = Field(description="What is wrong, for a person.")
    field: Optional[str] = Field(default=None, description="The field, header or part of the "
                                                           "request at fault, if there is one.")


class Error(Model):
    """Every error answer: ``{"error": {"reason", "message", "field"?}}``."""

    error: ErrorDetail


class AuditEntry(Model):
    """Who asked to change what, and the answer."""

    time: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                      description="UTC, to the millisecond.")
    who: str = Field(description="The token's name, or anonymous.")
    method: Literal["POST", "PUT", "DELETE", "PATCH"]
    path: str
    status: int = Field(ge=100, le=599)
    reason: Optional[str] = Field(default=None, description="The error's reason, if refused.")


class Health(Model):
    status: Literal["ok"]


class ManifestSync(Model):
    """Present when genisys runs with --manifests (sidecar mode)."""

    state: Literal["Pending", "Synced", "Error"] = Field(
        description="Pending: not applied yet; Synced: the folder is in force; Error: the "
                    "last attempt failed (the last good state stays in force).")
    folder: str
    last_sync: Optional[Time] = Field(default=None, alias="lastSync",
                                      description="Last successful apply.")
    last_error: Optional[str] = Field(default=None, alias="lastError",
                                      description="Why the last attempt failed.")
    objects: Optional[int] = Field(default=None, ge=0, description="Objects the folder held "
                                                                   "at the last successful "
                                                                   "apply.")


class ReadinessChecks(BaseModel):
    """One entry per check; more may be added."""

    model_config = ConfigDict(json_schema_extra=_schema_extra)

    store: str = Field(description="\"ok\", or what is wrong.")
    manifests: Optional[ManifestSync] = None


class Readiness(Model):
    status: Literal["ready", "unavailable"]
    checks: ReadinessChecks


# -- the document's schemas ----------------------------------------------------

#: The shapes the OpenAPI document names (the types their fields use join them).
DOCUMENTED: tuple[Any, ...] = (
    Compute, ComputeUpdate, ComputeView, ComputeList, ServiceUpdate, StepRequest, ScaleRequest,
    Placement, PlacementStatus, Behavior, PacingStatus, Plan, PlanLine, DryRunAnswer,
    ServiceView, ServiceWithEvents, ServiceList, ServiceStatus, ComputeStatus, ComputeCondition,
    Event, Error,
    AuditEntry, Health, Readiness, ManifestSync)


def component_schemas(*, max_replicas: int = DEFAULT_MAX_REPLICAS) -> dict:
    """JSON Schemas of the documented shapes and the types they use, by name, with
    references to ``#/components/schemas/<name>``; counts go up to ``max_replicas``."""
    _, top = TypeAdapter.json_schemas([(m, "validation", TypeAdapter(m)) for m in DOCUMENTED],
                                      ref_template="#/components/schemas/{model}")
    schemas = top["$defs"]
    schemas["Count"] = dict(
        schemas["Count"], maximum=max_replicas,
        description="A desired count: 0 to max_replicas (%d on this server, %d by default); "
                    "an integral number (3 or 3.0, not 3.5)." % (max_replicas,
                                                                  DEFAULT_MAX_REPLICAS))
    return dict(sorted(schemas.items()))


# -- one value at a time (the connector's bodies and definitions use these) ----

_NAME = TypeAdapter(Name)
_COUNT = TypeAdapter(Count)
_CONNECTOR_URL = TypeAdapter(ConnectorURL)
_CONNECTOR_TOKEN = TypeAdapter(ConnectorToken)
_LABELS = TypeAdapter(Labels)
_MANAGED_BY = TypeAdapter(ManagedBy)
_REPLICAS = TypeAdapter(Replicas)
_IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKey)


def _one(adapter: TypeAdapter, value: Any, field: str, context: Optional[dict] = None) -> Any:
    try:
        return adapter.validate_python(value, strict=True, context=context)
    except ValidationError as e:
        first = sorted(e.errors(), key=lambda x: len(x["loc"]))[0]
        raise invalid(first, where=field) from None


def validate_name(value: Any, field: str) -> str:
    return _one(_NAME, value, field)


def validate_connector_url(value: Any, field: str = "connector") -> str:
    return _one(_CONNECTOR_URL, value, field)


def validate_connector_token(value: Any, field: str = "token") -> str:
    return _one(_CONNECTOR_TOKEN, value, field)


def validate_labels(value: Any, field: str = "labels") -> dict:
    """Labels as Kubernetes has them: string keys and values, at most 64 of them."""
    return dict(_one(_LABELS, value, field))


def validate_manager(value: Any, field: str = "managedBy") -> str:
    return _one(_MANAGED_BY, value, field)


def validate_idempotency_key(value: Any, field: str = "Idempotency-Key") -> str:
    return _one(_IDEMPOTENCY_KEY, value, field)


def validate_count(value: Any, field: str, maximum: int, *, limit: str = "max_replicas") -> int:
    """A count from 0 to ``maximum``; ``limit`` names the setting behind the maximum."""
    return _one(_COUNT, value, field, {"maximum": maximum, "limit": limit})


def validate_replicas(value: Any, *, maximum: int, field: str = "replicas") -> dict:
    return _one(_REPLICAS, value, field, {"maximum": maximum, "limit": "max_replicas"})


def check_fields(body: Any, *, required: tuple = (), optional: tuple = (),
                 where: str = "") -> None:
    """Check that ``body`` is an object with exactly the allowed fields."""
    if not isinstance(body, dict):
        raise Invalid("must be a JSON object, got %s" % type_name(body), field=where or "body")
    prefix = where + "." if where else ""
    for key in body:
        if key not in required and key not in optional:
            raise Invalid("unknown field", field=prefix + str(key))
    for key in required:
        if key not in body:
            raise Invalid("is required", field=prefix + key)


def body_name(body: Any, name: Optional[str], *, required: tuple,
              optional: tuple = ()) -> Any:
    """Check the fields of a body that defines a named object, and return its name:
    ``name`` from the URL (the body may repeat it, and must then agree), else the
    body's required ``name``. The caller validates the name itself."""
    if name is None:
        check_fields(body, required=("name",) + tuple(required), optional=optional)
        return body["name"]
    check_fields(body, required=required, optional=("name",) + tuple(optional))
    if "name" in body and body["name"] != name:
        raise Invalid("%s does not match the name in the URL (%s)"
                      % (describe(body["name"]), describe(name)), field="name")
    return name


def is_loopback(host: str) -> bool:
    """True for an address (or "localhost") that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

