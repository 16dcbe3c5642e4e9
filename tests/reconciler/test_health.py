"""Compute health, rule by rule (genisys.reconciler.health): the conditions the
outcomes of connector calls lead to, with the time passed in."""

import pytest

from genisys.reconciler.health import NOT_READY, READY, UNKNOWN, ComputeHealth, Health, Thresholds

T = Thresholds(failure=30, success=30, flap_limit=3, flap_window=300)


def run(outcomes, thresholds=T, start=None):
    """Feed (seconds, ok) outcomes of compute "c"; returns [(seconds, condition, reason)]
    of each change, and the tracker."""
    health = ComputeHealth(thresholds)
    if start is not None:
        health.restore("c", start)
    changes = []
    for at, ok in outcomes:
        new = health.observe("c", ok, at, "refused") if ok is not None else \
            health.tick(at).get("c")
        if new is not None:
            changes.append((at, new.condition, new.reason))
    return changes, health


def test_a_compute_never_heard_from_is_unknown():
    health = ComputeHealth(T)
    assert health.condition("c", 5.0) == Health(UNKNOWN, "NotObserved", health.condition(
        "c", 5.0).message, 5.0)
    assert health.tick(100.0) == {}


def test_its_first_answer_makes_it_ready_at_once():
    assert run([(1, True)])[0] == [(1, READY, "Answering")]


@pytest.mark.parametrize("outcomes, changes", [
    # One lost call, or a few within the threshold, flip nothing.
    ([(0, True), (10, False), (20, True)], [(0, READY, "Answering")]),
    ([(0, True), (10, False), (39, False), (40, True)], [(0, READY, "Answering")]),
    # Failing every call for the threshold: NotReady.
    ([(0, True), (10, False), (25, False), (40, False)],
     [(0, READY, "Answering"), (40, NOT_READY, "NotAnswering")]),
    # ... also by time alone (tick), without another call.
    ([(0, True), (10, False), (41, None)],
     [(0, READY, "Answering"), (41, NOT_READY, "NotAnswering")]),
    # Back: Ready only once it has answered every call for the success threshold.
    ([(0, True), (10, False), (40, False), (50, True), (60, True), (79, True), (80, True)],
     [(0, READY, "Answering"), (40, NOT_READY, "NotAnswering"), (80, READY, "Answering")]),
    # A failure within the success threshold starts it over.
    ([(0, True), (10, False), (40, False), (50, True), (70, False), (75, True), (100, True),
      (105, None)],
     [(0, READY, "Answering"), (40, NOT_READY, "NotAnswering"), (105, READY, "Answering")]),
    # Never answered: Unknown until the failure threshold, then NotReady.
    ([(0, False), (20, False), (30, False)], [(30, NOT_READY, "NotAnswering")]),
])
def test_thresholds_keep_one_lost_call_from_flipping_it(outcomes, changes):
    assert run(outcomes)[0] == changes


def test_a_compute_that_flaps_stays_not_ready_until_it_has_answered_for_the_window():
    t = Thresholds(failure=1, success=1, flap_limit=3, flap_window=60)
    outcomes, at = [], 0.0
    for _ in range(3):  # down 2 s, up 2 s: NotReady, then Ready, three times
        outcomes += [(at, True), (at + 0.1, False), (at + 1.5, False), (at + 2, True),
                     (at + 3.5, True)]
        at += 4
    changes, health = run(outcomes, t)
    assert changes == [
        (0, READY, "Answering"), (1.5, NOT_READY, "NotAnswering"), (3.5, READY, "Answering"),
        (5.5, NOT_READY, "NotAnswering"), (7.5, READY, "Answering"),
        (9.5, NOT_READY, "NotAnswering"),
        # The third time, it answers again but stays NotReady: Flapping.
        (10.0, NOT_READY, "Flapping")]
    for second in range(12, 70):  # answering all along
        assert health.observe("c", True, second) is None
    assert health.condition("c", 69).condition == NOT_READY
    assert health.observe("c", True, 70.5).condition == READY  # 60 s after it came back


def test_a_stored_condition_is_where_a_restarted_controller_starts():
    down = Health(NOT_READY, "NotAnswering", "its connector has failed every call", 100.0)
    # Still failing: it stays NotReady, since when it was stored.
    changes, health = run([(200, False), (300, False)], start=down)
    assert changes == [] and health.condition("c", 300) == down
    # Answering: Ready only after the success threshold, counted from this controller's
    # first answer.
    assert run([(200, True), (229, True), (230, True)], start=down)[0] == [
        (230, READY, "Answering")]


def test_a_forgotten_compute_is_unknown_again():
    _, health = run([(0, True)])
    health.forget("c")
    assert health.condition("c", 1).condition == UNKNOWN
    assert health.conditions() == {}


def test_stored_form_round_trips():
    h = Health(NOT_READY, "NotAnswering", "its connector has failed every call for 30s: x",
               1764000000.0)
    stored = h.to_store("dc1")
    assert stored == {"name": "dc1", "condition": NOT_READY, "reason": "NotAnswering",
                      "message": h.message, "lastTransitionTime": "2025-11-24T16:00:00Z"}
    assert Health.from_store(stored) == h
