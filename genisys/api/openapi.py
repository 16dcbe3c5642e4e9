"""The OpenAPI 3.1 document of the genisys HTTP API, served at ``GET /openapi.json``.

The paths and operations are written here; every schema of a body or an
answer (``components.schemas``) is generated from the models of
``genisys.model``, which also validate the requests, so the two cannot drift
apart. A served document states the ``max_replicas`` of the running server,
not the default. ``tests/api/test_openapi.py`` checks
that it is valid OpenAPI and names every route of ``make_app`` (and nothing
else); ``tests/api/test_schemathesis.py`` fuzzes a live genisys from it and
checks that every answer is one it documents.

OpenAPI 3.1 rather than 3.0: its schemas are JSON Schema 2020-12, which can
say what a ``replicas`` map's keys must look like (``propertyNames``) and
that ``running`` may be null.

What JSON Schema cannot say is in the descriptions: a ``name`` in a PUT body
must equal the one in the path, and the connector URL pattern is the portable
core of what genisys accepts (see ``genisys.model.CONNECTOR_URL_PATTERN``).
"""


from genisys.api.audit_trail import MAX_AUDIT_LIMIT
from genisys.api.base import APIHandler
from genisys.api.plan import MAX_REVISION
from genisys.api.services import MAX_PAGE
from genisys.api.watch import MAX_QUERY_LENGTH, MAX_TIMEOUT_SECONDS
from genisys.model import (
    DEFAULT_MAX_REPLICAS,
    EVENTS_KEPT,
    IDEMPOTENCY_KEY_PATTERN,
    component_schemas,
)
from genisys.version import __version__
from genisys.web import MAX_BODY_BYTES, MAX_HEADER_BYTES

OPENAPI_VERSION = "3.1.0"

#: info.version of the document: the package version.
VERSION = __version__


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
                    "201": _answer("Created.", _schema("ComputeView"), etag=True, headers={
                        "Location": {"required": True, "description": "/compute/<name>",
                                     "schema": {"type": "string"}}}),
                    "409": _error("The name is taken (use PUT to change a compute), or "
                                  "max_computes computes exist already.",
                                  "AlreadyExists", "LimitExceeded", "Conflict")}),
                body=_body(_schema("Compute"), "Both fields are required."))},
        "/compute/{name}": {
            "parameters": [name],
            "get": _operation(
                "getCompute", "computes", "One compute",
                dict(_READ, **bad_name, **{
                    "200": _answer("The compute; its resourceVersion is the ETag.",
                                   _schema("ComputeView"), etag=True),
                    "404": _error("No such compute.", "NotFound")})),
            "put": _operation(
                "putCompute", "computes", "Create or replace a compute",
                dict(_WRITE_BODY, **{
                    "200": _answer("Replaced.", _schema("ComputeView"), etag=True),
                    "201": _answer("Created.", _schema("ComputeView"), etag=True),
                    "409": _error("Creating it would exceed max_computes.",
                                  "LimitExceeded", "Conflict"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")],
                body=_body(_schema("ComputeUpdate"), "A `name`, if given, must equal the "
                                                     "one in the path.")),
            "delete": _operation(
                "deleteCompute", "computes", "Remove a compute no service uses",
                dict(_WRITE, **bad_name, **{
                    "200": _answer("Removed; the body is what it was.", _schema("ComputeView")),
                    "404": _error("No such compute.", "NotFound"),
                    "409": _error("A service still wants or runs resources on it: scale "
                                  "those to 0 there first.", "Conflict"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")])},
        "/compute/{name}/status": {
            "parameters": [name],
            "get": _operation(
                "getComputeCondition", "computes", "A compute's health",
                dict(_READ, **bad_name, **{
                    "200": _answer("Its condition (Ready, NotReady or Unknown), as the "
                                   "controller last stored it.", _schema("ComputeCondition")),
                    "404": _error("No such compute.", "NotFound")}),
                description="From the calls the controller makes to its connector, and a "
                            "probe of idle ones; see docs/failover.md.")},
    }


WATCH_FORMAT = """\
Server-Sent Events: `event:` ADDED, MODIFIED, DELETED, SYNCED or RESET; `id:` the store
revision; `data:` JSON on one line. First every service matching q as ADDED, then
SYNCED ({"revision"}); then one message per change of a service's spec or status:
ADDED or MODIFIED with the service (as in ServiceList), DELETED with {"name",
"deleted", "revision"}. Lines starting with `:` are keep-alives. Reconnecting with
Last-Event-ID (or resourceVersion) sends only what changed after it; RESET means that
revision is older than the store keeps: drop what you have, the listing follows."""

def _event_stream(kinds):
    """The schema of one message of a watch's text/event-stream."""
    return {"type": "object", "description": WATCH_FORMAT, "properties": {
        "event": {"enum": kinds},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The store revision."},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "JSON on one line."},
        "retry": {"type": "integer", "description": "Milliseconds before reconnecting."}}}


_LIST_PARAMETERS = [
    {"name": "q", "in": "query", "required": False,
     "description": "Only services whose name holds this (letters, digits, '-'; any case).",
     "schema": {"type": "string", "maxLength": MAX_QUERY_LENGTH,
                "pattern": "^[A-Za-z0-9-]*$"}},
    {"name": "after", "in": "query", "required": False,
     "description": "Only services whose name sorts after this one (the last of the "
                    "previous page).", "schema": _schema("Name")},
    {"name": "before", "in": "query", "required": False,
     "description": "Only services whose name sorts before this one (with watch: a page "
                    "follows its own range of names).", "schema": _schema("Name")},
    {"name": "limit", "in": "query", "required": False,
     "description": "At most this many services, sorted by name.",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
]

_WATCH_PARAMETERS = [
    {"name": "watch", "in": "query", "required": False,
     "description": "1 or true: answer with a stream of changes (text/event-stream) "
                    "instead of JSON.", "schema": {"type": "string",
                                                   "enum": ["1", "true", "0", "false"]}},
    {"name": "timeoutSeconds", "in": "query", "required": False,
     "description": "With watch: end the stream after this many seconds (0: right after "
                    "the listing). Absent: it lasts until the client leaves.",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_TIMEOUT_SECONDS}},
    {"name": "resourceVersion", "in": "query", "required": False,
     "description": "With watch: the changes after this store revision only (no "
                    "listing first), e.g. a page's Genisys-Revision.",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_REVISION}},
    {"name": "Last-Event-ID", "in": "header", "required": False,
     "description": "With watch: as resourceVersion (what a reconnecting client sends).",
     "schema": {"type": "string", "pattern": "^[0-9]{0,18}$"}},
]


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
                               "a moment later. " + service_etag, _schema("ServiceView"),
                               etag=True, headers=step_headers),
                "404": _error(not_found, "NotFound"),
                "409": _error(conflicts, *reasons)}),
            description=description, parameters=step_params,
            body=_body(_schema(body_schema), "The compute (and for scale, the count); "
                                             "without a compute, the step acts on the total "
                                             "of a placed service."))}

    stream = _event_stream(["ADDED", "MODIFIED", "DELETED", "SYNCED", "RESET"])
    page_headers = {
        "Genisys-Total": {"description": "With q, after, before or limit: how many "
                                         "services match q in all.",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        "Genisys-Revision": {"description": "With q, after, before or limit: the store revision "
                                            "of the page; watch from it with "
                                            "?watch=1&resourceVersion=.",
                             "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return {
        "/service": {
            "get": _operation(
                "listServices", "services", "Every service with its status, keyed by name; "
                                            "a page of them; or a watch of their changes",
                dict(_READ, **bad_name, **{"200": {
                    "description": "Every service (without events), or the page asked for; "
                                   "with watch=1, a text/event-stream of the changes.",
                    "headers": page_headers,
                    "content": dict(_json(_schema("ServiceList")),
                                    **{"text/event-stream": {"schema": stream}})}}),
                description="With watch=1 the answer is a stream of Server-Sent Events "
                            "that lasts until the client leaves, timeoutSeconds pass, or "
                            "the server shuts down.",
                parameters=_LIST_PARAMETERS + _WATCH_PARAMETERS)},
        "/service/{name}": {
            "parameters": [name],
            "get": _operation(
                "getService", "services", "One service: spec, status and recent events; "
                                          "or a watch of it",
                dict(_READ, **bad_name, **{
                    "200": {
                        "description": "The service; its resourceVersion is the ETag. With "
                                       "watch=1 (no ETag): a text/event-stream whose SERVICE "
                                       "messages carry the service with its events, one at "
                                       "the start and one after each change, and DELETED "
                                       "({\"name\"}) once it is gone.",
                        "headers": {"ETag": {
                            "description": 'The resourceVersion, quoted: "12" (not on a '
                                           'watch).',
                            "schema": {"type": "string", "pattern": '^"[0-9]+"$'}}},
                        "content": dict(_json(_schema("ServiceWithEvents")), **{
                            "text/event-stream": {"schema": _event_stream(
                                ["SERVICE", "DELETED"])}})},
                    "404": _error("No such service.", "NotFound")}),
                parameters=_WATCH_PARAMETERS[:2]),
            "put": _operation(
                "putService", "services", "Create or replace a service: a replicas map, or a "
                                      "total and its placement",
                dict(_WRITE_BODY, **{
                    "200": _answer("Replaced. " + service_etag, _schema("ServiceView"), etag=True),
                    "201": _answer("Created. " + service_etag, _schema("ServiceView"), etag=True),
                    "404": _error("A compute named in `replicas` does not exist.", "NotFound"),
                    "409": _error("The service is being deleted, or creating it would exceed "
                                  "max_services.", "Conflict", "LimitExceeded"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")],
                body=_body(_schema("ServiceUpdate"), "Every compute named must exist; a "
                                                     "`name`, if given, must equal the one in "
                                                     "the path; the replicas must be within "
                                                     "the bounds (minReplicas, maxReplicas, "
                                                     "perCompute: a 400 naming the field).")),
            "delete": _operation(
                "deleteService", "services", "Mark a service for deletion",
                dict(_WRITE, **bad_name, **{
                    "202": _answer("Accepted: the reconciler scales it to 0 everywhere, then "
                                   "removes it. " + service_etag, _schema("ServiceView"),
                                   etag=True),
                    "404": _error("No such service.", "NotFound"),
                    "412": _ref("responses", "PreconditionFailed")}),
                parameters=[_ref("parameters", "IfMatch")])},
        "/service/{name}/upscale": dict(step(
            "upscaleService", "One resource more on a compute",
            "Adds one to the desired count of the service on the compute, creating the "
            "service on first use. Atomic: 100 concurrent upscales add exactly 100. Without "
            "a compute, adds one to the total of a placed service (creating one placed "
            "over every compute on first use).",
            "StepRequest", "No such compute.",
            "The count is at max_replicas or the service's maxReplicas already, the service "
            "is being deleted, creating it would exceed max_services, or the step names a "
            "compute of a placed service (or none of a service with counts per compute).",
            "Conflict", "LimitExceeded"),
            parameters=[name]),
        "/service/{name}/downscale": dict(step(
            "downscaleService", "One resource less on a compute",
            "Removes one from the desired count of the service on the compute (without a "
            "compute: from the total of a placed service).",
            "StepRequest", "No such service, or no such compute.",
            "The count is 0 or the service's minReplicas already, the service is being "
            "deleted, or the step's form (a compute or none) is not the service's.",
            "Conflict"),
            parameters=[name]),
        "/service/{name}/scale": dict(step(
            "scaleService", "Set the desired count on a compute",
            "Sets the desired count of the service on the compute, creating the service on "
            "first use (without a compute: the total of a placed service).",
            "ScaleRequest", "No such compute.",
            "The number is outside the service's bounds, the service is being deleted, "
            "creating it would exceed max_services, or the step's form (a compute or none) "
            "is not the service's.", "Conflict", "LimitExceeded"),
            parameters=[name]),
        "/service/{name}/rebalance": {
            "parameters": [name],
            "post": _operation(
                "rebalanceService", "services", "Move a placed service to its shares",
                dict(_WRITE, **bad_name, **{
                    "202": _answer("Accepted: the reconciler moves the assignment to the "
                                   "shares, maxSurge at a time (status.placement says how "
                                   "far). " + service_etag, _schema("ServiceView"), etag=True),
                    "404": _error("No such service.", "NotFound"),
                    "409": _error("The service has counts per compute, or is being deleted.",
                                  "Conflict"),
                    "412": _ref("responses", "PreconditionFailed")}),
                description="A compute that joined or left the placement, or a new weight, "
                            "moves nothing by itself; a rebalance moves the assignment to "
                            "what the placement gives now.",
                parameters=[_ref("parameters", "IfMatch")])},
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
compute, or a total it places on the computes itself) and a reconciler makes
reality match them. `GET /plan` says what it would do now; every write takes
`?dryRun=true`. Writes answer once the
intent is durable; resources appear a moment later (see a service's status).

Bodies are JSON (`Content-Type: application/json`, or none), at most %d bytes.
Every error is `{"error": {"reason", "message", "field"?}}`. A method a path
does not support answers 405 MethodNotAllowed with an `Allow` header; an
unknown path 404 NotFound (401 first without a valid token).

Once tokens are configured, every operation but /healthz and /readyz needs
`Authorization: Bearer <token>`; a read-only token gets 403 on POST, PUT and
DELETE.
""" % MAX_BODY_BYTES


def _plan_paths():
    return {"/plan": {"get": _operation(
        "getPlan", "plan", "What the controller would do now",
        dict(_READ, **{"200": _answer("One line per service and compute: the action, from "
                                      "-> to and why.", _schema("Plan")),
                       "400": _ref("responses", "Invalid")}),
        description="Worked out from the store alone, by the functions the reconciler "
                    "decides with: no connector is called.",
        parameters=[{"name": "since", "in": "query", "required": False,
                     "description": "A store revision (a plan's `revision`): the answer's "
                                    "`moved` lists the services and computes written after "
                                    "it.",
                     "schema": {"type": "integer", "minimum": 0,
                                "maximum": MAX_REVISION}}])}}


def _with_dry_runs(paths):
    """Every write takes ?dryRun=true, and may answer 200 with a DryRunAnswer."""
    for item in paths.values():
        for method in ("post", "put", "delete"):
            operation = item.get(method)
            if operation is None:
                continue
            operation["parameters"] = operation.get("parameters", []) + [
                _ref("parameters", "DryRun")]
            answers = operation["responses"]
            dry = _answer("A dry run that would succeed: what the request would get, and "
                          "how the plan would change. Nothing was written.",
                          _schema("DryRunAnswer"))
            if "200" in answers:
                answer = answers["200"]
                dry = dict(answer, description=answer["description"] + " Or, with "
                           "?dryRun=true: " + dry["description"],
                           content=_json({"oneOf": [answer["content"]["application/json"]
                                                    ["schema"], _schema("DryRunAnswer")]}))
                if "ETag" in answer.get("headers", {}):
                    # A dry run wrote nothing, so it has no version to tag.
                    dry["headers"] = dict(answer["headers"], ETag={
                        "description": 'The resourceVersion, quoted: "12" (not on a dry '
                                       'run).', "schema": {"type": "string",
                                                           "pattern": '^"[0-9]+"$'}})
            answers["200"] = dry
            operation["responses"] = dict(sorted(answers.items()))
    return paths


def document(*, max_replicas=DEFAULT_MAX_REPLICAS):
    """The OpenAPI document (a new dict each call), for a server whose counts go up to
    ``max_replicas``."""
    paths = _with_dry_runs(dict(_computes_paths(), **_services_paths(), **_other_paths(),
                                **_plan_paths()))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "genisys", "version": VERSION, "description": DESCRIPTION},
        "tags": [{"name": "computes"}, {"name": "services"}, {"name": "health"},
                 {"name": "metrics"}, {"name": "audit"}, {"name": "plan"}, {"name": "meta"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token from GENISYS_TOKEN or the tokens file."}},
            "parameters": {
                "DryRun": {
                    "name": "dryRun", "in": "query", "required": False,
                    "description": "true: validate and work out the answer and how the plan "
                                   "would change, and write nothing (a request that would "
                                   "fail gets its error).",
                    "schema": {"type": "string", "enum": ["true", "false"]}},
                "IfMatch": {
                    "name": "If-Match", "in": "header", "required": False,
                    "description": 'Only if the object is at this resourceVersion (its ETag, '
                                   'e.g. "12"); `*`: only if it exists. Otherwise 412. An '
                                   'empty value is malformed: 400.',
                    "schema": {"type": "string", "minLength": 1, "pattern": r"\S"}},
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
            "schemas": component_schemas(max_replicas=max_replicas),
            "responses": _responses(),
        },
    }


class OpenAPIHandler(APIHandler):
    async def get(self):
        self.send(200, document(max_replicas=self.intents.max_replicas))


def routes(**deps):
    return [(r"/openapi\.json", OpenAPIHandler, deps)]
