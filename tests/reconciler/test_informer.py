"""The informer over every store: what it keeps, when it reads the store instead,
and which services use a compute."""

import pytest

from genisys.intents import Intents
from genisys.model import Compute
from genisys.reconciler.informer import Informer, _Cache
from genisys.store import Event, Listing, Record
from tests.reconciler.conftest import eventually


class Seen:
    """What the informer told: changed specs and computes, and relistings."""

    def __init__(self):
        self.specs, self.computes, self.relisted = [], [], []

    def informer(self, store):
        async def spec(name):
            self.specs.append(name)

        async def compute(name):
            self.computes.append(name)

        async def specs_relisted(first):
            self.relisted.append(("specs", first))

        async def computes_relisted(first):
            self.relisted.append(("computes", first))
        return Informer(store, on_spec=spec, on_compute=compute,
                        on_specs_relisted=specs_relisted,
                        on_computes_relisted=computes_relisted)


def status(*computes):
    return {"observedGeneration": 1, "computes": {c: {"desired": 1} for c in computes}}


@pytest.fixture
def seen():
    return Seen()


@pytest.mark.gen_test(timeout=30)
async def test_it_follows_specs_statuses_and_computes(store, seen):
    intents = Intents(store, max_replicas=100)
    await intents.create_compute(Compute("a", "http://127.0.0.1:1"))
    await intents.put_service("web", {"a": 1})
    informer = seen.informer(store)
    await informer.start()
    try:
        await eventually(informer.synced, message="all listed")
        assert sorted(seen.relisted) == [("computes", True), ("specs", True)]
        assert (await informer.spec("web")) == await store.get("services/web")
        assert (await informer.compute("a")) == await store.get("computes/a")
        model = await informer.compute_model("a")
        assert model == Compute("a", "http://127.0.0.1:1")
        assert await informer.compute_model("a") is model  # made once per version
        assert await informer.status("web") is None

        await intents.put_service("api", {"a": 2})
        await store.put("status/api", status("a"))
        await eventually(lambda: seen.specs == ["api"], message="the new spec")
        expected = await store.get("status/api")
        await eventually(lambda: _equals(informer.status("api"), expected),
                         message="the new status")
        assert await informer.spec("api") == await store.get("services/api")
        specs, statuses = await informer.specs_and_statuses()
        assert [r.key for r in specs] == ["services/api", "services/web"]
        assert statuses == {"api": expected}

        await intents.put_compute(Compute("a", "http://127.0.0.1:2"))
        await eventually(lambda: seen.computes == ["a"], message="the compute change")
        assert (await informer.compute("a")).value["connector"] == "http://127.0.0.1:2"
        assert await informer.compute_model("a") == Compute("a", "http://127.0.0.1:2")
        await store.delete("computes/a")
        await eventually(lambda: seen.computes == ["a", "a"], message="the compute gone")
        assert await informer.compute_model("a") is None
    finally:
        await informer.stop()


async def _equals(read, expected):
    return await read == expected


@pytest.mark.gen_test(timeout=30)
async def test_a_service_refers_to_a_compute_its_spec_names_or_its_status_still_has(store, seen):
    intents = Intents(store, max_replicas=100)
    for name in ("a", "b"):
        await intents.create_compute(Compute(name, "http://127.0.0.1:1"))
    await intents.put_service("web", {"a": 1})
    await store.put("status/web", status("a", "b"))  # b: dropped, maybe still running there
    await intents.put_service("api", {"b": 0})
    await store.put("status/gone", status("a"))  # a status left without its spec
    informer = seen.informer(store)
    # Before it has listed, it answers from the store, by the same rule.
    assert await informer.services_referring_to("a") == ["gone", "web"]
    assert await informer.services_referring_to("b") == ["api", "web"]
    await informer.start()
    try:
        await eventually(informer.synced, message="all listed")
        await eventually(lambda: _using(informer, "a", ["gone", "web"]), message="a's users")
        assert await informer.services_referring_to("b") == ["api", "web"]
        assert await informer.services_referring_to("c") == []

        await store.put("status/web", status("a"))  # b is done with
        await eventually(lambda: _using(informer, "b", ["api"]), message="web done on b")
        await intents.put_service("api", {"a": 1})
        await eventually(lambda: _using(informer, "b", []), message="api moved to a")
        assert await informer.services_referring_to("a") == ["api", "gone", "web"]
        await store.delete("status/gone")
        await eventually(lambda: _using(informer, "a", ["api", "web"]), message="gone gone")
    finally:
        await informer.stop()


async def _using(informer, compute, services):
    return await informer.services_referring_to(compute) == services


@pytest.mark.gen_test(timeout=30)
async def test_its_own_status_writes_are_indexed_at_once_and_reads_are_the_stores(store, seen):
    await store.put("status/web", status("a"))
    informer = seen.informer(store)
    await informer.start()
    try:
        await eventually(informer.synced, message="all listed")
        assert await informer.services_referring_to("b") == []
        # Stopped watching statuses, so only wrote_status can tell it about this one.
        await informer.stop()
        written = await store.put("status/web", status("a", "b"))
        informer.wrote_status("web", written)
        assert await informer.services_referring_to("b") == ["web"]
        # An older record offered late (a watch event, a listing) changes nothing.
        informer.wrote_status("web", Record("status/web", status("c"), written.version - 1))
        assert await informer.services_referring_to("b") == ["web"]
        assert await informer.services_referring_to("c") == []
        # A pass reads specs and statuses from the store, never a copy that may be stale.
        changed = await store.put("status/web", status("z"))
        assert await informer.status("web") == changed
    finally:
        await informer.stop()


def test_a_record_only_replaces_an_older_version_of_itself():
    cache = _Cache("status/", lambda record: record)
    new = Record("status/web", {"n": 2}, 7)
    assert cache.offer("web", new)
    # A late watch event, and a listing taken before the write, can't bring back the old.
    assert cache.apply(Event("put", "status/web", 5, Record("status/web", {"n": 1}, 5))) is None
    assert cache.replace(Listing([Record("status/web", {"n": 1}, 5)], revision=6)) == set()
    assert cache.replace(Listing([], revision=6)) == set()
    assert cache.apply(Event("delete", "status/web", 6)) is None
    assert cache.names() == ["web"] and cache.get("web") == new
    # Newer news does.
    assert cache.apply(Event("delete", "status/web", 8)) == "web"
    assert cache.names() == [] and cache.get("web") is None
    assert cache.replace(Listing([Record("status/api", {"n": 3}, 9)], revision=9)) == {"api"}
    assert cache.replace(Listing([], revision=10)) == {"api"}
    assert cache.names() == []
