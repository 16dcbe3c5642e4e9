"""The connector client over real loopback HTTP: errors, connection reuse, bounds."""

import asyncio

import pytest

from genisys.connector.client import (
    ConnectorBadResponse,
    ConnectorClient,
    ConnectorError,
    ConnectorNotFound,
    ConnectorTimeout,
    ConnectorUnreachable,
)
from genisys.model import Compute
from tests.reconciler.fake_connector import (
    ERROR_500,
    GARBAGE,
    HANG,
    NOT_FOUND,
    WRONG_SHAPE,
    FakeConnector,
)
from tests.support import free_port


@pytest.fixture
def fake(io_loop):
    connector = FakeConnector()
    yield connector
    io_loop.run_sync(connector.stop)


@pytest.fixture
def client(io_loop):
    c = ConnectorClient(connect_timeout=2, request_timeout=0.5, max_in_flight=3)
    yield c
    io_loop.run_sync(c.aclose)  # on the loop its connections were made on


def compute(fake):
    return Compute("local", fake.url)


@pytest.mark.gen_test
async def test_status_and_scale_speak_the_protocol_over_kept_alive_connections(fake, client):
    assert await client.running(compute(fake), "web") == 0
    for n in (3, 1, 2):
        await client.scale(compute(fake), "web", n)
    assert await client.running(compute(fake), "web") == 2
    assert fake.scales("web") == [3, 1, 2]
    assert len(fake.peers) == 1  # five calls, one connection


@pytest.mark.gen_test(timeout=30)
async def test_calls_to_one_connector_are_bounded(fake, client):
    fake.delay = 0.05
    await asyncio.gather(*(client.running(compute(fake), "s%d" % i) for i in range(60)))
    assert fake.most_in_flight == 3  # the limit starts at 1 and grows to its ceiling


@pytest.mark.gen_test
@pytest.mark.parametrize("mode, error, words", [
    (ERROR_500, ConnectorError, "500 disk on fire"),
    (NOT_FOUND, ConnectorNotFound, "no such service"),
    (GARBAGE, ConnectorBadResponse, "this is not JSON"),
    (HANG, ConnectorTimeout, "no answer within 0.5s"),
])
async def test_failures_become_the_clients_own_errors(fake, client, mode, error, words):
    fake.mode = mode
    with pytest.raises(error) as caught:
        await client.running(compute(fake), "web")
    assert words in caught.value.message
    assert caught.value.__cause__ is not None or mode in (ERROR_500, NOT_FOUND)


@pytest.mark.gen_test
@pytest.mark.parametrize("body", ['{"running_resources": "3"}', '{"running_resources": -1}',
                                  '{"running_resources": true}', '{"running": 3}', '[3]'])
async def test_a_status_of_the_wrong_shape_is_a_bad_response(fake, client, body):
    fake.mode, fake.body = WRONG_SHAPE, body
    with pytest.raises(ConnectorBadResponse):
        await client.running(compute(fake), "web")


@pytest.mark.gen_test
async def test_nothing_listening_is_unreachable(client):
    with pytest.raises(ConnectorUnreachable) as caught:
        await client.scale(Compute("local", "http://127.0.0.1:%d" % free_port()), "web", 1)
    assert "/service/web/scale" in caught.value.message
    assert caught.value.condition == "Unreachable"


@pytest.mark.gen_test
async def test_a_connector_url_with_a_path_prefix_is_kept(fake, client):
    with pytest.raises(ConnectorNotFound):  # tornado's default 404: the prefix was sent
        await client.running(Compute("local", fake.url + "/agent/"), "web")


@pytest.mark.gen_test
async def test_a_closed_client_sends_nothing_more_and_opens_no_connection(fake, client):
    told = []
    client.on_outcome = lambda *outcome: told.append(outcome)
    assert await client.running(compute(fake), "web") == 0  # and its capabilities asked
    answered = list(told)
    await client.aclose()
    for call in (client.running(compute(fake), "web"), client.scale(compute(fake), "web", 2),
                 client.probe(compute(fake))):
        with pytest.raises(ConnectorUnreachable) as caught:
            await call
        assert "not sent: this connector client is closed" in caught.value.message
    assert client._http is None  # no session was opened again, to be left unclosed
    assert fake.scales("web") == [] and len(fake.peers) == 1
    assert told == answered  # a call after the close is no connector's fault: not counted


@pytest.mark.gen_test(timeout=30)
async def test_calls_queued_behind_a_hung_connector_time_out_too(fake):
    fake.mode = HANG
    client = ConnectorClient(connect_timeout=2, request_timeout=0.3, max_in_flight=1)
    try:
        results = await asyncio.gather(*(client.running(compute(fake), "s%d" % i)
                                         for i in range(5)), return_exceptions=True)
    finally:
        await client.aclose()
    assert all(isinstance(r, ConnectorTimeout) for r in results), results
    assert sum("still in flight" in r.message for r in results) >= 3
    assert fake.most_in_flight == 1


class _Dropping:
    """A connector on a real loopback port that closes the connection of its first
    ``drops`` scale orders unanswered (as one restarted behind a kept-alive connection
    does), then answers each with its count; it has no batch extension (404)."""

    def __init__(self, drops):
        self.drops, self.orders, self.writers = drops, [], set()

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                body = await reader.readexactly(length)
                if head.startswith(b"GET /capabilities "):
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                self.orders.append((head.split(b" ")[0], body))
                if len(self.orders) <= self.drops:
                    break
                answer = b'{"running_resources": 2}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.writers.discard(writer)

    async def stop(self):
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()


@pytest.mark.gen_test(timeout=30)
async def test_an_order_whose_connection_closed_unanswered_is_sent_once_more(client):
    # Every call of the protocol is idempotent (a set-point), so one more try is safe.
    dropping = await _Dropping(drops=1).start()
    try:
        assert await client.scale(Compute("c", dropping.url), "web", 2) == 2
        assert dropping.orders == [(b"POST", b'{"number": 2}')] * 2
    finally:
        await dropping.stop()
    dropping = await _Dropping(drops=5).start()
    try:
        with pytest.raises(ConnectorUnreachable) as caught:
            await client.scale(Compute("c", dropping.url), "web", 2)
        assert caught.value.message == ("POST %s/service/web/scale: the connector closed the "
                                        "connection without an answer" % dropping.url)
        assert len(dropping.orders) == 2  # once more, not again and again
    finally:
        await dropping.stop()


@pytest.mark.gen_test(timeout=30)
async def test_an_order_is_not_sent_again_by_a_leader_deposed_meanwhile(client):
    """The caller's on_sent check runs again before the second try: a controller whose
    leadership lapsed while the first try was lost sends nothing more."""
    class Deposed(Exception):
        pass
    checks = []

    def on_sent():
        checks.append(len(checks))
        if len(checks) > 1:
            raise Deposed()
    dropping = await _Dropping(drops=1).start()
    try:
        with pytest.raises(Deposed):
            await client.scale(Compute("c", dropping.url), "web", 2, on_sent=on_sent)
        assert dropping.orders == [(b"POST", b'{"number": 2}')] and checks == [0, 1]
    finally:
        await dropping.stop()


@pytest.mark.gen_test(timeout=30)
async def test_no_connection_says_why_in_a_line(client):
    port = free_port()
    with pytest.raises(ConnectorUnreachable) as caught:
        await client.running(Compute("c", "http://127.0.0.1:%d" % port), "web")
    assert caught.value.message == ("GET http://127.0.0.1:%d/service/web/status: cannot "
                                    "connect to 127.0.0.1:%d: Connection refused" % (port, port))
