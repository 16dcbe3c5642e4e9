"""The audit trail: every mutating request, granted or refused, with who, what and when."""

import pytest

from genisys.api import make_app
from genisys.audit import AuditLog
from genisys.auth import ADMIN, READ_ONLY, Authenticator, Token
from tests.api.client import Api

ADMIN_TOKEN = Token("ops", "admin-secret-0123456789", ADMIN)
READER_TOKEN = Token("dashboard", "reader-secret-0123456789", READ_ONLY)


@pytest.fixture
def app(intents):
    return make_app(intents, auth=Authenticator([ADMIN_TOKEN, READER_TOKEN]))


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


def as_(token):
    return {"Authorization": "Bearer " + token.secret}


@pytest.mark.gen_test(timeout=60)
async def test_every_change_asked_for_is_in_the_trail(api):
    calls = [
        (ADMIN_TOKEN, "POST", "/compute", {"name": "local", "connector": "http://h:1"}, 201),
        (ADMIN_TOKEN, "POST", "/service/web/upscale", {"compute": "local"}, 202),
        (ADMIN_TOKEN, "POST", "/service/web/downscale", {"compute": "nope"}, 404),
        (READER_TOKEN, "DELETE", "/compute/local", None, 403),
        (None, "PUT", "/compute/local", {"connector": "http://evil:1"}, 401),
        (READER_TOKEN, "GET", "/service/web", None, 200),  # reads are not audited
        (ADMIN_TOKEN, "DELETE", "/service/web", None, 202),
    ]
    for token, method, path, body, expected in calls:
        code, answer, _ = await api.call(method, path, body, headers=as_(token) if token else {})
        assert code == expected, answer

    code, trail, _ = await api.call("GET", "/audit", headers=as_(READER_TOKEN))
    assert code == 200
    assert [(e["who"], e["method"], e["path"], e["status"]) for e in trail] == [
        ("ops", "DELETE", "/service/web", 202),
        ("anonymous", "PUT", "/compute/local", 401),
        ("dashboard", "DELETE", "/compute/local", 403),
        ("ops", "POST", "/service/web/downscale", 404),
        ("ops", "POST", "/service/web/upscale", 202),
        ("ops", "POST", "/compute", 201),
    ]
    assert trail[1]["reason"] == "Unauthorized" and trail[3]["reason"] == "NotFound"
    assert all(e["time"].endswith("Z") for e in trail)
    code, newest, _ = await api.call("GET", "/audit?limit=2", headers=as_(ADMIN_TOKEN))
    assert newest == trail[:2]
    for bad in ("0", "1001", "x", "-1"):
        code, answer, _ = await api.call("GET", "/audit?limit=" + bad, headers=as_(ADMIN_TOKEN))
        assert code == 400 and answer["error"]["field"] == "limit"
    assert (await api.call("GET", "/audit"))[0] == 401


@pytest.mark.gen_test(timeout=60)
async def test_the_trail_keeps_the_newest(store):
    audit = AuditLog(store, keep=5)
    for i in range(12):
        audit.record(who="ops", method="POST", path="/p/%d" % i, status=202)
        await audit.flush()
    entries = await audit.entries(100)
    assert len((await store.list("audit/")).records) <= 6
    assert [e["path"] for e in entries][:5] == ["/p/%d" % i for i in range(11, 6, -1)]


@pytest.mark.gen_test(timeout=60)
async def test_a_burst_is_one_record_and_the_trail_keeps_whole_batches(store):
    audit = AuditLog(store, keep=5)
    for batch in range(5):  # five flushes of three entries: five records, not fifteen
        for i in range(3):
            audit.record(who="ops", method="POST", path="/p/%d-%d" % (batch, i), status=202)
        await audit.flush()
        if batch == 0:
            [record] = (await store.list("audit/")).records
            assert [e["path"] for e in record.value["entries"]] == ["/p/0-0", "/p/0-1",
                                                                   "/p/0-2"]
    # 15 entries is more than 5 and a tenth: the oldest batches go while 5 are left.
    assert len((await store.list("audit/")).records) == 2
    assert [e["path"] for e in await audit.entries(100)] == [
        "/p/4-2", "/p/4-1", "/p/4-0", "/p/3-2", "/p/3-1", "/p/3-0"]
    assert [e["path"] for e in await audit.entries(4)] == [
        "/p/4-2", "/p/4-1", "/p/4-0", "/p/3-2"]


@pytest.mark.gen_test(timeout=60)
async def test_entries_written_one_by_one_before_batches_are_read_and_trimmed_too(store):
    for i in range(3):  # the trail of an older genisys: one record per entry
        await store.put("audit/%020d-%06d" % (i + 1, i + 1), {
            "time": "2026-11-01T00:00:0%dZ" % i, "who": "ops", "method": "PUT",
            "path": "/old/%d" % i, "status": 200})
    audit = AuditLog(store, keep=4)
    for i in range(2):
        audit.record(who="ops", method="POST", path="/new/%d" % i, status=202)
    await audit.flush()  # 5 held, keep 4: the oldest record goes
    assert [e["path"] for e in await audit.entries(100)] == [
        "/new/1", "/new/0", "/old/2", "/old/1"]
    audit.record(who="ops", method="POST", path="/new/2", status=202)
    await audit.flush()
    assert [e["path"] for e in await audit.entries(100)] == [
        "/new/2", "/new/1", "/new/0", "/old/2"]
    assert len((await store.list("audit/")).records) == 3
