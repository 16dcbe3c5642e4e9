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
def client():
    c = ConnectorClient(connect_timeout=2, request_timeout=0.5, max_in_flight=3)
    yield c
    c.close()


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


@pytest.mark.gen_test(timeout=30)
async def test_calls_queued_behind_a_hung_connector_time_out_too(fake):
    fake.mode = HANG
    client = ConnectorClient(connect_timeout=2, request_timeout=0.3, max_in_flight=1)
    try:
        results = await asyncio.gather(*(client.running(compute(fake), "s%d" % i)
                                         for i in range(5)), return_exceptions=True)
    finally:
        client.close()
    assert all(isinstance(r, ConnectorTimeout) for r in results), results
    assert sum("still in flight" in r.message for r in results) >= 3
    assert fake.most_in_flight == 1
