"""API tokens: every route of the application x no token / wrong token / read-only / admin."""

import logging
import re

import pytest

from genisys.api import make_app
from genisys.auth import ADMIN, READ_ONLY, Authenticator, Token
from genisys.web import JSONHandler
from tests.api.client import Api

ADMIN_TOKEN = Token("ops", "admin-secret-0123456789", ADMIN)
OLD_ADMIN_TOKEN = Token("ops-old", "rotated-out-secret-98765", ADMIN)
READER_TOKEN = Token("dashboard", "reader-secret-0123456789", READ_ONLY)
SECRETS = [t.secret for t in (ADMIN_TOKEN, OLD_ADMIN_TOKEN, READER_TOKEN)]
PUBLIC = {"/healthz", "/readyz"}


@pytest.fixture
def backend():
    return "memory"  # authentication happens before the store is touched


@pytest.fixture
def app(intents):
    return make_app(intents, auth=Authenticator([ADMIN_TOKEN, OLD_ADMIN_TOKEN, READER_TOKEN]))


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


def every_route(app):
    """(method, path) for every route and method of the application itself, so a
    new endpoint is in this matrix the day it is added. The dashboard's pages and
    static files are not endpoints: they hold no data and need no token (tests/ui
    covers them); what they read, /ui/summary.json, is one."""
    routes = []
    for rule in app.wildcard_router.rules:
        if not issubclass(rule.target, JSONHandler):
            continue
        pattern = rule.matcher.regex.pattern.rstrip("$").replace("/?", "")
        path = re.sub(r"\\(.)", r"\1", re.sub(r"\(\[\^/\]\+\)", "web", pattern))
        for method in rule.target.allowed_methods():
            routes.append((method, path))
    return routes


#: Authorization headers that must not get in, and what the 401 says.
WRONG_AUTHORIZATIONS = [
    ("Bearer not-a-valid-token-at-all", "the token is not valid"),
    ("Basic b3BzOnNlY3JldA==", "the Authorization header must be 'Bearer <token>'"),
    # A valid secret under another scheme: only Bearer presents a token.
    ("Basic " + ADMIN_TOKEN.secret, "the Authorization header must be 'Bearer <token>'"),
    ("Token " + READER_TOKEN.secret, "the Authorization header must be 'Bearer <token>'"),
    ("Bearer " + ADMIN_TOKEN.secret[:-1], "the token is not valid"),
    ("Bearer " + ADMIN_TOKEN.secret + "x", "the token is not valid"),
    # Secrets are compared exactly: letter case matters.
    ("Bearer " + ADMIN_TOKEN.secret.upper(), "the token is not valid"),
    ("Bearer " + READER_TOKEN.secret.swapcase(), "the token is not valid"),
    ("Bearer", "the Authorization header must be 'Bearer <token>'"),
]

#: What an admin's write with the body {} gets on each route, after seed(): the status
#: and the field named (a field: the required one missing).
ADMIN_ANSWERS = {
    ("POST", "/compute"): (400, "name"),
    ("PUT", "/compute/web"): (400, "connector"),
    ("DELETE", "/compute/web"): (409, None),  # the service web runs there
    ("PUT", "/service/web"): (400, "replicas"),
    ("DELETE", "/service/web"): (202, None),
    # Without a compute, a step acts on a placed service's total: web is being deleted.
    ("POST", "/service/web/upscale"): (409, None),
    ("POST", "/service/web/downscale"): (409, None),
    ("POST", "/service/web/scale"): (400, "number"),
    ("POST", "/service/web/rebalance"): (409, None),
}


def without_caller(answer):
    """An answer without what /ui/summary.json says of the token that asked."""
    if isinstance(answer, dict) and "canWrite" in answer:
        return {k: v for k, v in answer.items() if k not in ("canWrite", "token")}
    return answer


def bearer(token):
    return {"Authorization": "Bearer " + token.secret}


async def seed(api):
    code, body, _ = await api.call("POST", "/compute", {"name": "web", "connector": "http://h:1"},
                                   headers=bearer(ADMIN_TOKEN))
    assert code == 201, body
    code, body, _ = await api.call("POST", "/service/web/upscale", {"compute": "web"},
                                   headers=bearer(ADMIN_TOKEN))
    assert code == 202, body


async def snapshot(intents):
    return await intents.list_computes(), await intents.list_services()


@pytest.mark.gen_test(timeout=60)
async def test_the_auth_matrix(api, app, intents):
    await seed(api)
    routes = every_route(app)
    assert len(routes) >= 15 and ("POST", "/service/web/upscale") in routes
    for method, path in routes:
        body = {} if method in ("POST", "PUT") else None
        public = path in PUBLIC
        before = await snapshot(intents)

        code, answer, headers = await api.call(method, path, body)
        if public:
            assert code == 200, (method, path, code)
        else:
            assert code == 401, (method, path, code)
            assert answer["error"]["reason"] == "Unauthorized"
            assert headers["WWW-Authenticate"] == 'Bearer realm="genisys"'

        for wrong, message in WRONG_AUTHORIZATIONS:
            code, answer, headers = await api.call(method, path, body,
                                                   headers={"Authorization": wrong})
            if not public:
                assert (code, answer) == (401, {"error": {
                    "reason": "Unauthorized", "message": message, "field": "Authorization"}}), \
                    (method, path, wrong)
                assert headers["WWW-Authenticate"] == \
                    'Bearer realm="genisys", error="invalid_token"'
        assert await snapshot(intents) == before, "refused %s %s changed state" % (method, path)

        code, answer, _ = await api.call(method, path, body, headers=bearer(READER_TOKEN))
        if method == "GET" or public:
            assert code == 200, (method, path, code, answer)
            read = answer
        else:
            assert (code, answer) == (403, {"error": {
                "reason": "Forbidden", "message": "token 'dashboard' is read-only: %s %s "
                "needs an admin token" % (method, path)}}), (method, path)
        assert await snapshot(intents) == before, "refused %s %s changed state" % (method, path)

        for admin in (ADMIN_TOKEN, OLD_ADMIN_TOKEN):
            code, answer, _ = await api.call(method, path, body, headers=bearer(admin))
            if method == "GET" or public:
                # The same answer for any token that may read: nothing changed in between
                # (but what the dashboard's summary says of the token itself).
                assert (code, without_caller(answer)) == (200, without_caller(read)), \
                    (method, path, admin.name)
                continue
            status, field = ADMIN_ANSWERS[method, path]
            assert code == status, (method, path, admin.name, code, answer)
            if field:
                assert answer["error"] == {"reason": "Invalid", "message": "is required",
                                           "field": field}
            elif method == "DELETE" and path == "/service/web":
                assert answer["deleting"] is True and answer["name"] == "web"
            elif path == "/compute/web":
                assert answer["error"]["reason"] == "Conflict"
                assert "compute 'web' is in use by service(s) web" in answer["error"]["message"]
            else:
                assert answer["error"] == {"reason": "Conflict", "field": "service",
                                           "message": "service 'web' is being deleted"}
        if method == "DELETE":
            await seed_again(api)
    writes = {(m, p) for m, p in routes if m != "GET" and p not in PUBLIC}
    assert writes == set(ADMIN_ANSWERS)


async def seed_again(api):
    """A DELETE by an admin may have removed what the next routes need."""
    for call in (("PUT", "/compute/web", {"connector": "http://h:1"}),
                 ("POST", "/service/web/scale", {"compute": "web", "number": 1})):
        await api.call(*call, headers=bearer(ADMIN_TOKEN))


@pytest.mark.gen_test(timeout=60)
async def test_unknown_paths_need_a_token_too(api):
    code, answer, _ = await api.call("GET", "/no/such/path")
    assert code == 401
    code, answer, _ = await api.call("GET", "/no/such/path", headers=bearer(READER_TOKEN))
    assert code == 404


@pytest.mark.gen_test(timeout=60)
async def test_secrets_are_never_logged_or_echoed(api, caplog):
    caplog.set_level(logging.DEBUG)
    await seed(api)
    answers = []
    for secret in SECRETS + ["wrong-" + SECRETS[0]]:
        for method, path, body in (("GET", "/service/web", None),
                                   ("POST", "/service/web/upscale", {"compute": "web"}),
                                   ("POST", "/service/web/upscale", b"{not json"),
                                   ("DELETE", "/compute/nope", None)):
            answers.append(await api.call(method, path, body,
                                          headers={"Authorization": "Bearer " + secret}))
    text = caplog.text + repr(answers)
    for secret in SECRETS:
        assert secret not in text
    assert "dashboard" in text  # names are what logs and answers say
