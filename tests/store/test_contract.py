"""The store contract, written once and run against every backend."""

import asyncio
import datetime

import pytest

from genisys.errors import GenisysError, StoreUnavailable, VersionMismatch
from genisys.store import DELETE, Compacted, Condition, Op


@pytest.mark.gen_test
async def test_get_missing_is_none(store):
    assert await store.get("computes/nope") is None


@pytest.mark.gen_test
async def test_put_then_get_round_trips_and_versions_grow(store):
    first = await store.put("computes/a", {"name": "a", "n": [1, 2, {"x": None}]})
    assert first.version > 0
    assert (await store.get("computes/a")) == first
    second = await store.put("computes/b", {"name": "b"})
    third = await store.put("computes/a", {"name": "a", "n": 2})
    assert first.version < second.version < third.version
    assert (await store.get("computes/a")).value == {"name": "a", "n": 2}
    assert await store.revision() == third.version


@pytest.mark.gen_test
async def test_returned_values_are_copies(store):
    await store.put("k/a", {"list": [1]})
    record = await store.get("k/a")
    record.value["list"].append(2)
    assert (await store.get("k/a")).value == {"list": [1]}


@pytest.mark.gen_test
async def test_get_many_reads_each_key_in_order(store):
    a = await store.put("k/a", {"v": 1})
    b = await store.put("k/b", {"v": 2})
    assert await store.get_many(["k/b", "k/none", "k/a"]) == [b, None, a]
    assert await store.get_many(["k/a", "k/b", "k/a"]) == [a, b, a]
    assert await store.get_many([]) == []


@pytest.mark.gen_test
async def test_transaction_then_read_reads_after_the_write(store):
    status = await store.put("k/status", {"s": 1})
    results, records = await store.transaction_then_read(
        [Op.update("k/spec", lambda r: {"n": 1})], ["k/status", "k/spec", "k/none"])
    assert results[0].value == {"n": 1}
    assert records == [status, results[0], None]
    # Nothing to write (the same value): still read.
    results, records = await store.transaction_then_read(
        [Op.update("k/spec", lambda r: {"n": 1})], ["k/spec"])
    assert records == results
    # Refused: nothing written, the error raised.
    with pytest.raises(VersionMismatch):
        await store.transaction_then_read([Op.put("k/spec", {"n": 2}, expect_version=0)],
                                          ["k/status"])
    assert (await store.get("k/spec")).value == {"n": 1}


@pytest.mark.gen_test
async def test_list_by_prefix_is_sorted_and_bounded(store):
    for key in ["services/b", "services/a", "services/a-1", "computes/a", "servicesX/a",
                "status/a"]:
        await store.put(key, {"k": key})
    listing = await store.list("services/")
    assert [r.key for r in listing.records] == ["services/a", "services/a-1", "services/b"]
    assert listing.revision == await store.revision()
    assert [r.key for r in (await store.list("")).records][0] == "computes/a"
    assert (await store.list("nothing/")).records == []


@pytest.mark.gen_test
async def test_create_only_put(store):
    await store.put("k/a", {"v": 1}, expect_version=0)
    with pytest.raises(VersionMismatch):
        await store.put("k/a", {"v": 2}, expect_version=0)
    assert (await store.get("k/a")).value == {"v": 1}


@pytest.mark.gen_test
async def test_conditional_put_and_delete(store):
    rec = await store.put("k/a", {"v": 1})
    newer = await store.put("k/a", {"v": 2}, expect_version=rec.version)
    before = await store.revision()
    with pytest.raises(VersionMismatch):
        await store.put("k/a", {"v": 3}, expect_version=rec.version)
    with pytest.raises(VersionMismatch):
        await store.delete("k/a", expect_version=rec.version)
    with pytest.raises(VersionMismatch):
        await store.put("k/missing", {"v": 1}, expect_version=7)
    assert await store.revision() == before, "refused writes must not move the revision"
    deleted = await store.delete("k/a", expect_version=newer.version)
    assert deleted.value == {"v": 2}
    assert await store.get("k/a") is None
    assert await store.delete("k/a") is None


@pytest.mark.gen_test
async def test_conditions_on_other_keys(store):
    await store.put("computes/a", {"name": "a"})
    await store.put("services/x", {"x": 1}, conditions=[Condition.exists("computes/a")])
    with pytest.raises(VersionMismatch) as info:
        await store.put("services/y", {"y": 1}, conditions=[Condition.exists("computes/b")])
    assert info.value.field == "computes/b"
    assert await store.get("services/y") is None
    rec = await store.get("computes/a")
    await store.put("services/x", {"x": 2}, conditions=[Condition.version("computes/a",
                                                                           rec.version)])
    with pytest.raises(VersionMismatch):
        await store.put("services/x", {"x": 3}, conditions=[Condition.version("computes/b", 5)])
    await store.put("services/z", {"z": 1}, conditions=[Condition.version("computes/b", 0)])


@pytest.mark.gen_test
async def test_prefix_unchanged_condition(store):
    await store.put("services/a", {"a": 1})
    listing = await store.list("services/")
    await store.put("computes/c", {"c": 1})  # outside the prefix: no effect
    await store.delete("computes/c", conditions=[Condition.unchanged("services/",
                                                                     listing.revision)])
    await store.put("computes/c", {"c": 1})
    await store.put("services/b", {"b": 1})
    with pytest.raises(VersionMismatch):
        await store.delete("computes/c", conditions=[Condition.unchanged("services/",
                                                                         listing.revision)])
    assert await store.get("computes/c") is not None


@pytest.mark.gen_test
async def test_update_is_read_modify_write(store):
    def bump(current):
        value = dict(current.value) if current else {"n": 0}
        value["n"] += 1
        return value
    first = await store.update("counters/a", bump)
    assert first.value == {"n": 1}
    second = await store.update("counters/a", bump)
    assert second.value == {"n": 2} and second.version > first.version


@pytest.mark.gen_test
async def test_update_returning_same_value_writes_nothing(store):
    rec = await store.put("k/a", {"v": 1})
    before = await store.revision()
    same = await store.update("k/a", lambda current: current.value)
    assert same.version == rec.version
    assert await store.revision() == before


@pytest.mark.gen_test
async def test_update_can_delete_and_abort(store):
    await store.put("k/a", {"v": 1})
    assert await store.update("k/a", lambda current: DELETE) is None
    assert await store.get("k/a") is None
    assert await store.update("k/missing", lambda current: DELETE) is None

    class Refused(GenisysError):
        pass

    def refuse(current):
        raise Refused("no")
    await store.put("k/b", {"v": 1})
    before = await store.revision()
    with pytest.raises(Refused):
        await store.update("k/b", refuse)
    assert (await store.get("k/b")).value == {"v": 1}
    assert await store.revision() == before


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_updates_lose_nothing(store):
    def bump(current):
        return {"n": (current.value["n"] if current else 0) + 1}
    await asyncio.gather(*[store.update("counters/c", bump) for _ in range(300)])
    assert (await store.get("counters/c")).value == {"n": 300}


@pytest.mark.gen_test(timeout=60)
async def test_one_refused_write_does_not_fail_its_neighbours(store):
    """With group commit, writes batched together must still succeed or fail alone."""
    await store.put("k/taken", {"v": 0})
    results = await asyncio.gather(
        *[store.put("k/%d" % i, {"v": i}) for i in range(50)],
        store.put("k/taken", {"v": 1}, expect_version=0),
        *[store.put("k/%d" % i, {"v": i}) for i in range(50, 100)],
        return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], VersionMismatch)
    assert len((await store.list("k/")).records) == 101
    assert (await store.get("k/taken")).value == {"v": 0}


@pytest.mark.gen_test
async def test_non_object_values_are_refused(store):
    with pytest.raises(TypeError):
        await store.put("k/a", [1, 2])
    assert await store.get("k/a") is None


async def _next(watch, timeout=5):
    return await asyncio.wait_for(watch.__anext__(), timeout)


@pytest.mark.gen_test
async def test_watch_from_now_sees_changes_under_prefix_in_order(store):
    async with store.watch("services/") as watch:
        await store.put("computes/a", {"a": 1})
        put = await store.put("services/a", {"a": 1})
        await store.put("services/a", {"a": 2})
        await store.delete("services/a")
        events = [await _next(watch) for _ in range(3)]
    assert [e.type for e in events] == ["put", "put", "delete"]
    assert events[0].record == put and events[1].record.value == {"a": 2}
    assert [e.key for e in events] == ["services/a"] * 3
    assert events[0].revision < events[1].revision < events[2].revision


@pytest.mark.gen_test
async def test_list_then_watch_misses_nothing(store):
    await store.put("services/a", {"a": 1})
    listing = await store.list("services/")
    await store.put("services/b", {"b": 1})  # after the listing, before the watch
    async with store.watch("services/", start_revision=listing.revision) as watch:
        await store.put("services/c", {"c": 1})
        keys = [(await _next(watch)).key for _ in range(2)]
    assert keys == ["services/b", "services/c"]


@pytest.mark.gen_test
async def test_watch_of_forgotten_history_says_compacted(store):
    for i in range(3):
        await store.put("k/%d" % i, {"i": i})
    watch = store.watch("k/", start_revision=-1)
    with pytest.raises(Compacted):
        await _next(watch)
    watch.close()


@pytest.mark.gen_test
async def test_closed_watch_ends_iteration(store):
    watch = store.watch("k/")
    watch.close()
    with pytest.raises(StopAsyncIteration):
        await _next(watch)


@pytest.mark.gen_test
async def test_closed_store_refuses_everything(store):
    await store.put("k/a", {"v": 1})
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get("k/a")
    with pytest.raises(StoreUnavailable):
        await store.put("k/a", {"v": 2})
    with pytest.raises(StoreUnavailable):
        await store.check()
    await store.close()  # closing twice is harmless


@pytest.mark.gen_test
async def test_a_value_that_is_not_json_fails_alone_and_the_store_goes_on(store):
    before = await store.revision()
    with pytest.raises(TypeError):
        await store.put("k/a", {"not json": {1, 2}})
    assert await store.revision() == before
    assert (await store.put("k/b", {"ok": True})).value == {"ok": True}


@pytest.mark.gen_test
async def test_what_json_refuses_every_store_refuses_and_text_round_trips(store):
    # Stored text is written with orjson: it must refuse what json refuses (a
    # datetime, a dataclass: orjson would write them on its own; NaN, which it would
    # write as null) and keep the rest.
    before = await store.revision()
    for bad in ({"when": datetime.datetime(2026, 11, 30)}, {"op": Op.put("k/x", {})}):
        with pytest.raises(TypeError):
            await store.put("k/a", bad)
    for bad in ({"v": float("nan")}, {"v": [None, {"w": float("-inf")}]}):
        with pytest.raises(ValueError, match="Out of range float values"):
            await store.put("k/a", bad)
    assert await store.revision() == before
    value = {"message": "déjà vu ✓ \u2028", "quote": '"\\', "n": -(2 ** 63), "f": 0.1,
             "nested": [{"x": None}, [], {}]}
    written = await store.put("k/a", value)
    assert written.value == value and (await store.get("k/a")).value == value


@pytest.mark.gen_test
async def test_a_transaction_is_all_or_nothing_at_one_revision(store):
    await store.put("k/a", {"n": 1})
    watch = store.watch("k/")
    results = await store.transaction([
        Op.update("k/a", lambda r: {"n": r.value["n"] + 1}),
        Op.put("k/b", {"n": 10}, expect_version=0),
        Op.delete("k/c"),
    ])
    assert [r.value if r else None for r in results] == [{"n": 2}, {"n": 10}, None]
    assert results[0].version == results[1].version == await store.revision()
    events = [await watch.__anext__(), await watch.__anext__()]
    assert [(e.type, e.key) for e in events] == [("put", "k/a"), ("put", "k/b")]
    assert events[0].revision == events[1].revision
    watch.close()

    before = await store.revision()
    for refused in (Op.put("k/b", {"n": 11}, expect_version=0),  # exists
                    Op.update("k/b", lambda r: (_ for _ in ()).throw(VersionMismatch("no")))):
        with pytest.raises(VersionMismatch):
            await store.transaction([Op.put("k/a", {"n": 99}), Op.delete("k/a"),
                                     Op.put("k/new", {"n": 1}), refused])
        assert (await store.get("k/a")).value == {"n": 2}  # nothing of it happened
        assert (await store.get("k/b")).value == {"n": 10}
        assert await store.get("k/new") is None
        assert await store.revision() == before


@pytest.mark.gen_test
async def test_a_later_op_of_a_transaction_sees_the_earlier_ones(store):
    results = await store.transaction([
        Op.put("k/a", {"n": 1}, expect_version=0),
        Op.update("k/a", lambda r: {"n": r.value["n"] + 1}),
        Op.put("k/b", {"n": 1}, conditions=[Condition.exists("k/a")]),
    ])
    assert results[1].value == {"n": 2} and (await store.get("k/b")).value == {"n": 1}
    with pytest.raises(ValueError):
        await store.transaction([])


@pytest.mark.gen_test
async def test_count_by_prefix(store):
    assert await store.count("services/") == 0
    for key in ["services/a", "services/b", "servicesX/a", "status/a", "computes/a"]:
        await store.put(key, {"k": key})
    assert await store.count("services/") == 2
    assert await store.count("s") == 4
    assert await store.count("") == 5
    await store.delete("services/a")
    assert await store.count("services/") == 1
