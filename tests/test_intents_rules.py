"""The intent layer's rules called directly, over real stores (memory and a SQLite file):
the limits on computes and services, and forgetting expired Idempotency-Keys.

Written to kill what a mutation run of ``genisys.intents`` left alive; the same rules
through HTTP are in tests/api/."""

import asyncio
import collections
import time

import pytest

from genisys.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyKeyReused,
    Invalid,
    LimitExceeded,
    NotFound,
    VersionMismatch,
)
from genisys.intents import (
    ANY_VERSION,
    IDEMPOTENCY,
    Idempotency,
    Intents,
    computes_used,
    rfc3339,
)
from genisys.model import Compute, ServiceUpdate


def compute(name):
    return Compute(name, "http://127.0.0.1:7051")


async def limit_error(write):
    with pytest.raises(LimitExceeded) as caught:
        await write
    assert caught.value.field == "name"
    return caught.value.message


@pytest.mark.gen_test
async def test_max_computes_refuses_one_more_and_still_lets_existing_ones_change(store):
    intents = Intents(store, max_replicas=10, max_computes=2)
    await intents.create_compute(compute("a"))
    record, created = await intents.put_compute(compute("b"))
    assert created is True and record.key == "computes/b"
    full = "there are already 2 computes, the maximum (max_computes)"
    assert await limit_error(intents.create_compute(compute("c"))) == full
    assert await limit_error(intents.put_compute(compute("c"))) == full
    record, created = await intents.put_compute(Compute("a", "http://127.0.0.1:7052"))
    assert created is False and record.value["connector"] == "http://127.0.0.1:7052"
    await intents.delete_compute("b")
    await intents.create_compute(compute("c"))
    assert sorted(await intents.list_computes()) == ["a", "c"]


@pytest.mark.gen_test
async def test_max_services_refuses_a_new_service_but_not_a_change_of_one(store):
    intents = Intents(store, max_replicas=10, max_services=2)
    await intents.create_compute(compute("local"))
    await intents.upscale("web", "local")
    await intents.scale("db", "local", 3)
    full = "there are already 2 services, the maximum (max_services)"
    assert await limit_error(intents.upscale("cache", "local")) == full
    assert await limit_error(intents.put_service("cache", {"local": 1})) == full
    assert (await intents.upscale("web", "local"))["replicas"] == {"local": 2}
    view, created = await intents.put_service("db", {"local": 1})
    assert created is False and view["replicas"] == {"local": 1}
    assert sorted(await intents.list_services()) == ["db", "web"]


async def remember(intents, key):
    """Upscale with Idempotency-Key ``key``; the stored record's expiry."""
    idempotency = Idempotency(key=key, request=key)
    await intents.upscale("web", "local", idempotency=idempotency)
    return (await intents.store.get(idempotency.store_key)).value["expires"]


@pytest.mark.gen_test
async def test_only_keys_whose_time_is_up_are_forgotten_and_counted(store):
    intents = Intents(store, max_replicas=10, idempotency_ttl=3600.0)
    await intents.create_compute(compute("local"))
    first = await remember(intents, "k1")
    second = await remember(intents, "k2")
    third = await remember(intents, "k3")
    assert first <= second <= third
    assert await intents.forget_expired_idempotency_keys() == 0  # an hour to go
    assert await intents.forget_expired_idempotency_keys(now=first) == 0  # not before its time
    assert await intents.forget_expired_idempotency_keys(now=third + 1) == 3
    assert (await store.list(IDEMPOTENCY)).records == []
    assert await intents.forget_expired_idempotency_keys(now=third + 1) == 0


@pytest.mark.gen_test
@pytest.mark.parametrize("backend", ["sqlite"])  # its writes wait: another may come between
async def test_a_key_renewed_while_expired_ones_are_forgotten_is_kept(store):
    intents = Intents(store, max_replicas=10, idempotency_ttl=3600.0)
    await intents.create_compute(compute("local"))
    await remember(intents, "k1")
    expires = await remember(intents, "k2")
    [first, second] = sorted((await store.list(IDEMPOTENCY)).records,
                             key=lambda r: r.key)

    async def renew_the_other_once_one_is_deleted():
        # The delete's event is delivered before forget() hears its answer: the renewal
        # is queued before forget() asks to delete the second record.
        async with store.watch(IDEMPOTENCY) as watch:
            started.set()
            event = await watch.__anext__()
            assert event.type == "delete"
            other = second if event.key == first.key else first
            return await store.put(other.key, dict(other.value, expires=expires + 7200))
    started = asyncio.Event()
    renewal = asyncio.ensure_future(renew_the_other_once_one_is_deleted())
    await started.wait()
    assert await intents.forget_expired_idempotency_keys(now=expires + 1) == 1
    renewed = await renewal
    assert (await store.list(IDEMPOTENCY)).records == [renewed]


@pytest.mark.gen_test
async def test_only_allowed_connector_hosts_on_create_and_replace(store):
    intents = Intents(store, max_replicas=10, connector_hosts=("*.Internal", "127.0.0.1"))
    await intents.create_compute(Compute("a", "http://db.INTERNAL:7051"))
    await intents.put_compute(Compute("b", "http://127.0.0.1:7051"))
    for write in (intents.create_compute(Compute("c", "http://evil.example:7051")),
                  intents.put_compute(Compute("a", "http://evil.example:7051"))):
        with pytest.raises(Invalid) as caught:
            await write
        assert (caught.value.message, caught.value.field) == (
            "host 'evil.example' is not one of the allowed connector hosts "
            "(*.Internal, 127.0.0.1)", "connector")
    assert (await intents.get_compute("a")).value["connector"] == "http://db.INTERNAL:7051"
    assert sorted(await intents.list_computes()) == ["a", "b"]


@pytest.mark.gen_test
async def test_if_match_on_a_compute_says_what_it_found(store):
    intents = Intents(store, max_replicas=10, max_computes=5)
    record, _ = await intents.put_compute(compute("a"))
    for name, expect, message in (
            ("a", record.version + 1, "compute 'a' is at resourceVersion %d, If-Match asked "
                                      "for %d" % (record.version, record.version + 1)),
            ("new", ANY_VERSION, "compute 'new' does not exist, If-Match cannot match"),
            ("new", 3, "compute 'new' does not exist, If-Match cannot match")):
        with pytest.raises(VersionMismatch) as caught:
            await intents.put_compute(compute(name), expect_version=expect)
        assert caught.value.message == message
    assert sorted(await intents.list_computes()) == ["a"]
    assert (await intents.get_compute("a")).version == record.version


@pytest.mark.gen_test
async def test_the_list_of_services_shows_each_ones_status(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.upscale("web", "local")
    await intents.upscale("db", "local")
    status = {"observedGeneration": 1, "computes": {"local": {"desired": 1, "running": 1}}}
    await store.put("status/web", status)
    services = await intents.list_services()
    assert services["web"]["status"] == status
    assert services["db"]["status"] == {"observedGeneration": 0, "computes": {}}


@pytest.mark.gen_test
async def test_a_key_used_for_another_request_is_refused_by_name(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.upscale("web", "local", idempotency=Idempotency(key="k-1", request="up"))
    with pytest.raises(IdempotencyKeyReused) as caught:
        await intents.downscale("web", "local", idempotency=Idempotency(key="k-1",
                                                                        request="down"))
    assert (caught.value.message, caught.value.field) == (
        "Idempotency-Key 'k-1' was used for another request (a different operation, service "
        "or body)", "Idempotency-Key")
    assert (await intents.get_service("web"))["replicas"] == {"local": 1}


@pytest.mark.gen_test
async def test_an_expired_key_is_a_new_request_that_may_create_the_service_again(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    first = Idempotency(key="k", request="up")
    await intents.upscale("web", "local", idempotency=first)
    # The service is gone since (the reconciler removes a deleted one), the key expired.
    await store.delete("services/web")
    await store.update(first.store_key, lambda current: dict(current.value, expires=0))
    again = Idempotency(key="k", request="up")
    view = await intents.upscale("web", "local", idempotency=again)
    assert again.replayed is False
    assert view["replicas"] == {"local": 1} and view["generation"] == 1
    record = await store.get(again.store_key)
    assert record.value["expires"] > 0 and record.value["service"] == "web"


@pytest.mark.gen_test
async def test_a_compute_something_still_runs_on_cannot_be_deleted(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.create_compute(compute("spare"))
    await intents.scale("web", "local", 0)  # wants nothing there any more...
    await store.put("status/web", {"computes": {"local": {"desired": 0, "running": 2}}})
    await store.put("status/db", {"observedGeneration": 3})  # a status with no computes
    with pytest.raises(Conflict) as caught:
        await intents.delete_compute("local")
    assert (caught.value.message, caught.value.field) == (
        "compute 'local' is in use by service(s) web: scale them to 0 there first, and wait "
        "until nothing runs there", "compute")
    assert (await intents.delete_compute("spare")).key == "computes/spare"
    await store.put("status/web", {"computes": {"local": {"desired": 0, "running": 0}}})
    assert (await intents.delete_compute("local")).key == "computes/local"
    assert await intents.list_computes() == {}


@pytest.mark.gen_test
async def test_put_service_replaces_labels_and_manager(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    view, created = await intents.put_service(
        "web", {"local": 2},
        metadata=ServiceUpdate(replicas={"local": 2}, labels={"team": "a"}, managedBy="ci"))
    assert created is True
    assert (view["labels"], view["managedBy"]) == ({"team": "a"}, "ci")
    assert (await intents.get_service("web"))["labels"] == {"team": "a"}


@pytest.mark.gen_test
async def test_deleting_a_service_marks_it_and_answers_with_its_status(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    with pytest.raises(NotFound) as caught:
        await intents.delete_service("web")
    assert (caught.value.message, caught.value.field) == ("service 'web' does not exist",
                                                          "service")
    await intents.scale("web", "local", 2)
    status = {"observedGeneration": 1, "computes": {"local": {"desired": 2, "running": 2}}}
    await store.put("status/web", status)
    view = await intents.delete_service("web")
    assert view["deleting"] is True and view["status"] == status


@pytest.mark.gen_test
@pytest.mark.parametrize("entry, in_use", [
    ({"desired": 0, "running": 1}, True),
    ({"desired": 1, "running": 0}, True),
    ({"desired": 1, "running": None}, True),
    ({"desired": 0, "running": 0}, False),
    ({"running": 0}, False),
    ({"desired": 0}, False),
])
async def test_what_a_status_says_runs_on_a_compute_decides_if_it_is_in_use(store, entry,
                                                                           in_use):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await store.put("status/web", {"computes": {"local": entry, "other": {"running": 5}}})
    if in_use:
        with pytest.raises(Conflict) as caught:
            await intents.delete_compute("local")
        assert "in use by service(s) web:" in caught.value.message
        assert sorted(await intents.list_computes()) == ["local"]
    else:
        assert (await intents.delete_compute("local")).key == "computes/local"
        assert await intents.list_computes() == {}


@pytest.mark.gen_test
async def test_a_replayed_answer_shows_the_status_of_now(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    first = await intents.upscale("web", "local", idempotency=Idempotency(key="k", request="u"))
    status = {"observedGeneration": 1, "computes": {"local": {"desired": 1, "running": 1}}}
    await store.put("status/web", status)
    replay = Idempotency(key="k", request="u")
    view = await intents.upscale("web", "local", idempotency=replay)
    assert replay.replayed is True
    assert view == dict(first, status=status)


@pytest.mark.gen_test
async def test_downscale_refuses_what_it_cannot_remove_by_name(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.create_compute(compute("spare"))
    with pytest.raises(NotFound) as caught:
        await intents.downscale("web", "local")
    assert (caught.value.message, caught.value.field) == ("service 'web' does not exist",
                                                          "service")
    assert await intents.list_services() == {}
    await intents.scale("web", "local", 1)
    for on in ("spare", "local"):
        if on == "local":
            assert (await intents.downscale("web", "local"))["replicas"] == {"local": 0}
        with pytest.raises(Conflict) as caught:
            await intents.downscale("web", on)
        assert (caught.value.message, caught.value.field) == (
            "service 'web' has no resources on %r to remove" % on, "compute")
    assert (await intents.get_service("web"))["replicas"] == {"local": 0}


@pytest.mark.gen_test
async def test_deleting_a_compute_names_every_user_and_checks_if_match(store):
    intents = Intents(store, max_replicas=10)
    record = await intents.create_compute(compute("local"))
    await intents.upscale("web", "local")
    await intents.upscale("db", "local")
    with pytest.raises(Conflict) as caught:
        await intents.delete_compute("local")
    assert (caught.value.message, caught.value.field) == (
        "compute 'local' is in use by service(s) db, web: scale them to 0 there first, and "
        "wait until nothing runs there", "compute")
    with pytest.raises(VersionMismatch) as caught:
        await intents.delete_compute("local", expect_version=record.version + 1)
    assert caught.value.message == ("compute 'local' is at resourceVersion %d, If-Match "
                                    "asked for %d" % (record.version, record.version + 1))


@pytest.mark.gen_test
async def test_an_unknown_compute_is_not_found_by_name(store):
    intents = Intents(store, max_replicas=10)
    for call in (intents.get_compute("nope"), intents.delete_compute("nope")):
        with pytest.raises(NotFound) as caught:
            await call
        assert (caught.value.message, caught.value.field) == ("compute 'nope' does not exist",
                                                              "compute")


@pytest.mark.gen_test
async def test_a_service_shows_its_status_and_events_from_either_place(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    with pytest.raises(NotFound) as caught:
        await intents.get_service("web")
    assert (caught.value.message, caught.value.field) == ("service 'web' does not exist",
                                                          "service")
    await intents.upscale("web", "local")
    assert (await intents.get_service("web"))["events"] == []
    # A status written before events had a key of their own holds them itself...
    old = {"observedGeneration": 1, "computes": {}, "events": [{"reason": "Old"}]}
    await store.put("status/web", old)
    view = await intents.get_service("web")
    assert view["events"] == [{"reason": "Old"}]
    assert view["status"] == {"observedGeneration": 1, "computes": {}}
    # ...until the events key exists: then it alone counts.
    await store.put("events/web", {"events": [{"reason": "New"}]})
    assert (await intents.get_service("web"))["events"] == [{"reason": "New"}]
    assert await intents.service_events("web") == [{"reason": "New"}]
    await store.put("events/web", {})
    await store.put("status/web", {"observedGeneration": 1, "computes": {}})
    assert (await intents.get_service("web"))["events"] == []


@pytest.mark.gen_test
async def test_upscale_past_max_replicas_is_refused_by_name(store):
    intents = Intents(store, max_replicas=2)
    await intents.create_compute(compute("local"))
    await intents.scale("web", "local", 2)
    with pytest.raises(Conflict) as caught:
        await intents.upscale("web", "local")
    assert (caught.value.message, caught.value.field) == (
        "service 'web' already has 2 resources on 'local', the maximum (max_replicas)",
        "compute")
    assert (await intents.get_service("web"))["replicas"] == {"local": 2}


class Racing:
    """A real store with another writer in it: right before each of the next ``times``
    calls of ``method`` (a write), ``race(store)`` writes through the same store, so
    what the intent layer read before that write no longer holds when it lands."""

    def __init__(self, store, method, times, race):
        self._store, self._method, self.times, self._race = store, method, times, race

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if name != self._method:
            return attribute

        async def write(*args, **kwargs):
            if self.times > 0:
                self.times -= 1
                await self._race(self._store)
            return await attribute(*args, **kwargs)
        return write


async def another_service_changes(store):
    await store.update("services/other", lambda current: {
        "name": "other", "replicas": {}, "n": (current.value["n"] + 1) if current else 0})


@pytest.mark.gen_test
@pytest.mark.parametrize("races, deleted", [(9, True), (10, False)])
async def test_deleting_a_compute_tries_ten_times_while_services_keep_changing(store, races,
                                                                             deleted):
    intents = Intents(store, max_replicas=10)
    record = await intents.create_compute(compute("local"))
    racing = Intents(Racing(store, "delete", races, another_service_changes), max_replicas=10)
    if deleted:
        assert await racing.delete_compute("local") == record
        assert await intents.list_computes() == {}
    else:
        with pytest.raises(Conflict) as caught:
            await racing.delete_compute("local")
        assert (caught.value.message, caught.value.field) == (
            "compute 'local' keeps changing, try again", "compute")
        assert await intents.get_compute("local") == record
    assert (await store.get("services/other")).value["n"] == races - 1


@pytest.mark.gen_test
async def test_deleting_a_compute_changed_meanwhile_deletes_and_answers_the_new_one(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))

    async def moved(real):
        await Intents(real, max_replicas=10).put_compute(Compute("local",
                                                                 "http://127.0.0.1:7052"))
    deleted = await Intents(Racing(store, "delete", 1, moved), max_replicas=10
                            ).delete_compute("local")
    assert deleted.value["connector"] == "http://127.0.0.1:7052"
    assert await intents.list_computes() == {}


async def another_compute_changes(store):
    await store.put("computes/a", compute("a").to_json())


@pytest.mark.gen_test
@pytest.mark.parametrize("races, written", [(9, True), (10, False)])
@pytest.mark.parametrize("how", ["create", "put"])
async def test_a_new_compute_within_max_computes_tries_ten_times_while_computes_change(
        store, races, written, how):
    intents = Intents(store, max_replicas=10, max_computes=3)
    await intents.create_compute(compute("a"))
    # Both create it with a put that expects no version (a PUT tries a replace first).
    racing = Intents(Racing(store, "put", races, another_compute_changes), max_replicas=10,
                     max_computes=3)
    write = (racing.create_compute(compute("b")) if how == "create"
             else racing.put_compute(compute("b")))
    if written:
        result = await write
        record, created = result if how == "put" else (result, True)
        assert (record.key, record.value, created) == ("computes/b", compute("b").to_json(),
                                                       True)
        assert sorted(await intents.list_computes()) == ["a", "b"]
    else:
        with pytest.raises(Conflict) as caught:
            await write
        assert (caught.value.message, caught.value.field) == (
            "computes keep changing, try again", "name")
        assert sorted(await intents.list_computes()) == ["a"]


@pytest.mark.gen_test
async def test_a_put_whose_new_compute_another_created_meanwhile_replaces_it(store):
    """A PUT found no compute to replace; before its creation lands, another writer
    creates it: the PUT replaces that one (200, not created) rather than failing."""
    async def created_meanwhile(real):
        await real.put("computes/b", Compute("b", "http://127.0.0.1:7099").to_json())
    racing = Intents(Racing(store, "put", 1, created_meanwhile), max_replicas=10)
    record, created = await racing.put_compute(compute("b"))
    assert (record.value, created) == (compute("b").to_json(), False)
    assert (await store.get("computes/b")) == record


@pytest.mark.gen_test
async def test_an_expired_key_renewed_while_it_is_forgotten_is_answered_from_the_renewal(
        store):
    """Two retries of one request with an expired Idempotency-Key: the other one renews
    the key between this one's read of it and its delete. The delete must fail (the key
    is not the expired one any more) and this retry be answered from the renewal, not
    applied a second time."""
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    first = Idempotency(key="k", request="up")
    await intents.upscale("web", "local", idempotency=first)
    await store.update(first.store_key, lambda current: dict(current.value, expires=0))

    async def renewed(real):
        await Intents(real, max_replicas=10).upscale(
            "web", "local", idempotency=Idempotency(key="k", request="up"))
    racing = Intents(Racing(store, "delete", 1, renewed), max_replicas=10)
    retry = Idempotency(key="k", request="up")
    view = await racing.upscale("web", "local", idempotency=retry)
    assert retry.replayed is True
    assert view["replicas"] == {"local": 2}
    assert (await intents.get_service("web"))["replicas"] == {"local": 2}
    assert (await store.get(first.store_key)).value["expires"] > 0


@pytest.mark.gen_test
async def test_a_service_whose_status_has_no_events_and_no_events_key_shows_none(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.upscale("web", "local")
    status = {"observedGeneration": 1, "computes": {"local": {"desired": 1, "running": 0}}}
    await store.put("status/web", status)
    view = await intents.get_service("web")
    assert (view["events"], view["status"]) == ([], status)
    assert await intents.service_events("web") == []


def test_the_computes_a_service_uses():
    spec = {"replicas": {"a": 0, "b": 2}}
    status = {"computes": {"c": {"desired": 0, "running": 1}, "d": {"desired": 0},
                           "b": {"desired": 2, "running": 2}}}
    assert computes_used(spec, status) == {"b", "c"}
    assert computes_used({}, {}) == computes_used(None, None) == frozenset()


def test_times_are_rfc3339_in_utc():
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1700000000.75) == "2023-11-14T22:13:20Z"


@pytest.mark.gen_test
async def test_a_new_service_starts_at_generation_one_even_with_no_replicas(store):
    intents = Intents(store, max_replicas=10)
    view, created = await intents.put_service("web", {})
    assert (created, view["generation"], view["replicas"]) == (True, 1, {})
    again, created = await intents.put_service("web", {})
    assert (created, again["generation"], again["resourceVersion"]) == (
        False, 1, view["resourceVersion"])


@pytest.mark.gen_test
async def test_deleting_a_service_bumps_its_generation_once(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    before = await intents.scale("web", "local", 2)
    marked = await intents.delete_service("web")
    assert (marked["deleting"], marked["generation"]) == (True, before["generation"] + 1)
    again = await intents.delete_service("web")
    assert (again["generation"], again["resourceVersion"]) == (
        marked["generation"], marked["resourceVersion"])


@pytest.mark.gen_test
async def test_a_replayed_change_that_changed_nothing_answers_the_version_the_spec_kept(
        store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    first = await intents.scale("web", "local", 3)
    same = await intents.scale("web", "local", 3, idempotency=Idempotency(key="k",
                                                                          request="s3"))
    assert same["resourceVersion"] == first["resourceVersion"]
    replay = Idempotency(key="k", request="s3")
    again = await intents.scale("web", "local", 3, idempotency=replay)
    assert replay.replayed is True
    assert again == same


@pytest.mark.gen_test
async def test_a_new_service_records_when_it_was_created(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    before = rfc3339(time.time())
    view = await intents.upscale("web", "local")
    after = rfc3339(time.time())
    assert before <= view["created"] <= after
    assert (await intents.upscale("web", "local"))["created"] == view["created"]


@pytest.mark.gen_test
async def test_a_service_being_deleted_takes_no_more_changes(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.scale("web", "local", 2)
    marked = await intents.delete_service("web")
    for change in (intents.upscale("web", "local"), intents.scale("web", "local", 5),
                   intents.put_service("web", {"local": 1})):
        with pytest.raises(Conflict) as caught:
            await change
        assert (caught.value.message, caught.value.field) == (
            "service 'web' is being deleted", "service")
    assert (await intents.get_service("web"))["resourceVersion"] == marked["resourceVersion"]


@pytest.mark.gen_test
async def test_creating_a_compute_that_exists_is_refused_and_changes_nothing(store):
    intents = Intents(store, max_replicas=10)
    first = await intents.create_compute(compute("local"))
    with pytest.raises(AlreadyExists) as caught:
        await intents.create_compute(Compute("local", "http://127.0.0.1:7052"))
    assert (caught.value.message, caught.value.field) == (
        "compute 'local' already exists (use PUT /compute/local to change it)", "name")
    assert await intents.get_compute("local") == first


@pytest.mark.gen_test
async def test_a_change_naming_a_missing_compute_is_not_found_by_name(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    for change in (intents.upscale("web", "nope"), intents.scale("web", "nope", 2),
                   intents.put_service("web", {"local": 1, "nope": 1})):
        with pytest.raises(NotFound) as caught:
            await change
        assert (caught.value.message, caught.value.field) == (
            "compute 'nope' does not exist", "compute")
    assert await intents.list_services() == {}


@pytest.mark.gen_test
async def test_a_new_service_counted_against_max_services_keeps_its_key_and_labels(store):
    """A new service is written again once the services are counted: that second write
    records the Idempotency-Key and keeps a PUT body's labels, as the first would have."""
    intents = Intents(store, max_replicas=10, max_services=5)
    await intents.create_compute(compute("local"))
    first = await intents.upscale("web", "local", idempotency=Idempotency(key="k",
                                                                          request="up"))
    replay = Idempotency(key="k", request="up")
    assert await intents.upscale("web", "local", idempotency=replay) == first
    assert replay.replayed is True
    view, created = await intents.put_service(
        "db", {"local": 1},
        metadata=ServiceUpdate(replicas={"local": 1}, labels={"team": "a"}, managedBy="ci"))
    assert (created, view["labels"], view["managedBy"]) == (True, {"team": "a"}, "ci")
    assert (await intents.get_service("db"))["labels"] == {"team": "a"}


@pytest.mark.gen_test
async def test_the_answer_to_a_change_shows_the_services_status(store):
    intents = Intents(store, max_replicas=10)
    await intents.create_compute(compute("local"))
    await intents.upscale("web", "local")
    status = {"observedGeneration": 1, "computes": {"local": {"desired": 1, "running": 1}}}
    await store.put("status/web", status)
    assert (await intents.upscale("web", "local"))["status"] == status
    view, _ = await intents.put_service("web", {"local": 3})
    assert view["status"] == status


class Counting:
    """A real store that counts the calls of each of its methods."""

    def __init__(self, store):
        self._store, self.calls = store, collections.Counter()

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)
        return counted


@pytest.mark.gen_test
async def test_puts_of_one_new_compute_made_together_create_it_once_then_replace_it(store):
    """Thirty clients PUT the same new compute at once: one creates it, the others wait
    for that creation and replace it, instead of each trying to create it in turn."""
    counting = Counting(store)
    intents = Intents(counting, max_replicas=10, max_computes=5)
    answers = await asyncio.gather(*(
        intents.put_compute(Compute("new", "http://127.0.0.1:%d" % (7000 + i)))
        for i in range(30)))
    assert counting.calls["put"] == 1
    assert [created for _, created in answers].count(True) == 1
    stored = await intents.get_compute("new")
    assert stored == max((record for record, _ in answers), key=lambda r: r.version)
    # A creation that fails (no room) fails the others' too, each on its own try.
    full = Intents(Counting(store), max_replicas=10, max_computes=1)
    outcomes = await asyncio.gather(*(full.put_compute(compute("other")) for _ in range(5)),
                                    return_exceptions=True)
    assert all(isinstance(o, LimitExceeded) for o in outcomes), outcomes
    assert sorted(await intents.list_computes()) == ["new"]
