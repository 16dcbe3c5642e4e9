"""What /ui answers, without a browser: the pages and static files need no token and
carry the Content-Security-Policy; /ui/summary.json takes the API's tokens and says
what the token may do."""

import pytest

from genisys.api import make_app
from genisys.auth import READ_ONLY, Authenticator, Token
from genisys.ui import CONTENT_SECURITY_POLICY
from tests.api.client import Api

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
                                  "capacity": None, "health": None}]}
    code, body, _ = await api.call("GET", "/ui/summary.json", headers=bearer(ADMIN))
    assert body["canWrite"] is True and body["token"] == {"name": "admin", "role": "admin"}
