"""The adaptive limit of calls in flight to one connector (genisys.connector.limit):
its rules one by one, then the ConnectorClient against real loopback connectors
that serve one call at a time, or slow down past a load."""

import asyncio

import pytest

from genisys.connector.client import ConnectorClient
from genisys.connector.limit import AdaptiveLimit
from genisys.model import Compute
from tests.reconciler.fake_connector import FakeConnector


async def started(limit, count):
    return [await limit.acquire(timeout=1.0) for _ in range(count)]


@pytest.mark.gen_test
async def test_it_starts_small_and_doubles_each_round_trip_while_latency_stays_flat():
    limit = AdaptiveLimit(ceiling=100, initial=4)
    for expected in (8, 16, 32):
        calls = await started(limit, int(limit.limit))
        for turn in calls:
            limit.release(turn, seconds=0.020)
        assert limit.limit == expected
    calls = await started(limit, 32)
    for turn in calls:
        limit.release(turn, seconds=0.020)
    assert limit.limit == 64
    calls = await started(limit, 64)
    for turn in calls:
        limit.release(turn, seconds=0.020)
    assert limit.limit == 100  # never past the ceiling


@pytest.mark.gen_test
async def test_rising_latency_shrinks_it_once_per_round_trip_then_it_probes_slowly():
    limit = AdaptiveLimit(ceiling=100, initial=10, backoff=0.8, probe=4)
    calls = await started(limit, 10)
    limit.release(calls[0], seconds=0.020)  # the baseline
    assert limit.limit == 11
    for turn in calls[1:]:  # all started before the decrease: one decrease for them
        limit.release(turn, seconds=0.050)
    assert limit.limit == pytest.approx(8.8)
    # After the first congestion, 1 more every 4 round trips (1/(4 x limit) a sample).
    for _ in range(4):
        for turn in await started(limit, 8):
            limit.release(turn, seconds=0.020)
    assert 9.6 < limit.limit < 9.75


@pytest.mark.gen_test
async def test_a_failure_halves_it_down_to_the_floor_and_an_idle_limit_does_not_grow():
    limit = AdaptiveLimit(ceiling=100, initial=16)
    [turn] = await started(limit, 1)
    limit.release(turn, failed=True)
    assert limit.limit == 8
    for _ in range(10):
        [turn] = await started(limit, 1)
        limit.release(turn, failed=True)
    assert limit.limit == 1
    for _ in range(40):  # one call at a time: a limit of 2 is in use, no more
        [turn] = await started(limit, 1)
        limit.release(turn, seconds=0.020)
    assert 2 <= limit.limit < 2.2


@pytest.mark.gen_test
async def test_a_latency_that_rose_for_good_becomes_the_new_baseline():
    limit = AdaptiveLimit(ceiling=100, initial=4, window=10)
    for turn in await started(limit, 4):
        limit.release(turn, seconds=0.020)
    assert limit.baseline == 0.020
    for _ in range(25):  # the connector is slower now, whatever the load
        [turn] = await started(limit, 1)
        limit.release(turn, seconds=0.100)
    assert limit.baseline == 0.100


@pytest.mark.gen_test
async def test_calls_beyond_the_limit_wait_in_line_and_give_up_only_without_answers():
    limit = AdaptiveLimit(ceiling=2, initial=2)
    first, second = await started(limit, 2)
    waiting = [asyncio.ensure_future(limit.acquire(timeout=0.3)) for _ in range(3)]
    await asyncio.sleep(0.2)
    limit.release(first, seconds=0.2)  # an answer: the first in line goes, the rest wait on
    third = await waiting[0]
    await asyncio.sleep(0.2)  # 0.4s in line, but an answer came 0.2s ago
    assert not waiting[1].done() and not waiting[2].done()
    limit.release(second, failed=True)  # no answer, and the limit halves to 1: nobody goes
    assert limit.limit == 1 and limit.in_flight == 1
    for turn in waiting[1:]:  # and nothing answered for 0.3s
        with pytest.raises(TimeoutError):
            await turn
    limit.release(third, seconds=0.1)
    assert limit.in_flight == 0
    turn = await limit.acquire(timeout=0.3)  # the next call goes at once
    assert (turn.number, turn.load) == (4, 1)


def compute(fake):
    return Compute("local", fake.url)


@pytest.fixture
def fake(io_loop):
    connector = FakeConnector()
    yield connector
    io_loop.run_sync(connector.stop)


@pytest.mark.gen_test(timeout=60)
async def test_a_connector_that_serves_one_call_at_a_time_never_gets_more_than_a_few(fake):
    fake.serial, fake.delay = True, 0.02
    client = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=256)
    try:
        counts = await asyncio.gather(*(client.running(compute(fake), "s%d" % i)
                                        for i in range(150)))
    finally:
        client.close()
    assert counts == [0] * 150
    assert fake.most_in_flight <= 6, fake.loads[:20]  # the first 4, and 1 or 2 more
    assert sum(fake.loads[-100:]) <= 400, fake.loads[-100:]  # 1 or 2; more on a busy machine
    assert client.limit(fake.url).limit < 5


@pytest.mark.gen_test(timeout=60)
async def test_a_connector_whose_latency_doubles_under_load_gets_the_load_where_it_does_not(
        fake):
    fake.delay, fake.slow_above = 0.03, 8
    client = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=256)

    async def caller(i):
        for n in range(30):
            await client.running(compute(fake), "s%d-%d" % (i, n))
    try:
        await asyncio.gather(*(caller(i) for i in range(32)))
    finally:
        client.close()
    settled = sorted(fake.loads[-400:])
    slow = sum(1 for load in settled if load > 8)
    assert 4 <= settled[len(settled) // 2] <= 9, settled
    assert slow < len(settled) // 3, settled
    assert 4 <= client.limit(fake.url).limit <= 10


@pytest.mark.gen_test(timeout=60)
async def test_a_fast_connector_gets_more_calls_than_it_started_with(fake):
    fake.delay = 0.02
    client = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=256)
    try:
        await asyncio.gather(*(client.running(compute(fake), "s%d" % i) for i in range(400)))
    finally:
        client.close()
    assert fake.most_in_flight >= 16
