"""The OpenAPI 3.1 document of the genisys HTTP API, served at ``GET /openapi.json``.

The document is built here as a Python dict rather than kept as a YAML file:
the limits it states (the body size, the default ``max_replicas``, the status
conditions) are the very constants the validation code uses, so they cannot
drift apart; a served document also states the ``max_replicas`` of the
running server, not the default; and there is no data file to ship with
package_data nor to parse at start-up. ``tests/api/test_openapi.py`` checks
that it is valid OpenAPI and names every route of ``make_app`` (and nothing
else); ``tests/api/test_schemathesis.py`` fuzzes a live genisys from it and
checks that every answer is one it documents.

OpenAPI 3.1 rather than 3.0: its schemas are JSON Schema 2020-12, which can
say what a ``replicas`` map's keys must look like (``propertyNames``) and
that ``running`` may be null.

What JSON Schema cannot say is in the descriptions: a ``name`` in a PUT body
must equal the one in the path; counts are integer literals (JSON Schema takes
3.0 for an integer, genisys does not); and the connector URL pattern is the
portable core of what genisys accepts (see ``CONNECTOR_URL_PATTERN``).
"""


from genisys.api.audit_trail import MAX_AUDIT_LIMIT
from genisys.api.base import APIHandler
from genisys.model import (
    CONDITIONS,
    DEFAULT_MAX_REPLICAS,
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_LABELS,
)
from genisys.version import __version__
from genisys.web import MAX_BODY_BYTES, MAX_HEADER_BYTES

OPENAPI_VERSION = "3.1.0"

#: info.version of the document: the package version.
VERSION = __version__

#: ``genisys.model``'s name rule (an RFC 1123 label, either case), anchored for JSON Schema.
NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"

#: Connector URLs: http or https, a host of RFC 3986 "reg-name" characters (a name or
#: an IPv4 address), an optional port 1-65535, an optional path of visible ASCII
#: without '?' and '#'. genisys accepts a little more (an IPv6 literal, a port with
#: leading zeros, an empty query): the pattern is the part every client can rely on,
#: and everything it matches is accepted.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
CONNECTOR_URL_PATTERN = ("^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=-]+(:" + _PORT + ")?"
                         '(/[!"$->@-~]*)?$')
#: validate_connector_url's limit.
CONNECTOR_URL_MAX_LENGTH = 2048

#: Idempotency keys: 1 to 255 visible ASCII characters (what a header carries safely).
IDEMPOTENCY_KEY_PATTERN = "^[!-~]{1,255}$"
#: Events kept per service (the reconciler's EVENTS_KEPT; the API layer does not import
#: the reconciler, tests/api/test_openapi.py checks they agree).
EVENTS_KEPT = 50


def _ref(kind, name):
    return {"$ref": "#/components/%s/%s" % (kind, name)}


def _schema(name):
    return _ref("schemas", name)


def _json(schema):
    return {"application/json": {"schema": schema}}


def _error(description, *reasons):
    """An error answer whose ``error.reason`` is one of ``reasons``."""
    schema = _schema("Error")
    if reasons:
        schema = {"allOf": [schema, {"properties": {"error": {"properties": {
            "reason": {"enum": list(reasons)}}}}}]}
    return {"description": description, "content": _json(schema)}


def _answer(description, schema, *, etag=False, headers=None):
    answer = {"description": description, "content": _json(schema)}
    all_headers = dict({"ETag": _ref("headers", "ETag")} if etag else {}, **(headers or {}))
    if all_headers:
        answer["headers"] = all_headers
    return answer


def _path_name(what, example):
    return {"name": "name", "in": "path", "required": True, "example": example,
            "description": "The %s's name." % what, "schema": _schema("Name")}


def _body(schema, description):
    return {"required": True, "description": description, "content": _json(schema)}


#: Answers any operation can give: a request head over 16 KiB, a body over 64 KiB
#: (whatever the method), the store failing.
_ANY = {
    "413": _ref("responses", "PayloadTooLarge"),
    "431": _ref("responses", "RequestHeaderFieldsTooLarge"),
}
#: ... and those of the operations that need a token (all but the health checks).
_READ = dict(_ANY, **{"401": _ref("responses", "Unauthorized"),
                      "503": _ref("responses", "StoreUnavailable")})
#: ... and those of the writes (POST, PUT, DELETE).
_WRITE = dict(_READ, **{"403": _ref("responses", "Forbidden")})
#: ... and those of the writes that take a JSON body.
_WRITE_BODY = dict(_WRITE, **{"400": _ref("responses", "Invalid"),
                              "415": _ref("responses", "UnsupportedMediaType")})


def _operation(operation_id, tag, summary, responses, *, description=None, parameters=None,
               body=None, public=False):
    op = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    op["responses"] = dict(sorted(responses.items()))
    return op


def _computes_paths():
    name = _path_name("compute", "local")
    bad_name = {"400": _ref("responses", "Invalid")}
    return {
        "/compute": {
            "get": _operation(
                "listComputes", "computes", "Every compute, keyed by name",
                dict(_READ, **{"200": _answer("Every compute.", _schema("ComputeList"))})),
            "post": _operation(
                "createCompute", "computes", "Register a compute",
                dict(_WRITE_BODY, **{
                    "201": _answer("Created.", _schema("Compute"), etag=True, headers={
                        "Location": {"required": True, "description": "/compute/<name>",
                                     "schema": {"type": "string"}}}),
                    "409": _error("The name is taken (use PUT to change a compute), or "
                                  "max_computes computes exist already.",
                                  "AlreadyExists", "LimitExceeded", "Conflict")}),
                body=_body(_schema("NewCompute"), "Both fields are required."))},
        "/compute/{name}": {
            "parameters": [name],
            "get": _operation(
                "getCompute", "computes", "One compute",
                dict(_READ, **bad_name, **{
                    "200": _answer("The compute; its resourceVersion is the ETag.",
                                   _schema("Compute"), etag=True),
                    "404": _error("No such compute.", "NotFound")})),
            "put": _operation(
                "putCompute", "computes", "Create or replace a compute",
                dict(_WRITE_BODY, **{
                    "200": _answer("Replaced.", _schema("Compute"), etag=True),
                    "201": _answer("Created.", _schema("Compute"), etag=True),
                    "409": _error("Creating it would exceed max_computes.",
                                  "LimitExceeded", "Conflict"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")],
                body=_body(_schema("ComputeUpdate"), "A `name`, if given, must equal the "
                                                     "one in the path.")),
            "delete": _operation(
                "deleteCompute", "computes", "Remove a compute no service uses",
                dict(_WRITE, **bad_name, **{
                    "200": _answer("Removed; the body is what it was.", _schema("Compute")),
                    "404": _error("No such compute.", "NotFound"),
                    "409": _error("A service still wants or runs resources on it: scale "
                                  "those to 0 there first.", "Conflict"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")])},
    }


def _services_paths():
    name = _path_name("service", "web")
    bad_name = {"400": _ref("responses", "Invalid")}
    service_etag = "The service (without its events); its resourceVersion is the ETag."
    step_headers = {"Idempotent-Replayed": _ref("headers", "IdempotentReplayed")}
    step_params = [_ref("parameters", "IdempotencyKey")]
    step_extra = {"422": _ref("responses", "IdempotencyKeyReused")}
    def step(operation_id, summary, description, body_schema, not_found, conflicts, *reasons):
        return {"post": _operation(
            operation_id, "services", summary,
            dict(_WRITE_BODY, **step_extra, **{
                "202": _answer("Accepted: the new intent, which the reconciler makes real "
                               "a moment later. " + service_etag, _schema("Service"),
                               etag=True, headers=step_headers),
                "404": _error(not_found, "NotFound"),
                "409": _error(conflicts, *reasons)}),
            description=description, parameters=step_params,
            body=_body(_schema(body_schema), "The compute (and for scale, the count)."))}

    return {
        "/service": {
            "get": _operation(
                "listServices", "services", "Every service with its status, keyed by name",
                dict(_READ, **{"200": _answer("Every service (without events).",
                                              _schema("ServiceList"))}))},
        "/service/{name}": {
            "parameters": [name],
            "get": _operation(
                "getService", "services", "One service: spec, status and recent events",
                dict(_READ, **bad_name, **{
                    "200": _answer("The service; its resourceVersion is the ETag.",
                                   _schema("ServiceWithEvents"), etag=True),
                    "404": _error("No such service.", "NotFound")})),
            "put": _operation(
                "putService", "services", "Create or replace a service's replicas map",
                dict(_WRITE_BODY, **{
                    "200": _answer("Replaced. " + service_etag, _schema("Service"), etag=True),
                    "201": _answer("Created. " + service_etag, _schema("Service"), etag=True),
                    "404": _error("A compute named in `replicas` does not exist.", "NotFound"),
                    "409": _error("The service is being deleted, or creating it would exceed "
                                  "max_services.", "Conflict", "LimitExceeded"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")],
                body=_body(_schema("ServiceUpdate"), "Every compute named must exist; a "
                                                     "`name`, if given, must equal the one in "
                                                     "the path.")),
            "delete": _operation(
                "deleteService", "services", "Mark a service for deletion",
                dict(_WRITE, **bad_name, **{
                    "202": _answer("Accepted: the reconciler scales it to 0 everywhere, then "
                                   "removes it. " + service_etag, _schema("Service"), etag=True),
                    "404": _error("No such service.", "NotFound"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")])},
        "/service/{name}/upscale": dict(step(
            "upscaleService", "One resource more on a compute",
            "Adds one to the desired count of the service on the compute, creating the "
            "service on first use. Atomic: 100 concurrent upscales add exactly 100.",
            "StepRequest", "No such compute.",
            "The count is at max_replicas already, the service is being deleted, or creating "
            "it would exceed max_services.", "Conflict", "LimitExceeded"),
            parameters=[name]),
        "/service/{name}/downscale": dict(step(
            "downscaleService", "One resource less on a compute",
            "Removes one from the desired count of the service on the compute.",
            "StepRequest", "No such service, or no such compute.",
            "The count is 0 already, or the service is being deleted.", "Conflict"),
            parameters=[name]),
        "/service/{name}/scale": dict(step(
            "scaleService", "Set the desired count on a compute",
            "Sets the desired count of the service on the compute, creating the service on "
            "first use.",
            "ScaleRequest", "No such compute.",
            "The service is being deleted, or creating it would exceed max_services.",
            "Conflict", "LimitExceeded"),
            parameters=[name]),
        "/service/{name}/events": {
            "parameters": [name],
            "get": _operation(
                "getServiceEvents", "services", "Recent events of a service, newest first",
                dict(_READ, **bad_name, **{
                    "200": _answer("The events.", {"type": "array", "items": _schema("Event"),
                                                   "maxItems": EVENTS_KEPT}),
                    "404": _error("No such service.", "NotFound")}))},
    }


def _other_paths():
    return {
        "/healthz": {"get": _operation(
            "healthz", "health", "The process is alive",
            dict(_ANY, **{"200": _answer("Alive.", _schema("Health"))}), public=True)},
        "/readyz": {"get": _operation(
            "readyz", "health", "The process can serve: the store answers",
            dict(_ANY, **{"200": _answer("Ready.", _schema("Readiness")),
                          "503": _answer("The store does not answer.", _schema("Readiness"))}),
            public=True)},
        "/metrics": {"get": _operation(
            "metrics", "metrics", "Prometheus metrics",
            dict(_ANY, **{
                "200": {"description": "The Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": _ref("responses", "Unauthorized")}))},
        "/audit": {"get": _operation(
            "listAudit", "audit", "The newest entries of the audit trail, newest first",
            dict(_READ, **{
                "200": _answer("Who asked to change what (every POST, PUT and DELETE, granted "
                               "or refused), newest first.",
                               {"type": "array", "items": _schema("AuditEntry"),
                                "maxItems": MAX_AUDIT_LIMIT}),
                "400": _ref("responses", "Invalid")}),
            parameters=[{"name": "limit", "in": "query", "required": False,
                         "description": "How many entries, at most.",
                         "schema": {"type": "integer", "minimum": 1,
                                    "maximum": MAX_AUDIT_LIMIT, "default": 100}}])},
        "/openapi.json": {"get": _operation(
            "openapi", "meta", "This document",
            dict(_ANY, **{
                "200": _answer("The OpenAPI document of this server.", {
                    "type": "object", "required": ["openapi", "info", "paths"]}),
                "401": _ref("responses", "Unauthorized")}))},
    }


def _schemas(max_replicas):
    name = _schema("Name")
    obj = {"type": "object", "additionalProperties": False}
    integer = {"type": "integer", "minimum": 0}
    return {
        "Name": {
            "type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 63,
            "description": "1 to 63 letters, digits or '-', starting and ending with a letter "
                           "or digit (an RFC 1123 label; upper case allowed, case-sensitive).",
            "examples": ["local"]},
        "ConnectorURL": {
            "type": "string", "pattern": CONNECTOR_URL_PATTERN,
            "maxLength": CONNECTOR_URL_MAX_LENGTH,
            "description": "An absolute http:// or https:// URL with a host, without "
                           "credentials, query or fragment, port 0 or white space; a path is a "
                           "prefix genisys puts before /service/... . The server may restrict "
                           "hosts (connector_hosts): another host is a 400.",
            "examples": ["http://127.0.0.1:7051"]},
        "Count": {
            "type": "integer", "minimum": 0, "maximum": max_replicas,
            "description": "A desired count: 0 to max_replicas (%d on this server, %d by "
                           "default), written as an integer (3, not 3.0 nor 3e0)."
                           % (max_replicas, DEFAULT_MAX_REPLICAS)},
        "ResourceVersion": dict(integer, minimum=1, description="Grows with every write."),
        "ConnectorToken": {
            "type": ["string", "null"], "pattern": r"^[!-~]{8,4096}$", "writeOnly": True,
            "description": "Sent to the connector as `Authorization: Bearer <token>`. Stored, "
                           "never shown: a compute that has one reads `\"token\": \"set\"`. "
                           "Absent or null: no token (a PUT without it removes it)."},
        "Labels": {
            "type": "object", "maxProperties": MAX_LABELS,
            "propertyNames": {"pattern": LABEL_KEY_PATTERN},
            "additionalProperties": {"type": "string", "pattern": LABEL_VALUE_PATTERN},
            "description": "Labels, as Kubernetes has them: [prefix/]name -> value (up to 63 "
                           "letters, digits, '-', '_' or '.'). Absent: none.",
            "examples": [{"app": "web", "tier": "frontend"}]},
        "ManagedBy": {
            "type": "string", "pattern": r"^[!-~]{1,253}$",
            "description": "Who applies this object from manifests (`genisys apply` writes "
                           "genisys-cli, a sidecar sidecar:<folder>); `apply --prune` deletes "
                           "only its own objects. Absent: made through the API."},
        "NewCompute": dict(obj, required=["name", "connector"], properties={
            "name": name, "connector": _schema("ConnectorURL"),
            "token": _schema("ConnectorToken"), "labels": _schema("Labels"),
            "managedBy": _schema("ManagedBy")},
            examples=[{"name": "local", "connector": "http://127.0.0.1:7051"}]),
        "ComputeUpdate": dict(obj, required=["connector"], properties={
            "connector": _schema("ConnectorURL"), "token": _schema("ConnectorToken"),
            "labels": _schema("Labels"), "managedBy": _schema("ManagedBy"),
            "name": dict(name, description="If given, must equal the name in the path.")},
            examples=[{"connector": "http://127.0.0.1:7051"}]),
        "Compute": dict(obj, required=["name", "connector"], properties={
            "name": name,
            # What genisys stored may be beyond the portable pattern (an IPv6 host, say).
            "connector": {"type": "string", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://\S+$",
                          "maxLength": CONNECTOR_URL_MAX_LENGTH,
                          "description": "As given (see ConnectorURL)."},
            "token": {"type": "string", "enum": ["set"],
                      "description": "Present when the compute has a connector token; the "
                                     "token itself is never shown."},
            "labels": _schema("Labels"), "managedBy": _schema("ManagedBy")}),
        "ComputeList": {"type": "object", "propertyNames": name,
                        "additionalProperties": _schema("Compute")},
        "Replicas": {"type": "object", "propertyNames": name,
                     "additionalProperties": _schema("Count"),
                     "description": "Compute name -> desired count.",
                     "examples": [{"local": 3}]},
        "ServiceUpdate": dict(obj, required=["replicas"], properties={
            "replicas": _schema("Replicas"), "labels": _schema("Labels"),
            "managedBy": _schema("ManagedBy"),
            "name": dict(name, description="If given, must equal the name in the path.")},
            examples=[{"replicas": {"local": 3}}]),
        "StepRequest": dict(obj, required=["compute"], properties={"compute": name},
                            examples=[{"compute": "local"}]),
        "ScaleRequest": dict(obj, required=["compute", "number"], properties={
            "compute": name, "number": _schema("Count")},
            examples=[{"compute": "local", "number": 3}]),
        "Service": _service_schema(events=False),
        "ServiceWithEvents": _service_schema(events=True),
        "ServiceList": {"type": "object", "propertyNames": name,
                        "additionalProperties": _schema("Service")},
        "ServiceStatus": dict(obj, required=["observedGeneration", "computes"], properties={
            "observedGeneration": dict(integer, description="The generation this status "
                                                            "reflects (0: not looked at yet)."),
            "computes": {"type": "object", "propertyNames": name,
                         "additionalProperties": _schema("ComputeStatus")}}),
        "ComputeStatus": dict(obj, required=["desired", "running", "condition", "reason",
                                             "message", "lastTransitionTime", "failures"],
                              properties={
            "desired": integer,
            "running": {"type": ["integer", "null"], "minimum": 0,
                        "description": "As last reported by the connector (null: never)."},
            "condition": {"type": "string", "enum": list(CONDITIONS)},
            "reason": {"type": "string", "description": "Why, in one word (\"\" when "
                                                        "Converged)."},
            "message": {"type": "string"},
            "lastTransitionTime": _schema("Time"),
            "failures": dict(integer, description="Consecutive failed attempts.")}),
        "Event": dict(obj, required=["time", "type", "reason", "compute", "message", "count"],
                      properties={
            "time": _schema("Time"),
            "type": {"type": "string", "enum": ["Normal", "Warning"]},
            "reason": {"type": "string"},
            "compute": name,
            "message": {"type": "string"},
            "count": {"type": "integer", "minimum": 1,
                      "description": "How many times in a row it happened (time: the last)."}}),
        "Time": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
                 "description": "UTC, to the second."},
        "Error": dict(obj, required=["error"], properties={"error": dict(
            obj, required=["reason", "message"], properties={
                "reason": {"type": "string", "description": "Machine-readable, e.g. Invalid."},
                "message": {"type": "string", "description": "What is wrong, for a person."},
                "field": {"type": "string", "description": "The field, header or part of the "
                                                           "request at fault, if there is one."},
            })}),
        "AuditEntry": dict(obj, required=["time", "who", "method", "path", "status"],
                           properties={
            "time": {"type": "string",
                     "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                     "description": "UTC, to the millisecond."},
            "who": {"type": "string", "description": "The token's name, or anonymous."},
            "method": {"type": "string", "enum": ["POST", "PUT", "DELETE", "PATCH"]},
            "path": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "reason": {"type": "string", "description": "The error's reason, if refused."}}),
        "Health": dict(obj, required=["status"], properties={
            "status": {"type": "string", "enum": ["ok"]}}),
        "Readiness": dict(obj, required=["status", "checks"], properties={
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "checks": {"type": "object", "required": ["store"], "properties": {
                "store": {"type": "string", "description": "\"ok\", or what is wrong."},
                "manifests": _schema("ManifestSync")},
                "description": "One entry per check; more may be added."}}),
        "ManifestSync": dict(obj, required=["state", "folder"], properties={
            "state": {"type": "string", "enum": ["Pending", "Synced", "Error"],
                      "description": "Pending: not applied yet; Synced: the folder is in "
                                     "force; Error: the last attempt failed (the last good "
                                     "state stays in force)."},
            "folder": {"type": "string"},
            "lastSync": dict(_schema("Time"), description="Last successful apply."),
            "lastError": {"type": "string", "description": "Why the last attempt failed."},
            "objects": {"type": "integer", "minimum": 0,
                        "description": "Objects the folder held at the last successful "
                                       "apply."}},
            description="Present when genisys runs with --manifests (sidecar mode)."),
    }


def _service_schema(*, events):
    properties = {
        "name": _schema("Name"),
        "replicas": _schema("Replicas"),
        "generation": {"type": "integer", "minimum": 1,
                       "description": "Grows with every change of the spec."},
        "resourceVersion": _schema("ResourceVersion"),
        "deleting": {"type": "boolean", "description": "Marked for deletion."},
        "status": _schema("ServiceStatus"),
    }
    optional = {
        "labels": _schema("Labels"),
        "managedBy": _schema("ManagedBy"),
        "created": dict(_schema("Time"), description="When the service was created."),
    }
    if events:
        properties["events"] = {"type": "array", "items": _schema("Event"), "maxItems": EVENTS_KEPT,
                                "description": "Recent events, newest first."}
    return {"type": "object", "additionalProperties": False, "required": sorted(properties),
            "properties": dict(properties, **optional)}


def _responses():
    return {
        "Invalid": _error("Bad JSON, a missing or unknown field, a wrong type, a bad name, URL "
                          "or count; `field` says which.", "Invalid"),
        "Unauthorized": dict(_error("No token, or not a valid one.", "Unauthorized"), headers={
            "WWW-Authenticate": {"required": True, "description": 'Bearer realm="genisys"',
                                 "schema": {"type": "string", "pattern": "^Bearer "}}}),
        "Forbidden": _error("A read-only token asked to change something.", "Forbidden"),
        "PreconditionFailed": _error("If-Match does not match the current resourceVersion "
                                     "(or the object does not exist).", "PreconditionFailed"),
        "PayloadTooLarge": _error("The request body is over %d bytes." % MAX_BODY_BYTES,
                                  "PayloadTooLarge"),
        "UnsupportedMediaType": _error("A Content-Type other than JSON.",
                                       "UnsupportedMediaType"),
        "IdempotencyKeyReused": _error("This Idempotency-Key was used with another body or "
                                       "path.", "IdempotencyKeyReused"),
        "RequestHeaderFieldsTooLarge": _error("The request line and headers are over %d "
                                              "bytes." % MAX_HEADER_BYTES,
                                              "RequestHeaderFieldsTooLarge"),
        "StoreUnavailable": _error("The store cannot be read or written.", "StoreUnavailable"),
    }


DESCRIPTION = """\
genisys keeps intents (how many resources each service should have on each
compute) and a reconciler makes reality match them. Writes answer once the
intent is durable; resources appear a moment later (see a service's status).

Bodies are JSON (`Content-Type: application/json`, or none), at most %d bytes.
Every error is `{"error": {"reason", "message", "field"?}}`. A method a path
does not support answers 405 MethodNotAllowed with an `Allow` header; an
unknown path 404 NotFound (401 first without a valid token).

Once tokens are configured, every operation but /healthz and /readyz needs
`Authorization: Bearer <token>`; a read-only token gets 403 on POST, PUT and
DELETE.
""" % MAX_BODY_BYTES


def document(*, max_replicas=DEFAULT_MAX_REPLICAS):
    """The OpenAPI document (a new dict each call), for a server whose counts go up to
    ``max_replicas``."""
    paths = dict(_computes_paths(), **_services_paths(), **_other_paths())
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "genisys", "version": VERSION, "description": DESCRIPTION},
        "tags": [{"name": "computes"}, {"name": "services"}, {"name": "health"},
                 {"name": "metrics"}, {"name": "audit"}, {"name": "meta"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token from GENISYS_TOKEN or the tokens file."}},
            "parameters": {
                "IfMatch": {
                    "name": "If-Match", "in": "header", "required": False,
                    "description": 'Only if the object is at this resourceVersion (its ETag, '
                                   'e.g. "12"); `*`: only if it exists. Otherwise 412.',
                    "schema": {"type": "string"}},
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": False,
                    "description": "A retry with the same key and body gets the first "
                                   "answer again (with Idempotent-Replayed: true) instead of "
                                   "counting twice; the same key with another body or path "
                                   "is a 422, a key that is not 1 to 255 visible ASCII "
                                   "characters a 400.",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN,
                               "minLength": 1, "maxLength": 255}}},
            "headers": {
                "ETag": {"description": 'The resourceVersion, quoted: "12".', "required": True,
                         "schema": {"type": "string", "pattern": '^"[0-9]+"$'}},
                "IdempotentReplayed": {
                    "description": "`true` when this is the stored answer to an earlier "
                                   "request with the same Idempotency-Key.",
                    "schema": {"type": "string", "enum": ["true"]}}},
            "schemas": _schemas(max_replicas),
            "responses": _responses(),
        },
    }


class OpenAPIHandler(APIHandler):
    async def get(self):
        self.send(200, document(max_replicas=self.intents.max_replicas))


def routes(**deps):
    return [(r"/openapi\.json", OpenAPIHandler, deps)]
