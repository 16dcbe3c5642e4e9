"""Group commit on etcd (genisys/store/etcd_batch.py), against real etcd members: the
transactions sent together come back each with its own answer, as if sent alone, and
never as an outcome that sending them one by one could not have had."""

import asyncio
import base64
import contextlib
import json

import pytest

from genisys.errors import StoreUnavailable, VersionMismatch
from genisys.store.base import Condition, Op
from genisys.store.etcd import EtcdStore, parse_location
from genisys.store.etcd_client import EtcdError
from tests.etcd import EtcdCluster, unique_prefix
from tests.reconciler.conftest import eventually

on_etcd = pytest.mark.parametrize("backend", ["etcd"])


def batches_sent(store):
    """The bodies of the /v3/kv/txn calls ``store`` makes from now on, decoded."""
    sent = []
    call = store._client.call

    async def counted(path, body, **kwargs):
        if path == "/v3/kv/txn":
            sent.append(json.loads(body) if isinstance(body, bytes) else body)
        return await call(path, body, **kwargs)
    store._client.call = counted
    return sent


def nested(body):
    """How many transactions a call carried (a batch nests them)."""
    success = body.get("success") or []
    if not body.get("compare") and success and all("request_txn" in r for r in success):
        return len(success)
    return 1


@pytest.mark.gen_test
@on_etcd
async def test_etcd_writes_made_together_leave_in_one_call_each_with_its_own_answer(store):
    sent = batches_sent(store)
    records = await asyncio.gather(*(store.put("k/%02d" % i, {"n": i}, expect_version=0)
                                     for i in range(40)))
    assert [nested(body) for body in sent] == [40]
    # One etcd transaction: one revision for all, each key with its own value.
    assert len({record.version for record in records}) == 1
    for i, record in enumerate(records):
        assert (record.key, record.value) == ("k/%02d" % i, {"n": i})
        assert await store.get(record.key) == record
    # Each refusal is its own: a key that exists refuses only the write that expected
    # it absent, and says which key.
    sent.clear()
    outcomes = await asyncio.gather(
        store.put("k/00", {"n": "again"}, expect_version=0),
        store.put("k/new", {"n": "new"}, expect_version=0), return_exceptions=True)
    assert [nested(body) for body in sent][0] == 2
    assert isinstance(outcomes[0], VersionMismatch) and outcomes[0].field == "k/00"
    assert outcomes[1].value == {"n": "new"}
    assert (await store.get("k/00")).value == {"n": 0}


@pytest.mark.gen_test
@on_etcd
async def test_etcd_blind_writes_made_together_leave_together(store):
    """Puts and deletes that expect nothing (the audit trail's batches, and its trimming)
    leave with the transactions on their way, not in a call each, and each gets its own
    answer: its value at the batch's revision, or the record it deleted."""
    await store.put("k/gone", {"n": "old"})
    sent = batches_sent(store)
    results = await asyncio.gather(
        *(store.put("k/%02d" % i, {"n": i}) for i in range(10)), store.delete("k/gone"),
        store.transaction([Op.put("k/t1", {"n": "t1"}), Op.put("k/t2", {"n": "t2"})]))
    assert [nested(body) for body in sent] == [12]
    revision = results[0].version
    for i, record in enumerate(results[:10]):
        assert (record.key, record.value, record.version) == ("k/%02d" % i, {"n": i}, revision)
        assert await store.get(record.key) == record
    assert results[10].value == {"n": "old"} and await store.get("k/gone") is None
    assert [r.value for r in results[11]] == [{"n": "t1"}, {"n": "t2"}]


@pytest.mark.gen_test
@on_etcd
async def test_etcd_never_batches_a_write_with_one_that_reads_what_it_writes(store):
    """Write skew: each write needs the other's key absent. Sent one by one, exactly one
    of them can land. etcd decides the comparisons of a batch on the store as it was
    before it, so in one batch both would: they must leave apart."""
    for round_ in range(5):
        x, y = "k/x%d" % round_, "k/y%d" % round_
        sent = batches_sent(store)
        outcomes = await asyncio.gather(
            store.put(x, {"v": 1}, expect_version=0, conditions=[Condition.version(y, 0)]),
            store.put(y, {"v": 1}, expect_version=0, conditions=[Condition.version(x, 0)]),
            return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, VersionMismatch)]
        assert len(refused) == 1, outcomes
        assert [await store.get(k) is None for k in (x, y)].count(False) == 1
        assert all(nested(body) == 1 for body in sent)


@pytest.mark.gen_test
@on_etcd
async def test_etcd_never_batches_writes_under_a_prefix_another_write_watches(store):
    """A compute is created only if no compute changed since the count that let it in
    (max_computes: a condition on the computes' prefix). Two creations sent one by one:
    the second is refused. In one batch, both would land."""
    seen = await store.put("computes/a", {"n": 1})
    sent = batches_sent(store)
    outcomes = await asyncio.gather(*(
        store.put("computes/" + name, {"n": 1}, expect_version=0,
                  conditions=[Condition.unchanged("computes/", seen.version)])
        for name in ("b", "c")), store.put("elsewhere", {"n": 1}, expect_version=0),
        return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, VersionMismatch)]
    assert len(refused) == 1 and refused[0].field == "computes/", outcomes
    assert len((await store.list("computes/")).records) == 2
    # The write elsewhere went with the first of them.
    assert [nested(body) for body in sent][:2] == [2, 1]


@pytest.mark.gen_test
@on_etcd
async def test_etcd_a_batch_refused_whole_is_sent_again_one_by_one(store):
    """etcd refuses a batch if one of its transactions is bad (here one that puts a key
    twice): nothing of it was applied, so each goes again alone and gets its own answer."""
    batcher = store._batches[False]
    key = base64.b64encode((store.prefix + "k/bad").encode()).decode()

    def put(name):
        full = base64.b64encode((store.prefix + name).encode()).decode()
        return {"success": [{"request_put": {"key": full, "value": base64.b64encode(
            b"{}").decode()}}]}
    bad = {"success": [{"request_put": {"key": key, "value": ""}},
                       {"request_put": {"key": key, "value": ""}}]}
    sent = batches_sent(store)
    outcomes = await asyncio.gather(batcher.txn(put("k/a"), retry_sent=False),
                                    batcher.txn(bad, retry_sent=False),
                                    batcher.txn(put("k/b"), retry_sent=False),
                                    return_exceptions=True)
    assert [nested(body) for body in sent] == [3, 1, 1, 1]
    assert outcomes[0]["succeeded"] and outcomes[2]["succeeded"]
    assert isinstance(outcomes[1], EtcdError) and "duplicate key" in str(outcomes[1])
    assert await store.get("k/bad") is None
    assert await store.get("k/a") is not None and await store.get("k/b") is not None


@pytest.fixture
def own_etcd(tmp_path):
    """A member of its own, to stall (SIGSTOP) without stalling the other tests."""
    cluster = EtcdCluster(1, str(tmp_path / "etcd")).start()
    yield cluster
    cluster.stop()


async def open_store(cluster, *, timeout):
    endpoints, prefix = parse_location(cluster.url(unique_prefix())[len("etcd://"):])
    store = EtcdStore(endpoints, prefix, timeout=timeout)
    await store.open()
    return store


@contextlib.contextmanager
def stalled(cluster):
    """The cluster's only member stopped (SIGSTOP) for the block, then resumed."""
    member = cluster.members[0]
    member.pause()
    try:
        yield
    finally:
        member.resume()


@pytest.mark.gen_test(timeout=60)
async def test_etcd_a_batch_with_no_answer_fails_each_write_as_maybe_done(own_etcd):
    """A member that stops answering: every write of the batch on its way fails as a
    lone one would (it may or may not have happened), and they happened all or none."""
    store = await open_store(own_etcd, timeout=1.0)
    try:
        with stalled(own_etcd):
            outcomes = await asyncio.gather(
                *(store.put("k/%d" % i, {"n": i}, expect_version=0) for i in range(5)),
                return_exceptions=True)
        for outcome in outcomes:
            assert isinstance(outcome, StoreUnavailable)
            assert "may or may not have happened" in str(outcome)
        landed = [await store.get("k/%d" % i) for i in range(5)]
        assert len({record is None for record in landed}) == 1
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_etcd_a_write_given_up_before_it_left_is_never_sent(own_etcd):
    """Two batches on their way (the most at once) to a stalled member; a third write,
    queued behind them, is cancelled by its caller: it never reaches etcd."""
    store = await open_store(own_etcd, timeout=30.0)
    try:
        batcher = store._batches[False]
        with stalled(own_etcd):
            first = [asyncio.ensure_future(store.put("k/first%d" % i, {}, expect_version=0))
                     for i in range(2)]
            await eventually(lambda: len(batcher._sending) == 1)
            second = asyncio.ensure_future(store.put("k/second", {}, expect_version=0))
            await eventually(lambda: len(batcher._sending) == 2)
            given_up = asyncio.ensure_future(store.put("k/given-up", {}, expect_version=0))
            await eventually(lambda: len(batcher._queue) == 1)
            given_up.cancel()
        await asyncio.gather(*first, second)
        with pytest.raises(asyncio.CancelledError):
            await given_up
        assert batcher.transactions == 3
        assert await store.get("k/given-up") is None
        assert all([await store.get(k) for k in ("k/first0", "k/first1", "k/second")])
    finally:
        await store.close()


@pytest.mark.gen_test(timeout=60)
async def test_etcd_writes_waiting_to_leave_fail_when_the_store_closes(own_etcd):
    store = await open_store(own_etcd, timeout=30.0)
    batcher = store._batches[False]
    # One batch at a time: what comes after the first waits in the queue, however the
    # writes happen to be batched.
    batcher.in_flight = 1
    with stalled(own_etcd):
        writes = [asyncio.ensure_future(store.put("k/%d" % i, {}, expect_version=0))
                  for i in range(2)]
        await eventually(lambda: batcher._sending or any(w.done() for w in writes))
        # Nothing answers a stopped member: a write that ended already says why here.
        assert [w.exception() for w in writes if w.done()] == []
        queued = len(batcher._queue)
        waiting = asyncio.ensure_future(store.put("k/waiting", {}, expect_version=0))
        await eventually(lambda: len(batcher._queue) > queued or waiting.done())
        await store.close()
        for write in writes + [waiting]:
            with pytest.raises(StoreUnavailable, match="closed"):
                await write
