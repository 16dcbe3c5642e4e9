"""API semantics over every store backend, against a real server on a loopback port."""

import asyncio
import random

import pytest

from genisys.intents import computes_used
from tests.api.client import Api


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url, max_clients=250)
    yield client
    client.close()


async def add_compute(api, name="local", url="http://127.0.0.1:7051"):
    code, body, _ = await api.call("POST", "/compute", {"name": name, "connector": url})
    assert code == 201, body
    return body


@pytest.mark.gen_test
async def test_compute_create_get_list_update(api):
    body = await add_compute(api)
    assert body == {"name": "local", "connector": "http://127.0.0.1:7051"}
    code, body, headers = await api.call("GET", "/compute/local")
    assert code == 200 and body == {"name": "local", "connector": "http://127.0.0.1:7051"}
    etag = headers["ETag"]
    code, body, _ = await api.call("PUT", "/compute/local", {"connector": "http://h:1"})
    assert code == 200 and body["connector"] == "http://h:1"
    assert (await api.call("GET", "/compute/local"))[2]["ETag"] != etag
    code, body, _ = await api.call("PUT", "/compute/new", {"connector": "https://n.example:8443"})
    assert code == 201
    code, body, _ = await api.call("GET", "/compute")
    assert code == 200 and sorted(body) == ["local", "new"]
    assert body["new"] == {"name": "new", "connector": "https://n.example:8443"}


@pytest.mark.gen_test
async def test_put_with_if_match(api):
    await add_compute(api)
    _, _, headers = await api.call("GET", "/compute/local")
    etag = headers["ETag"]
    code, _, _ = await api.call("PUT", "/compute/local", {"connector": "http://a:1"},
                                headers={"If-Match": etag})
    assert code == 200
    code, body, _ = await api.call("PUT", "/compute/local", {"connector": "http://b:1"},
                                   headers={"If-Match": etag})
    assert code == 412 and body["error"]["reason"] == "PreconditionFailed"
    assert (await api.call("GET", "/compute/local"))[1]["connector"] == "http://a:1"
    code, _, _ = await api.call("PUT", "/compute/ghost", {"connector": "http://a:1"},
                                headers={"If-Match": "*"})
    assert code == 412
    assert (await api.call("GET", "/compute/ghost"))[0] == 404
    code, _, _ = await api.call("PUT", "/compute/local", {"connector": "http://c:1"},
                                headers={"If-Match": "*"})
    assert code == 200


@pytest.mark.gen_test
async def test_upscale_downscale_scale(api):
    await add_compute(api)
    code, body, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"})
    assert code == 202
    assert body["name"] == "web" and body["replicas"] == {"local": 1}
    assert body["generation"] == 1 and body["deleting"] is False
    assert body["status"] == {"observedGeneration": 0, "computes": {}}
    code, body, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"})
    assert body["replicas"] == {"local": 2} and body["generation"] == 2
    code, body, _ = await api.call("POST", "/service/web/scale", {"compute": "local",
                                                                  "number": 7})
    assert code == 202 and body["replicas"] == {"local": 7}
    code, body, _ = await api.call("POST", "/service/web/downscale", {"compute": "local"})
    assert code == 202 and body["replicas"] == {"local": 6}
    code, body, _ = await api.call("POST", "/service/web/scale", {"compute": "local",
                                                                  "number": 0})
    assert body["replicas"] == {"local": 0}
    code, body, _ = await api.call("POST", "/service/web/downscale", {"compute": "local"})
    assert code == 409 and body["error"]["reason"] == "Conflict"
    code, body, headers = await api.call("GET", "/service/web")
    assert code == 200 and body["replicas"] == {"local": 0}
    assert headers["ETag"] == '"%d"' % body["resourceVersion"]
    code, body, _ = await api.call("GET", "/service")
    assert list(body) == ["web"]


@pytest.mark.gen_test
async def test_scale_to_same_number_keeps_generation(api):
    await add_compute(api)
    _, first, _ = await api.call("POST", "/service/web/scale", {"compute": "local", "number": 3})
    _, again, _ = await api.call("POST", "/service/web/scale", {"compute": "local", "number": 3})
    assert again["generation"] == first["generation"]
    assert again["resourceVersion"] == first["resourceVersion"]


@pytest.mark.gen_test
async def test_upscale_stops_at_max_replicas(api, intents):
    intents.max_replicas = 2
    await add_compute(api)
    for _ in range(2):
        assert (await api.call("POST", "/service/web/upscale", {"compute": "local"}))[0] == 202
    code, body, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"})
    assert code == 409 and "max_replicas" in body["error"]["message"]


@pytest.mark.gen_test
async def test_put_and_delete_service(api):
    await add_compute(api, "a")
    await add_compute(api, "b")
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"a": 2, "b": 1}})
    assert code == 201 and body["replicas"] == {"a": 2, "b": 1}
    version = body["resourceVersion"]
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"a": 1}},
                                   headers={"If-Match": '"%d"' % (version + 100)})
    assert code == 412
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"a": 1}},
                                   headers={"If-Match": '"%d"' % version})
    assert code == 200 and body["replicas"] == {"a": 1} and body["generation"] == 2
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"nope": 1}})
    assert code == 404 and "nope" in body["error"]["message"]
    code, body, _ = await api.call("DELETE", "/service/web")
    assert code == 202 and body["deleting"] is True and body["generation"] == 3
    # Marked for deletion: intents can no longer grow, deleting again is harmless.
    code, body, _ = await api.call("POST", "/service/web/upscale", {"compute": "a"})
    assert code == 409 and "being deleted" in body["error"]["message"]
    assert (await api.call("DELETE", "/service/web"))[0] == 202
    assert (await api.call("DELETE", "/service/ghost"))[0] == 404


@pytest.mark.gen_test
async def test_delete_compute_only_when_unused(api):
    await add_compute(api)
    await api.call("POST", "/service/web/upscale", {"compute": "local"})
    code, body, _ = await api.call("DELETE", "/compute/local")
    assert code == 409 and "web" in body["error"]["message"]
    await api.call("POST", "/service/web/downscale", {"compute": "local"})
    code, body, _ = await api.call("DELETE", "/compute/local")
    assert code == 200 and body["name"] == "local"
    assert (await api.call("GET", "/compute/local"))[0] == 404
    assert (await api.call("DELETE", "/compute/local"))[0] == 404


@pytest.mark.gen_test(timeout=60)
async def test_delete_compute_racing_upscales_never_leaves_a_dangling_intent(api, intents):
    """Either the delete wins (upscales 404) or an upscale wins (delete 409): never both."""
    for round_ in range(10):
        name = "c%d" % round_
        await add_compute(api, name)
        results = await asyncio.gather(
            api.call("DELETE", "/compute/" + name),
            *[api.call("POST", "/service/s%d/upscale" % i, {"compute": name}) for i in range(5)])
        deleted = results[0][0] == 200
        upscaled = [r for r in results[1:] if r[0] == 202]
        assert not (deleted and upscaled), (results[0], upscaled)


@pytest.mark.gen_test(timeout=120)
async def test_200_concurrent_upscales_add_exactly_200(api):
    await add_compute(api)
    results = await asyncio.gather(*[api.call("POST", "/service/web/upscale",
                                              {"compute": "local"}) for _ in range(200)])
    assert [code for code, _, _ in results] == [202] * 200
    # Every answer shows a distinct count: each upscale saw the one before it.
    assert sorted(body["replicas"]["local"] for _, body, _ in results) == list(range(1, 201))
    _, body, _ = await api.call("GET", "/service/web")
    assert body["replicas"] == {"local": 200}


@pytest.mark.gen_test(timeout=120)
async def test_mixed_concurrent_up_and_down_never_go_below_zero(api):
    await add_compute(api)
    await api.call("POST", "/service/web/scale", {"compute": "local", "number": 5})
    ops = ["upscale"] * 100 + ["downscale"] * 150
    random.Random(7).shuffle(ops)
    results = await asyncio.gather(*[api.call("POST", "/service/web/" + op, {"compute": "local"})
                                     for op in ops])
    ups = sum(1 for op, (code, _, _) in zip(ops, results) if op == "upscale" and code == 202)
    downs = sum(1 for op, (code, _, _) in zip(ops, results) if op == "downscale" and code == 202)
    refused = [code for op, (code, _, _) in zip(ops, results) if op == "downscale" and code != 202]
    assert ups == 100 and set(refused) <= {409}
    assert all(body["replicas"]["local"] >= 0 for code, body, _ in results if code == 202)
    _, body, _ = await api.call("GET", "/service/web")
    assert body["replicas"]["local"] == 5 + ups - downs >= 0


@pytest.mark.gen_test
async def test_health_and_readiness(api):
    code, body, _ = await api.call("GET", "/healthz")
    assert code == 200 and body == {"status": "ok"}
    code, body, _ = await api.call("GET", "/readyz")
    assert code == 200 and body["checks"]["store"] == "ok"


@pytest.mark.gen_test
async def test_readiness_fails_when_the_store_is_gone(api, store):
    await store.close()
    code, body, _ = await api.call("GET", "/readyz")
    assert code == 503 and body["status"] == "unavailable"
    code, body, _ = await api.call("POST", "/compute", {"name": "a", "connector": "http://a:1"})
    assert code == 503 and body["error"]["reason"] == "StoreUnavailable"


@pytest.mark.gen_test
async def test_events_of_a_service_and_in_its_representation(api):
    await add_compute(api)
    await api.call("POST", "/service/web/upscale", {"compute": "local"})
    code, body, _ = await api.call("GET", "/service/web/events")
    assert code == 200 and body == []  # no reconciler in this app: nothing happened yet
    code, body, _ = await api.call("GET", "/service/web")
    assert body["events"] == [] and "events" not in body["status"]
    code, body, _ = await api.call("GET", "/service")
    assert "events" not in body["web"] and "events" not in body["web"]["status"]
    code, body, _ = await api.call("GET", "/service/nope/events")
    assert code == 404 and body["error"]["field"] == "service"
    code, body, _ = await api.call("POST", "/service/web/events", {})
    assert code == 405


@pytest.mark.gen_test
async def test_metrics_are_prometheus_text(api):
    response = await api.client.fetch(api.base_url + "/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    assert "# TYPE genisys_reconcile_passes_total counter" in text
    assert "# TYPE genisys_connector_call_seconds histogram" in text


@pytest.mark.gen_test
async def test_delete_compute_with_if_match(api):
    await add_compute(api)
    _, _, headers = await api.call("GET", "/compute/local")
    stale = '"%d"' % (int(headers["ETag"].strip('"')) + 100)
    code, body, _ = await api.call("DELETE", "/compute/local", headers={"If-Match": stale})
    assert code == 412 and body["error"]["reason"] == "PreconditionFailed"
    assert (await api.call("GET", "/compute/local"))[0] == 200
    code, body, _ = await api.call("DELETE", "/compute/local",
                                   headers={"If-Match": headers["ETag"]})
    assert (code, body) == (200, {"name": "local", "connector": "http://127.0.0.1:7051"})
    code, body, _ = await api.call("GET", "/compute/local")
    assert code == 404 and body["error"]["reason"] == "NotFound"
    await add_compute(api)
    code, body, _ = await api.call("DELETE", "/compute/local", headers={"If-Match": "*"})
    assert (code, body["name"]) == (200, "local")
    assert (await api.call("GET", "/compute"))[1] == {}


@pytest.mark.gen_test
async def test_delete_service_with_if_match(api):
    await add_compute(api)
    code, body, headers = await api.call("PUT", "/service/web", {"replicas": {"local": 2}})
    assert code == 201
    version = body["resourceVersion"]
    code, body, _ = await api.call("DELETE", "/service/web",
                                   headers={"If-Match": '"%d"' % (version + 100)})
    assert code == 412 and body["error"]["reason"] == "PreconditionFailed"
    code, body, _ = await api.call("GET", "/service/web")
    assert (body["deleting"], body["resourceVersion"]) == (False, version)
    code, body, headers = await api.call("DELETE", "/service/web",
                                         headers={"If-Match": '"%d"' % version})
    assert code == 202 and body["deleting"] is True and body["generation"] == 2
    assert headers["ETag"] == '"%d"' % body["resourceVersion"] != '"%d"' % version
    code, stored, _ = await api.call("GET", "/service/web")
    assert stored["deleting"] is True and stored["resourceVersion"] == body["resourceVersion"]
    code, body, _ = await api.call("DELETE", "/service/web", headers={"If-Match": "*"})
    assert code == 202 and body["deleting"] is True


@pytest.mark.parametrize("spec, status, used", [
    (None, None, set()),
    ({"replicas": {"a": 2, "b": 0}}, None, {"a"}),
    # Dropped from the spec: used until the reconciler has scaled it to 0 there.
    ({"replicas": {}}, {"computes": {"a": {"desired": 1, "running": 1}}}, {"a"}),
    ({"replicas": {}}, {"computes": {"a": {"desired": 0, "running": 2}}}, {"a"}),
    ({"replicas": {}}, {"computes": {"a": {"desired": 0, "running": 0}}}, set()),
    # Never reported (running null) and nothing wanted: nothing to wait for.
    ({"replicas": {"a": 0}}, {"computes": {"a": {"desired": 0, "running": None}}}, set()),
    (None, {"computes": {"a": {"desired": 3, "running": None}}}, {"a"}),
])
def test_the_computes_a_service_uses(spec, status, used):
    """One rule each: a compute a service uses cannot be deleted."""
    assert computes_used(spec, status) == used
