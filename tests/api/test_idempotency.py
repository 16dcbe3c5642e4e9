"""Idempotency-Key on upscale, downscale and scale: a retry is answered, never re-applied."""

import asyncio
import time

import pytest

from genisys.intents import Idempotency, Intents
from genisys.model import Compute
from tests.api.client import Api


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url, max_clients=60)
    yield client
    client.close()


async def setup(api):
    code, body, _ = await api.call("POST", "/compute", {"name": "local",
                                                        "connector": "http://h:1"})
    assert code == 201, body


def keyed(key):
    return {"Idempotency-Key": key}


async def replicas(api, service="web"):
    return (await api.call("GET", "/service/" + service))[1]["replicas"]


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_upscale_is_answered_from_the_record(api):
    await setup(api)
    code, first, headers = await api.call("POST", "/service/web/upscale", {"compute": "local"},
                                          headers=keyed("retry-1"))
    assert code == 202 and "Idempotent-Replayed" not in headers
    for _ in range(3):
        code, again, headers = await api.call("POST", "/service/web/upscale/",
                                              {"compute": "local"}, headers=keyed("retry-1"))
        assert code == 202 and headers["Idempotent-Replayed"] == "true"
        assert {k: again[k] for k in ("replicas", "generation", "resourceVersion")} == \
            {k: first[k] for k in ("replicas", "generation", "resourceVersion")}
        assert headers["ETag"] == '"%d"' % first["resourceVersion"]
    assert await replicas(api) == {"local": 1}
    code, _, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"},
                                headers=keyed("retry-2"))
    assert code == 202 and await replicas(api) == {"local": 2}


@pytest.mark.gen_test(timeout=60)
async def test_fifty_concurrent_retries_add_exactly_one(api):
    await setup(api)
    answers = await asyncio.gather(*(
        api.call("POST", "/service/web/upscale", {"compute": "local"}, headers=keyed("burst"))
        for _ in range(50)))
    assert {code for code, _, _ in answers} == {202}
    assert len({body["resourceVersion"] for _, body, _ in answers}) == 1
    assert sum("Idempotent-Replayed" not in headers for _, _, headers in answers) == 1
    assert await replicas(api) == {"local": 1}


@pytest.mark.gen_test(timeout=60)
async def test_a_retried_downscale_replays_instead_of_failing_at_zero(api):
    await setup(api)
    await api.call("POST", "/service/web/scale", {"compute": "local", "number": 1})
    for _ in range(2):
        code, body, _ = await api.call("POST", "/service/web/downscale", {"compute": "local"},
                                       headers=keyed("down"))
        assert code == 202 and body["replicas"] == {"local": 0}
    code, body, _ = await api.call("POST", "/service/web/downscale", {"compute": "local"})
    assert code == 409  # without the key it is a new request, and there is nothing left


@pytest.mark.gen_test(timeout=60)
async def test_the_same_key_for_another_request_is_refused(api):
    await setup(api)
    await api.call("POST", "/compute", {"name": "other", "connector": "http://h:2"})
    code, _, _ = await api.call("POST", "/service/web/scale", {"compute": "local", "number": 3},
                                headers=keyed("k"))
    assert code == 202
    before = await replicas(api)
    for method, path, body in (("POST", "/service/web/scale", {"compute": "local", "number": 4}),
                               ("POST", "/service/web/scale", {"compute": "other", "number": 3}),
                               ("POST", "/service/api/scale", {"compute": "local", "number": 3}),
                               ("POST", "/service/web/upscale", {"compute": "local"})):
        code, answer, _ = await api.call(method, path, body, headers=keyed("k"))
        assert code == 422 and answer["error"]["reason"] == "IdempotencyKeyReused", answer
        assert answer["error"]["field"] == "Idempotency-Key"
    assert await replicas(api) == before
    assert (await api.call("GET", "/service/api"))[0] == 404
    # The same JSON written differently is the same request.
    code, _, headers = await api.call("POST", "/service/web/scale",
                                      b'{ "number" : 3, "compute" : "local" }',
                                      headers=keyed("k"))
    assert code == 202 and headers["Idempotent-Replayed"] == "true"


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_a_400(api, key):
    await setup(api)
    code, answer, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"},
                                     headers={"Idempotency-Key": key.encode("utf-8")})
    assert code == 400 and answer["error"]["field"] == "Idempotency-Key"
    assert (await api.call("GET", "/service/web"))[0] == 404


@pytest.mark.gen_test(timeout=60)
async def test_keys_expire(store):
    # Expiry is made by the record's time, not waited for: a loaded machine may take
    # longer than any short TTL between two calls.
    intents = Intents(store, max_replicas=10, idempotency_ttl=3600)
    await intents.create_compute(Compute("local", "http://h:1"))

    def key():
        return Idempotency(key="k", request="same")
    first = key()
    await intents.upscale("web", "local", idempotency=first)
    replay = key()
    await intents.upscale("web", "local", idempotency=replay)
    assert replay.replayed and (await intents.get_service("web"))["replicas"] == {"local": 1}
    await store.update(first.store_key, lambda current: dict(current.value, expires=0))
    fresh = key()
    await intents.upscale("web", "local", idempotency=fresh)  # expired: a new request
    assert not fresh.replayed and (await intents.get_service("web"))["replicas"] == {"local": 2}
    assert await intents.forget_expired_idempotency_keys() == 0  # the new one is good
    assert await intents.forget_expired_idempotency_keys(now=time.time() + 7200) == 1
    assert (await store.list("idempotency/")).records == []
