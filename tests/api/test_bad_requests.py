"""Bad requests against one real genisys: each one is refused with the right JSON error
and leaves the store exactly as it was.

One process (module scope) serves the whole table over a SQLite store. It is seeded
with computes ``local`` and ``other`` and a service ``web`` upscaled twice on ``local``.
For every case the test dumps the SQLite file before and after the request: a refused
request must not write anything (docs/api.md, "Errors": "nothing invalid is ever written").
"""

import dataclasses
import json
import os
from typing import Any, Optional

import pytest

from tests.support import GenisysProcess, intents_dump

SEED_COMPUTES = {
    "local": {"name": "local", "connector": "http://127.0.0.1:7051"},
    "other": {"name": "other", "connector": "http://127.0.0.1:7052"},
}
MAX_BODY_BYTES = 64 * 1024
GOOD_URL = "http://127.0.0.1:7060"
NAME_64 = "a" * 64

#: ``body`` of a case that sends no body at all.
NO_BODY = None


@dataclasses.dataclass(frozen=True)
class Chunked:
    """A raw body sent with Transfer-Encoding: chunked (no Content-Length)."""

    data: bytes
    size: int = 4096

    def chunks(self):
        for i in range(0, len(self.data), self.size):
            yield self.data[i:i + self.size]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    #: NO_BODY, raw bytes, Chunked(bytes), or any other value sent as its JSON encoding.
    body: Any
    headers: dict
    status: int
    reason: str
    #: Must occur in error.message or error.field: the error names the problem.
    contains: str
    #: When set, error.field must be exactly this.
    field: Optional[str] = None
    #: For 405: the Allow header, as a set of methods.
    allow: Optional[frozenset] = None
    #: Must NOT occur anywhere in the response (e.g. a password from the request).
    secret: Optional[str] = None


#: No extra headers: a case with a body sends it as Content-Type: application/json.
JSON = {}
CT_JSON = {"Content-Type": "application/json"}


def case(id, method, path, body, headers, status, reason, contains, *, field=None, allow=None,
         secret=None, marks=()):
    return pytest.param(Case(id, method, path, body, headers, status, reason, contains,
                             field=field, allow=frozenset(allow) if allow else None,
                             secret=secret),
                        id=id, marks=marks)


def invalid(id, method, path, body, field, contains, headers=JSON, **kw):
    """A 400 Invalid that names ``field``."""
    return case(id, method, path, body, headers, 400, "Invalid", contains, field=field, **kw)


#: A compute_body() override that leaves the field out.
_DROP = object()


def compute_body(**overrides):
    body = {"name": "new", "connector": GOOD_URL}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not _DROP}

OVERSIZED = (b'{"name": "big", "connector": "' + GOOD_URL.encode() + b'", "pad": "'
             + b"x" * (MAX_BODY_BYTES + 1) + b'"}')

CASES = [
    # -- missing fields ------------------------------------------------------------------
    invalid("missing-name", "POST", "/compute", compute_body(name=_DROP), "name", "required"),
    invalid("missing-connector", "POST", "/compute", compute_body(connector=_DROP), "connector",
            "required"),
    invalid("put-missing-connector", "PUT", "/compute/local", {}, "connector", "required"),
    # Without a compute, a step acts on the total of a placed service: web has counts per
    # compute, and the answer says how to do it instead.
    case("upscale-no-compute-per-compute-service", "POST", "/service/web/upscale", {}, JSON,
         409, "Conflict", "has counts per compute: upscale it on one of them", field="compute"),
    case("downscale-no-compute-per-compute-service", "POST", "/service/web/downscale", {}, JSON,
         409, "Conflict", "has counts per compute: downscale it on one", field="compute"),
    case("scale-no-compute-per-compute-service", "POST", "/service/web/scale", {"number": 1},
         JSON, 409, "Conflict", "has counts per compute: scale it on one", field="compute"),
    case("rebalance-per-compute-service", "POST", "/service/web/rebalance", NO_BODY, {},
         409, "Conflict", "has counts per compute, which genisys does not move",
         field="service"),
    invalid("scale-missing-number", "POST", "/service/web/scale", {"compute": "local"}, "number",
            "required"),
    invalid("put-service-missing-replicas", "PUT", "/service/web", {}, "replicas", "required"),

    # -- placement -------------------------------------------------------------------------
    invalid("put-service-replicas-string", "PUT", "/service/web", {"replicas": "6"}, "replicas",
            "must be a total (an integer) or an object of compute name -> count"),
    invalid("put-service-total-negative", "PUT", "/service/web", {"replicas": -1}, "replicas",
            "must be at least 0"),
    invalid("put-service-placement-with-map", "PUT", "/service/web",
            {"replicas": {"local": 1}, "placement": {}}, "placement",
            "only a service with a total (replicas: N) has a placement"),
    invalid("put-service-placement-strategy", "PUT", "/service/web",
            {"replicas": 6, "placement": {"strategy": "Random"}}, "placement.strategy",
            "must be 'Spread', 'Weighted', 'Capacity' or 'Pack', got 'Random'"),
    invalid("put-service-placement-both", "PUT", "/service/web",
            {"replicas": 6, "placement": {"computes": ["local"], "selector": {}}},
            "placement.selector", "give computes or a selector, not both"),
    invalid("put-service-placement-twice", "PUT", "/service/web",
            {"replicas": 6, "placement": {"computes": ["local", "local"]}},
            "placement.computes", "lists local more than once"),
    invalid("put-service-placement-weights", "PUT", "/service/web",
            {"replicas": 6, "placement": {"weights": {"local": 3}}}, "placement.weights",
            "weights are only for strategy Weighted (this one is Spread)"),
    invalid("put-service-placement-weight-negative", "PUT", "/service/web",
            {"replicas": 6, "placement": {"strategy": "Weighted", "weights": {"local": -1}}},
            "placement.weights.local", "must be at least 0"),
    invalid("put-service-placement-surge", "PUT", "/service/web",
            {"replicas": 6, "placement": {"maxSurge": "0%"}}, "placement.maxSurge",
            "must be a count from 1 or a percentage from 1% to 100%, got '0%'"),
    invalid("put-service-placement-expression", "PUT", "/service/web",
            {"replicas": 6, "placement": {"selector": {"matchExpressions": [
                {"key": "zone", "operator": "Exists", "values": ["a"]}]}}},
            "placement.selector.matchExpressions.0", "values: Exists takes no values"),
    invalid("put-service-failover-mode", "PUT", "/service/web",
            {"replicas": 6, "placement": {"failover": {"purgeMode": "Sometimes"}}},
            "placement.failover.purgeMode",
            "must be 'Graceful', 'Immediate' or 'Never', got 'Sometimes'"),
    invalid("put-service-failover-toleration", "PUT", "/service/web",
            {"replicas": 6, "placement": {"failover": {"tolerationSeconds": -1}}},
            "placement.failover.tolerationSeconds", "must be at least 0, got -1"),
    invalid("put-service-failover-grace", "PUT", "/service/web",
            {"replicas": 6, "placement": {"failover": {"gracePeriodSeconds": "10m"}}},
            "placement.failover.gracePeriodSeconds", "must be an integer, got string '10m'"),
    invalid("put-service-failover-unknown", "PUT", "/service/web",
            {"replicas": 6, "placement": {"failover": {"toleration": 3}}},
            "placement.failover.toleration", "unknown field"),
    invalid("put-service-placement-unknown", "PUT", "/service/web",
            {"replicas": 6, "placement": {"spread": True}}, "placement.spread", "unknown field"),

    # -- extra / unknown fields --------------------------------------------------------------
    invalid("compute-unknown-field", "POST", "/compute", compute_body(color="red"), "color",
            "unknown field"),
    invalid("put-compute-unknown-field", "PUT", "/compute/local",
            {"connector": GOOD_URL, "replicas": 3}, "replicas", "unknown field"),
    invalid("upscale-unknown-field", "POST", "/service/web/upscale",
            {"compute": "local", "number": 3}, "number", "unknown field"),
    invalid("downscale-unknown-field", "POST", "/service/web/downscale",
            {"compute": "local", "force": True}, "force", "unknown field"),
    invalid("scale-unknown-field", "POST", "/service/web/scale",
            {"compute": "local", "number": 1, "replicas": 1}, "replicas", "unknown field"),

    # -- wrong types ----------------------------------------------------------------------
    invalid("number-as-string", "POST", "/service/web/scale", {"compute": "local", "number": "3"},
            "number", "must be an integer, got string"),
    invalid("number-as-float", "POST", "/service/web/scale", {"compute": "local", "number": 1.5},
            "number", "must be an integer, got number"),
    # An integral number is a count (JSON Schema says so too): 1001.0 is one count too many.
    invalid("number-as-integral-float-above-max", "POST", "/service/web/scale",
            {"compute": "local", "number": 1001.0}, "number", "at most 1000"),
    invalid("number-as-bool", "POST", "/service/web/scale", {"compute": "local", "number": True},
            "number", "must be an integer, got boolean"),
    invalid("number-as-null", "POST", "/service/web/scale", {"compute": "local", "number": None},
            "number", "must be an integer, got null"),
    invalid("compute-as-int", "POST", "/service/web/upscale", {"compute": 1}, "compute",
            "must be a string, got integer"),
    invalid("compute-as-null", "POST", "/service/web/downscale", {"compute": None}, "compute",
            "must be a string, got null"),
    invalid("connector-as-list", "POST", "/compute", compute_body(connector=[GOOD_URL]),
            "connector", "must be a string, got array"),
    invalid("name-as-int", "POST", "/compute", compute_body(name=7), "name",
            "must be a string, got integer"),
    invalid("replicas-as-list", "PUT", "/service/web", {"replicas": ["local"]}, "replicas",
            "must be a total (an integer) or an object of compute name -> count, got array"),
    invalid("body-as-array", "POST", "/compute", [compute_body()], "body",
            "must be a JSON object, got array"),
    invalid("body-as-string", "POST", "/service/web/upscale", "local", "body",
            "must be a JSON object, got string"),
    invalid("body-as-number", "POST", "/service/web/scale", 3, "body",
            "must be a JSON object, got integer"),
    invalid("body-as-null", "PUT", "/compute/local", b"null", "body",
            "must be a JSON object, got null"),

    # -- bad JSON -------------------------------------------------------------------------
    invalid("json-syntax-error", "POST", "/compute", b'{"name": "new", "connector": }', "body",
            "not valid JSON"),
    # The seed README's sample bodies have a trailing comma: strict JSON refuses them.
    invalid("json-trailing-comma-seed-compute", "POST", "/compute",
            b'{\n\t"name": "compute_name",\n\t"connector": "http://connector.domain:port",\n}\n',
            "body", "not valid JSON"),
    invalid("json-trailing-comma-seed-upscale", "POST", "/service/web/upscale",
            b'{\n\t"compute": "compute_name",\n}\n', "body", "not valid JSON"),
    invalid("json-nan", "POST", "/service/web/scale", b'{"compute": "local", "number": NaN}',
            "body", "NaN"),
    invalid("json-infinity", "POST", "/service/web/scale",
            b'{"compute": "local", "number": Infinity}', "body", "Infinity"),
    invalid("json-duplicate-keys", "POST", "/service/web/upscale",
            b'{"compute": "other", "compute": "local"}', "body", "duplicate field 'compute'"),
    invalid("json-duplicate-nested-keys", "PUT", "/service/web",
            b'{"replicas": {"local": 2, "local": 5}}', "body", "duplicate field 'local'"),
    invalid("json-non-utf8", "POST", "/compute",
            b'{"name": "caf\xe9", "connector": "http://127.0.0.1:7060"}', "body", "UTF-8"),
    invalid("json-utf8-bom", "POST", "/service/web/upscale", b'\xef\xbb\xbf{"compute": "local"}',
            "body", "BOM"),
    invalid("json-empty-body", "POST", "/compute", b"", "body", "empty"),
    invalid("json-whitespace-body", "PUT", "/compute/local", b"  \r\n\t ", "body", "empty"),
    invalid("json-no-body", "POST", "/service/web/upscale", NO_BODY, "body", "empty"),
    invalid("json-extra-data", "POST", "/service/web/upscale", b'{"compute": "local"} {}', "body",
            "Extra data"),
    invalid("json-nested-too-deeply", "POST", "/compute", b"[" * 20000, "body",
            "nested too deeply"),

    # -- bad names (uppercase is allowed: "myService" is the seed's own example) -------------
    invalid("name-underscore", "POST", "/compute", compute_body(name="my_compute"), "name",
            "'my_compute' is not a valid name"),
    invalid("name-dot", "POST", "/compute", compute_body(name="my.compute"), "name",
            "'my.compute' is not a valid name"),
    invalid("name-leading-dash", "POST", "/compute", compute_body(name="-compute"), "name",
            "'-compute' is not a valid name"),
    invalid("name-trailing-dash", "POST", "/compute", compute_body(name="compute-"), "name",
            "'compute-' is not a valid name"),
    invalid("name-64-chars", "POST", "/compute", compute_body(name=NAME_64), "name",
            "not a valid name"),
    invalid("name-empty", "POST", "/compute", compute_body(name=""), "name",
            "'' is not a valid name"),
    invalid("name-space", "POST", "/compute", compute_body(name="my compute"), "name",
            "not a valid name"),
    invalid("name-non-ascii", "POST", "/compute", compute_body(name="caf\u00e9"), "name",
            "not a valid name"),
    invalid("upscale-compute-name-underscore", "POST", "/service/web/upscale",
            {"compute": "lo_cal"}, "compute", "'lo_cal' is not a valid name"),
    invalid("scale-compute-name-empty", "POST", "/service/web/scale",
            {"compute": "", "number": 1}, "compute", "not a valid name"),
    invalid("replicas-compute-name-dot", "PUT", "/service/web", {"replicas": {"lo.cal": 1}},
            "replicas.lo.cal", "not a valid name"),
    invalid("url-name-underscore-upscale", "POST", "/service/my_service/upscale",
            {"compute": "local"}, "name", "'my_service' is not a valid name"),
    invalid("url-name-dot-get-compute", "GET", "/compute/a.b", NO_BODY, "name",
            "'a.b' is not a valid name", headers={}),
    invalid("url-name-leading-dash-put-compute", "PUT", "/compute/-local",
            {"connector": GOOD_URL}, "name", "'-local' is not a valid name"),
    invalid("url-name-64-chars-get-service", "GET", "/service/" + NAME_64, NO_BODY, "name",
            "not a valid name", headers={}),
    invalid("url-name-encoded-slash", "GET", "/compute/a%2Fb", NO_BODY, "name",
            "'a/b' is not a valid name", headers={}),
    invalid("url-name-encoded-space-downscale", "POST", "/service/my%20web/downscale",
            {"compute": "local"}, "name", "'my web' is not a valid name"),
    invalid("url-name-dot-scale", "POST", "/service/web.v2/scale",
            {"compute": "local", "number": 1}, "name", "'web.v2' is not a valid name"),
    invalid("url-name-underscore-delete-service", "DELETE", "/service/my_web", NO_BODY, "name",
            "not a valid name", headers={}),
    invalid("url-name-not-utf8", "GET", "/service/%FF", NO_BODY, "name", "UTF-8", headers={}),
    # Upper case passes name validation: these fail later, for another reason.
    case("uppercase-service-name-allowed", "GET", "/service/myService", NO_BODY, {}, 404,
         "NotFound", "'myService' does not exist", field="service"),
    case("uppercase-compute-name-allowed", "GET", "/compute/myCompute", NO_BODY, {}, 404,
         "NotFound", "'myCompute' does not exist", field="compute"),
    invalid("uppercase-name-allowed-bad-connector", "POST", "/compute",
            compute_body(name="myCompute", connector="ftp://127.0.0.1:7051"), "connector",
            "http://"),

    # -- bad connector URLs ---------------------------------------------------------------
    invalid("url-ftp", "POST", "/compute", compute_body(connector="ftp://127.0.0.1:7051"),
            "connector", "must be an absolute http:// or https:// URL"),
    invalid("url-no-scheme", "POST", "/compute", compute_body(connector="localhost:7051"),
            "connector", "must be an absolute http:// or https:// URL"),
    invalid("url-relative", "POST", "/compute", compute_body(connector="/connector"),
            "connector", "must be an absolute http:// or https:// URL"),
    invalid("url-empty", "POST", "/compute", compute_body(connector=""), "connector",
            "must be an absolute http:// or https:// URL"),
    invalid("url-userinfo", "POST", "/compute",
            compute_body(connector="http://admin:s3cr3t-pw@127.0.0.1:7051"), "connector",
            "credentials", secret="s3cr3t-pw"),
    invalid("url-no-host", "POST", "/compute", compute_body(connector="http:///connector"),
            "connector", "has no host"),
    invalid("url-port-only", "POST", "/compute", compute_body(connector="http://:7051"),
            "connector", "has no host"),
    invalid("url-port-out-of-range", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:99999"), "connector", "Port out of range"),
    invalid("url-port-not-a-number", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:http"), "connector", "not a valid URL"),
    invalid("url-port-zero", "POST", "/compute", compute_body(connector="http://127.0.0.1:0"),
            "connector", "port 0"),
    invalid("url-with-query", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:7051/?token=x"), "connector", "query"),
    invalid("url-with-fragment", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:7051/#top"), "connector", "fragment"),
    invalid("url-with-white-space", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:7051/a b"), "connector", "white space"),
    invalid("url-with-nul", "POST", "/compute",
            compute_body(connector="\u0000http://127.0.0.1:7051"), "connector", "visible ASCII"),
    invalid("url-with-nul-in-path", "PUT", "/compute/local",
            {"connector": "http://127.0.0.1:7051/a\u0000b"}, "connector", "visible ASCII"),
    invalid("url-not-ascii", "POST", "/compute",
            compute_body(connector="http://127.0.0.1:7051/\u00e9"), "connector",
            "percent-encode"),
    invalid("put-url-ftp", "PUT", "/compute/local", {"connector": "ftp://127.0.0.1:7051"},
            "connector", "http://"),
    invalid("put-url-no-scheme", "PUT", "/compute/other", {"connector": "127.0.0.1:7052"},
            "connector", "absolute"),

    # -- counts -------------------------------------------------------------------------
    invalid("number-negative", "POST", "/service/web/scale", {"compute": "local", "number": -1},
            "number", "at least 0"),
    invalid("number-above-max-replicas", "POST", "/service/web/scale",
            {"compute": "local", "number": 1001}, "number", "at most 1000"),
    invalid("number-huge", "POST", "/service/web/scale",
            {"compute": "local", "number": 10 ** 30}, "number", "at most 1000"),
    invalid("replicas-negative", "PUT", "/service/web", {"replicas": {"local": -2}},
            "replicas.local", "at least 0"),
    invalid("replicas-above-max", "PUT", "/service/web", {"replicas": {"local": 1001}},
            "replicas.local", "at most 1000"),

    # -- unknown computes and services: 404 --------------------------------------------------
    case("upscale-unknown-compute", "POST", "/service/web/upscale", {"compute": "nosuch"}, JSON,
         404, "NotFound", "'nosuch' does not exist", field="compute"),
    case("upscale-new-service-unknown-compute", "POST", "/service/api/upscale",
         {"compute": "nosuch"}, JSON, 404, "NotFound", "'nosuch' does not exist",
         field="compute"),
    case("downscale-unknown-compute", "POST", "/service/web/downscale", {"compute": "nosuch"},
         JSON, 404, "NotFound", "'nosuch' does not exist", field="compute"),
    case("scale-unknown-compute", "POST", "/service/web/scale",
         {"compute": "nosuch", "number": 2}, JSON, 404, "NotFound", "'nosuch' does not exist",
         field="compute"),
    case("put-service-unknown-compute", "PUT", "/service/web", {"replicas": {"nosuch": 1}}, JSON,
         404, "NotFound", "'nosuch' does not exist", field="compute"),
    case("downscale-unknown-service", "POST", "/service/api/downscale", {"compute": "local"},
         JSON, 404, "NotFound", "service 'api' does not exist", field="service"),
    case("get-unknown-service", "GET", "/service/api", NO_BODY, {}, 404, "NotFound",
         "service 'api' does not exist", field="service"),
    case("delete-unknown-service", "DELETE", "/service/api", NO_BODY, {}, 404, "NotFound",
         "service 'api' does not exist", field="service"),
    case("get-unknown-compute", "GET", "/compute/nosuch", NO_BODY, {}, 404, "NotFound",
         "compute 'nosuch' does not exist", field="compute"),
    case("delete-unknown-compute", "DELETE", "/compute/nosuch", NO_BODY, {}, 404, "NotFound",
         "compute 'nosuch' does not exist", field="compute"),

    # -- conflicts: 409 ---------------------------------------------------------------------
    case("downscale-at-zero", "POST", "/service/web/downscale", {"compute": "other"}, JSON, 409,
         "Conflict", "no resources on 'other'", field="compute"),
    case("create-existing-compute-same", "POST", "/compute", SEED_COMPUTES["local"], JSON, 409,
         "AlreadyExists", "'local' already exists", field="name"),
    case("create-existing-compute-other-url", "POST", "/compute",
         {"name": "other", "connector": GOOD_URL}, JSON, 409, "AlreadyExists",
         "'other' already exists", field="name"),
    case("delete-compute-in-use", "DELETE", "/compute/local", NO_BODY, {}, 409, "Conflict",
         "in use by service(s) web", field="compute"),
    invalid("put-compute-name-mismatch", "PUT", "/compute/local",
            {"name": "other", "connector": GOOD_URL}, "name",
            "does not match the name in the URL"),
    invalid("put-service-name-mismatch", "PUT", "/service/web",
            {"name": "api", "replicas": {"local": 2}}, "name",
            "does not match the name in the URL"),

    # -- wrong method: 405 with Allow ------------------------------------------------------------
    case("patch-compute", "PATCH", "/compute/local", {"connector": GOOD_URL}, JSON, 405,
         "MethodNotAllowed", "PATCH", allow={"GET", "PUT", "DELETE"}),
    case("delete-compute-collection", "DELETE", "/compute", NO_BODY, {}, 405, "MethodNotAllowed",
         "DELETE", allow={"GET", "POST"}),
    case("put-compute-collection", "PUT", "/compute", compute_body(), JSON, 405,
         "MethodNotAllowed", "PUT", allow={"GET", "POST"}),
    case("get-upscale", "GET", "/service/web/upscale", NO_BODY, {}, 405, "MethodNotAllowed",
         "GET", allow={"POST"}),
    case("put-downscale", "PUT", "/service/web/downscale", {"compute": "local"}, JSON, 405,
         "MethodNotAllowed", "PUT", allow={"POST"}),
    case("delete-scale", "DELETE", "/service/web/scale", NO_BODY, {}, 405, "MethodNotAllowed",
         "DELETE", allow={"POST"}),
    case("post-service", "POST", "/service/web", {"replicas": {"local": 1}}, JSON, 405,
         "MethodNotAllowed", "POST", allow={"GET", "PUT", "DELETE"}),

    # -- unknown paths: JSON 404 ----------------------------------------------------------------
    case("unknown-path", "GET", "/nope", NO_BODY, {}, 404, "NotFound", "/nope", field="path"),
    case("unknown-path-plural", "POST", "/services/web/upscale", {"compute": "local"}, JSON, 404,
         "NotFound", "/services/web/upscale", field="path"),
    case("unknown-path-suffix", "POST", "/service/web/restart", {"compute": "local"}, JSON, 404,
         "NotFound", "/service/web/restart", field="path"),
    case("unknown-path-too-deep", "GET", "/compute/local/extra", NO_BODY, {}, 404, "NotFound",
         "/compute/local/extra", field="path"),

    # -- oversized bodies: 413 --------------------------------------------------------------------
    case("oversized-body", "POST", "/compute", OVERSIZED, JSON, 413, "PayloadTooLarge", "65536",
         field="body"),
    case("oversized-body-chunked", "POST", "/service/web/upscale", Chunked(OVERSIZED), JSON, 413,
         "PayloadTooLarge", "65536", field="body"),

    # -- wrong Content-Type: 415 ---------------------------------------------------------------
    case("content-type-text-plain", "POST", "/compute", compute_body(),
         {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType", "text/plain",
         field="Content-Type"),
    case("content-type-form", "POST", "/service/web/upscale", b"compute=local",
         {"Content-Type": "application/x-www-form-urlencoded"}, 415, "UnsupportedMediaType",
         "application/x-www-form-urlencoded", field="Content-Type"),
    case("content-type-text-plain-put", "PUT", "/compute/local", {"connector": GOOD_URL},
         {"Content-Type": "text/plain; charset=utf-8"}, 415, "UnsupportedMediaType", "text/plain",
         field="Content-Type"),
    case("content-type-xml-scale", "POST", "/service/web/scale",
         {"compute": "local", "number": 5}, {"Content-Type": "application/xml"}, 415,
         "UnsupportedMediaType", "application/xml", field="Content-Type"),

    # -- If-Match: 412 ----------------------------------------------------------------------
    case("if-match-wrong-version-put-compute", "PUT", "/compute/local", {"connector": GOOD_URL},
         {"If-Match": '"999"'}, 412, "PreconditionFailed", "999"),
    case("if-match-weak-wrong-version", "PUT", "/compute/local", {"connector": GOOD_URL},
         {"If-Match": 'W/"998"'}, 412, "PreconditionFailed", "weak entity tag"),
    case("if-match-weak-current-version", "PUT", "/compute/local", {"connector": GOOD_URL},
         {"If-Match": 'W/"1"'}, 412, "PreconditionFailed", "never matches"),
    case("if-match-not-a-version", "PUT", "/compute/local", {"connector": GOOD_URL},
         {"If-Match": '"abc"'}, 412, "PreconditionFailed", "abc"),
    invalid("if-match-empty", "PUT", "/compute/local", {"connector": GOOD_URL}, "If-Match",
            "empty", headers={"If-Match": ""}),
    case("if-match-put-missing-compute", "PUT", "/compute/nosuch", {"connector": GOOD_URL},
         {"If-Match": "*"}, 412, "PreconditionFailed", "does not exist"),
    case("if-match-wrong-version-delete-compute", "DELETE", "/compute/other", NO_BODY,
         {"If-Match": '"999"'}, 412, "PreconditionFailed", "999"),
    case("if-match-wrong-version-put-service", "PUT", "/service/web", {"replicas": {"local": 5}},
         {"If-Match": '"999"'}, 412, "PreconditionFailed", "999"),
    case("if-match-wrong-version-delete-service", "DELETE", "/service/web", NO_BODY,
         {"If-Match": '"999"'}, 412, "PreconditionFailed", "999"),
]


# -- the server --------------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    process: GenisysProcess
    db_path: str
    seeded_dump: str

    def request(self, method, path, **kwargs):
        return self.process.request(method, path, **kwargs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("bad-requests"))
    db_path = os.path.join(workdir, "genisys.db")
    process = GenisysProcess(workdir, ["--store", "sqlite:///" + db_path], name="bad-requests")
    try:
        process.start()
        for compute in SEED_COMPUTES.values():
            r = process.request("POST", "/compute", json=compute)
            assert r.status_code == 201, r.text
        for expected in (1, 2):
            r = process.request("POST", "/service/web/upscale", json={"compute": "local"})
            assert r.status_code == 202, r.text
            assert r.json()["replicas"] == {"local": expected}
        yield Server(process, db_path, intents_dump(db_path))
    finally:
        process.kill()


def send(server, c):
    headers = dict(CT_JSON) if c.body is not NO_BODY else {}
    headers.update(c.headers)
    if c.body is NO_BODY:
        data = None
    elif isinstance(c.body, bytes):
        data = c.body
    elif isinstance(c.body, Chunked):
        data = c.body.chunks()
    else:
        data = json.dumps(c.body).encode("utf-8")
    return server.request(c.method, c.path, data=data, headers=headers, timeout=10)


def check_error_shape(c, r):
    """Status, JSON shape, field, message, headers; the reason is checked by the caller."""
    where = "%s %s -> %d %s" % (c.method, c.path, r.status_code, r.text)
    assert r.status_code == c.status, where
    assert r.headers.get("Content-Type", "").startswith("application/json"), where
    doc = r.json()
    assert isinstance(doc, dict) and set(doc) == {"error"}, where
    error = doc["error"]
    assert {"reason", "message"} <= set(error) <= {"reason", "message", "field"}, where
    assert isinstance(error["reason"], str) and error["reason"], where
    assert isinstance(error["message"], str) and error["message"], where
    if c.field is not None:
        assert error.get("field") == c.field, where
    assert c.contains in error["message"] or c.contains in error.get("field", ""), where
    if c.allow is not None:
        allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
        assert allow == c.allow, where
    if c.secret is not None:
        assert c.secret not in r.text, "the response echoes a secret: " + where
    return error


# A name must not end in a newline ('$' in a regex would let it through).
NEWLINE_CASES = [
    pytest.param(Case("name-trailing-newline", "POST", "/compute",
                      {"name": "bad\n", "connector": GOOD_URL}, JSON, 400, "Invalid",
                      "not a valid name", field="name"), id="name-trailing-newline"),
    pytest.param(Case("url-name-trailing-newline", "POST", "/service/web%0A/upscale",
                      {"compute": "local"}, JSON, 400, "Invalid", "not a valid name",
                      field="name"), id="url-name-trailing-newline"),
    pytest.param(Case("compute-name-trailing-newline", "POST", "/service/web/scale",
                      {"compute": "local\n", "number": 1}, JSON, 400, "Invalid",
                      "not a valid name", field="compute"), id="compute-name-trailing-newline"),
]
CASES += NEWLINE_CASES


@pytest.mark.parametrize("c", CASES)
def test_bad_request(server, c):
    before = intents_dump(server.db_path)
    r = send(server, c)
    error = check_error_shape(c, r)
    assert intents_dump(server.db_path) == before, "the store changed: %s %s" % (c.method, c.path)
    assert error["reason"] == c.reason, "%s %s -> %s" % (c.method, c.path, r.text)


def test_table_is_big_enough():
    assert len(CASES) >= 35
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids))


# -- after the table ------------------------------------------------------------------------


def test_seeded_state_reads_back_unchanged(server):
    """After every bad request above, the API shows exactly what was seeded."""
    assert intents_dump(server.db_path) == server.seeded_dump

    r = server.request("GET", "/compute")
    assert r.status_code == 200, r.text
    assert r.json() == SEED_COMPUTES

    for name, compute in SEED_COMPUTES.items():
        r = server.request("GET", "/compute/%s" % name)
        assert r.status_code == 200, r.text
        assert r.json() == compute

    r = server.request("GET", "/service")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"web"}

    r = server.request("GET", "/service/web")
    assert r.status_code == 200, r.text
    web = r.json()
    assert web["name"] == "web"
    assert web["replicas"] == {"local": 2}
    assert web["generation"] == 2
    assert web["deleting"] is False
    assert r.headers["ETag"] == '"%d"' % web["resourceVersion"]


@pytest.mark.parametrize("method, path, headers", [
    ("PUT", "/compute/local", {"If-Match": b'"\xb2"'}),
    ("DELETE", "/compute/local", {"If-Match": b"\xb9"}),
    ("GET", "/audit?limit=%C2%B2", {}),
    ("GET", "/audit?limit=%EF%BC%91", {}),
])
def test_digits_that_are_not_ascii_are_refused_not_crashed_on(server, method, path, headers):
    before = intents_dump(server.db_path)
    r = server.request(method, path, headers=headers, json={"connector": "http://h:1"})
    error = r.json()["error"]
    if "If-Match" in headers:
        assert r.status_code == 412 and "If-Match" in error["message"], r.text
    else:
        assert r.status_code == 400 and error["field"] == "limit", r.text
    assert intents_dump(server.db_path) == before
