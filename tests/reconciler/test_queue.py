"""The work queue: de-duplication, one worker per key, delays, backoff."""

import asyncio
import random
import sys

import pytest

from genisys.reconciler.queue import Backoff, QueueClosed, WorkQueue


async def work(queue, handle):
    """A worker: ``await handle(key)`` for each key it gets, until the queue closes."""
    while True:
        try:
            key = await queue.get()
        except QueueClosed:
            return
        await handle(key)
        queue.done(key)


def test_backoff_doubles_up_to_the_maximum_with_jitter_below_the_ceiling():
    backoff = Backoff(initial=0.5, maximum=8.0, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    for failures in range(1, 8):
        delays = [backoff.delay(failures) for _ in range(200)]
        ceiling = backoff.ceiling(failures)
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not lock-step
    assert backoff.ceiling(10_000) == 8.0  # no overflow


@pytest.mark.gen_test
async def test_a_key_is_queued_once_however_often_it_is_added():
    queue = WorkQueue()
    for _ in range(100):
        queue.add("web")
    queue.add("api")
    assert len(queue) == 2
    assert await queue.get() == "web"
    assert await queue.get() == "api"
    assert len(queue) == 0


@pytest.mark.gen_test
async def test_a_key_added_while_active_comes_back_once_after_done():
    queue = WorkQueue()
    queue.add("web")
    key = await queue.get()
    queue.add("web")
    queue.add("web")
    assert len(queue) == 0  # not handed to a second worker while active
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "web"
    queue.done("web")
    assert len(queue) == 0


@pytest.mark.gen_test(timeout=30)
async def test_the_same_key_is_never_processed_concurrently():
    queue = WorkQueue()
    active, overlaps, processed = set(), [], []
    keys = ["k%d" % i for i in range(5)]

    async def handle(key):
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(random.random() / 200)
        active.discard(key)
        processed.append(key)

    workers = [asyncio.ensure_future(work(queue, handle)) for _ in range(8)]
    for _ in range(300):
        queue.add(random.choice(keys))
        await asyncio.sleep(random.random() / 1000)
    while len(queue) or any(queue.is_active(k) for k in keys):
        await asyncio.sleep(0.01)
    queue.close()
    await asyncio.gather(*workers)
    assert overlaps == []
    assert set(processed) == set(keys)


@pytest.mark.gen_test
async def test_retry_backs_off_more_each_time_and_forget_resets():
    queue = WorkQueue(backoff=Backoff(initial=0.01, maximum=10.0, rng=random.Random(1)))
    delays = [queue.retry("web") for _ in range(6)]
    ceilings = [0.01 * 2 ** i for i in range(6)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert queue.failures("web") == 6
    queue.forget("web")
    assert queue.failures("web") == 0
    assert queue.retry("web") <= 0.01


@pytest.mark.gen_test
async def test_a_delayed_key_arrives_after_its_delay_unless_added_sooner():
    queue = WorkQueue()
    queue.add_after("late", 0.05)
    queue.add_after("soon", 0.05)
    queue.add_after("soon", 10)  # the earlier time wins
    assert len(queue) == 0 and queue.delayed == 2
    assert {await queue.get(), await queue.get()} == {"late", "soon"}
    queue.add_after("web", 10)
    queue.add("web")  # an immediate add supersedes the delay
    assert queue.delayed == 0 and await queue.get() == "web"


@pytest.mark.gen_test
async def test_close_wakes_waiting_workers_and_drops_delayed_keys():
    queue = WorkQueue()
    queue.add_after("web", 10)
    waiter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    queue.close()
    with pytest.raises(QueueClosed):
        await waiter
    assert queue.delayed == 0



def test_a_ready_key_wakes_one_waiting_worker_not_all_of_them():
    workers_count, keys = 100, ["web", "api", "db"]

    async def scenario():
        queue = WorkQueue()
        got = []

        async def handle(key):
            got.append(key)
        workers = [asyncio.ensure_future(work(queue, handle)) for _ in range(workers_count)]
        await asyncio.sleep(0.01)  # all of them wait in get()
        for key in keys:
            queue.add(key)
            await asyncio.sleep(0.01)  # whoever was woken has looked
        queue.close()
        await asyncio.gather(*workers)
        return got

    # A coroutine's frame is a profiler "call" each time the event loop resumes it.
    calls = [0]
    code = WorkQueue.get.__code__

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code is code:
            calls[0] += 1
    sys.setprofile(profile)
    try:
        got = asyncio.run(scenario())
    finally:
        sys.setprofile(None)
    assert sorted(got) == sorted(keys)
    # Each worker's first call and its wake-up by close(); per key, the woken worker's
    # resumption and its next call. Waking every waiter for each key would add ~300.
    assert calls[0] <= 2 * workers_count + 2 * len(keys), calls[0]


@pytest.mark.gen_test
async def test_a_woken_worker_cancelled_before_it_runs_passes_the_key_on():
    queue = WorkQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    queue.add("web")  # wakes the first waiter...
    first.cancel()  # ...which is cancelled before it could take the key
    assert await asyncio.wait_for(second, 5) == "web"
    assert first.cancelled()
    # A waiter cancelled while still waiting leaves no trace: the next key is served.
    third = asyncio.ensure_future(queue.get())
    fourth = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    third.cancel()
    await asyncio.sleep(0.01)
    queue.done("web")
    queue.add("api")
    assert await asyncio.wait_for(fourth, 5) == "api"
