"""?dryRun=true on every write, and GET /plan: they validate and work out the answer and
the plan, and leave the store exactly as it was (every record, its value and version)."""

import pytest

from genisys.model import DryRunAnswer, Plan, parse
from tests.api.client import Api
from tests.api.test_auth import every_route


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


async def dump(store):
    """Every record of the store: key, value and version."""
    return [(r.key, r.value, r.version) for r in (await store.list("")).records]


async def seed(api):
    for call in (("PUT", "/compute/dc1", {"connector": "http://h:1", "labels": {"zone": "a"}}),
                 ("PUT", "/compute/dc2", {"connector": "http://h:2", "labels": {"zone": "b"}}),
                 ("PUT", "/compute/spare", {"connector": "http://h:3"}),
                 ("PUT", "/service/web", {"replicas": {"dc1": 2}}),
                 ("PUT", "/service/api", {"replicas": 4, "placement": {
                     "selector": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}}),
                 ):
        code, body, _ = await api.call(*call)
        assert code in (200, 201), (call, body)


#: A write that succeeds on each route, after seed() and those before it: (path, body,
#: status).
SUCCEEDS = {
    ("POST", "/compute"): ("/compute", {"name": "dc3", "connector": "http://h:4"}, 201),
    ("PUT", "/compute/{}"): ("/compute/spare", {"connector": "http://h:5"}, 200),
    ("PUT", "/service/{}"): ("/service/api", {"replicas": 6, "placement": {
        "computes": ["dc1", "dc2"]}}, 200),
    ("POST", "/service/{}/upscale"): ("/service/web/upscale", {"compute": "dc1"}, 202),
    ("POST", "/service/{}/downscale"): ("/service/api/downscale", {}, 202),
    ("POST", "/service/{}/scale"): ("/service/api/scale", {"number": 9}, 202),
    ("POST", "/service/{}/rebalance"): ("/service/api/rebalance", {}, 202),
    ("DELETE", "/compute/{}"): ("/compute/spare", None, 200),
    ("DELETE", "/service/{}"): ("/service/web", None, 202),
}


def route_of(method, path):
    """every_route names each object "web": the route with a placeholder instead."""
    return method, "/".join("{}" if part == "web" else part for part in path.split("/"))


@pytest.mark.gen_test(timeout=60)
async def test_a_dry_run_of_every_write_answers_as_the_write_would_and_writes_nothing(
        api, app, store):
    await seed(api)
    writes = {route_of(m, p) for m, p in every_route(app) if m != "GET"}
    assert writes == set(SUCCEEDS), "a write route without a dry-run case"
    for (method, _), (path, body, status) in SUCCEEDS.items():  # deletions last
        before = await dump(store)
        code, answer, headers = await api.call(method, path + "?dryRun=true", body)
        assert code == 200, (method, path, answer)
        dry = parse(DryRunAnswer, answer)  # the documented shape
        assert dry.status == status, (method, path, answer)
        assert "ETag" not in headers
        assert await dump(store) == before, "a dry run of %s %s wrote" % (method, path)

        code, real, _ = await api.call(method, path, body)
        assert code == status, (method, path, real)
        # What the dry run said the answer would be is the answer (but for the version
        # and time a real write takes).
        for field in ("resourceVersion", "created"):
            real.pop(field, None)
            answer["result"].pop(field, None)
        assert answer["result"] == real, (method, path)


@pytest.mark.gen_test(timeout=60)
async def test_a_dry_run_that_would_fail_gets_the_error_and_writes_nothing(api, store):
    await seed(api)
    before = await dump(store)
    for method, path, body, code, reason in [
        ("POST", "/service/web/upscale", {}, 409, "Conflict"),  # per-compute: needs a compute
        ("POST", "/service/api/upscale", {"compute": "dc1"}, 409, "Conflict"),  # placed
        ("DELETE", "/compute/dc1", None, 409, "Conflict"),  # in use
        ("PUT", "/service/new", {"replicas": {"nosuch": 1}}, 404, "NotFound"),
        ("PUT", "/service/new", {"replicas": 3, "placement": {"strategy": "Best"}}, 400,
         "Invalid"),
        ("POST", "/service/web/rebalance", {}, 409, "Conflict"),
        ("POST", "/service/api/rebalance", {"now": True}, 400, "Invalid"),
    ]:
        got, answer, _ = await api.call(method, path + "?dryRun=true", body)
        assert (got, answer["error"]["reason"]) == (code, reason), (method, path, answer)
    assert await dump(store) == before


@pytest.mark.gen_test(timeout=60)
async def test_dry_run_must_be_true_or_false(api, store):
    await seed(api)
    before = await dump(store)
    for query in ("dryRun=yes", "dryRun=", "dryRun=true&dryRun=true"):
        code, answer, _ = await api.call("POST", "/service/web/upscale?" + query,
                                         {"compute": "dc1"})
        assert code == 400 and answer["error"]["field"] == "dryRun", (query, answer)
        assert "must be true or false" in answer["error"]["message"]
    assert await dump(store) == before
    code, answer, _ = await api.call("POST", "/service/web/upscale?dryRun=false",
                                     {"compute": "dc1"})
    assert code == 202 and answer["replicas"] == {"dc1": 3}


@pytest.mark.gen_test(timeout=60)
async def test_a_dry_run_says_how_the_plan_would_change(api, store):
    await seed(api)
    code, answer, _ = await api.call("PUT", "/service/db?dryRun=true", {
        "replicas": 5, "placement": {"computes": ["dc1", "dc2"], "strategy": "Weighted",
                                     "weights": {"dc1": 4}}})
    assert code == 200
    assert answer["plan"] == [
        {"service": "db", "compute": "dc1", "action": "create", "from": None, "to": 4,
         "reason": "placement"},
        {"service": "db", "compute": "dc2", "action": "create", "from": None, "to": 1,
         "reason": "placement"}]
    code, answer, _ = await api.call("POST", "/service/web/scale?dryRun=true",
                                     {"compute": "dc2", "number": 1})
    assert answer["plan"] == [{"service": "web", "compute": "dc2", "action": "create",
                               "from": None, "to": 1, "reason": "intent"}]
    code, answer, _ = await api.call("GET", "/plan")
    assert code == 200 and "db" not in {line["service"] for line in answer["lines"]}


@pytest.mark.gen_test(timeout=60)
async def test_the_plan_lists_each_service_on_each_compute_and_what_moved(api, store):
    await seed(api)
    before = await dump(store)
    code, plan, _ = await api.call("GET", "/plan")
    assert code == 200
    parse(Plan, plan)
    assert plan["lines"] == [
        {"service": "api", "compute": "dc1", "action": "create", "from": None, "to": 2,
         "reason": "placement"},
        {"service": "api", "compute": "dc2", "action": "create", "from": None, "to": 2,
         "reason": "placement"},
        {"service": "web", "compute": "dc1", "action": "create", "from": None, "to": 2,
         "reason": "intent"}]
    assert plan["changes"] == 3 and "moved" not in plan
    assert await dump(store) == before

    code, same, _ = await api.call("GET", "/plan?since=%d" % plan["revision"])
    assert same["moved"] == [] and same["lines"] == plan["lines"]
    code, answer, _ = await api.call("POST", "/service/web/upscale", {"compute": "dc1"})
    code, later, _ = await api.call("GET", "/plan?since=%d" % plan["revision"])
    assert later["moved"] == [{"kind": "Service", "name": "web",
                               "resourceVersion": answer["resourceVersion"]}]
    for since in ("-1", "x", "1.5", str(2 ** 63)):
        code, answer, _ = await api.call("GET", "/plan?since=" + since)
        assert code == 400 and answer["error"]["field"] == "since", since
