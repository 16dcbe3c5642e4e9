"""genisys.pacing as a table: one row per rule of HPA's behavior, no I/O, no clock.

Each row gives the behavior (its stored form: what a service holds), the state of one
paced count (its paced count, the intents seen, the changes made), the intent and
the time, and the exact step: the count ordered now, when the next one is due and
the message. The controller around it is tested against real processes in
tests/e2e/test_pacing.py.
"""

import dataclasses
from typing import Optional

import pytest

from genisys.model import Service
from genisys.pacing import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    Behavior,
    Policy,
    Rules,
    Scope,
    behavior_of,
    pace,
    pace_service,
    seconds,
    utc,
)

T = 1_000_000.0  # now, in seconds since the epoch


def pods(value, period=1):
    return {"type": "Pods", "value": value, "periodSeconds": period}


def percent(value, period=1):
    return {"type": "Percent", "value": value, "periodSeconds": period}


@dataclasses.dataclass
class Row:
    id: str
    behavior: dict
    scope: Scope
    intent: int
    #: The count ordered now, seconds until the next step, the message.
    paced: int
    next_in: Optional[float]
    message: str
    now: float = T


ROWS = [
    # -- HPA's defaults: up by max(100%, 4) per 15 s, down after 300 s.
    Row("defaults from 0: Percent allows 0, so Max picks Pods 4", {}, Scope(0), 500,
        4, 15.0, "Paced: 4 of 500, next step in 15 s"),
    Row("defaults from 10: Percent 100 allows 10, more than Pods 4", {}, Scope(10), 500,
        20, 15.0, "Paced: 20 of 500, next step in 15 s"),
    Row("defaults: within the period, nothing more", {},
        Scope(4, ((T - 5, 500),), ((T - 5, 0, 4),)), 500, 4, 10.0,
        "Paced: 4 of 500, next step in 10 s"),
    Row("defaults: once the period is over, the next step counts from its start", {},
        Scope(4, ((T - 15, 500),), ((T - 15, 0, 4),)), 500, 8, 15.0,
        "Paced: 8 of 500, next step in 15 s"),
    Row("defaults: a scale-down waits out 300 s of the higher intent", {},
        Scope(10, ((T - 400, 10), (T - 10, 6))), 6, 10, 290.0,
        "Paced: 10 of 6, next step in 290 s (scaleDown stabilization window)"),
    Row("defaults: once the window is over, down by up to 100%", {},
        Scope(10, ((T - 400, 10), (T - 300, 6))), 6, 6, None, ""),
    Row("defaults: a scale-down to 0 goes at once once stabilized", {},
        Scope(10, ((T - 400, 10), (T - 300, 0))), 0, 0, None, ""),
    Row("at the intent: nothing to do", {}, Scope(7), 7, 7, None, ""),
    # -- policies and selectPolicy.
    Row("Pods 4 per 1 s", {"scaleUp": {"policies": [pods(4)]}}, Scope(0), 40,
        4, 1.0, "Paced: 4 of 40, next step in 1 s"),
    Row("Pods 4 per 1 s: exactly one period later, the next step",
        {"scaleUp": {"policies": [pods(4)]}}, Scope(4, ((T - 1, 40),), ((T - 1, 0, 4),)), 40,
        8, 1.0, "Paced: 8 of 40, next step in 1 s"),
    Row("Pods 4 per 1 s: the last step is what is left",
        {"scaleUp": {"policies": [pods(4)]}}, Scope(38, ((T - 9, 40),), ((T - 1, 34, 38),)),
        40, 40, None, ""),
    Row("Percent rounds up: 10% of 11 is 2", {"scaleUp": {"policies": [percent(10)]}},
        Scope(11), 100, 13, 1.0, "Paced: 13 of 100, next step in 1 s"),
    Row("Percent down rounds up too: 10% of 11 is 2",
        {"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [percent(10)]}},
        Scope(11), 0, 9, 1.0, "Paced: 9 of 0, next step in 1 s"),
    Row("Max takes the policy that allows the most",
        {"scaleUp": {"selectPolicy": "Max", "policies": [pods(3), percent(50)]}},
        Scope(10), 100, 15, 1.0, "Paced: 15 of 100, next step in 1 s"),
    Row("Min takes the policy that allows the least",
        {"scaleUp": {"selectPolicy": "Min", "policies": [pods(3), percent(50)]}},
        Scope(10), 100, 13, 1.0, "Paced: 13 of 100, next step in 1 s"),
    Row("Min from 0: Percent allows nothing, and nothing moves",
        {"scaleUp": {"selectPolicy": "Min", "policies": [pods(3), percent(50)]}},
        Scope(0), 100, 0, None, "Paced: 0 of 100"),
    Row("Min down: the least change is the highest count",
        {"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Min",
                       "policies": [pods(3), percent(50)]}},
        Scope(10), 0, 7, 1.0, "Paced: 7 of 0, next step in 1 s"),
    Row("Disabled up: no scale-up at all",
        {"scaleUp": {"selectPolicy": "Disabled"}}, Scope(3), 10, 3, None,
        "Paced: 3 of 10 (scaleUp is Disabled)"),
    Row("Disabled down: no scale-down at all",
        {"scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Disabled"}},
        Scope(10), 3, 10, None, "Paced: 10 of 3 (scaleDown is Disabled)"),
    Row("a period counts a scale-down within it as room for a scale-up",
        {"scaleUp": {"policies": [pods(4, 10)]}},
        Scope(6, ((T - 5, 6),), ((T - 8, 4, 8), (T - 5, 8, 6))), 20,
        8, 2.0, "Paced: 8 of 20, next step in 2 s"),
    # -- stabilization windows.
    Row("toggling intents within the scale-down window: no scale-down",
        {"scaleDown": {"stabilizationWindowSeconds": 60}},
        Scope(10, ((T - 30, 10), (T - 20, 6), (T - 10, 10))), 6, 10, 60.0,
        "Paced: 10 of 6, next step in 60 s (scaleDown stabilization window)"),
    Row("back up within the window: at the intent, nothing to do",
        {"scaleDown": {"stabilizationWindowSeconds": 60}},
        Scope(10, ((T - 30, 10), (T - 20, 6))), 10, 10, None, ""),
    Row("a scale-down goes to the highest intent within the window, not further",
        {"scaleDown": {"stabilizationWindowSeconds": 60}},
        Scope(10, ((T - 100, 10), (T - 70, 8))), 2, 8, 60.0,
        "Paced: 8 of 2, next step in 60 s (scaleDown stabilization window)"),
    Row("a scale-up window: up to the lowest intent within it",
        {"scaleUp": {"stabilizationWindowSeconds": 30, "policies": [pods(100)]}},
        Scope(2, ((T - 20, 5),)), 9, 5, 30.0,
        "Paced: 5 of 9, next step in 30 s (scaleUp stabilization window)"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_pace(row):
    step = pace(row.scope, row.intent, behavior=behavior_of(row.behavior), now=row.now)
    assert (step.scope.paced, step.next_in, step.message) == (row.paced, row.next_in,
                                                              row.message)
    assert step.intent == row.intent


def test_hpa_defaults_fill_what_a_behavior_leaves_out():
    assert behavior_of({}) == Behavior(up=DEFAULT_UP, down=DEFAULT_DOWN)
    up, down = DEFAULT_UP, DEFAULT_DOWN
    assert up == Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
    assert down == Rules(300, "Max", (Policy("Percent", 100, 15),))
    given = behavior_of({"scaleUp": {"selectPolicy": "Min"},
                         "scaleDown": {"policies": [pods(2, 60)]}})
    assert given.up == Rules(0, "Min", DEFAULT_UP.policies)
    assert given.down == Rules(300, "Max", (Policy("Pods", 2, 60),))


def test_the_state_keeps_only_what_a_later_step_counts():
    behavior = behavior_of({"scaleUp": {"policies": [pods(4, 10)]},
                            "scaleDown": {"stabilizationWindowSeconds": 20,
                                          "policies": [pods(1, 5)]}})
    scope = Scope(8, ((T - 100, 3), (T - 50, 8), (T - 25, 40)),
                  ((T - 30, 0, 4), (T - 9, 4, 8)))
    step = pace(scope, 40, behavior=behavior, now=T)
    # The intents held within the last 20 s (8, until T - 25, is not), the changes within
    # the last 10 s (the longest period): 4 added, so nothing more before T + 1.
    assert step.scope == Scope(8, ((T - 25, 40),), ((T - 9, 4, 8),))
    assert step.next_in == 1.0
    # Then the change at T - 9 is out of the period (HPA counts what is newer than the
    # cut-off), and the one made now is in.
    later = pace(step.scope, 40, behavior=behavior, now=T + 1)
    assert later.scope == Scope(12, ((T - 25, 40),), ((T + 1, 8, 12),))


def test_a_step_a_second_from_0_to_40_takes_ten_steps_of_4():
    behavior = behavior_of({"scaleUp": {"policies": [pods(4)]}})
    scope, now, seen = Scope(0), T, []
    while True:
        step = pace(scope, 40, behavior=behavior, now=now)
        seen.append(step.scope.paced)
        if step.next_in is None:
            break
        scope, now = step.scope, now + step.next_in
    assert seen == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40]


def service(replicas, behavior=None):
    return Service.from_store({"name": "web", "replicas": replicas, "generation": 3,
                               "deleting": False, "behavior": behavior})


def test_a_service_without_a_behavior_is_not_paced():
    web = service(500)
    paced = pace_service(web, {"observedGeneration": 0, "computes": {}}, now=T)
    assert (paced.service, paced.status, paced.retry_in) == (web, None, None)


def test_a_placed_service_paces_its_total_and_keeps_the_state_in_the_status():
    web = service(40, {"scaleUp": {"policies": [pods(4)]}})
    paced = pace_service(web, {"observedGeneration": 0, "computes": {}}, now=T)
    assert paced.service.replicas == 4 and paced.retry_in == 1.0
    assert paced.status == {
        "message": "Paced: 4 of 40, next step in 1 s",
        "total": {"intent": 40, "paced": 4, "message": "Paced: 4 of 40, next step in 1 s",
                  "nextStep": utc(T + 1), "intents": [{"time": utc(T), "count": 40}],
                  "changes": [{"time": utc(T), "from": 0, "to": 4}]}}
    # The next pass (a restarted controller too) goes on from the status.
    status = {"observedGeneration": 3, "computes": {}, "pacing": paced.status,
              "placement": {"total": 4}}
    assert pace_service(web, status, now=T + 0.5).service.replicas == 4
    assert pace_service(web, status, now=T + 1).service.replicas == 8


def test_counts_per_compute_are_paced_each_on_its_own_and_a_dropped_one_goes_down():
    web = service({"dc1": 10, "dc2": 3}, {"scaleUp": {"policies": [pods(4)]},
                                         "scaleDown": {"stabilizationWindowSeconds": 0,
                                                       "policies": [pods(2)]}})
    status = {"observedGeneration": 2,
              "computes": {"dc2": {"desired": 3}, "dc3": {"desired": 5}}}
    paced = pace_service(web, status, now=T)
    # dc1 from 0, dc2 already at 3, dc3 (no longer named) down by 2.
    assert paced.service.replicas == {"dc1": 4, "dc2": 3, "dc3": 3}
    assert paced.status["message"] == ("dc1: Paced: 4 of 10, next step in 1 s; "
                                       "dc3: Paced: 3 of 0, next step in 1 s")
    assert set(paced.status["computes"]) == {"dc1", "dc2", "dc3"}
    later = {"observedGeneration": 3, "computes": {}, "pacing": paced.status}
    for moment in (T + 1, T + 2):
        step = pace_service(web, later, now=moment)
        later = {"observedGeneration": 3, "computes": {}, "pacing": step.status}
    # dc3 reached 0 and is dropped: the reconciler scales it to 0 there and forgets it.
    assert step.service.replicas == {"dc1": 10, "dc2": 3}
    assert set(step.status["computes"]) == {"dc1", "dc2"}
    assert step.status["message"] == "" and step.retry_in is None


def test_a_service_being_deleted_is_not_paced():
    web = service(40, {}).model_copy(update={"deleting": True})
    assert pace_service(web, {"computes": {}}, now=T).status is None


def test_times_round_trip_to_the_millisecond():
    assert utc(T + 0.25) == "1970-01-12T13:46:40.250Z"
    assert seconds(utc(T + 0.25)) == T + 0.25
