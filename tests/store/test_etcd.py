"""What only the etcd backend promises: URLs, prefixes, several clients, compaction,
resumed watches, member fail-over, big batches and leases. Real etcd processes."""

import asyncio
import base64

import pytest
import requests

from genisys.errors import ConfigError, StoreUnavailable
from genisys.store import Compacted, Op, store_from_url, validate_store_url
from genisys.store.etcd import DEFAULT_PREFIX, MAX_TXN_OPS, parse_location
from genisys.store.etcd_client import Endpoint
from tests.etcd import EtcdCluster, etcd_binary, unique_prefix
from tests.support import free_port, wait_for


@pytest.fixture
def etcd(etcd_for_stores):
    return etcd_for_stores()


@pytest.fixture
def open_store(etcd, io_loop):
    """Factory: an open store on the shared etcd (by default under a fresh prefix)."""
    stores = []

    async def open_(url=None):
        store = store_from_url(url or etcd.url(unique_prefix()))
        await store.open()
        stores.append(store)
        return store
    yield open_
    for store in stores:
        io_loop.run_sync(store.close)


async def _next(watch, timeout=10):
    return await asyncio.wait_for(watch.__anext__(), timeout)


def test_urls():
    assert parse_location("127.0.0.1:2379") == ([Endpoint("127.0.0.1", 2379)], DEFAULT_PREFIX)
    assert parse_location("a:1,b:2/prod/") == ([Endpoint("a", 1), Endpoint("b", 2)], "prod/")
    assert parse_location("[::1]:2379,etcd-2") == ([Endpoint("::1", 2379),
                                                    Endpoint("etcd-2", 2379)], DEFAULT_PREFIX)
    assert validate_store_url("etcd://h:1,h:2/x") == ("etcd", "h:1,h:2/x")
    for bad, why in [("etcd://", "no etcd member"), ("etcd://h:99999", "port"),
                     ("etcd://h:1,,h:2", "empty member"), ("etcd://h:1/", "prefix"),
                     ("etcd://h:x", "port"), ("etcd://h:1/a b", "prefix")]:
        with pytest.raises(ConfigError) as info:
            validate_store_url(bad)
        assert why in str(info.value) and "etcd://host:port" in str(info.value), bad


@pytest.mark.gen_test
async def test_unreachable_members_at_open_are_a_clear_error():
    ports = [free_port(), free_port()]
    store = store_from_url("etcd://127.0.0.1:%d,127.0.0.1:%d" % tuple(ports))
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    for port in ports:
        assert "127.0.0.1:%d" % port in str(info.value)


@pytest.mark.gen_test
async def test_prefixes_keep_installations_apart(open_store, etcd):
    one = await open_store(etcd.url("team-one-" + unique_prefix()))
    two = await open_store(etcd.url("team-two-" + unique_prefix()))
    await one.put("services/web", {"n": 1})
    await two.put("services/web", {"n": 2})
    assert [r.value for r in (await one.list("")).records] == [{"n": 1}]
    assert [r.value for r in (await two.list("")).records] == [{"n": 2}]
    assert await one.count("") == 1


@pytest.mark.gen_test(timeout=60)
async def test_two_clients_on_one_prefix_share_everything(open_store, etcd):
    """Two stores stand for two controllers: each sees the other's writes and watches,
    and their concurrent compare-and-swap updates add up exactly."""
    url = etcd.url(unique_prefix())
    one, two = await open_store(url), await open_store(url)

    def bump(current):
        return {"n": (current.value["n"] if current else 0) + 1}
    async with two.watch("counters/") as watch:
        await asyncio.gather(*[store.update("counters/c", bump)
                               for _ in range(100) for store in (one, two)])
        assert (await one.get("counters/c")).value == {"n": 200}
        assert (await two.get("counters/c")).value == {"n": 200}
        values = [(await _next(watch)).record.value["n"] for _ in range(200)]
    assert values == list(range(1, 201))


@pytest.mark.gen_test
async def test_a_watch_of_compacted_history_says_compacted(open_store, etcd):
    store = await open_store()
    first = await store.put("k/a", {"v": 1})
    await store.put("k/a", {"v": 2})
    last = await store.put("k/a", {"v": 3})
    r = requests.post(etcd.members[0].client_url + "/v3/kv/compaction",
                      json={"revision": str(last.version)}, timeout=5)
    assert r.status_code == 200, r.text
    watch = store.watch("k/", start_revision=first.version)
    with pytest.raises(Compacted):
        await _next(watch)
    watch.close()
    # From the compaction on, history is there.
    async with store.watch("k/", start_revision=last.version) as watch:
        await store.put("k/a", {"v": 4})
        assert (await _next(watch)).record.value == {"v": 4}


@pytest.mark.gen_test(timeout=60)
async def test_a_broken_watch_resumes_from_the_last_revision_it_delivered(tmp_path):
    etcd_binary()
    cluster = EtcdCluster(1, workdir=str(tmp_path / "etcd")).start()
    try:
        member = cluster.members[0]
        store = store_from_url(cluster.url("resume"))
        await store.open()
        try:
            async with store.watch("k/") as watch:
                await store.put("k/a", {"v": 1})
                assert (await _next(watch)).key == "k/a"
                member.kill()
                initial = ",".join("%s=%s" % (m.name, m.peer_url) for m in cluster.members)
                member.start(initial)  # the same data, the same ports
                wait_for(member.healthy, timeout=30, message="etcd back")
                # Written by someone else while the watch may still be reconnecting.
                for key in ("k/b", "k/c"):
                    requests.post(member.client_url + "/v3/kv/put", timeout=5, json={
                        "key": _b64(store.prefix + key), "value": _b64('{"v":2}')})
                keys = [(await _next(watch, 30)).key for _ in range(2)]
            assert keys == ["k/b", "k/c"]
        finally:
            await store.close()
    finally:
        cluster.stop()


def _b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.mark.gen_test
async def test_a_dead_first_member_is_passed_over(open_store, etcd):
    dead = "127.0.0.1:%d" % free_port()
    url = "etcd://%s,%s/%s" % (dead, etcd.members[0].endpoint, unique_prefix())
    store = await open_store(url)
    await store.put("k/a", {"v": 1})
    assert (await store.get("k/a")).value == {"v": 1}
    assert str(store._client.current) == etcd.members[0].endpoint


@pytest.mark.gen_test(timeout=60)
async def test_big_batches_of_blind_writes_go_through(open_store):
    store = await open_store()
    count = MAX_TXN_OPS * 2 + 44
    written = await store.transaction([Op.put("audit/%04d" % i, {"i": i}) for i in range(count)])
    assert len(written) == count and await store.count("audit/") == count
    deleted = await store.transaction([Op.delete("audit/%04d" % i) for i in range(count)])
    assert [r.value["i"] for r in deleted] == list(range(count))
    assert await store.count("audit/") == 0


@pytest.mark.gen_test
async def test_a_conditional_transaction_over_too_many_keys_is_refused_clearly(open_store):
    store = await open_store()
    with pytest.raises(StoreUnavailable) as info:
        await store.transaction([Op.put("k/%d" % i, {}, expect_version=0)
                                 for i in range(MAX_TXN_OPS + 1)])
    assert "more than etcd takes at once" in str(info.value)
    assert await store.count("k/") == 0


@pytest.mark.gen_test
async def test_list_reads_page_by_page_at_one_revision(open_store, monkeypatch):
    from genisys.store import etcd as etcd_module
    monkeypatch.setattr(etcd_module, "LIST_PAGE", 7)
    store = await open_store()
    await store.transaction([Op.put("k/%03d" % i, {"i": i}) for i in range(50)])
    listing = await store.list("k/")
    assert [r.value["i"] for r in listing.records] == list(range(50))
    assert listing.revision == await store.revision()


@pytest.mark.gen_test
async def test_leases(open_store):
    store = await open_store()
    lease, ttl = await store.grant_lease(5)
    assert ttl == 5
    won, record = await store.create_with_lease("leader/x", {"identity": "a"}, lease)
    assert won and record.version == (await store.get("leader/x")).version
    other, _ = await store.grant_lease(5)
    won, holder = await store.create_with_lease("leader/x", {"identity": "b"}, other)
    assert not won and holder.value == {"identity": "a"}
    assert await store.keep_alive(lease) == 5
    await store.revoke_lease(lease)
    assert await store.get("leader/x") is None, "revoking the lease deletes its keys"
    assert await store.keep_alive(lease) == 0
    await store.revoke_lease(lease)  # already gone: harmless
    await store.revoke_lease(other)
