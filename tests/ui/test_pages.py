"""What /ui answers, without a browser: the pages and static files need no token and
carry the Content-Security-Policy; /ui/summary.json takes the API's tokens and says
what the token may do."""

import pytest

from genisys.api import make_app
from genisys.auth import READ_ONLY, Authenticator, Token
from genisys.connector.client import MAX_BATCH
from genisys.ui import CONTENT_SECURITY_POLICY
from tests.api.client import Api
from tests.support import wait_for

ADMIN = Token("admin", "pages-admin-token-0123456789")
READER = Token("reader", "pages-reader-token-0123456789", READ_ONLY)


@pytest.fixture
def backend():
    return "memory"


@pytest.fixture
def app(intents):
    return make_app(intents, auth=Authenticator([ADMIN, READER]))


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


def bearer(token):
    return {"Authorization": "Bearer " + token.secret}


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize("path, kind", [("/ui", "text/html"), ("/ui/", "text/html"),
                                        ("/ui/service/web", "text/html"),
                                        ("/ui/static/app.js", "javascript"),
                                        ("/ui/static/app.css", "text/css")])
async def test_pages_and_static_files_need_no_token_and_forbid_inline_script(api, path, kind):
    code, body, headers = await api.call("GET", path)
    assert code == 200 and kind in headers["Content-Type"]
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    if kind == "text/html":
        # No data in a page, and no script or style in it either: only the files.
        assert "<script src=\"/ui/static/app.js\" defer></script>" in body
        assert "style=" not in body and "<style" not in body and "onclick" not in body


@pytest.mark.gen_test(timeout=30)
async def test_a_bad_name_in_a_page_path_is_a_400(api):
    code, body, headers = await api.call("GET", "/ui/service/a%3Cb")
    assert code == 400 and "<" not in body and headers["Content-Type"].startswith("text/plain")


@pytest.mark.gen_test(timeout=30)
async def test_the_summary_takes_the_tokens_and_says_what_they_may_do(api):
    code, body, _ = await api.call("GET", "/ui/summary.json")
    assert code == 401 and body["error"]["field"] == "Authorization"
    code, _, _ = await api.call("PUT", "/compute/local", {"connector": "http://127.0.0.1:9"},
                                headers=bearer(ADMIN))
    assert code == 201
    code, body, _ = await api.call("GET", "/ui/summary.json", headers=bearer(READER))
    assert code == 200
    assert body == {"canWrite": False, "services": 0, "token": {"name": "reader",
                                                                "role": "read-only"},
                    "computes": [{"name": "local", "connector": "http://127.0.0.1:9",
                                  "services": 0, "desired": 0, "running": 0,
                                  "capacity": None, "batch": None, "health": None}]}
    code, body, _ = await api.call("GET", "/ui/summary.json", headers=bearer(ADMIN))
    assert body["canWrite"] is True and body["token"] == {"name": "admin", "role": "admin"}


def test_the_summary_shows_what_the_reconciler_learnt_of_each_connector(start_genisys,
                                                                       start_connector):
    """A real genisys and two connectors, one with the batch extension and a capacity,
    one without: the overview says so once the reconciler asked (the batch is what
    genisys sends: the connector takes 1,000 services a call, genisys sends at most
    MAX_BATCH)."""
    batching = start_connector("--capacity", "7", backend="simulated")
    single = start_connector("--no-batch", backend="simulated")
    genisys = start_genisys()
    assert genisys.request("GET", "/ui/summary.json").json()["computes"] == []
    for name, connector in (("batching", batching), ("single", single)):
        r = genisys.request("PUT", "/compute/" + name, json={"connector": connector.url})
        assert r.status_code == 201, r.text
        r = genisys.request("POST", "/service/web/upscale", json={"compute": name})
        assert r.status_code == 202, r.text

    def learnt():
        rows = {c["name"]: (c["batch"], c["capacity"])
                for c in genisys.request("GET", "/ui/summary.json").json()["computes"]}
        return rows if None not in (rows["batching"][0], rows["single"][0]) else None
    seen = wait_for(learnt, timeout=30, message="both connectors asked")
    assert seen == {
        "batching": (MAX_BATCH, 7), "single": (0, None)}, seen
