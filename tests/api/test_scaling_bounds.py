"""A service's bounds (minReplicas, maxReplicas, perCompute) and behavior through the API:
every intent outside the bounds is refused, naming the field, the bound and the numbers,
with the store left exactly as it was (every record, its value and version); a dry run
answers the same refusal; the steps keep the bounds."""

import pytest

from tests.api.client import Api
from tests.api.test_dry_run import dump

BEHAVIOR = {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1}]},
            "scaleDown": {"stabilizationWindowSeconds": 60}}


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


async def seed(api):
    for call in (("PUT", "/compute/dc1", {"connector": "http://h:1"}),
                 ("PUT", "/compute/dc2", {"connector": "http://h:2"}),
                 ("PUT", "/service/web", {"replicas": 6, "minReplicas": 2, "maxReplicas": 10,
                                          "behavior": BEHAVIOR}),
                 ("PUT", "/service/api", {"replicas": {"dc1": 3, "dc2": 1}, "maxReplicas": 5,
                                          "perCompute": {"minReplicas": 1,
                                                         "maxReplicas": 3}})):
        code, body, _ = await api.call(*call)
        assert code in (200, 201), (call, body)


async def refused(api, store, method, path, body, code, field, message):
    """The call, and its dry run, are refused as said, and write nothing."""
    before = await dump(store)
    for query in ("", "?dryRun=true"):
        got, answer, _ = await api.call(method, path + query, body)
        assert got == code, (method, path, query, answer)
        assert answer == {"error": {"reason": "Invalid" if code == 400 else "Conflict",
                                    "message": message, "field": field}}, (path, query)
    assert await dump(store) == before


@pytest.mark.gen_test(timeout=60)
async def test_the_bounds_and_behavior_are_stored_and_shown(api):
    await seed(api)
    code, web, _ = await api.call("GET", "/service/web")
    assert code == 200
    assert (web["replicas"], web["minReplicas"], web["maxReplicas"], web["behavior"]) == \
        (6, 2, 10, BEHAVIOR)
    assert "perCompute" not in web
    code, other, _ = await api.call("GET", "/service/api")
    assert other["perCompute"] == {"minReplicas": 1, "maxReplicas": 3}
    # A service without them has none of the fields.
    code, plain, _ = await api.call("PUT", "/service/plain", {"replicas": {"dc1": 1}})
    assert code == 201 and not {"minReplicas", "maxReplicas", "perCompute",
                                "behavior"} & set(plain)


#: method, path, body, status, field, message (after seed()).
REFUSALS = [
    # PUT: the replicas outside the bounds the body gives.
    ("PUT", "/service/web", {"replicas": 11, "maxReplicas": 10}, 400, "replicas",
     "service 'web' allows at most 10 replicas in all (maxReplicas): 11 refused"),
    ("PUT", "/service/web", {"replicas": 1, "minReplicas": 2}, 400, "replicas",
     "service 'web' allows at least 2 replicas in all (minReplicas): 1 refused"),
    ("PUT", "/service/api", {"replicas": {"dc1": 4, "dc2": 1}, "perCompute": {
        "maxReplicas": 3}}, 400, "replicas.dc1",
     "service 'api' allows at most 3 replicas on 'dc1' (perCompute.maxReplicas): 4 refused"),
    ("PUT", "/service/api", {"replicas": {"dc1": 3, "dc2": 0}, "perCompute": {
        "minReplicas": 1}}, 400, "replicas.dc2",
     "service 'api' allows at least 1 replicas on 'dc2' (perCompute.minReplicas): 0 refused"),
    ("PUT", "/service/api", {"replicas": {"dc1": 3, "dc2": 3}, "maxReplicas": 5}, 400,
     "replicas", "service 'api' allows at most 5 replicas in all (maxReplicas): 6 refused"),
    ("PUT", "/service/new", {"replicas": 11, "maxReplicas": 10}, 400, "replicas",
     "service 'new' allows at most 10 replicas in all (maxReplicas): 11 refused"),
    # PUT: the same replicas, with bounds they break: the bound is at fault.
    ("PUT", "/service/web", {"replicas": 6, "maxReplicas": 5}, 400, "maxReplicas",
     "service 'web' allows at most 5 replicas in all (maxReplicas): 6 refused"),
    ("PUT", "/service/api", {"replicas": {"dc1": 3, "dc2": 1}, "perCompute": {
        "minReplicas": 2}}, 400, "perCompute.minReplicas",
     "service 'api' allows at least 2 replicas on 'dc2' (perCompute.minReplicas): 1 refused"),
    # PUT: bounds that disagree.
    ("PUT", "/service/web", {"replicas": 6, "minReplicas": 7, "maxReplicas": 5}, 400,
     "minReplicas", "7 is more than maxReplicas (5)"),
    ("PUT", "/service/api", {"replicas": {"dc1": 1}, "perCompute": {"minReplicas": 2,
                                                                    "maxReplicas": 1}}, 400,
     "perCompute.minReplicas", "2 is more than maxReplicas (1)"),
    ("PUT", "/service/web", {"replicas": 6, "perCompute": {"maxReplicas": 3}}, 400,
     "perCompute", "a placed service (replicas: a total) bounds each compute with "
                   "placement.maxPerCompute, not perCompute"),
    ("PUT", "/service/web", {"replicas": 6, "maxReplicas": -1}, 400, "maxReplicas",
     "must be at least 0, got -1"),
    # PUT: a behavior out of HPA's ranges.
    ("PUT", "/service/web", {"replicas": 6, "behavior": {"scaleUp": {"policies": [
        {"type": "Pods", "value": 0, "periodSeconds": 1}]}}}, 400,
     "behavior.scaleUp.policies.0.value", "must be at least 1, got 0"),
    ("PUT", "/service/web", {"replicas": 6, "behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 3601}}}, 400,
     "behavior.scaleDown.stabilizationWindowSeconds", "must be at most 3600, got 3601"),
    ("PUT", "/service/web", {"replicas": 6, "behavior": {"scaleUp": {"policies": []}}}, 400,
     "behavior.scaleUp.policies", "must have at least 1 item"),
    ("PUT", "/service/web", {"replicas": 6, "behavior": {"scaleUp": {
        "selectPolicy": "Fastest"}}}, 400, "behavior.scaleUp.selectPolicy",
     "must be 'Max', 'Min' or 'Disabled', got 'Fastest'"),
    ("PUT", "/service/web", {"replicas": 6, "behavior": {"scaleUp": {"policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 1801}]}}}, 400,
     "behavior.scaleUp.policies.0.periodSeconds", "must be at most 1800, got 1801"),
    # The steps: as a step beyond max_replicas is refused.
    ("POST", "/service/web/scale", {"number": 11}, 409, "replicas",
     "service 'web' allows at most 10 replicas in all (maxReplicas): 11 refused"),
    ("POST", "/service/web/scale", {"number": 1}, 409, "replicas",
     "service 'web' allows at least 2 replicas in all (minReplicas): 1 refused"),
    ("POST", "/service/api/upscale", {"compute": "dc1"}, 409, "compute",
     "service 'api' allows at most 3 replicas on 'dc1' (perCompute.maxReplicas): 4 refused"),
    ("POST", "/service/api/downscale", {"compute": "dc2"}, 409, "compute",
     "service 'api' allows at least 1 replicas on 'dc2' (perCompute.minReplicas): 0 refused"),
    ("POST", "/service/api/scale", {"compute": "dc2", "number": 3}, 409, "compute",
     "service 'api' allows at most 5 replicas in all (maxReplicas): 6 refused"),
]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("case", REFUSALS, ids=["%s %s %s" % (c[0], c[1], c[4])
                                                for c in REFUSALS])
async def test_an_intent_outside_the_bounds_is_refused_and_changes_nothing(api, store, case):
    await seed(api)
    await refused(api, store, *case)


@pytest.mark.gen_test(timeout=60)
async def test_upscale_and_downscale_stop_at_the_bounds_and_keep_them(api, store):
    await seed(api)
    for _ in range(4):
        code, web, _ = await api.call("POST", "/service/web/upscale", {})
        assert code == 202, web
    assert (web["replicas"], web["minReplicas"], web["maxReplicas"], web["behavior"]) == \
        (10, 2, 10, BEHAVIOR)
    await refused(api, store, "POST", "/service/web/upscale", {}, 409, "replicas",
                  "service 'web' allows at most 10 replicas in all (maxReplicas): 11 refused")
    code, web, _ = await api.call("POST", "/service/web/scale", {"number": 2})
    assert code == 202 and (web["replicas"], web["minReplicas"]) == (2, 2)
    await refused(api, store, "POST", "/service/web/downscale", {}, 409, "replicas",
                  "service 'web' allows at least 2 replicas in all (minReplicas): 1 refused")
    # Within the bounds, a PUT may move the bounds and the replicas together.
    code, web, _ = await api.call("PUT", "/service/web", {"replicas": 1, "minReplicas": 0})
    assert code == 200 and web["replicas"] == 1 and "maxReplicas" not in web
