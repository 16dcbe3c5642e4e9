"""Fail-over of placed services, rule by rule (genisys.placement.assign with the
computes' health and the time passed in): what moves off a NotReady compute, when,
and when the originals go, and the guard rails that hold it back."""

import pytest

from genisys import placement
from genisys.model import Service, utc_seconds, utc_text

COMPUTES = {"a": {}, "b": {}, "c": {}}
#: The moment c went NotReady (wall-clock seconds).
DOWN = utc_seconds("2026-11-29T12:00:00Z")
READY, NOT_READY = "Ready", "NotReady"


def service(mode="Graceful", total=6, rebalance=0, **more):
    failover = {"tolerationSeconds": 10, "purgeMode": mode, "gracePeriodSeconds": 100}
    return Service.from_store({
        "name": "web", "replicas": total, "generation": 1, "deleting": False,
        "rebalance": rebalance,
        "placement": dict({"computes": ["a", "b", "c"], "failover": failover}, **more)})


def status(assignment, running=None, placed=None):
    """A status whose entries run ``running`` (default: the assignment), converged."""
    running = assignment if running is None else running
    entries = {c: {"desired": assignment.get(c, 0), "running": n,
                   "condition": "Converged" if n == assignment.get(c, 0) else "Progressing",
                   "reason": "", "message": "", "lastTransitionTime": "2026-11-29T11:00:00Z",
                   "failures": 0} for c, n in running.items()}
    before = dict(placed or {}, assignment=assignment, total=6, rebalanced=0)
    return {"observedGeneration": 1, "computes": entries, "placement": before}


def health(**conditions):
    """compute -> (condition, since): each given one since DOWN, the others Ready."""
    found = {c: (READY, DOWN - 3600) for c in COMPUTES}
    found.update({c: (condition, DOWN) for c, condition in conditions.items()})
    return found


def assign(svc, st, at, *, rate=None, **kwargs):
    kwargs.setdefault("health", health(c=NOT_READY))
    placed = placement.assign(svc, st, computes=COMPUTES, now=DOWN + at,
                              may_start=lambda: rate, **kwargs)
    return placed, placed.pop("_pass", None)


def failed_over(mode="Graceful", at=11):
    """The status after c failed over (at DOWN + ``at``)."""
    placed, _ = assign(service(mode), status({"a": 2, "b": 2, "c": 2}), at)
    return placed


def test_within_the_toleration_nothing_moves_and_the_status_says_when_it_will():
    placed, told = assign(service(), status({"a": 2, "b": 2, "c": 2}), 4)
    assert placed["assignment"] == {"a": 2, "b": 2, "c": 2}
    assert placed["failover"]["condition"] == "Tolerating"
    assert placed["failover"]["computes"]["c"]["message"] == (
        "NotReady since 2026-11-29T12:00:00Z: its 2 fail over at 2026-11-29T12:00:10Z "
        "(tolerationSeconds 10)")
    assert told == {"events": [], "retry_in": 6.0, "why": None, "started": 0}


def test_past_the_toleration_the_share_moves_to_the_ready_computes_and_the_originals_stay():
    placed, told = assign(service(), status({"a": 2, "b": 2, "c": 2}), 11)
    assert placed["assignment"] == {"a": 3, "b": 3, "c": 2}
    assert (placed["condition"], placed["placed"]) == ("Placed", 6)
    record = placed["failover"]["computes"]["c"]
    assert record == {"state": "FailedOver", "notReadySince": "2026-11-29T12:00:00Z",
                      "failedOverAt": "2026-11-29T12:00:11Z", "originals": 2,
                      "message": record["message"]}
    assert record["message"] == (
        "NotReady since 2026-11-29T12:00:00Z; its 2 moved to the Ready computes at "
        "2026-11-29T12:00:11Z; the originals go when it is Ready again: once the replacements "
        "run, or from 2026-11-29T12:01:51Z on (purgeMode Graceful)")
    assert (told["why"], told["started"]) == ("fail-over from c", 1)
    assert [e[:3] for e in told["events"]] == [("Warning", "FailedOver", "c")]
    # The next pass, c still down: nothing more moves, nothing more is said.
    again, told = assign(service(), dict(status({"a": 3, "b": 3, "c": 2}), placement=placed), 30)
    assert again["assignment"] == {"a": 3, "b": 3, "c": 2}
    assert again["failover"] == placed["failover"]
    assert told["events"] == [] and told["why"] is None


def test_replacements_go_only_where_there_is_room():
    placed, _ = assign(service(maxPerCompute=2), status({"a": 2, "b": 2, "c": 2}), 11)
    assert placed["assignment"] == {"a": 2, "b": 2, "c": 2}  # the originals only
    assert (placed["condition"], placed["message"]) == ("Unschedulable",
                                                        "Unschedulable: 6 wanted, 4 fit")


def test_the_rate_holds_a_fail_over_back_and_says_when_it_may_go():
    placed, told = assign(service(), status({"a": 2, "b": 2, "c": 2}), 11, rate=1.5)
    assert placed["assignment"] == {"a": 2, "b": 2, "c": 2}
    assert placed["failover"]["condition"] == "Pending"
    assert placed["failover"]["message"] == ("c NotReady past the toleration: waiting for "
                                             "the fail-over rate")
    assert told["retry_in"] == 1.5


def test_the_breaker_holds_everything_when_most_computes_are_down():
    placed, told = assign(service(), status({"a": 2, "b": 2, "c": 2}), 11,
                          health=health(b=NOT_READY, c=NOT_READY))
    assert placed["assignment"] == {"a": 2, "b": 2, "c": 2}
    assert placed["failover"]["condition"] == "Held"
    assert placed["failover"]["message"] == (
        "2 of the placement's 3 computes are NotReady (more than 55%): genisys' own network "
        "is the likelier fault, so nothing fails over")
    assert [e[1] for e in told["events"]] == ["FailoverHeld"]
    # Said once: the next pass holds on quietly.
    _, told = assign(service(), dict(status({"a": 2, "b": 2, "c": 2}), placement=placed), 20,
                     health=health(b=NOT_READY, c=NOT_READY))
    assert told["events"] == []


def test_a_breaker_of_the_whole_placement_lets_one_of_two_fail_over():
    placed, _ = assign(service(), status({"a": 2, "b": 2, "c": 2}), 11,
                       health=health(c=NOT_READY), breaker=0.3)
    assert placed["failover"]["condition"] == "Held"  # 1 of 3 is more than 30%
    placed, _ = assign(service(), status({"a": 2, "b": 2, "c": 2}), 11,
                       health=health(c=NOT_READY), breaker=0.34)
    assert placed["assignment"] == {"a": 3, "b": 3, "c": 2}


@pytest.mark.parametrize("mode, running, at, purged, why", [
    ("Immediate", {"a": 2, "b": 2}, 20, True, "it is Ready again (purgeMode Immediate)"),
    ("Graceful", {"a": 3, "b": 3}, 20, True,
     "it is Ready again and the replacements run (purgeMode Graceful)"),
    ("Graceful", {"a": 3, "b": 2}, 20, False, None),  # b's replacement not running yet
    ("Graceful", {"a": 3, "b": 2}, 111, True,
     "it is Ready again and the grace period of 100s is over (purgeMode Graceful)"),
    ("Never", {"a": 3, "b": 3}, 2000, False, None),
])
def test_when_the_compute_is_back_the_originals_go_as_the_purge_mode_says(mode, running, at,
                                                                        purged, why):
    before = failed_over(mode)
    st = dict(status({"a": 3, "b": 3, "c": 2}, running=dict(running, c=2)), placement=before)
    placed, told = assign(service(mode), st, at, health=health())
    if purged:
        assert placed["assignment"] == {"a": 3, "b": 3}
        assert "failover" not in placed
        assert told["events"] == [("Normal", "Purged", "c",
                                   "removed the 2 original(s) of web on c: " + why)]
    else:
        assert placed["assignment"] == {"a": 3, "b": 3, "c": 2}
        state = placed["failover"]["computes"]["c"]["state"]
        assert state == ("Kept" if mode == "Never" else "Returned")
        if mode == "Graceful":
            assert 0 < told["retry_in"] <= placement.PURGE_CHECK


def test_never_keeps_the_originals_says_so_once_and_lets_go_on_a_rebalance():
    before = failed_over("Never")
    st = dict(status({"a": 3, "b": 3, "c": 2}), placement=before)
    kept, told = assign(service("Never"), st, 20, health=health())
    assert kept["failover"]["condition"] == "Kept"
    assert kept["failover"]["computes"]["c"]["message"] == (
        "Ready again; its 2 original(s) stay (purgeMode Never): POST /service/web/rebalance "
        "removes them")
    assert [e[1] for e in told["events"]] == ["OriginalsKept"]
    _, told = assign(service("Never"), dict(st, placement=kept), 30, health=health())
    assert told["events"] == []
    # A rebalance lets them go: c is one of the placement's computes again.
    placed, told = assign(service("Never", rebalance=1), dict(st, placement=kept), 40,
                          health=health())
    assert "failover" not in placed
    assert [e[1] for e in told["events"]] == ["Purged"]
    assert placed["condition"] == "Rebalancing"


def test_a_deleted_compute_stops_being_held():
    before = failed_over()
    st = dict(status({"a": 3, "b": 3, "c": 2}), placement=before)
    placed = placement.assign(service(), st, computes={"a": {}, "b": {}}, now=DOWN + 20,
                              health=health(c=NOT_READY))
    assert placed["assignment"] == {"a": 3, "b": 3}
    assert "failover" not in placed


def test_the_plan_without_health_shows_what_failed_over_as_it_stands():
    before = failed_over()
    st = dict(status({"a": 3, "b": 3, "c": 2}), placement=before)
    placed = placement.assign(service(), st, computes=COMPUTES)
    assert placed["assignment"] == {"a": 3, "b": 3, "c": 2}


def test_a_service_without_failover_never_moves_off_a_down_compute():
    svc = Service.from_store({"name": "web", "replicas": 6, "generation": 1, "deleting": False,
                              "placement": {"computes": ["a", "b", "c"]}})
    placed = placement.assign(svc, status({"a": 2, "b": 2, "c": 2}), computes=COMPUTES,
                              health=health(c=NOT_READY), now=DOWN + 10_000)
    assert placed["assignment"] == {"a": 2, "b": 2, "c": 2}
    assert "failover" not in placed


def test_times_are_seconds_of_utc():
    assert utc_text(DOWN + 11.9) == "2026-11-29T12:00:11Z"
