"""A compute's connector token: stored, sent to the connector, never shown ("set")."""

import json

import pytest

from tests.api.client import Api

SECRET = "connector-secret-0123456789"


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


@pytest.mark.gen_test
async def test_a_token_is_stored_and_only_ever_shown_as_set(api, store):
    answers = []

    async def call(*args):
        answer = await api.call(*args)
        answers.append(answer)
        return answer
    code, body, _ = await call("POST", "/compute", {"name": "sec", "connector": "http://h:1",
                                                    "token": SECRET})
    assert code == 201 and body == {"name": "sec", "connector": "http://h:1", "token": "set"}
    assert (await store.get("computes/sec")).value["token"] == SECRET
    assert (await call("GET", "/compute/sec"))[1]["token"] == "set"
    assert (await call("GET", "/compute"))[1]["sec"]["token"] == "set"
    await call("POST", "/service/web/upscale", {"compute": "sec"})
    await call("GET", "/service/web")
    await call("GET", "/audit")
    await call("GET", "/openapi.json")

    # PUT replaces the whole compute: without a token, it has none any more.
    code, body, _ = await call("PUT", "/compute/sec", {"connector": "http://h:2"})
    assert code == 200 and "token" not in body
    assert "token" not in (await store.get("computes/sec")).value
    code, body, _ = await call("PUT", "/compute/sec", {"connector": "http://h:2",
                                                       "token": SECRET})
    assert body["token"] == "set"
    code, body, _ = await call("PUT", "/compute/sec", {"connector": "http://h:2", "token": None})
    assert code == 200 and "token" not in body
    assert SECRET not in json.dumps([a[1] for a in answers] + [dict(a[2]) for a in answers])


@pytest.mark.gen_test
@pytest.mark.parametrize("token, words", [
    ("short", "8 to 4096 visible ASCII characters (got 5 characters)"),
    ("set", "(got 3 characters)"),
    ("has a space in it", "visible ASCII"),
    ("x" * 4097, "(got 4097 characters)"),
    (12345678, "must be a string, got integer"),
    (["connector-secret-0123456789"], "must be a string"),
])
async def test_bad_tokens_are_refused_without_being_quoted(api, store, token, words):
    code, body, _ = await api.call("POST", "/compute", {"name": "sec", "connector": "http://h:1",
                                                        "token": token})
    assert code == 400 and body["error"]["field"] == "token", body
    assert words in body["error"]["message"]
    if isinstance(token, str) and len(token) > 3:
        assert token not in body["error"]["message"]
    assert await store.get("computes/sec") is None
