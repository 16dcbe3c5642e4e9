"""What only the durable SQLite backend promises: persistence, exclusivity, group commit."""

import asyncio
import os

import pytest

from genisys.errors import StoreUnavailable, VersionMismatch
from genisys.store import Compacted, Op, store_from_url
from genisys.store.sqlite import SqliteStore


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "state" / "genisys.db")


@pytest.mark.gen_test
async def test_data_and_revision_survive_reopening(db):
    async with SqliteStore(db) as store:
        await store.put("computes/a", {"name": "a"})
        last = await store.put("services/a", {"n": 1})
    async with SqliteStore(db) as store:
        assert (await store.get("services/a")) == last
        assert await store.revision() == last.version
        after = await store.put("services/b", {"n": 2})
        assert after.version == last.version + 1, "revisions keep growing across restarts"


@pytest.mark.gen_test
async def test_settings_make_every_commit_durable(db):
    async with SqliteStore(db) as store:
        assert store.journal_mode == "wal"
        assert store.synchronous == 2, "synchronous=FULL: the WAL is fsynced at every commit"


@pytest.mark.gen_test
async def test_second_store_on_the_same_file_is_refused(db):
    async with SqliteStore(db) as store:
        await store.put("k/a", {"v": 1})
        other = SqliteStore(db)
        with pytest.raises(StoreUnavailable) as info:
            await other.open()
        assert "in use by pid %d" % os.getpid() in str(info.value)
        assert "only one genisys" in str(info.value)
    # Released on close: it opens now.
    async with SqliteStore(db) as store:
        assert (await store.get("k/a")).value == {"v": 1}


@pytest.mark.gen_test
async def test_unusable_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = store_from_url("sqlite:///" + str(blocker / "genisys.db"))
    with pytest.raises(StoreUnavailable) as info:
        await store.open()
    assert str(blocker) in str(info.value)


@pytest.mark.gen_test
async def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable) as info:
        await SqliteStore(str(path)).open()
    assert "garbage.db" in str(info.value)


@pytest.mark.gen_test
async def test_watch_cannot_replay_history_from_before_the_process(db):
    async with SqliteStore(db) as store:
        await store.put("k/a", {"v": 1})
    async with SqliteStore(db) as store:
        watch = store.watch("k/", start_revision=0)
        with pytest.raises(Compacted):
            await asyncio.wait_for(watch.__anext__(), 5)


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_writes_share_commits(db):
    """Group commit: many concurrent writes need far fewer transactions than writes."""
    async with SqliteStore(db) as store:
        commits = []
        original = store._commit

        def counting(conn, batch, *rest):
            commits.append(len(batch))
            return original(conn, batch, *rest)
        store._commit = counting
        await asyncio.gather(*[store.put("k/%d" % i, {"i": i}) for i in range(400)])
        assert sum(commits) == 400
        assert len(commits) < 400
        assert len((await store.list("k/")).records) == 400


@pytest.mark.gen_test
async def test_the_writer_remembers_only_what_was_committed(db):
    """The writer thread caches rows it read and wrote; a refused transaction (its
    first write rolled back with it) must leave no trace there, nor in the file."""
    async with SqliteStore(db) as store:
        await store.put("a", {"n": 1})
        with pytest.raises(VersionMismatch):
            await store.transaction([Op.put("a", {"n": 2}), Op.put("b", {"n": 1},
                                                                expect_version=7)])
        seen = []
        await store.update("a", lambda current: seen.append(current.value) or {"n": 3})
        assert seen == [{"n": 1}]
        # Values handed to update functions are fresh copies: changing one in place
        # (then refusing) changes nothing remembered.

        def scribble(current):
            current.value["n"] = 99
            raise VersionMismatch("no")
        with pytest.raises(VersionMismatch):
            await store.update("a", scribble)
        assert (await store.get("a")).value == {"n": 3}
        await store.update("a", lambda current: seen.append(current.value) or current.value)
        assert seen[-1] == {"n": 3}
    async with SqliteStore(db) as store:
        assert (await store.get("a")).value == {"n": 3}
        assert await store.get("b") is None
