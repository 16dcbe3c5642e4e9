"""Every write path of the store, on every backend, to the exact outcome: what a refused
write says (message and field), what a write returns, which events it makes, and which
revision it takes.

Written to kill what a mutation run of the backends' write paths and ``apply_op`` left
alive; the contract itself is in test_contract.py."""

import asyncio
import base64
import collections
import json
import sqlite3
import uuid

import pytest
import requests
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from genisys.errors import Conflict, StoreUnavailable, VersionMismatch
from genisys.store import DELETE, Condition, Op
from genisys.store.etcd import MAX_ATTEMPTS, MAX_TXN_OPS, EtcdStore
from genisys.store.etcd_client import Endpoint, b64
from genisys.store.sqlite import _MAX_BATCH, SqliteStore


async def refused(write, message, field):
    """``write`` raises VersionMismatch with exactly ``message`` and ``field``."""
    with pytest.raises(VersionMismatch) as caught:
        await write
    assert (caught.value.message, caught.value.field) == (message, field)


async def events_after(store, revision):
    """(type, key, revision, value or None) of every change under ``k/`` after
    ``revision``. A marker written next to ``k/`` (as ``k~end``) tells when all came."""
    marker = await store.put("k~end", {})
    seen = []
    async with store.watch("k", start_revision=revision) as watch:
        while True:
            event = await asyncio.wait_for(watch.__anext__(), 10)
            if event.key == marker.key:
                return seen
            seen.append((event.type, event.key, event.revision,
                         event.record.value if event.record else None))
            if event.record is not None:
                assert event.record.version == event.revision


@pytest.mark.gen_test
async def test_a_refused_version_says_which_key_and_why(store):
    first = await store.put("k/a", {"v": 1})
    start = await store.revision()
    await refused(store.put("k/a", {"v": 2}, expect_version=0), "k/a already exists", "k/a")
    await refused(store.put("k/b", {"v": 2}, expect_version=first.version),
                  "k/b does not exist", "k/b")
    await refused(store.put("k/a", {"v": 2}, expect_version=first.version + 5),
                  "k/a is at version %d, not %d" % (first.version, first.version + 5), "k/a")
    await refused(store.delete("k/a", expect_version=0), "k/a already exists", "k/a")
    await refused(store.delete("k/b", expect_version=3), "k/b does not exist", "k/b")
    await refused(store.delete("k/a", expect_version=first.version + 1),
                  "k/a is at version %d, not %d" % (first.version, first.version + 1), "k/a")
    assert await store.revision() == start
    assert await store.get("k/a") == first and await store.get("k/b") is None


@pytest.mark.gen_test
async def test_a_refused_condition_says_which_key_and_why(store):
    other = await store.put("other/x", {"x": 1})
    await store.put("k/a", {"v": 1})
    start = await store.revision()
    await refused(store.put("k/a", {"v": 2}, conditions=[Condition.exists("other/y")]),
                  "other/y does not exist", "other/y")
    await refused(store.delete("k/a", conditions=[Condition.version("other/x",
                                                                      other.version + 1)]),
                  "other/x is at version %d, not %d" % (other.version, other.version + 1),
                  "other/x")
    await refused(store.put("k/a", {"v": 2}, conditions=[Condition.version("other/x", 0)]),
                  "other/x is at version %d, not 0" % other.version, "other/x")
    await refused(store.update("k/a", lambda current: {"v": 2},
                               conditions=[Condition.unchanged("other/", other.version - 1)]),
                  "other/ changed at revision %d, after %d" % (other.version, other.version - 1),
                  "other/")
    assert await store.revision() == start
    assert (await store.get("k/a")).value == {"v": 1}


@pytest.mark.gen_test
async def test_a_replace_writes_only_over_a_key_that_exists_and_only_a_change(store):
    first = await store.put("k/a", {"v": 1})
    start = await store.revision()
    await refused(store.replace("k/b", {"v": 1}), "k/b does not exist", "k/b")
    assert await store.get("k/b") is None
    # Already holding it: left as it is, no new version, no event.
    assert await store.replace("k/a", {"v": 1}) == first
    assert await store.revision() == start
    second = await store.replace("k/a", {"v": 2})
    assert second.value == {"v": 2} and second.version > start
    assert await store.get("k/a") == second
    assert await events_after(store, start) == [("put", "k/a", second.version, {"v": 2})]


@pytest.mark.gen_test
async def test_conditions_that_hold_let_the_write_through(store):
    other = await store.put("other/x", {"x": 1})
    # Unchanged since the revision of its newest write: holds (only a later one breaks it).
    written = await store.put("k/a", {"v": 1}, conditions=[
        Condition.exists("other/x"), Condition.version("other/x", other.version),
        Condition.version("other/none", 0), Condition.unchanged("other/", other.version),
        Condition.unchanged("empty/", 0)])
    assert (written.key, written.value) == ("k/a", {"v": 1})
    assert written.version == await store.revision() > other.version
    deleted = await store.delete("k/a", expect_version=written.version, conditions=[
        Condition.unchanged("other/", other.version)])
    assert deleted == written
    assert await store.get("k/a") is None


@pytest.mark.gen_test
async def test_each_write_returns_its_record_and_makes_one_event(store):
    start = await store.revision()
    created = await store.put("k/a", {"v": 1}, expect_version=0)
    assert created.version == start + 1
    replaced = await store.put("k/a", {"v": 2}, expect_version=created.version)
    updated = await store.update("k/a", lambda current: {"v": current.value["v"] + 1})
    assert (updated.key, updated.value) == ("k/a", {"v": 3})
    made = await store.update("k/b", lambda current: {"new": current is None})
    assert made.value == {"new": True}
    deleted = await store.delete("k/a", expect_version=updated.version)
    assert deleted == updated
    removed = await store.update("k/b", lambda current: DELETE)
    assert removed is None
    end = await store.revision()
    assert created.version < replaced.version < updated.version < made.version < end
    assert await events_after(store, start) == [
        ("put", "k/a", created.version, {"v": 1}),
        ("put", "k/a", replaced.version, {"v": 2}),
        ("put", "k/a", updated.version, {"v": 3}),
        ("put", "k/b", made.version, {"new": True}),
        ("delete", "k/a", end - 1, None),
        ("delete", "k/b", end, None),
    ]
    assert (await store.list("k/")).records == []


@pytest.mark.gen_test
async def test_writes_that_change_nothing_make_no_event_and_keep_the_revision(store):
    kept = await store.put("k/a", {"v": 1})
    start = await store.revision()
    assert await store.delete("k/missing") is None
    assert await store.delete("k/missing", expect_version=0) is None
    assert await store.update("k/missing", lambda current: DELETE) is None
    assert await store.update("k/a", lambda current: {"v": 1}) == kept
    assert await store.transaction([Op.update("k/a", lambda current: current.value),
                                    Op.delete("k/gone")]) == [kept, None]
    assert await store.revision() == start
    assert await events_after(store, start) == []
    assert await store.get("k/a") == kept


@pytest.mark.gen_test
async def test_a_transaction_returns_each_result_and_its_events_share_one_revision(store):
    old = await store.put("k/old", {"v": 0})
    start = await store.revision()
    results = await store.transaction([
        Op.put("k/a", {"v": 1}, expect_version=0),
        Op.update("k/a", lambda current: {"v": current.value["v"] + 1}),
        Op.delete("k/old", expect_version=old.version),
        # A later op sees what the earlier ones did: k/old is gone by now.
        Op.update("k/b", lambda current: {"b": current is None},
                  conditions=[Condition.version("k/old", 0)]),
    ])
    revision = await store.revision()
    assert revision > start
    assert [(r.key, r.value, r.version) if r else r for r in results] == [
        ("k/a", {"v": 1}, revision), ("k/a", {"v": 2}, revision), ("k/old", {"v": 0},
                                                                     old.version),
        ("k/b", {"b": True}, revision)]
    # A key written twice in one transaction may show one event or both (etcd keeps the
    # last): what each key ends as, at which revision, is the same on every backend.
    last = {key: (kind, at, value) for kind, key, at, value in await events_after(store, start)}
    assert last == {"k/a": ("put", revision, {"v": 2}), "k/old": ("delete", revision, None),
                    "k/b": ("put", revision, {"b": True})}
    assert {r.key: r.value for r in (await store.list("k/")).records} == {
        "k/a": {"v": 2}, "k/b": {"b": True}}


@pytest.mark.gen_test
async def test_a_refused_transaction_leaves_every_key_as_it_was(store):
    a = await store.put("k/a", {"v": 1})
    start = await store.revision()
    await refused(store.transaction([
        Op.put("k/a", {"v": 2}),
        Op.delete("k/a"),
        Op.put("k/new", {"v": 1}),
        Op.update("k/a", lambda current: {"v": 3}, conditions=[Condition.exists("k/none")]),
    ]), "k/none does not exist", "k/none")
    assert await store.revision() == start
    assert await store.get("k/a") == a and await store.get("k/new") is None
    assert await events_after(store, start) == []


@pytest.mark.gen_test
async def test_an_update_sees_the_record_and_may_refuse_with_a_domain_error(store):
    seen = []
    first = await store.put("k/a", {"v": 1})

    def look(current):
        seen.append(current)
        raise VersionMismatch("refused by the update", field="mine")
    await refused(store.update("k/a", look), "refused by the update", "mine")
    assert seen[-1] == first
    assert await store.get("k/a") == first


@pytest.mark.gen_test
async def test_a_value_that_is_not_an_object_is_refused_on_every_write_path(store):
    await store.put("k/a", {"v": 1})
    start = await store.revision()
    for write, kind in ((store.put("k/a", [1]), "list"),
                        (store.update("k/a", lambda current: "text"), "str"),
                        (store.transaction([Op.put("k/b", {"v": 1}), Op.put("k/a", 7)]), "int")):
        with pytest.raises(TypeError) as caught:
            await write
        assert str(caught.value) == "store values are JSON objects, got <class '%s'>" % kind
    assert await store.revision() == start
    assert (await store.get("k/a")).value == {"v": 1} and await store.get("k/b") is None


@pytest.mark.gen_test
async def test_a_prefix_condition_counts_the_writes_of_earlier_ops_under_that_prefix(store):
    await store.put("p/a", {"v": 1})
    revision = await store.revision()
    # Writes outside the prefix, and a delete under it, do not change it.
    results = await store.transaction([
        Op.put("other/x", {"v": 1}), Op.delete("p/a"),
        Op.put("k/x", {"v": 1}, conditions=[Condition.unchanged("p/", revision)])])
    assert [r.key for r in results] == ["other/x", "p/a", "k/x"]
    revision = await store.revision()
    await refused(store.transaction([
        Op.put("p/b", {"v": 1}),
        Op.put("k/y", {"v": 1}, conditions=[Condition.unchanged("p/", revision)])]),
        "p/ changed at revision %d, after %d" % (revision + 1, revision), "p/")
    assert await store.revision() == revision
    assert await store.get("p/b") is None and await store.get("k/y") is None


def write_behind_the_stores_back(etcd, key, value):
    """Another client's write, made with a blocking HTTP call: it lands while the store
    is between its snapshot read and its compare-and-swap."""
    answer = requests.post(etcd.members[0].client_url + "/v3/kv/put", timeout=10, json={
        "key": b64(key), "value": b64(json.dumps(value))})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["header"]["revision"])


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_refuses_a_write_whose_prefix_changed_under_it(store, etcd_for_stores):
    """The snapshot said p/ was unchanged; another client writes under p/ before the
    compare-and-swap: etcd's compare on the whole range must catch it."""
    await store.put("p/a", {"v": 1})
    revision = await store.revision()
    calls = []

    def write(current):
        if not calls:
            calls.append(write_behind_the_stores_back(etcd_for_stores(), store.prefix + "p/b",
                                                      {"v": 2}))
        return {"v": len(calls)}
    with pytest.raises(VersionMismatch) as caught:
        await store.update("k/x", write, conditions=[Condition.unchanged("p/", revision)])
    assert (caught.value.message, caught.value.field) == (
        "p/ changed at revision %d, after %d" % (calls[0], revision), "p/")
    assert await store.get("k/x") is None
    assert (await store.get("p/b")).value == {"v": 2}


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_refuses_a_write_whose_key_changed_under_it(store, etcd_for_stores):
    first = await store.put("k/x", {"v": 1})
    calls = []

    def write(current):
        calls.append(current.value)
        if len(calls) == 1:
            write_behind_the_stores_back(etcd_for_stores(), store.prefix + "k/x", {"v": 10})
        return {"v": current.value["v"] + 1}
    written = await store.update("k/x", write)
    # The first attempt saw v=1 and lost; the second saw the other client's v=10.
    assert calls == [{"v": 1}, {"v": 10}]
    assert written.value == {"v": 11} and written.version > first.version
    assert (await store.get("k/x")).value == {"v": 11}


def count_calls(store, bodies=None):
    """The etcd calls ``store`` makes from now on, as a list of their paths; and their
    bodies (JSON, decoded) in ``bodies``, if given."""
    calls = []
    call = store._client.call

    async def counted(path, body, **kwargs):
        calls.append(path)
        if bodies is not None:
            bodies.append(body if isinstance(body, dict) else json.loads(body))
        return await call(path, body, **kwargs)
    store._client.call = counted
    return calls


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_a_write_on_what_it_saw_last_takes_one_call(store):
    """A compare-and-swap goes first on the record this store read or wrote last (or the
    version the write expects), with no read: one call when that is still right."""
    await store.put("k/a", {"v": 1})
    status = await store.put("k/s", {"v": 1})
    calls = count_calls(store)
    assert (await store.update("k/a", lambda r: {"v": r.value["v"] + 1})).value == {"v": 2}
    assert calls == ["/v3/kv/txn"]
    # A put that expects a version, on a condition on another key's version, beside a
    # put of a key nothing depends on (the reconciler's status and events): no read.
    leader = await store.put("k/leader", {})
    calls.clear()
    await store.transaction([
        Op.put("k/s", {"v": 2}, expect_version=status.version,
               conditions=[Condition.version("k/leader", leader.version)]),
        Op.put("k/events", {"events": [1]})])
    assert calls == ["/v3/kv/txn"]
    assert [(await store.get(k)).value for k in ("k/a", "k/s", "k/events")] == [
        {"v": 2}, {"v": 2}, {"events": [1]}]
    # A key never seen: read first, then written.
    calls.clear()
    await store.update("k/new", lambda r: {"v": 1})
    assert calls == ["/v3/kv/txn", "/v3/kv/txn"]
    # A write and the read of other keys after it (an upscale's answer shows the status).
    calls.clear()
    results, records = await store.transaction_then_read(
        [Op.update("k/a", lambda r: {"v": r.value["v"] + 1})], ["k/s", "k/a"])
    assert calls == ["/v3/kv/txn"]
    assert [r.value for r in records] == [{"v": 2}, {"v": 3}] and records[1] == results[0]


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_replaces_of_one_key_take_one_call_each_and_do_not_take_turns(store):
    """A compute written over and over (PUT /compute/<name>) by many clients: each write
    is one transaction, sent without waiting for the others, and none is refused or
    retried because another landed first."""
    await store.put("k/c", {"n": -1})
    calls, in_flight, most = count_calls(store), [0], [0]
    call = store._client.call

    async def watched(path, body, **kwargs):
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            return await call(path, body, **kwargs)
        finally:
            in_flight[0] -= 1
    store._client.call = watched
    written = await asyncio.gather(*(store.replace("k/c", {"n": i}) for i in range(20)))
    assert calls == ["/v3/kv/txn"] * 20
    assert most[0] == 20
    assert len({record.version for record in written}) == 20
    assert await store.get("k/c") == max(written, key=lambda record: record.version)


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_a_key_that_only_has_to_exist_is_compared_for_existing_only(
        store, etcd_for_stores):
    """An upscale needs its compute to exist, whatever the compute holds: the compute
    replaced by another client since this store saw it costs no second call, and the
    compute deleted meanwhile refuses the write."""
    etcd = etcd_for_stores()
    await store.put("k/c", {"v": 1})
    await store.put("k/s", {"n": 0})
    write_behind_the_stores_back(etcd, store.prefix + "k/c", {"v": 2})
    calls = count_calls(store)
    written = await store.update("k/s", lambda r: {"n": r.value["n"] + 1},
                                 conditions=[Condition.exists("k/c")])
    assert calls == ["/v3/kv/txn"] and written.value == {"n": 1}
    answer = requests.post(etcd.members[0].client_url + "/v3/kv/deleterange", timeout=10,
                           json={"key": b64(store.prefix + "k/c")})
    assert answer.status_code == 200, answer.text
    await refused(store.update("k/s", lambda r: {"n": r.value["n"] + 1},
                               conditions=[Condition.exists("k/c")]),
                  "k/c does not exist", "k/c")
    assert await store.get("k/s") == written


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_a_guess_that_moved_is_never_taken(store, etcd_for_stores):
    """Another client changed the keys after this store last saw them: every outcome is
    decided on what etcd holds, whatever the guess said."""
    etcd = etcd_for_stores()
    await store.put("k/a", {"v": 1})
    write_behind_the_stores_back(etcd, store.prefix + "k/a", {"v": 10})
    bodies = []
    calls = count_calls(store, bodies)
    assert (await store.update("k/a", lambda r: {"v": r.value["v"] + 1})).value == {"v": 11}
    # The guess's compare failed; it carried no failure branch (etcd would parse and
    # apply one for nothing nearly every time), so the record was read, then written on
    # what was read, with a failure branch that reads it again should it move once more.
    assert calls == ["/v3/kv/txn"] * 3
    guess, read, write = bodies  # each alone: nothing else was on its way
    assert "failure" not in guess and "compare" not in read and write["failure"]

    # Refused on the guess (v=11 < 12), allowed on what etcd holds.
    write_behind_the_stores_back(etcd, store.prefix + "k/a", {"v": 20})

    def at_least_12(current):
        if current.value["v"] < 12:
            raise Conflict("too small", field="v")
        return {"v": current.value["v"] + 1}
    assert (await store.update("k/a", at_least_12)).value == {"v": 21}

    # Nothing to write on the guess (it already says v=5), something on what etcd holds.
    await store.put("k/b", {"v": 5})
    write_behind_the_stores_back(etcd, store.prefix + "k/b", {"v": 1})
    assert (await store.update("k/b", lambda r: {"v": 5})).value == {"v": 5}
    assert (await store.get("k/b")).value == {"v": 5}

    # A version expected that is not the one etcd holds: refused, naming the real one.
    moved = write_behind_the_stores_back(etcd, store.prefix + "k/b", {"v": 6})
    await refused(store.put("k/b", {"v": 7}, expect_version=moved - 1),
                  "k/b is at version %d, not %d" % (moved, moved - 1), "k/b")

    # A value handed out and changed by its caller is not what the next guess holds.
    record = await store.get("k/b")
    record.value["v"] = 1000
    assert (await store.update("k/b", lambda r: {"v": r.value["v"] + 1})).value == {"v": 7}


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_finds_the_newest_write_under_a_prefix_whatever_its_key(store):
    # p/z sorts last by name but was written first: the newest write is p/a.
    await store.put("p/z", {"v": 1})
    first = await store.revision()
    await store.put("p/a", {"v": 1})
    with pytest.raises(VersionMismatch) as caught:
        await store.put("k/x", {"v": 1}, conditions=[Condition.unchanged("p/", first)])
    assert (caught.value.message, caught.value.field) == (
        "p/ changed at revision %d, after %d" % (first + 1, first), "p/")


@pytest.mark.gen_test
async def test_sqlite_writes_over_what_an_earlier_process_stored(tmp_path):
    """The writer thread remembers the rows it used; what it never saw (written before
    this store was opened) must be read from the file, not taken as absent."""
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        kept = await store.put("k/a", {"v": 1})
        gone = await store.put("k/b", {"v": 1})
    async with SqliteStore(path) as store:
        await refused(store.put("k/a", {"v": 2}, expect_version=0), "k/a already exists", "k/a")
        replaced = await store.put("k/a", {"v": 2}, expect_version=kept.version)
        assert replaced.value == {"v": 2} and replaced.version > gone.version
        assert (await store.update("k/b", lambda current: {"v": current.value["v"] + 1})
                ).value == {"v": 2}
        assert (await store.delete("k/b", expect_version=replaced.version + 1)).value == {"v": 2}
    conn = sqlite3.connect(path)  # the file itself holds compact JSON
    try:
        assert conn.execute("SELECT key, value FROM kv ORDER BY key").fetchall() == [
            ("k/a", '{"v":2}')]
    finally:
        conn.close()


def hold_the_write_lock(path):
    """Another connection to the file takes SQLite's write lock (as a backup tool or a
    sqlite3 shell might): the store's writer must wait for it, or fail, but never half-way."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.mark.gen_test(timeout=60)
async def test_sqlite_writes_batched_in_one_commit_each_make_their_event(tmp_path):
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        start = await store.revision()
        blocker = hold_the_write_lock(path)
        try:
            # The writer takes the first put and waits for the lock; the others queue up
            # behind it and go in one batch once it is free.
            writes = [asyncio.ensure_future(store.put("k/%02d" % i, {"i": i})) for i in range(20)]
            await asyncio.sleep(0)
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        records = await asyncio.gather(*writes)
        assert sorted(r.version for r in records) == list(range(start + 1, start + 21))
        events = await events_after(store, start)
        assert sorted((key, at) for _, key, at, _ in events) == sorted(
            (r.key, r.version) for r in records)


@pytest.mark.gen_test(timeout=60)
async def test_a_sqlite_commit_that_fails_fails_its_writes_and_the_next_one_goes_on(
        tmp_path, caplog):
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        await store.put("k/a", {"v": 1})
        start = await store.revision()
        blocker = hold_the_write_lock(path)
        try:
            # The writer gives up after SQLite's busy timeout (5 s): the write is refused.
            with pytest.raises(StoreUnavailable) as caught:
                await store.put("k/a", {"v": 2})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert caught.value.message == "write to %s failed: database is locked" % path
        assert "sqlite commit of 1 writes failed: database is locked" in caplog.messages
        assert await store.revision() == start
        assert (await store.get("k/a")).value == {"v": 1}
        after = await store.put("k/a", {"v": 3})
        assert after.version == start + 1
        assert (await store.get("k/a")).value == {"v": 3}


@pytest.mark.gen_test(timeout=15)
async def test_sqlite_close_commits_the_writes_queued_before_it(tmp_path):
    path = str(tmp_path / "genisys.db")
    store = SqliteStore(path)
    await store.open()
    writes = [asyncio.ensure_future(store.put("k/%02d" % i, {"i": i})) for i in range(50)]
    await asyncio.sleep(0)  # every put is queued; close() queues its stop after them
    await store.close()
    assert [r.value for r in await asyncio.gather(*writes)] == [{"i": i} for i in range(50)]
    with pytest.raises(StoreUnavailable) as caught:
        await store.put("k/late", {"v": 1})
    assert caught.value.message == "the store is closed"
    async with SqliteStore(path) as store:
        assert len((await store.list("k/")).records) == 50
        assert await store.get("k/late") is None


class FailingDisk:
    """A writer's connection on a disk that fails: COMMIT and ROLLBACK raise the I/O
    error a real disk would give, every other statement goes to ``conn``."""

    def __init__(self, conn):
        self.conn = conn

    @property
    def in_transaction(self):
        return self.conn.in_transaction

    def execute(self, sql, *args):
        if sql in ("COMMIT", "ROLLBACK"):
            raise sqlite3.OperationalError("disk I/O error")
        return self.conn.execute(sql, *args)


@pytest.mark.gen_test(timeout=15)
async def test_a_sqlite_rollback_that_fails_too_is_logged_and_its_batch_refused(
        tmp_path, caplog):
    """A commit that fails, then a ROLLBACK that fails as well (the disk gives I/O
    errors, which no test can make a real disk do): both failures are logged, and
    every write of the batch is refused."""
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        start = await store.revision()
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            loop = asyncio.get_running_loop()
            batch = [(Op.put("k/a", {"v": 1}), loop.create_future()),
                     (Op.put("k/b", {"v": 2}), loop.create_future())]
            revision = await loop.run_in_executor(None, lambda: store._commit(
                FailingDisk(conn), batch, start, collections.OrderedDict()))
            assert revision == start
            for _, future in batch:
                with pytest.raises(StoreUnavailable) as caught:
                    await future
                assert caught.value.message == "write to %s failed: disk I/O error" % path
            assert caplog.messages[-2:] == ["sqlite commit of 2 writes failed: disk I/O error",
                                            "sqlite rollback failed too: disk I/O error"]
        finally:
            conn.close()  # the real rollback
        assert await store.get("k/a") is None and await store.revision() == start


async def taken_by_the_writer(store, write, deadline=10.0):
    """Queue ``write`` (a coroutine) and wait until the writer thread has taken it from
    its queue; returns its future."""
    future = asyncio.ensure_future(write)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    await asyncio.sleep(0)  # the write's task queues it
    while not store._queue.empty():
        assert loop.time() < end, "the writer never took the write"
        await asyncio.sleep(0.001)
    return future


@pytest.mark.gen_test(timeout=15)
async def test_a_refused_sqlite_write_rolls_back_alone_and_its_batch_commits(tmp_path):
    """A transaction refused at its last op, queued between two puts: its earlier ops
    are rolled back (to its savepoint), the puts around it commit, and the writer's
    memory of rows keeps nothing the refused ops wrote."""
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        await store.put("k/old", {"v": 0})
        start = await store.revision()
        blocker = hold_the_write_lock(path)
        try:
            first = await taken_by_the_writer(store, store.put("k/first", {"v": 1}))
            refused_txn = asyncio.ensure_future(store.transaction([
                Op.put("k/new", {"v": 1}), Op.delete("k/old"),
                Op.update("k/old", lambda current: {"v": 2},
                          conditions=[Condition.exists("k/none")])]))
            after = asyncio.ensure_future(store.put("k/after", {"v": 3}))
            await asyncio.sleep(0)  # both queued behind the first
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        await refused(refused_txn, "k/none does not exist", "k/none")
        assert [(await first).version, (await after).version] == [start + 1, start + 2]
        assert await store.revision() == start + 2
        # What the refused ops wrote is forgotten: k/new is absent, k/old as it was.
        created = await store.put("k/new", {"v": 4}, expect_version=0)
        assert created.version == start + 3
        assert (await store.update("k/old", lambda current: dict(current.value, seen=True))
                ).value == {"v": 0, "seen": True}
        assert await events_after(store, start) == [
            ("put", "k/first", start + 1, {"v": 1}), ("put", "k/after", start + 2, {"v": 3}),
            ("put", "k/new", start + 3, {"v": 4}),
            ("put", "k/old", start + 4, {"v": 0, "seen": True})]


@pytest.mark.gen_test(timeout=15)
async def test_a_sqlite_commit_that_fails_after_its_writes_rolls_them_all_back(
        tmp_path, caplog):
    """The batch's writes are done when recording the revision fails (a trigger on the
    file, as another tool might leave): the transaction is rolled back, every write of
    the batch is refused by name, the writer forgets them, and the next write goes on
    at the revision after the last one committed."""
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        await store.put("k/a", {"v": 1})
        start = await store.revision()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("CREATE TRIGGER frozen BEFORE UPDATE ON meta "
                          "BEGIN SELECT RAISE(ABORT, 'the revision is frozen'); END")
            for write in (store.put("k/b", {"v": 1}, expect_version=0),
                          store.update("k/a", lambda current: DELETE)):
                with pytest.raises(StoreUnavailable) as caught:
                    await write
                assert caught.value.message == ("write to %s failed: the revision is frozen"
                                                % path)
            assert caplog.messages.count(
                "sqlite commit of 1 writes failed: the revision is frozen") == 2
            assert not any("rollback failed" in m for m in caplog.messages)
            assert await store.revision() == start
            assert await store.get("k/b") is None and (await store.get("k/a")).value == {
                "v": 1}
            other.execute("DROP TRIGGER frozen")
        finally:
            other.close()
        # Nothing of the failed batches is remembered, and no transaction is left open.
        made = await store.put("k/b", {"v": 2}, expect_version=0)
        assert made.version == start + 1
        assert (await store.update("k/a", lambda current: {"v": current.value["v"] + 1})
                ).value == {"v": 2}
        assert await events_after(store, start) == [
            ("put", "k/b", start + 1, {"v": 2}), ("put", "k/a", start + 2, {"v": 2})]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone() == (
            start + 3,)
    finally:
        conn.close()


def test_etcd_answering_fewer_reads_than_asked_is_refused_by_name():
    """A proxy or a broken member that drops responses from a snapshot read: refused,
    never taken as keys being absent."""
    store = EtcdStore([Endpoint("127.0.0.1", 2379)])
    answer = {"header": {"revision": "7"}, "responses": [{"response_range": {}}]}
    with pytest.raises(StoreUnavailable) as caught:
        store._snapshot(answer, answer["responses"], ["k/a", "k/b"], ["p/"])
    assert caught.value.message == "etcd answered 1 reads for 3 asked"
    with pytest.raises(StoreUnavailable) as caught:
        store._snapshot({"header": {"revision": "7"}}, None, ["k/a"], [])
    assert caught.value.message == "etcd answered 0 reads for 1 asked"


@pytest.mark.gen_test
async def test_a_transaction_answers_the_records_it_did_not_change_as_they_were(store):
    """The newest write before the transaction and the one before it: a record the
    transaction only looked at keeps its version, whatever revision the others take."""
    before = await store.put("k/b", {"v": 1})
    await store.put("k/c", {"v": 1})
    written, kept = await store.transaction([
        Op.put("k/a", {"v": 1}), Op.update("k/b", lambda current: current.value)])
    assert kept == before
    assert written.version == await store.revision() > before.version + 1


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_takes_a_conditional_transaction_of_as_many_keys_as_it_allows(store):
    results = await store.transaction([Op.put("k/%03d" % i, {"i": i}, expect_version=0)
                                       for i in range(MAX_TXN_OPS)])
    assert [r.value["i"] for r in results] == list(range(MAX_TXN_OPS))
    assert len({r.version for r in results}) == 1
    assert await store.count("k/") == MAX_TXN_OPS


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_counts_the_prefixes_a_transaction_watches_against_its_limit(store):
    watching = [Condition.unchanged("p1/", 0), Condition.unchanged("p2/", 0)]
    with pytest.raises(StoreUnavailable) as caught:
        await store.transaction([Op.put("k/%03d" % i, {"i": i}, conditions=watching)
                                 for i in range(MAX_TXN_OPS - 1)])
    assert caught.value.message == ("a transaction over %d keys is more than etcd takes at "
                                    "once (%d)" % (MAX_TXN_OPS + 1, MAX_TXN_OPS))
    assert await store.count("k/") == 0


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_gives_up_a_write_that_another_client_always_gets_ahead_of(
        store, etcd_for_stores):
    await store.put("k/x", {"v": 0})
    calls = []

    def write(current):
        calls.append(current.value["v"])
        write_behind_the_stores_back(etcd_for_stores(), store.prefix + "k/x",
                                     {"v": len(calls)})
        return {"v": -1}
    with pytest.raises(StoreUnavailable) as caught:
        await store.update("k/x", write, conditions=[Condition.version("k/y", 0)])
    assert caught.value.message == ("gave up writing k/x, k/y after %d attempts: other "
                                    "writers kept changing it" % MAX_ATTEMPTS)
    assert calls == list(range(MAX_ATTEMPTS))
    assert (await store.get("k/x")).value == {"v": MAX_ATTEMPTS}


@pytest.mark.gen_test(timeout=30)
async def test_sqlite_commits_at_most_max_batch_writes_at_once(tmp_path):
    """Writes queued while the writer waits go in commits of at most _MAX_BATCH (the
    latency the first in line may wait): counted by a trigger on the revision, which
    every commit with writes updates once."""
    path = str(tmp_path / "genisys.db")
    async with SqliteStore(path) as store:
        start = await store.revision()
        counter = sqlite3.connect(path, isolation_level=None)
        try:
            counter.executescript(
                "CREATE TABLE commits (revision INTEGER);"
                "CREATE TRIGGER count_commits AFTER UPDATE ON meta "
                "BEGIN INSERT INTO commits VALUES (NEW.value); END;")
            blocker = hold_the_write_lock(path)
            try:
                first = await taken_by_the_writer(store, store.put("k/first", {}))
                queued = [asyncio.ensure_future(store.put("k/%03d" % i, {"i": i}))
                          for i in range(_MAX_BATCH + 1)]
                await asyncio.sleep(0)
            finally:
                blocker.execute("COMMIT")
                blocker.close()
            await first
            assert [r.version for r in await asyncio.gather(*queued)] == list(
                range(start + 2, start + _MAX_BATCH + 3))
            assert counter.execute("SELECT revision FROM commits").fetchall() == [
                (start + 1,), (start + 1 + _MAX_BATCH,), (start + 2 + _MAX_BATCH,)]
        finally:
            counter.close()


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_refuses_a_big_blind_batch_with_a_bad_value_before_writing_any_of_it(
        store):
    """Blind writes go to etcd in chunks of MAX_TXN_OPS: a value that is not a JSON object
    in the last chunk must be refused before the first chunk is sent."""
    ops = [Op.put("k/%03d" % i, {"i": i}) for i in range(MAX_TXN_OPS)]
    with pytest.raises(TypeError) as caught:
        await store.transaction(ops + [Op.put("k/bad", [1])])
    assert str(caught.value) == "store values are JSON objects, got <class 'list'>"
    assert await store.count("k/") == 0


def read_behind_the_stores_back(etcd, key):
    """The value of ``key`` as etcd holds it (bytes, decoded from base64)."""
    answer = requests.post(etcd.members[0].client_url + "/v3/kv/range", timeout=10,
                           json={"key": b64(key)})
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()["kvs"][0]["value"])


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_keeps_compact_json_and_refuses_what_json_cannot_hold(store,
                                                                         etcd_for_stores):
    await store.put("k/a", {"v": 1, "w": [1, 2]})
    await store.update("k/b", lambda current: {"v": 1, "w": "x"})
    assert read_behind_the_stores_back(etcd_for_stores(), store.prefix + "k/a") == (
        b'{"v":1,"w":[1,2]}')
    assert read_behind_the_stores_back(etcd_for_stores(), store.prefix + "k/b") == (
        b'{"v":1,"w":"x"}')
    for write in (store.put("k/c", {"v": float("nan")}),
                  store.update("k/c", lambda current: {"v": float("inf")})):
        with pytest.raises(ValueError) as caught:
            await write
        assert str(caught.value) == "Out of range float values are not JSON compliant"
    assert await store.get("k/c") is None


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["etcd"])
async def test_etcd_answers_the_revision_a_write_took_when_another_came_between(
        store, etcd_for_stores):
    """Another client writes an unrelated key between this write's snapshot and its
    compare-and-swap: the swap still succeeds, and the record it answers carries the
    revision etcd gave it, not the one after the snapshot."""
    calls = []

    def write(current):
        if not calls:
            calls.append(write_behind_the_stores_back(etcd_for_stores(),
                                                      store.prefix + "other/x", {"v": 1}))
        return {"v": 2}
    written = await store.update("k/x", write)
    assert written.version == calls[0] + 1 == (await store.get("k/x")).version


@pytest.mark.gen_test
async def test_every_condition_is_checked_after_an_unchanged_prefix_that_holds(store):
    await store.put("p/a", {"v": 1})
    revision = await store.revision()
    await refused(store.put("k/x", {"v": 1}, conditions=[
        Condition.unchanged("p/", revision), Condition.exists("k/none")]),
        "k/none does not exist", "k/none")
    assert await store.get("k/x") is None


class FrontMember:
    """A loopback HTTP server in front of a real etcd member: it passes every call on,
    but those ``intercept(handler, path, body)`` answers itself (it returns True)."""

    def __init__(self, member_url):
        self.member_url = member_url
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        self.server = tornado.httpserver.HTTPServer(tornado.web.Application(
            [(r"(/.*)", _PassOn, {"member": self})]))
        [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.server.add_sockets([sock])
        self.endpoint = Endpoint("127.0.0.1", sock.getsockname()[1])

    def intercept(self, handler, path, body):
        return False

    async def close(self):
        self.server.stop()
        await self.server.close_all_connections()
        self.client.close()


class _PassOn(tornado.web.RequestHandler):
    def initialize(self, member):
        self.member = member

    async def post(self, path):
        body = self.request.body
        if self.member.intercept(self, path, body):
            return
        answer = await self.member.client.fetch(self.member.member_url + path, method="POST",
                                                body=body, raise_error=False)
        self.set_status(answer.code)
        self.finish(answer.body)


class DroppingMember(FrontMember):
    """While ``drop`` is set, reads a transaction that writes and closes its connection
    unanswered: a member that fails in the middle of a compare-and-swap."""

    def __init__(self, member_url):
        super().__init__(member_url)
        self.drop = False
        self.dropped = 0

    def intercept(self, handler, path, body):
        if self.drop and path == "/v3/kv/txn" and b"request_put" in body:
            self.dropped += 1
            handler.request.connection.stream.close()
            return True
        return False


@pytest.mark.gen_test(timeout=60)
async def test_etcd_never_sends_a_compare_and_swap_twice(etcd_for_stores):
    """A member fails in the middle of a compare-and-swap (it read the write, no answer
    came back): the write is refused as one that may or may not have happened, and it
    is not sent again to the next member (which would apply it, maybe twice)."""
    member = etcd_for_stores().members[0]
    front = DroppingMember(member.client_url)
    real = Endpoint("127.0.0.1", member.client_port)
    store = EtcdStore([front.endpoint, real], prefix="/test-cas-%s/" % uuid.uuid4().hex[:8])
    await store.open()
    try:
        await store.put("k/a", {"v": 1})
        front.drop = True
        with pytest.raises(StoreUnavailable) as caught:
            await store.update("k/a", lambda current: {"v": current.value["v"] + 1})
        assert caught.value.message.endswith("the write may or may not have happened")
        assert front.dropped == 1
        assert (await store.get("k/a")).value == {"v": 1}  # now read from the real member
    finally:
        await store.close()
        await front.close()


class ElectingMember(FrontMember):
    """Answers the next ``refusals`` calls as a member between two leaders does (gRPC's
    UNAVAILABLE, 503 from the gateway), with ``message``."""

    def __init__(self, member_url, *, message):
        super().__init__(member_url)
        self.message = message
        self.refusals = 0
        self.refused = []  # the path of each call refused

    def intercept(self, handler, path, body):
        if self.refusals <= 0:
            return False
        self.refusals -= 1
        self.refused.append(path)
        handler.set_status(503)
        handler.finish({"error": self.message, "code": 14, "message": self.message})
        return True


@pytest.fixture
def electing_members(etcd_for_stores, io_loop):
    """``make(refusals, message)``: two ElectingMembers in front of the same real member
    (two members of a cluster electing a leader), and a store over both."""
    made = []

    async def make(refusals, message, *, timeout=None):
        member = etcd_for_stores().members[0]
        fronts = [ElectingMember(member.client_url, message=message) for _ in range(2)]
        store = EtcdStore([f.endpoint for f in fronts], timeout=timeout,
                          prefix="/test-electing-%s/" % uuid.uuid4().hex[:8])
        made.append((store, fronts))
        await store.open()
        for front in fronts:
            front.refusals = refusals
        return store, fronts

    yield make

    async def close():
        for store, fronts in made:
            await store.close()
            for front in fronts:
                await front.close()
    io_loop.run_sync(close)


@pytest.mark.gen_test(timeout=60)
async def test_etcd_makes_a_read_again_while_the_cluster_elects_a_leader(electing_members):
    """etcd answers "leader changed" to a linearizable read whose leader went before it
    read anything: the read is made again, round after round over the members, until
    the new leader answers, within the call's time (not failed after one round)."""
    store, fronts = await electing_members(0, "etcdserver: leader changed")
    await store.put("k/a", {"v": 1})
    for front in fronts:
        front.refusals = 3
    assert (await store.get("k/a")).value == {"v": 1}
    assert [f.refused for f in fronts] == [["/v3/kv/range"] * 3, ["/v3/kv/range"] * 3]
    assert [f.refusals for f in fronts] == [0, 0]


@pytest.mark.gen_test(timeout=60)
async def test_etcd_makes_a_compare_and_swap_again_that_a_member_without_leader_refused(
        electing_members):
    """etcd answers "no leader" before it proposes a write: the compare-and-swap is made
    again until a leader takes it, and it is applied once (an upscale counted once)."""
    store, fronts = await electing_members(0, "etcdserver: no leader")
    await store.put("k/a", {"v": 1})
    for front in fronts:
        front.refusals = 2
    written = await store.update("k/a", lambda current: {"v": current.value["v"] + 1})
    assert written.value == {"v": 2}
    assert [f.refused for f in fronts] == [["/v3/kv/txn"] * 2, ["/v3/kv/txn"] * 2]
    assert (await store.get("k/a")).value == {"v": 2}


@pytest.mark.gen_test(timeout=60)
async def test_etcd_gives_up_at_the_calls_time_on_a_cluster_that_elects_no_leader(
        electing_members):
    """A cluster that stays without a leader fails the call when its time is up, with
    StoreUnavailable saying what each member answered last."""
    store, fronts = await electing_members(10 ** 6, "etcdserver: leader changed",
                                           timeout=1.0)
    with pytest.raises(StoreUnavailable) as caught:
        await store.get("k/a")
    assert caught.value.message == (
        "etcd /v3/kv/range: no member answered (%s: etcdserver: leader changed (HTTP 503); "
        "%s: etcdserver: leader changed (HTTP 503))" % (fronts[0].endpoint, fronts[1].endpoint))
