"""What a buggy or hostile connector can do to genisys, through the client over loopback:
answers read up to a limit and no further, implausible counts refused, error bodies
shown as the one line that matters (issue 19); and what was handled well before
(bad counts, invalid UTF-8, a redirect, a body that trickles forever) stays so."""

import asyncio
import json
import logging

import pytest
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

from genisys.connector import answers
from genisys.connector.client import (
    ConnectorBadResponse,
    ConnectorClient,
    ConnectorError,
    ConnectorTimeout,
    ConnectorUnavailable,
    most_running,
)
from genisys.model import Compute
from tests.reconciler.bad_connectors import MIB, BadConnectors
from tests.reconciler.fake_connector import WRONG_SHAPE, FakeConnector


@pytest.fixture
def client():
    c = ConnectorClient(connect_timeout=2, request_timeout=5, max_in_flight=4,
                        max_replicas=1000)
    yield c
    c.close()


@pytest.fixture
def bad(io_loop):
    connectors = BadConnectors(["big64", "stream1g", "hugecount", "html501", "jsonerror"])
    yield connectors
    io_loop.run_sync(connectors.stop)


@pytest.fixture
def fake(io_loop):
    connector = FakeConnector()
    yield connector
    io_loop.run_sync(connector.stop)


async def eventually(condition, *, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- a size limit on every answer --------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_an_answer_with_a_content_length_over_the_limit_is_refused_from_its_head(
        bad, client):
    with pytest.raises(ConnectorBadResponse) as caught:
        await client.running(Compute("big", bad.urls["big64"]), "web")
    assert caught.value.message == (
        "GET %s/service/web/status: the answer is too large: its body is 67108864 bytes "
        "(Content-Length), over the limit of 1 MiB (connector.max_answer_size)"
        % bad.urls["big64"])
    await eventually(lambda: bad.stats["big64"]["cut"] == 1)
    assert bad.stats["big64"]["completed"] == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_streamed_answer_is_cut_as_soon_as_it_passes_the_limit(bad, client):
    with pytest.raises(ConnectorBadResponse) as caught:
        await client.scale(Compute("stream", bad.urls["stream1g"]), "web", 2)
    message = caught.value.message
    assert message.startswith("POST %s/service/web/scale: the answer is too large: its body "
                              "passed the limit of 1 MiB (connector.max_answer_size): cut "
                              "after " % bad.urls["stream1g"]), message
    assert message.endswith(" bytes")
    seen = int(message.split()[-2])
    assert MIB < seen <= MIB + 64 * 1024  # one chunk of curl's past the limit at most
    await eventually(lambda: bad.stats["stream1g"]["cut"] == 1)
    # Cut long before 1 GiB went over loopback: what the socket buffers hold, at most.
    assert bad.stats["stream1g"]["sent"] < 64 * MIB
    assert bad.stats["stream1g"]["completed"] == 0


@pytest.mark.gen_test(timeout=30)
async def test_the_limit_is_the_clients_setting(fake):
    fake.mode, fake.body = WRONG_SHAPE, json.dumps({"running_resources": 2, "pad": "x" * 5000})
    small = ConnectorClient(connect_timeout=2, request_timeout=5, max_answer_bytes=4096)
    try:
        with pytest.raises(ConnectorBadResponse) as caught:
            await small.running(Compute("local", fake.url), "web")
        assert "over the limit of 4 KiB (connector.max_answer_size)" in caught.value.message
        fake.body = json.dumps({"running_resources": 2, "pad": "x" * 4000})
        assert await small.running(Compute("local", fake.url), "web") == 2
    finally:
        await small.aclose()


class _BatchConnector(tornado.web.RequestHandler):
    """A batch connector whose every entry carries ``pad`` bytes of padding."""

    def initialize(self, pad):
        self.pad = pad

    def get(self):
        self.finish({"batch": {"maxServices": 1000}})

    def post(self):
        names = json.loads(self.request.body)["services"]
        self.finish({"services": {n: {"running_resources": 1, "pad": "x" * self.pad[0]}
                                  for n in names}})


@pytest.mark.gen_test(timeout=60)
async def test_a_batch_answer_may_grow_with_its_services_up_to_a_ceiling(io_loop):
    pad = [3000]
    app = tornado.web.Application([(r"/capabilities", _BatchConnector, {"pad": pad}),
                                   (r"/batch/status", _BatchConnector, {"pad": pad})])
    server = tornado.httpserver.HTTPServer(app)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=2)
    server.add_sockets([sock])
    compute = Compute("batch", "http://127.0.0.1:%d" % sock.getsockname()[1])
    client = ConnectorClient(connect_timeout=2, request_timeout=10)
    try:
        names = ["s%d" % i for i in range(400)]  # 400 x ~3 KiB: 1.2 MiB, under 1 + 1.6 MiB
        counts = await client.running_many(compute, names)
        assert counts == dict.fromkeys(names, 1)
        assert client._batch_answer_limit(400) == MIB + 400 * 4096
        assert client._batch_answer_limit(100000) == 8 * MIB  # the ceiling
        pad[0] = 8000  # 400 x ~8 KiB: 3.1 MiB, over 2.6 MiB
        counts = await client.running_many(compute, names)
        assert {type(c) for c in counts.values()} == {ConnectorBadResponse}
        assert "3217904 bytes (Content-Length), over the limit of 2624 KiB" in counts["s0"].message
    finally:
        await client.aclose()
        server.stop()
        await server.close_all_connections()


# -- implausible counts ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_count_genisys_could_not_have_ordered_is_a_bad_response(bad, client):
    compute = Compute("huge", bad.urls["hugecount"])
    with pytest.raises(ConnectorBadResponse) as caught:
        await client.running(compute, "web")
    assert caught.value.message == (
        "status of web from %s reported 10^30 running, more than genisys could have ordered "
        "(max_replicas 1000; a count above 10100 is taken for a broken connector)"
        % bad.urls["hugecount"])
    with pytest.raises(ConnectorBadResponse) as caught:  # the answer to an order too
        await client.scale(compute, "web", 1)
    assert "scale of web from %s reported 10^30 running" % bad.urls["hugecount"] \
        in caught.value.message


@pytest.mark.gen_test
async def test_the_bound_leaves_room_for_resources_started_by_hand(fake):
    client = ConnectorClient(connect_timeout=2, request_timeout=5, max_replicas=5)
    try:
        assert most_running(5) == 150
        fake.mode = WRONG_SHAPE
        fake.body = '{"running_resources": 150}'
        assert await client.running(Compute("local", fake.url), "web") == 150
        fake.body = '{"running_resources": 151}'
        with pytest.raises(ConnectorBadResponse) as caught:
            await client.running(Compute("local", fake.url), "web")
        assert "reported 151 running" in caught.value.message
        assert "(max_replicas 5; a count above 150" in caught.value.message
        fake.body = '{"running_resources": 12345678901234567}'
        with pytest.raises(ConnectorBadResponse) as caught:
            await client.running(Compute("local", fake.url), "web")
        assert "reported a 17-digit number running" in caught.value.message
    finally:
        await client.aclose()


# -- error bodies that read well ------------------------------------------------------


@pytest.mark.gen_test
async def test_an_html_error_page_is_reduced_to_its_message(bad, client, caplog):
    caplog.set_level(logging.DEBUG, logger="genisys.connector.client")
    with pytest.raises(ConnectorError) as caught:
        await client.running(Compute("bottle", bad.urls["html501"]), "ghost")
    url = "%s/service/ghost/status" % bad.urls["html501"]
    assert caught.value.message == "GET %s: 501 Undefined service: ghost." % url
    assert caught.value.status == 501
    # The whole page is in the debug log, for whoever needs more.
    [record] = [r for r in caplog.records if "answered 501" in r.getMessage()]
    assert "<style type=" in record.getMessage() and "Undefined service: ghost." \
        in record.getMessage()


@pytest.mark.gen_test
async def test_a_json_error_shows_its_message_without_control_characters(bad, client):
    with pytest.raises(ConnectorUnavailable) as caught:
        await client.running(Compute("json", bad.urls["jsonerror"]), "web")
    assert caught.value.message == ("GET %s/service/web/status: 503, the connector is "
                                    "unavailable: the engine [31mis down since 12:00"
                                    % bad.urls["jsonerror"])


@pytest.mark.parametrize("body, content_type, line", [
    (b"<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1>"
     b"</center><hr><center>nginx/1.18.0</center></body></html>", "text/html", "404 Not Found"),
    (b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
     b"<p>The requested URL was not found on the server.</p>\n", "",
     "The requested URL was not found on the server."),
    (b"<html><body><script>alert(1)</script><div>first<br>second</div></body></html>",
     "text/html", "first"),
    (b"<html><body>\n\n</body></html>", "text/html", "<html><body> </body></html>"),
    (b"<html><body><p>a &amp; b &c", "text/html", "a & b &c"),
    # Only the top of a page is parsed: past it, the page is quoted as it is.
    (b"<html><body>" + b"<div>" * 100000 + b"<p>deep", "text/html",
     "<html><body>" + "<div>" * 48 + "<..."),
    (b'{"error": {"reason": "Invalid", "message": "must be at least 0", "field": "number"}}',
     "application/json", "must be at least 0"),
    (b'{"error": {"reason": "DiskFull"}}', "application/json", "DiskFull"),
    (b'{"error": "plain words"}', "application/json", "plain words"),
    (b'{"message": "not the protocol\'s shape"}', "application/json",
     '{"message": "not the protocol\'s shape"}'),
    (b"line one\r\nline\ttwo\x00\x1b\x7f\xc2\x85 \xe2\x80\xae end", "text/plain",
     "line one line two end"),
    (b"\xff\xfe not UTF-8", "", "\ufffd\ufffd not UTF-8"),
    (b"  ", "", "(empty body)"),
    (b"x" * 1000, "", "x" * 253 + "..."),
])
def test_a_body_is_one_readable_line(body, content_type, line):
    assert answers.readable(body, content_type) == line


# -- what was handled well already ------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("body, words", [
    ('{"running_resources": -1}', "running_resources -1, not a count"),
    ('{"running_resources": "3"}', "running_resources '3', not a count"),
    ('{"running_resources": 2.5}', "running_resources 2.5, not a count"),
    (b'{"running_resources": 1, "x": "\xff"}', "is not {\"running_resources\": N}"),
    ('{"running_resources": 1%s}' % ("0" * 5000), "is not {\"running_resources\": N}"),
])
async def test_counts_that_are_not_counts_are_bad_responses(fake, client, body, words):
    fake.mode, fake.body = WRONG_SHAPE, body
    with pytest.raises(ConnectorBadResponse) as caught:
        await client.running(Compute("local", fake.url), "web")
    assert words in caught.value.message


class _Redirect(tornado.web.RequestHandler):
    def initialize(self, to):
        self.to = to

    def get(self, _):
        self.redirect(self.to, status=302)


class _Trickle(tornado.web.RequestHandler):
    async def get(self, _):
        self.write('{"running_resources": ')
        try:
            while True:
                await self.flush()
                await asyncio.sleep(0.05)
                self.write(" ")
        except tornado.iostream.StreamClosedError:
            pass


@pytest.mark.gen_test(timeout=30)
async def test_a_redirect_is_not_followed_and_a_trickle_times_out(fake):
    app = tornado.web.Application([(r"/redirect/(.*)", _Redirect,
                                    {"to": fake.url + "/service/web/status"}),
                                   (r"/trickle/(.*)", _Trickle)])
    server = tornado.httpserver.HTTPServer(app)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=2)
    server.add_sockets([sock])
    base = "http://127.0.0.1:%d" % sock.getsockname()[1]
    client = ConnectorClient(connect_timeout=2, request_timeout=1)
    try:
        with pytest.raises(ConnectorError) as caught:
            await client.running(Compute("r", base + "/redirect"), "web")
        assert caught.value.status == 302
        assert fake.count("status") == 0
        with pytest.raises(ConnectorTimeout) as caught:
            await client.running(Compute("t", base + "/trickle"), "web")
        assert "no answer within 1s" in caught.value.message
    finally:
        await client.aclose()
        server.stop()
        await server.close_all_connections()
