"""The adaptive limit of calls in flight to one connector (genisys.connector.limit):
its rules one by one, then the ConnectorClient against real loopback connectors
that serve one call at a time, or slow down past a load."""

import asyncio
import time

import pytest

from genisys.connector.client import ConnectorClient
from genisys.connector.limit import AdaptiveLimit, LoopLag
from genisys.model import Compute
from tests.reconciler.fake_connector import FakeConnector


async def started(limit, count):
    return [await limit.acquire() for _ in range(count)]


async def window(limit, seconds):
    """One window's worth of calls (as many as the limit, 8 at least), the limit in
    use: they start as many at a time as it lets, and each takes ``seconds``."""
    left = max(8, int(limit.limit))
    while left:
        calls = await started(limit, min(left, int(limit.limit)))
        for turn in calls:
            limit.release(turn, seconds=seconds)
        left -= len(calls)


async def round_trip(limit, seconds):
    """As many calls as the limit lets, started together, each answered after
    ``seconds``."""
    for turn in await started(limit, int(limit.limit)):
        limit.release(turn, seconds=seconds)


@pytest.mark.gen_test
async def test_it_starts_at_one_and_doubles_each_round_trip_while_latency_stays_flat():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0)
    assert limit.limit == 1
    for expected in (2, 4, 8, 16, 32, 64, 100, 100):  # never past the ceiling
        await round_trip(limit, 0.020)
        assert limit.limit == expected
    assert limit.baseline == 0.020


@pytest.mark.gen_test
async def test_in_slow_start_a_slow_call_does_not_grow_it_and_a_slow_window_ends_it():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0, initial=8)
    await window(limit, 0.020)
    assert limit.limit == 16
    calls = await started(limit, 16)
    for i, turn in enumerate(calls):  # one call in four is slow: the median is not
        limit.release(turn, seconds=0.200 if i % 4 == 0 else 0.021)
    assert limit.limit == 16 + 12
    # The first window of a slow start that ramped into congestion: its median is
    # what the fastest call took many times over, though no baseline was taken yet.
    ramped = AdaptiveLimit(ceiling=100, timeout=1.0)
    await round_trip(ramped, 0.020)
    for _ in range(7):
        await round_trip(ramped, 0.060)
    assert ramped.limit == 2 * 0.8
    await window(ramped, 0.020)  # no more slow start: flat windows add 1/4
    assert ramped.limit == 2 * 0.8 + 0.25


@pytest.mark.gen_test
async def test_the_fastest_call_is_measured_with_the_loop_lag_a_window_without():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0)
    # A busy controller's lag taken too large makes a call look faster than the
    # connector can be; the fastest call, counted lag and all, stays 20 ms.
    [turn] = await started(limit, 1)
    limit.release(turn, seconds=0.020, lag=0.019)
    assert limit.limit == 2
    for _ in range(3):
        await round_trip(limit, 0.020)
    assert limit.limit == 16
    for turn in await started(limit, 16):  # 40 ms measured, 25 of them the loop's
        limit.release(turn, seconds=0.040, lag=0.025)
    assert limit.limit == 32


@pytest.mark.gen_test
async def test_rising_latency_shrinks_it_once_per_window_then_it_probes_slowly():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0, initial=10, backoff=0.8, probe=4)
    await window(limit, 0.020)  # the baseline (and slow start: 20)
    assert limit.limit == 20
    older = await started(limit, 20)
    for turn in older[:12]:
        limit.release(turn, seconds=0.050)
    newer = await started(limit, 12)
    for turn in older[12:]:  # a window of 20 whose median is 2.5 times the baseline
        limit.release(turn, seconds=0.050)
    assert limit.limit == 16
    for turn in newer:  # started before the decrease: they don't count again
        limit.release(turn, seconds=0.050)
    assert limit.limit == 16
    for _ in range(8):  # after the first congestion, 1 more every 4 windows
        await window(limit, 0.020)
    assert limit.limit == 18


@pytest.mark.gen_test
async def test_single_slow_calls_are_noise_not_congestion():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0, initial=16, probe=1)
    [turn] = await started(limit, 1)
    limit.release(turn, failed=True)  # out of slow start, at 8
    await window(limit, 0.020)
    assert limit.limit == 9
    calls = await started(limit, 9)
    for i, turn in enumerate(calls):  # one call in four is slow: the median is not
        limit.release(turn, seconds=0.200 if i % 4 == 0 else 0.021)
    assert limit.limit == 10


@pytest.mark.gen_test
async def test_a_failure_halves_it_down_to_the_floor_and_an_idle_limit_does_not_grow():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0, initial=16)
    [turn] = await started(limit, 1)
    limit.release(turn, failed=True)
    assert limit.limit == 8
    for _ in range(10):
        [turn] = await started(limit, 1)
        limit.release(turn, failed=True)
    assert limit.limit == 1
    for _ in range(2):  # one call at a time: a limit of 2 is in use, no more
        for _ in range(60):
            [turn] = await started(limit, 1)
            limit.release(turn, seconds=0.020)
        assert 2 < limit.limit <= 2.25


@pytest.mark.gen_test
async def test_a_latency_that_rose_for_good_becomes_the_new_baseline():
    limit = AdaptiveLimit(ceiling=100, timeout=1.0, initial=4, history=5)
    await window(limit, 0.020)
    assert limit.baseline == 0.020
    for _ in range(6):  # the connector is slower now, whatever the load
        await window(limit, 0.100)
    assert limit.baseline == 0.100


@pytest.mark.gen_test
async def test_calls_beyond_the_limit_wait_in_line_and_give_up_only_without_answers():
    limit = AdaptiveLimit(ceiling=2, timeout=0.3, initial=2)  # (samples below: < a window)
    first, second = await started(limit, 2)
    waiting = [asyncio.ensure_future(limit.acquire()) for _ in range(3)]
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
    turn = await limit.acquire()  # the next call goes at once
    assert (turn.number, turn.load) == (4, 1)


@pytest.mark.gen_test
async def test_a_line_of_calls_gives_up_together_when_nothing_answers():
    """Ten thousand calls in line, one timer: when the connector answers nothing for
    the timeout, every one of them is told so, and the line is empty."""
    limit = AdaptiveLimit(ceiling=1, timeout=0.2, initial=1)
    [held] = await started(limit, 1)
    waiting = [asyncio.ensure_future(limit.acquire()) for _ in range(10000)]
    await asyncio.sleep(0)
    assert limit.waiting == 10000
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results)
    assert limit.waiting == 0 and limit.in_flight == 1
    limit.release(held, seconds=0.1)
    assert (await limit.acquire()).load == 1


@pytest.mark.gen_test
async def test_a_call_that_timed_out_hands_no_turn_to_the_calls_in_line_since_it_was_sent():
    """The call in flight times out (its release says so, whichever of its timer and
    the line's fires first): the calls in line since it was sent fail with it, rather
    than one taking its turn to find the connector as silent. A call that failed at
    once (refused) hands its turn on."""
    limit = AdaptiveLimit(ceiling=1, timeout=0.2, initial=1)
    [held] = await started(limit, 1)
    await asyncio.sleep(0.1)
    waiting = [asyncio.ensure_future(limit.acquire()) for _ in range(3)]
    await asyncio.sleep(0.12)  # the call's time is up; the line's timer is due at 0.3 s
    limit.release(held, seconds=0.22, failed=True)
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results), results
    assert limit.in_flight == 0

    [refused] = await started(limit, 1)
    later = asyncio.ensure_future(limit.acquire())
    await asyncio.sleep(0)
    limit.release(refused, seconds=0.001, failed=True)
    assert (await later).load == 1


@pytest.mark.gen_test
async def test_the_loop_lag_is_what_a_busy_loop_adds():
    """What the limits take out of each latency: how late the event loop runs its
    callbacks. A loop blocked for 150 ms at a time is seen late by about that much."""
    lag = LoopLag()
    lag.start()
    try:
        for _ in range(6):
            time.sleep(0.15)  # the loop is busy with something else
            await asyncio.sleep(0)  # a moment between two busy spells
        assert lag.seconds > 0.05
    finally:
        lag.stop()


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
        await client.aclose()
    assert counts == [0] * 150
    assert fake.most_in_flight <= 6, fake.loads[:20]  # the first 4, and 1 or 2 more
    assert sum(fake.loads[-100:]) <= 400, fake.loads[-100:]  # 1 or 2; more on a busy machine
    assert client.limit(fake.url).limit < 5


@pytest.mark.gen_test(timeout=60)
async def test_a_connector_whose_latency_doubles_under_load_gets_the_load_where_it_does_not(
        fake):
    # 100 ms a call (200 above 8 in flight): a busy test machine's hiccups of some
    # tens of milliseconds are small beside it.
    fake.delay, fake.slow_above = 0.1, 8
    client = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=256)

    async def caller(i):
        for n in range(20):
            await client.running(compute(fake), "s%d-%d" % (i, n))
    try:
        await asyncio.gather(*(caller(i) for i in range(24)))
    finally:
        await client.aclose()
    settled = sorted(fake.loads[-240:])
    slow = sum(1 for load in settled if load > 8)
    assert 4 <= settled[len(settled) // 2] <= 9, settled
    assert slow < len(settled) // 3, settled
    assert 4 <= client.limit(fake.url).limit <= 11


@pytest.mark.gen_test(timeout=60)
async def test_a_fast_connector_gets_more_calls_than_it_started_with(fake):
    # 100 ms a call, flat however many come at once: the hiccups of a busy test machine
    # (tens of milliseconds) are small beside it. (At 20 ms, they kept the limit at 4 to
    # 7 in loaded runs.)
    fake.delay = 0.1
    client = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=256)
    try:
        await asyncio.gather(*(client.running(compute(fake), "s%d" % i) for i in range(600)))
    finally:
        await client.aclose()
    assert fake.most_in_flight >= 8  # it started with 1
