"""Resources and their validation: computes, services, service status.

Everything that enters genisys (an HTTP body, a computes.py entry, later a
manifest) is turned into these objects by the functions here, which raise
``Invalid`` naming the offending field. Nothing unvalidated reaches the store.
"""

import dataclasses
import ipaddress
import re
import urllib.parse
from typing import NewType, Optional

from genisys.errors import Invalid

ComputeName = NewType("ComputeName", str)
ServiceName = NewType("ServiceName", str)

#: RFC 1123 host label: letters, digits and '-', starting and ending with a
#: letter or digit, at most 63 characters. Upper case is allowed because the
#: seed's own examples use names such as "myService" and "myCompute" (RFC 1123
#: allows either case; only Kubernetes insists on lower case). Names are
#: compared exactly: "Web" and "web" are two services.
_NAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NAME_RULE = ("1 to 63 letters, digits or '-', starting and ending with a letter or digit")

#: Desired counts are bounded by a configurable maximum; this is the default.
DEFAULT_MAX_REPLICAS = 1000


def describe(value):
    """A short rendering of a bad value for error messages (never huge)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value):
    names = {dict: "object", list: "array", str: "string", bool: "boolean",
             int: "integer", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def validate_name(value, field):
    if not isinstance(value, str):
        raise Invalid("must be a string, got %s" % type_name(value), field=field)
    if not _NAME_RE.fullmatch(value):
        raise Invalid("%s is not a valid name (%s)" % (describe(value), NAME_RULE), field=field)
    return value


def validate_connector_url(value, field="connector"):
    if not isinstance(value, str):
        raise Invalid("must be a string, got %s" % type_name(value), field=field)
    if len(value) > 2048:
        raise Invalid("URL is longer than 2048 characters", field=field)
    odd = [c for c in value if not c.isspace() and not "!" <= c <= "~"]
    if odd:
        # Control and non-ASCII characters can't go on the wire as they are.
        raise Invalid("%s contains %s, which is not visible ASCII (percent-encode it)"
                      % (describe(value), describe(odd[0])), field=field)
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise Invalid("%s is not a valid URL (%s)" % (describe(value), e), field=field) from e
    if parts.scheme not in ("http", "https"):
        raise Invalid("%s must be an absolute http:// or https:// URL" % describe(value),
                      field=field)
    if not parts.hostname:
        raise Invalid("%s has no host" % describe(value), field=field)
    if parts.username is not None or parts.password is not None:
        raise Invalid("credentials in the URL are not allowed", field=field)
    if parts.query or parts.fragment:
        raise Invalid("%s must not have a query or fragment" % describe(value),
                      field=field)
    if port == 0:
        raise Invalid("%s has port 0" % describe(value), field=field)
    if any(c.isspace() for c in value):
        raise Invalid("%s contains white space" % describe(value), field=field)
    return value


def is_loopback(host):
    """True for an address (or "localhost") that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_count(value, field, maximum, *, limit="max_replicas"):
    """A count from 0 to ``maximum``; ``limit`` names the setting behind the maximum."""
    # bool is a subclass of int in Python; true/false are not counts.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("must be an integer, got %s %s" % (type_name(value), describe(value)),
                      field=field)
    if value < 0:
        raise Invalid("must be at least 0, got %d" % value, field=field)
    if value > maximum:
        raise Invalid("must be at most %d (%s), got %d" % (maximum, limit, value), field=field)
    return value


def check_fields(body, *, required=(), optional=(), where=""):
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


def body_name(body, name, *, required, optional=()):
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


#: What a connector token may be: visible ASCII (it travels in a header), long
#: enough not to be a placeholder such as the "set" genisys shows instead of it.
_CONNECTOR_TOKEN = re.compile(r"[\x21-\x7e]{8,4096}")


def validate_connector_token(value, field="token"):
    if not isinstance(value, str):
        raise Invalid("must be a string, got %s" % type_name(value), field=field)
    if not _CONNECTOR_TOKEN.fullmatch(value):
        # Never quote the value: it is a secret, even when it is a wrong one.
        raise Invalid("must be 8 to 4096 visible ASCII characters (got %d characters)"
                      % len(value), field=field)
    return value


#: Label keys: an optional DNS-subdomain prefix and "/", then a name of 1 to 63
#: characters (letters, digits, '-', '_', '.'), as Kubernetes has them.
LABEL_KEY_PATTERN = (r"^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?/)?"
                     r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$"
_LABEL_KEY_RE = re.compile(LABEL_KEY_PATTERN.strip("^$"))
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_PATTERN.strip("^$"))
MAX_LABELS = 64
#: Who applies an object from manifests (``genisys apply``, a sidecar): visible
#: ASCII, so that a prune can tell its own objects from everyone else's.
_MANAGER_RE = re.compile(r"[\x21-\x7e]{1,253}")


def validate_labels(value, field="labels"):
    """Labels as Kubernetes has them: string keys and values, at most 64 of them."""
    if not isinstance(value, dict):
        raise Invalid("must be an object of string labels, got %s" % type_name(value),
                      field=field)
    if len(value) > MAX_LABELS:
        raise Invalid("at most %d labels, got %d" % (MAX_LABELS, len(value)), field=field)
    for key, label in value.items():
        if not isinstance(key, str) or not _LABEL_KEY_RE.fullmatch(key):
            raise Invalid("%s is not a label key (a name of letters, digits, '-', '_' or '.', "
                          "optionally prefixed by a domain and '/')" % describe(key),
                          field="%s.%s" % (field, key))
        if not isinstance(label, str):
            raise Invalid("must be a string, got %s %s" % (type_name(label), describe(label)),
                          field="%s.%s" % (field, key))
        if not _LABEL_VALUE_RE.fullmatch(label):
            raise Invalid("%s is not a label value (up to 63 letters, digits, '-', '_' or "
                          "'.', starting and ending with a letter or digit)" % describe(label),
                          field="%s.%s" % (field, key))
    return dict(value)


def validate_manager(value, field="managedBy"):
    if not isinstance(value, str) or not _MANAGER_RE.fullmatch(value):
        raise Invalid("must be 1 to 253 visible ASCII characters, got %s" % describe(value),
                      field=field)
    return value


def _metadata(body):
    """The optional labels and managedBy of a body, validated, as stored."""
    extra = {}
    if body.get("labels"):
        extra["labels"] = validate_labels(body["labels"])
    elif "labels" in body:
        validate_labels(body["labels"])  # {} is fine; null or [] are not
    if "managedBy" in body:
        extra["managedBy"] = validate_manager(body["managedBy"])
    return extra


@dataclasses.dataclass(frozen=True)
class Compute:
    """A link to a connector that owns resources somewhere."""

    name: ComputeName
    connector: str
    #: Sent to the connector as ``Authorization: Bearer <token>``; stored, but never
    #: shown (the API says "set"), logged or put in a repr.
    token: Optional[str] = dataclasses.field(default=None, repr=False)
    labels: dict = dataclasses.field(default_factory=dict)
    #: Who applied it from manifests (None: made through the API).
    managed_by: Optional[str] = None

    FIELDS = ("token", "labels", "managedBy")

    @classmethod
    def from_body(cls, body, *, name=None):
        """Validate a compute definition; ``name`` comes from the URL when given."""
        name = body_name(body, name, required=("connector",), optional=cls.FIELDS)
        token = body.get("token")
        extra = _metadata(body)
        return cls(name=validate_name(name, "name"),
                   connector=validate_connector_url(body["connector"], "connector"),
                   token=None if token is None else validate_connector_token(token),
                   labels=extra.get("labels", {}), managed_by=extra.get("managedBy"))

    @classmethod
    def from_store(cls, value):
        return cls(name=value["name"], connector=value["connector"], token=value.get("token"),
                   labels=value.get("labels", {}), managed_by=value.get("managedBy"))

    def to_json(self):
        """The stored form, token included; optional fields only when set (the seed's
        computes read exactly {"connector", "name"})."""
        value = {"name": self.name, "connector": self.connector}
        if self.token is not None:
            value["token"] = self.token
        if self.labels:
            value["labels"] = dict(self.labels)
        if self.managed_by is not None:
            value["managedBy"] = self.managed_by
        return value


def public_compute(value):
    """A stored compute as the API shows it: the token, if any, is only "set"."""
    shown = dict(value)
    if value.get("token") is not None:
        shown["token"] = "set"
    return shown


@dataclasses.dataclass(frozen=True)
class Service:
    """The intent for one service: how many resources it wants on each compute."""

    name: ServiceName
    replicas: dict = dataclasses.field(default_factory=dict)
    #: Bumped on every change of the spec; status reports which one it reflects.
    generation: int = 1
    #: Set by DELETE: the reconciler scales everything to 0, then removes the record.
    deleting: bool = False
    labels: dict = dataclasses.field(default_factory=dict)
    #: Who applied it from manifests (None: made through the API).
    managed_by: Optional[str] = None
    #: When it was created (RFC 3339, UTC); None for records older than the field.
    created: Optional[str] = None

    @classmethod
    def from_store(cls, value):
        return cls(name=value["name"], replicas=dict(value["replicas"]),
                   generation=value["generation"], deleting=value["deleting"],
                   labels=value.get("labels", {}), managed_by=value.get("managedBy"),
                   created=value.get("created"))

    def to_store(self):
        value = {"name": self.name, "replicas": dict(self.replicas),
                 "generation": self.generation, "deleting": self.deleting}
        if self.labels:
            value["labels"] = dict(self.labels)
        if self.managed_by is not None:
            value["managedBy"] = self.managed_by
        if self.created is not None:
            value["created"] = self.created
        return value

    def with_metadata(self, body):
        """A copy with the labels and managedBy of a PUT body (absent: removed)."""
        extra = _metadata(body)
        return dataclasses.replace(self, labels=extra.get("labels", {}),
                                   managed_by=extra.get("managedBy"))

    def with_replicas(self, replicas):
        """A copy with new replicas; the generation moves only if something changed."""
        if replicas == self.replicas:
            return self
        return dataclasses.replace(self, replicas=dict(replicas), generation=self.generation + 1)


def validate_replicas(value, *, maximum, field="replicas"):
    if not isinstance(value, dict):
        raise Invalid("must be an object mapping compute names to counts, got %s"
                      % type_name(value), field=field)
    replicas = {}
    for compute, count in value.items():
        validate_name(compute, "%s.%s" % (field, compute))
        replicas[compute] = validate_count(count, "%s.%s" % (field, compute), maximum)
    return replicas


def empty_status():
    """Status of a service the reconciler has not looked at yet."""
    return {"observedGeneration": 0, "computes": {}}


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
