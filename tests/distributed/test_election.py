"""The election and its fencing, in-process against a real etcd."""

import asyncio
import time

import pytest

from genisys.metrics import Metrics
from genisys.reconciler.leader import LEADER_KEY, Election, NotLeader
from genisys.store import store_from_url
from tests.distributed.conftest import TTL, store_security


class Terms:
    """Stands in for the reconciler: counts the terms started and stopped."""

    def __init__(self):
        self.started = self.stopped = 0

    def __call__(self, leadership):
        terms = self

        class Reconciler:
            class client:
                @staticmethod
                async def aclose():
                    pass

            async def start(self):
                terms.started += 1

            async def stop(self):
                terms.stopped += 1
        return Reconciler()


async def _until(condition, timeout=8 * TTL):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
def store(start_etcd, prefix, etcd_clusters):
    """Factory: a new (unopened) store on a new etcd member, as the controllers would
    have it (over TLS and as their user, when the test runs secure)."""
    url = start_etcd(1).url(prefix)
    return lambda: store_from_url(url, etcd_security=store_security(etcd_clusters))


@pytest.mark.gen_test(timeout=60)
async def test_a_leader_that_wakes_up_after_losing_its_lease_can_write_nothing(store):
    async with store() as one, store() as two:
        stale = Election(one, identity="stale", ttl=TTL, metrics=Metrics())
        assert await stale._campaign()  # leads, and then "pauses": it renews nothing
        fenced = stale.fenced(one)
        await fenced.put("status/web", {"by": "stale"})

        # While it is paused its lease expires (here: is revoked) and another is elected.
        await two.revoke_lease(stale._lease)
        terms = Terms()
        fresh = Election(two, identity="fresh", ttl=TTL, metrics=Metrics())
        await fresh.start(terms)
        try:
            await _until(lambda: fresh.role == "leader")
            assert terms.started == 1

            # It wakes up believing its lease is still good (its clock was paused too).
            stale._valid_until = time.monotonic() + 3600
            stale.check()  # as far as it knows, it leads...
            with pytest.raises(NotLeader):  # ...but etcd refuses its writes
                await fenced.put("status/web", {"by": "stale, late"})
            with pytest.raises(NotLeader):
                await fenced.delete("status/web")
            with pytest.raises(NotLeader):  # a replace is fenced too (as an update)
                await fenced.replace("status/web", {"by": "stale, replaced"})
            assert (await two.get("status/web")).value == {"by": "stale"}
            with pytest.raises(NotLeader):  # and from now on it knows
                stale.check()

            await fresh.fenced(two).put("status/web", {"by": "fresh"})
            assert (await one.get("status/web")).value == {"by": "fresh"}
        finally:
            await fresh.stop()
        assert terms.stopped == 1


@pytest.mark.gen_test(timeout=60)
async def test_a_leader_that_stops_hands_over_at_once(store):
    async with store() as one, store() as two:
        first_terms, second_terms = Terms(), Terms()
        first = Election(one, identity="first", ttl=TTL, metrics=Metrics())
        await first.start(first_terms)
        await _until(lambda: first.role == "leader")
        second = Election(two, identity="second", ttl=TTL, metrics=Metrics())
        await second.start(second_terms)
        try:
            await _until(lambda: second.leader == "first")
            assert second.role == "follower" and second_terms.started == 0
            stopped = time.monotonic()
            await first.stop()  # stops its reconciler, then revokes its lease
            assert first_terms.stopped == 1 and first.role == "follower"
            await _until(lambda: second.role == "leader")
            handover = time.monotonic() - stopped
            print("graceful hand-over: %.2fs (TTL %gs)" % (handover, TTL))
            assert handover < TTL / 2
            assert (await one.get(LEADER_KEY)).value["identity"] == "second"
            assert second.status() == {"role": "leader", "identity": "second",
                                       "leader": "second"}
        finally:
            await second.stop()
