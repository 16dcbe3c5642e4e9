"""Watches (genisys.api.watch): GET /service?watch=1 and GET /service/<name>?watch=1 as
Server-Sent Events over a real HTTP server on a loopback port, on each store backend;
and the pages of GET /service?q=&after=&limit=.

The reconciler does not run here: a test writes a status as it would, in the store."""

import asyncio
import socket

import pytest

from genisys.api import make_app
from genisys.intents import STATUS, service_key, status_key
from genisys.web import Server, drain
from tests.api.client import Api
from tests.api.sse import Stream


@pytest.fixture
def app(intents):
    # Keep-alives every 0.2 s: a test sees one without waiting 15 s.
    return make_app(intents, watch_heartbeat=0.2)


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


@pytest.fixture
def port(http_port):
    return http_port


@pytest.fixture
def streams():
    opened = []

    async def open_stream(port, path, headers=None):
        stream = await Stream(port, path, headers).open()
        opened.append(stream)
        return stream
    yield open_stream
    for stream in opened:
        stream.close()


async def seed(api, *names):
    code, _, _ = await api.call("PUT", "/compute/local", {"connector": "http://127.0.0.1:9"})
    assert code in (200, 201)
    for name in names:
        code, body, _ = await api.call("PUT", "/service/" + name, {"replicas": {"local": 1}})
        assert code == 201, body


def observed(running):
    return {"observedGeneration": 1, "computes": {"local": {
        "desired": 1, "running": running, "condition": "Converged" if running == 1
        else "Progressing", "reason": "" if running == 1 else "Scaling",
        "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z", "failures": 0}}}


@pytest.mark.gen_test(timeout=60)
async def test_the_list_then_each_change_as_it_happens(api, port, streams, intents):
    await seed(api, "api", "web")
    stream = await streams(port, "/service?watch=1")
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream; charset=UTF-8"
    listing = await stream.until("SYNCED")
    assert [(kind, data.get("name")) for kind, _, data in listing] == [
        ("ADDED", "api"), ("ADDED", "web"), ("SYNCED", None)]
    revision = await intents.store.revision()
    assert listing[-1][1] <= revision and listing[-1][2] == {"revision": listing[-1][1]}
    assert listing[1][2]["replicas"] == {"local": 1} and listing[1][2]["status"]["computes"] == {}

    code, _, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"})
    assert code == 202
    kind, rev, data = (await stream.until("MODIFIED"))[-1]
    assert (data["name"], data["replicas"], rev) == ("web", {"local": 2},
                                                     data["resourceVersion"])

    status = await intents.store.put(status_key("web"), observed(1))  # as the reconciler
    kind, rev, data = (await stream.until("MODIFIED"))[-1]
    assert rev == status.version and data["status"]["computes"]["local"]["running"] == 1

    code, _, _ = await api.call("PUT", "/service/db", {"replicas": {"local": 3}})
    assert code == 201
    kind, rev, data = (await stream.until("ADDED"))[-1]
    assert data["name"] == "db" and data["resourceVersion"] == rev

    deleted = await intents.store.delete(service_key("api"))  # as the reconciler, at the end
    assert deleted is not None
    kind, rev, data = (await stream.until("DELETED"))[-1]
    assert data == {"name": "api", "deleted": True, "revision": rev}


@pytest.mark.gen_test(timeout=60)
async def test_q_keeps_to_the_names_that_hold_it(api, port, streams):
    await seed(api, "web-1", "db", "WEB-2")
    stream = await streams(port, "/service?watch=1&q=web")
    listing = await stream.until("SYNCED")
    assert [data.get("name") for _, _, data in listing[:-1]] == ["WEB-2", "web-1"]
    for name in ("db", "web-1"):
        code, _, _ = await api.call("POST", "/service/%s/upscale" % name, {"compute": "local"})
        assert code == 202
    assert [(k, d["name"]) for k, _, d in await stream.until("MODIFIED")] == [
        ("MODIFIED", "web-1")]


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_comes_back_gets_what_it_missed_and_no_listing(
        api, port, streams):
    await seed(api, "web", "db")
    first = await streams(port, "/service?watch=1")
    last_id = (await first.until("SYNCED"))[-1][1]
    first.close()
    code, _, _ = await api.call("POST", "/service/db/upscale", {"compute": "local"})
    assert code == 202
    for header in ({"Last-Event-ID": str(last_id)}, None):
        path = "/service?watch=1" + ("" if header else "&resourceVersion=%d" % last_id)
        again = await streams(port, path, header)
        kind, rev, data = await again.next()
        assert (kind, data["name"], data["replicas"]) == ("MODIFIED", "db", {"local": 2})
        assert rev > last_id


@pytest.mark.gen_test(timeout=120)
async def test_a_resume_point_older_than_the_history_resets_the_client(api, port, streams,
                                                                       intents):
    await seed(api, "web")
    # Past the 1,000 events the in-process stores keep (etcd: its compaction).
    for i in range(1001):
        await intents.store.put(STATUS + "web", observed(i % 2))
    stream = await streams(port, "/service?watch=1&resourceVersion=1")
    messages = await stream.until("SYNCED")
    assert [kind for kind, _, _ in messages] == ["RESET", "ADDED", "SYNCED"]
    assert messages[1][2]["status"]["computes"]["local"]["running"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_keep_alives_while_nothing_changes_and_the_end_after_timeout_seconds(
        api, port, streams):
    await seed(api, "web")
    stream = await streams(port, "/service?watch=1")
    await stream.until("SYNCED")
    assert await stream.next() == ("comment", None, "keep-alive")
    short = await streams(port, "/service?watch=1&timeoutSeconds=0")
    assert [kind for kind, _, _ in await short.until("SYNCED")] == ["ADDED", "SYNCED"]
    assert await short.next() is None  # the answer ended


@pytest.mark.gen_test(timeout=60)
async def test_the_watch_of_one_service_sends_it_whole_with_its_events(api, port, streams,
                                                                        intents):
    await seed(api, "web", "web-2")
    stream = await streams(port, "/service/web?watch=1")
    kind, rev, data = await stream.next()
    assert (kind, data["name"], data["events"]) == ("SERVICE", "web", [])
    await intents.store.put("events/web", {"events": [{
        "time": "2026-01-01T00:00:00Z", "type": "Warning", "reason": "Failed",
        "compute": "local", "message": "<script>alert(1)</script>", "count": 1}]})
    kind, rev, data = await stream.next()
    assert data["events"][0]["message"] == "<script>alert(1)</script>"
    code, _, _ = await api.call("POST", "/service/web-2/upscale", {"compute": "local"})
    assert code == 202  # another service: nothing on this stream
    code, _, _ = await api.call("POST", "/service/web/upscale", {"compute": "local"})
    kind, rev, data = await stream.next()
    assert (kind, data["replicas"]) == ("SERVICE", {"local": 2})
    await intents.store.delete(service_key("web"))
    kind, rev, data = await stream.next()
    assert (kind, data) == ("DELETED", {"name": "web"})
    assert await stream.next() is None
    missing = await streams(port, "/service/nope?watch=1")
    assert missing.status == 404 and missing.json()["error"]["field"] == "service"


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("path, headers, field", [
    ("/service?watch=2", None, "watch"),
    ("/service?watch=1&timeoutSeconds=-1", None, "timeoutSeconds"),
    ("/service?watch=1&timeoutSeconds=86401", None, "timeoutSeconds"),
    ("/service?watch=1&q=%3Cb%3E", None, "q"),
    ("/service?watch=1", {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    ("/service?watch=1&resourceVersion=x", None, "resourceVersion"),
    ("/service?limit=0", None, "limit"),
    ("/service?limit=1001", None, "limit"),
    ("/service?after=a_b", None, "after"),
    ("/service?watch=1&before=-x", None, "before"),
    ("/service?watch=1&watch=1", None, "watch"),
    ("/service/web?watch=yes", None, "watch"),
])
async def test_bad_watch_and_page_arguments_are_refused_by_name(api, port, streams, path,
                                                                headers, field):
    await seed(api, "web")
    stream = await streams(port, path, headers)
    assert stream.status == 400
    assert stream.json()["error"]["reason"] == "Invalid"
    assert stream.json()["error"]["field"] == field


@pytest.mark.gen_test(timeout=60)
async def test_pages_of_services(api):
    await seed(api, "a1", "a2", "b1", "b2", "b3")
    code, body, headers = await api.call("GET", "/service?limit=2")
    assert code == 200 and sorted(body) == ["a1", "a2"]
    assert headers["Genisys-Total"] == "5" and int(headers["Genisys-Revision"]) > 0
    code, body, headers = await api.call("GET", "/service?limit=2&after=a2")
    assert sorted(body) == ["b1", "b2"]
    code, body, headers = await api.call("GET", "/service?q=B&after=b1")
    assert sorted(body) == ["b2", "b3"] and headers["Genisys-Total"] == "3"
    assert body["b2"]["replicas"] == {"local": 1} and "status" in body["b2"]
    code, body, headers = await api.call("GET", "/service?after=a1&before=b2")
    assert sorted(body) == ["a2", "b1"] and headers["Genisys-Total"] == "5"
    code, body, headers = await api.call("GET", "/service")
    assert sorted(body) == ["a1", "a2", "b1", "b2", "b3"] and "Genisys-Total" not in headers


@pytest.mark.gen_test(timeout=60)
async def test_a_watch_of_a_range_of_names(api, port, streams):
    await seed(api, "a1", "a2", "b1", "b2")
    stream = await streams(port, "/service?watch=1&after=a1&before=b2")
    assert [d.get("name") for _, _, d in await stream.until("SYNCED")] == ["a2", "b1", None]
    for name in ("a1", "b2", "a3"):
        code, _, _ = await api.call("POST", "/service/%s/upscale" % name, {"compute": "local"})
        assert code == 202
    assert [(k, d["name"]) for k, _, d in await stream.until("ADDED")] == [("ADDED", "a3")]


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_leaves_ends_its_watch(api, port, streams, app):
    await seed(api, "web")
    stream = await streams(port, "/service?watch=1")
    await stream.until("SYNCED")
    # Being served, but not being answered: a watch open for hours does not make the
    # API look busy to the reconciler (workers.PassGate).
    assert (app.tracker.count, app.tracker.answering) == (1, 0)
    stream.close()
    for _ in range(200):  # the server sees the close at its next keep-alive, or before
        if app.tracker.count == 0:
            break
        await asyncio.sleep(0.05)
    assert (app.tracker.count, app.tracker.streams) == (0, 0)


@pytest.mark.gen_test(timeout=60)
async def test_a_server_that_stops_ends_its_watches_and_drains(intents, streams):
    app = make_app(intents, watch_heartbeat=0.2)
    server = Server(app)  # genisys's own server, which drains
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server.add_socket(sock)
    try:
        await intents.store.put(service_key("web"), {
            "name": "web", "replicas": {}, "generation": 1, "deleting": False})
        stream = await streams(sock.getsockname()[1], "/service?watch=1")
        await stream.until("SYNCED")
        assert app.tracker.count == 1
        # A grace far longer than the test's timeout: only the watch ending lets drain
        # finish in time.
        await drain(server, app.tracker, grace=600)
        assert app.tracker.count == 0
        while (message := await stream.next()) is not None:
            assert message[0] == "comment"
    finally:
        server.stop()
