"""The informer over every store: what it keeps (computes), what it hands over
(listings, changes), and which services refer to a compute."""

import random

import pytest

from genisys.intents import Intents
from genisys.model import Compute
from genisys.reconciler.informer import ANY, Informer, _Cache, _SpecCache
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

        async def specs_relisted(first, records):
            self.relisted.append(("specs", first, [r.key for r in records]))

        async def computes_relisted(first, records):
            self.relisted.append(("computes", first, [r.key for r in records]))
        return Informer(store, on_spec=spec, on_compute=compute,
                        on_specs_relisted=specs_relisted,
                        on_computes_relisted=computes_relisted)


def status(*computes):
    return {"observedGeneration": 1, "computes": {c: {"desired": 1} for c in computes}}


@pytest.fixture
def seen():
    return Seen()


@pytest.mark.gen_test(timeout=30)
async def test_it_follows_specs_and_computes_and_reads_specs_and_statuses_fresh(store, seen):
    intents = Intents(store, max_replicas=100)
    await intents.create_compute(Compute("a", "http://127.0.0.1:1"))
    await intents.put_service("web", {"a": 1})
    informer = seen.informer(store)
    await informer.start()
    try:
        await eventually(informer.synced, message="all listed")
        # Each listing is handed over (the controller queues the services of it).
        assert sorted(seen.relisted) == [("computes", True, ["computes/a"]),
                                         ("specs", True, ["services/web"])]
        assert (await informer.compute("a")) == await store.get("computes/a")
        model = await informer.compute_model("a")
        assert model == Compute("a", "http://127.0.0.1:1")
        assert await informer.compute_model("a") is model  # made once per version

        await intents.put_service("api", {"a": 2})
        await eventually(lambda: seen.specs == ["api"], message="the new spec")
        written = await store.put("status/api", status("a"))
        specs, statuses = await informer.specs_and_statuses()
        assert [r.key for r in specs] == ["services/api", "services/web"]
        assert statuses == {"api": written}
        listed = specs[:1]  # specs just listed are taken as they are
        assert (await informer.specs_and_statuses(listed)) == (listed, {"api": written})

        await intents.put_compute(Compute("a", "http://127.0.0.1:2"))
        await eventually(lambda: seen.computes == ["a"], message="the compute change")
        assert (await informer.compute("a")).value["connector"] == "http://127.0.0.1:2"
        assert await informer.compute_model("a") == Compute("a", "http://127.0.0.1:2")
        await store.delete("computes/a")
        await eventually(lambda: seen.computes == ["a", "a"], message="the compute gone")
        assert await informer.compute_model("a") is None
    finally:
        await informer.stop()


@pytest.mark.gen_test(timeout=30)
async def test_it_knows_the_services_whose_spec_names_a_compute_without_reading_them(store, seen):
    intents = Intents(store, max_replicas=100)
    for name in ("a", "b"):
        await intents.create_compute(Compute(name, "http://127.0.0.1:1"))
    await intents.put_service("web", {"a": 1, "b": 0})
    await intents.put_service("api", {"b": 2})
    informer = seen.informer(store)
    await informer.start()
    try:
        await eventually(informer.synced, message="all listed")
        assert informer.services_using("a") == {"web"}
        assert informer.services_using("b") == {"api", "web"}
        assert informer.services_using("c") == set()
        await intents.put_service("api", {"a": 1})  # moved from b to a
        await eventually(lambda: informer.services_using("b") == {"web"}, message="api moved")
        assert informer.services_using("a") == {"api", "web"}
        await store.delete("services/web")
        await eventually(lambda: informer.services_using("a") == {"api"}, message="web gone")
        assert informer.services_using("b") == set()
    finally:
        await informer.stop()


def test_a_record_only_replaces_an_older_version_of_itself():
    cache = _Cache("computes/", lambda record: record)
    new = Record("computes/a", {"n": 2}, 7)
    assert cache.offer("a", new)
    # A late watch event, and a listing taken before the write, can't bring back the old.
    cache.apply(Event("put", "computes/a", 5, Record("computes/a", {"n": 1}, 5)))
    cache.replace(Listing([Record("computes/a", {"n": 1}, 5)], revision=6))
    cache.replace(Listing([], revision=6))
    cache.apply(Event("delete", "computes/a", 6))
    assert cache.kept() == {"a": new}
    # Newer news does.
    cache.apply(Event("delete", "computes/a", 8))
    assert cache.kept() == {}
    cache.replace(Listing([Record("computes/b", {"n": 3}, 9)], revision=9))
    assert list(cache.kept()) == ["b"]
    cache.replace(Listing([], revision=10))
    assert cache.kept() == {}


def test_the_index_of_services_by_compute_follows_every_change_of_the_specs():
    rng = random.Random(11)
    cache = _SpecCache()
    revision = 0

    def spec(name):
        nonlocal revision
        revision += 1
        if rng.random() < 0.2:  # a placed service: it may use any compute
            value = {"name": name, "replicas": 3}
        else:
            named = rng.sample("abcd", rng.randint(0, 3))
            value = {"name": name, "replicas": {c: 1 for c in named}}
        return Record("services/" + name, value, revision)

    names = ["s%d" % i for i in range(12)]
    for step in range(3000):
        name = rng.choice(names)
        roll = rng.random()
        if roll < 0.5:
            cache.apply(Event("put", "services/" + name, revision + 1, spec(name)))
        elif roll < 0.6:  # a late event: older than what is cached, ignored
            cache.apply(Event("put", "services/" + name, 1, Record("services/" + name,
                                                                   {"replicas": {"z": 1}}, 1)))
        elif roll < 0.8:
            revision += 1
            cache.apply(Event("delete", "services/" + name, revision))
        else:
            listed = [spec(n) for n in sorted(rng.sample(names, rng.randint(0, 6)))]
            cache.replace(Listing(listed, revision=revision))
        expected = {}
        for service, (_, named) in cache.entries.items():
            for compute in named:
                expected.setdefault(compute, set()).add(service)
        assert cache.using == expected, step
    assert set(cache.using) <= set("abcd") | {ANY}
