"""The OpenAPI document (genisys/api/openapi.py) is valid, served, and names exactly the
routes of the application: every route of ``make_app`` is documented with every method
its handler implements, and every documented operation exists.

Routes are read from the tornado application itself (its routers' rules), so an
endpoint added without its documentation fails here the day it is added.
"""

import json
import re
import subprocess
import sys

import openapi_spec_validator
import pytest
import tornado.routing
import tornado.web

import genisys
from genisys import errors
from genisys.api import make_app
from genisys.api.openapi import document
from genisys.auth import ADMIN, READ_ONLY, Authenticator, Token
from genisys.model import (
    CONDITIONS,
    DEFAULT_MAX_REPLICAS,
    EVENTS_KEPT,
    NAME_PATTERN,
    ScaleRequest,
    parse,
    validate_name,
)
from genisys.reconciler.status import EVENTS_KEPT as RECONCILER_EVENTS_KEPT
from genisys.web import MAX_BODY_BYTES, reason_for
from tests.api.client import Api
from tests.support import ROOT

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
READER = Token("reader", "reader-secret-0123456789", READ_ONLY)
ADMIN_TOKEN = Token("ops", "admin-secret-0123456789", ADMIN)


@pytest.fixture
def backend():
    return "memory"  # neither the routes nor the document depend on the store


@pytest.fixture
def max_replicas():
    return 7


@pytest.fixture
def app(intents):
    """The application these tests read the routes of, and that serves the document."""
    return make_app(intents, auth=Authenticator([ADMIN_TOKEN, READER]))


# -- the routes of the application ---------------------------------------------------------


def handler_methods(handler_class):
    """The HTTP methods a handler class implements (overrides of RequestHandler's)."""
    return {m.lower() for m in handler_class.SUPPORTED_METHODS
            if getattr(handler_class, m.lower()) is not getattr(tornado.web.RequestHandler,
                                                                 m.lower())}


def path_rules(router):
    """Every (PathMatches rule) reachable from ``router``, through nested routers."""
    for rule in router.rules:
        if isinstance(rule.target, tornado.routing.RuleRouter):
            yield from path_rules(rule.target)
        elif isinstance(rule.matcher, tornado.routing.PathMatches):
            yield rule
        else:
            raise AssertionError("a route this test cannot read: %r" % (rule,))


#: A path argument in a route pattern; genisys routes capture one path segment each.
_SEGMENT = re.escape("([^/]+)")


def template(pattern):
    """A route pattern as a path template with anonymous parameters:
    ``/compute/([^/]+)/?$`` -> ``/compute/{}`` (the optional trailing slash is the same
    route). Anything else that is not a literal character fails: such a route must be
    compared with its documented path by hand."""
    path = pattern[:-1] if pattern.endswith("$") else pattern
    path = path[:-2] if path.endswith("/?") else path
    parts = []
    for token in re.findall(_SEGMENT + r"|\\.|.", path):
        if token == "([^/]+)":
            parts.append("{}")
        elif token.startswith("\\"):
            parts.append(token[1:])
        else:
            assert token not in ".^$*+?()[]{}|", \
                "route %r is not a literal path with ([^/]+) parameters" % pattern
            parts.append(token)
    return "".join(parts)


def app_routes(app):
    """{path template: set of methods} for every route of the application but the
    dashboard's (/ui: pages and what they need, not the API; tests/ui covers them)."""
    routes = {}
    for rule in path_rules(app.default_router):
        if rule.matcher.regex.pattern.startswith("/ui"):
            continue
        methods = handler_methods(rule.target)
        routes.setdefault(template(rule.matcher.regex.pattern), set()).update(methods)
    return routes


def documented_routes(doc):
    """{path template: set of methods} of an OpenAPI document, parameters made anonymous."""
    return {re.sub(r"\{[^}/]+\}", "{}", path): {m for m in item if m in HTTP_METHODS}
            for path, item in doc["paths"].items()}


def test_every_route_of_the_application_is_documented(app):
    routes, documented = app_routes(app), documented_routes(document())
    assert len(routes) >= 12 and "/service/{}/upscale" in routes  # the walk found the API
    missing = ["%s %s" % (m.upper(), path) for path, methods in sorted(routes.items())
               for m in sorted(methods) if m not in documented.get(path, set())]
    assert not missing, "routes of make_app missing from the OpenAPI document: %s" % missing


def test_every_documented_operation_exists(app):
    routes, documented = app_routes(app), documented_routes(document())
    extra = ["%s %s" % (m.upper(), path) for path, methods in sorted(documented.items())
             for m in sorted(methods) if m not in routes.get(path, set())]
    assert not extra, "documented operations that make_app does not serve: %s" % extra


def test_path_parameters_are_declared_for_every_template():
    for path, item in document()["paths"].items():
        names = set(re.findall(r"\{([^}/]+)\}", path))
        for method in (m for m in item if m in HTTP_METHODS):
            params = item.get("parameters", []) + item[method].get("parameters", [])
            declared = {p["name"] for p in params if "in" in p and p["in"] == "path"}
            assert declared == names, "%s %s declares path parameters %s" % (
                method.upper(), path, sorted(declared))


# -- the document ------------------------------------------------------------------------


def test_the_document_is_valid_openapi():
    openapi_spec_validator.validate(document())
    openapi_spec_validator.validate(document(max_replicas=7))


def test_the_version_is_the_package_version():
    setup_version = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT,
                                   capture_output=True, text=True, timeout=60).stdout.strip()
    assert document()["info"]["version"] == genisys.__version__ == setup_version


def schemas(doc=None):
    return (doc or document())["components"]["schemas"]


def test_the_document_states_the_rules_of_the_code():
    s = schemas()
    assert s["Name"]["pattern"] == NAME_PATTERN
    assert s["Count"]["maximum"] == DEFAULT_MAX_REPLICAS == 1000
    assert schemas(document(max_replicas=7))["Count"]["maximum"] == 7
    assert s["ComputeStatus"]["properties"]["condition"]["enum"] == list(CONDITIONS)
    assert RECONCILER_EVENTS_KEPT is EVENTS_KEPT
    assert s["ServiceWithEvents"]["properties"]["events"]["maxItems"] == EVENTS_KEPT
    events = document()["paths"]["/service/{name}/events"]["get"]["responses"]["200"]
    assert events["content"]["application/json"]["schema"]["maxItems"] == EVENTS_KEPT
    assert str(MAX_BODY_BYTES) in document()["components"]["responses"]["PayloadTooLarge"][
        "description"]
    for body in ("Compute", "ComputeUpdate", "ServiceUpdate", "StepRequest", "ScaleRequest"):
        assert s[body]["additionalProperties"] is False, body


@pytest.mark.parametrize("number", [0, 912, 912.0, 1000, 1e3])
def test_an_integral_number_is_a_count_as_json_schema_says(number):
    assert parse(ScaleRequest, {"compute": "local", "number": number}, maximum=1000)["number"] == \
        int(number)


@pytest.mark.parametrize("number, words", [(912.5, "must be an integer, got number 912.5"),
                                           (True, "must be an integer, got boolean True"),
                                           ("912", "must be an integer, got string '912'"),
                                           (1001.0, "must be at most 1000 (max_replicas)"),
                                           (-1.0, "must be at least 0")])
def test_anything_else_is_not(number, words):
    with pytest.raises(errors.Invalid) as e:
        parse(ScaleRequest, {"compute": "local", "number": number}, maximum=1000)
    assert e.value.field == "number" and words in e.value.message


@pytest.mark.parametrize("name", ["a", "A1", "my-Service", "a" * 63, "0-0"])
def test_names_the_pattern_accepts_are_valid(name):
    assert re.fullmatch(NAME_PATTERN.strip("^$"), name) and validate_name(name, "name")


@pytest.mark.parametrize("name", ["", "-a", "a-", "a" * 64, "a_b", "a.b", "é"])
def test_names_the_pattern_refuses_are_invalid(name):
    assert not re.search(NAME_PATTERN, name)
    with pytest.raises(errors.Invalid):
        validate_name(name, "name")


def test_error_reasons_are_those_of_the_code():
    responses = document()["components"]["responses"]
    expected = {
        "Unauthorized": errors.Unauthenticated.reason,
        "Forbidden": errors.Forbidden.reason,
        "PreconditionFailed": errors.VersionMismatch.reason,
        "StoreUnavailable": errors.StoreUnavailable.reason,
        "Invalid": errors.Invalid.reason,
        "PayloadTooLarge": reason_for(413),
        "UnsupportedMediaType": reason_for(415),
        "RequestHeaderFieldsTooLarge": reason_for(431),
    }
    for name, reason in expected.items():
        schema = responses[name]["content"]["application/json"]["schema"]
        assert schema["allOf"][1]["properties"]["error"]["properties"]["reason"]["enum"] == [
            reason], name
    conflicts = document()["paths"]["/service/{name}/upscale"]["post"]["responses"]["409"]
    reasons = conflicts["content"]["application/json"]["schema"]["allOf"][1]
    assert errors.LimitExceeded.reason in reasons["properties"]["error"]["properties"][
        "reason"]["enum"]


def test_only_the_health_checks_are_public():
    public = sorted("%s %s" % (m.upper(), path) for path, item in document()["paths"].items()
                    for m, op in item.items() if m in HTTP_METHODS and op.get("security") == [])
    assert public == ["GET /healthz", "GET /readyz"]
    for path, item in document()["paths"].items():
        for method, op in ((m, o) for m, o in item.items() if m in HTTP_METHODS):
            if op.get("security") == []:
                continue
            assert "401" in op["responses"], (method, path)
            assert ("403" in op["responses"]) == (method != "get"), (method, path)


# -- served at /openapi.json ---------------------------------------------------------------


@pytest.fixture
def api(http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_document_is_served_at_openapi_json(api):
    code, body, headers = await api.call("GET", "/openapi.json",
                                         headers={"Authorization": "Bearer " + READER.secret})
    assert code == 200
    assert headers["Content-Type"].startswith("application/json")
    # The served document states this server's maximum count.
    assert body == json.loads(json.dumps(document(max_replicas=7)))
    code, body, headers = await api.call("GET", "/openapi.json")
    assert code == 401 and body["error"]["reason"] == "Unauthorized"
