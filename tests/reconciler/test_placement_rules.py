"""genisys.placement.assign as a table: one row per situation, no I/O.

Each row gives a placed service (its total, placement and rebalance counter), its last
status as the reconciler stores it (per-compute entries, and status.placement), the
computes (name -> labels) and what their connectors can hold, and then what this pass
makes of it: the assignment, the condition and message status.placement shows, and
the events ``genisys.placement.moves`` says. The properties behind these rules
(for any total, any computes) are in tests/properties/test_placement.py.
"""

from typing import Any, NamedTuple, Optional

import pytest

from genisys import placement as pl
from genisys.model import CONVERGED, ERROR, PROGRESSING, Placement, Service
from genisys.reconciler.status import entry

#: Three computes: two in eu, one in us.
COMPUTES = {"dc1": {"region": "eu"}, "dc2": {"region": "eu"}, "dc3": {"region": "us"}}
EU = {"computes": ["dc1", "dc2"]}
#: Ties go to computes by name, in an order that starts at a compute chosen by the
#: service's name (``genisys.placement.turns``): for "mail" (crc32 a multiple of 12),
#: at the first by name, with 2, 3 or 4 computes alike.
NAME = "mail"


def service(total, placement=None, *, rebalance=0, name=NAME):
    return Service(name=name, replicas=total, generation=1, deleting=False,
                   placement=None if placement is None else Placement.model_validate(placement),
                   rebalance=rebalance)


def running(**counts):
    """A status whose per-compute entries have converged on ``counts``."""
    return {"observedGeneration": 1,
            "computes": {c: entry(None, desired=n, running=n, condition=CONVERGED)
                         for c, n in counts.items()}}


def placed(status, assignment, *, total=6, rebalanced=0, condition=pl.PLACED):
    """``status`` with the status.placement of an earlier pass that assigned
    ``assignment`` (of ``total``)."""
    return dict(status, placement={
        "total": total, "placed": sum(assignment.values()), "condition": condition,
        "message": "", "assignment": assignment, "shares": assignment, "reasons": {},
        "capacity": {}, "rebalanced": rebalanced})


def after_a_pass(first, capacity):
    """The status once ``first`` was placed by a pass that read ``capacity`` and what it
    assigned runs: status.placement as ``assign`` wrote it (capacity included)."""
    placement = pl.assign(first, {}, computes=COMPUTES, capacity=capacity)
    return dict(running(**placement["assignment"]), placement=placement)


def scaling(status, compute, desired, now):
    """``status`` with ``compute`` still on its way from ``now`` to ``desired``."""
    computes = dict(status["computes"], **{compute: entry(
        None, desired=desired, running=now, condition=PROGRESSING, reason="Scaling")})
    return dict(status, computes=computes)


#: dc2's connector refused the last order: it would go past its capacity.
REFUSED = {"computes": {
    "dc1": entry(None, desired=2, running=2, condition=CONVERGED),
    "dc2": entry(None, desired=3, running=1, condition=ERROR, reason=pl.INSUFFICIENT_CAPACITY,
                 message="409 InsufficientCapacity")}}


class Row(NamedTuple):
    service: Service
    status: dict
    #: compute -> (total, used by the other services) its connector reports (None: what
    #: the status recorded).
    capacity: Optional[dict]
    assignment: dict
    condition: str
    message: str
    events: list
    #: Other fields of status.placement to check (shares, reasons, rebalanced, ...).
    more: dict[str, Any] = {}
    computes: dict = COMPUTES


ROWS = {
    # -- a fresh placement: the shares --------------------------------------------------
    "spread 5 over two: 3 and 2": Row(
        service(5, EU), {}, {},
        {"dc1": 3, "dc2": 2}, pl.PLACED, "5 placed on 2 compute(s) (Spread)",
        ["placed 3 on dc1 (Spread)", "placed 2 on dc2 (Spread)"],
        {"shares": {"dc1": 3, "dc2": 2}, "placed": 5, "total": 5,
         "reasons": {"dc1": "Spread: share 3 of 5", "dc2": "Spread: share 2 of 5"}}),
    "no placement: spread over every compute": Row(
        service(7), {}, None,
        {"dc1": 3, "dc2": 2, "dc3": 2}, pl.PLACED, "7 placed on 3 compute(s) (Spread)",
        ["placed 3 on dc1 (Spread)", "placed 2 on dc2 (Spread)", "placed 2 on dc3 (Spread)"]),
    "selector: only the computes whose labels match": Row(
        service(4, {"selector": {"matchLabels": {"region": "eu"}}}), {}, None,
        {"dc1": 2, "dc2": 2}, pl.PLACED, "4 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc1 (Spread)", "placed 2 on dc2 (Spread)"]),
    "selector NotIn: a compute without the label matches": Row(
        service(2, {"selector": {"matchExpressions": [
            {"key": "region", "operator": "NotIn", "values": ["eu"]}]}}),
        {}, None, {"dc3": 1, "dc4": 1}, pl.PLACED, "2 placed on 2 compute(s) (Spread)",
        ["placed 1 on dc3 (Spread)", "placed 1 on dc4 (Spread)"],
        computes=dict(COMPUTES, dc4={})),
    "another service's ties start elsewhere: web over two at dc2": Row(
        service(5, EU, name="web"), {}, {},
        {"dc1": 2, "dc2": 3}, pl.PLACED, "5 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc1 (Spread)", "placed 3 on dc2 (Spread)"]),
    "another service's ties start elsewhere: web over three at dc3, then dc1": Row(
        service(8, name="web"), {}, {},
        {"dc1": 3, "dc2": 2, "dc3": 3}, pl.PLACED, "8 placed on 3 compute(s) (Spread)",
        ["placed 3 on dc1 (Spread)", "placed 2 on dc2 (Spread)", "placed 3 on dc3 (Spread)"]),
    "weighted 3:1 of 8: 6 and 2": Row(
        service(8, dict(EU, strategy="Weighted", weights={"dc1": 3, "dc2": 1})), {}, {},
        {"dc1": 6, "dc2": 2}, pl.PLACED, "8 placed on 2 compute(s) (Weighted)",
        ["placed 6 on dc1 (Weighted)", "placed 2 on dc2 (Weighted)"],
        {"reasons": {"dc1": "Weighted: share 6 of 8 (weight 3)",
                     "dc2": "Weighted: share 2 of 8 (weight 1)"}}),
    "weighted: a compute it does not name weighs 1, weight 0 gets nothing": Row(
        service(6, {"strategy": "Weighted", "weights": {"dc1": 2, "dc3": 0}}), {}, {},
        {"dc1": 4, "dc2": 2}, pl.PLACED, "6 placed on 2 compute(s) (Weighted)",
        ["placed 4 on dc1 (Weighted)", "placed 2 on dc2 (Weighted)"]),
    "weighted 1:1 of 3: the remainder's tie goes by name": Row(
        service(3, dict(EU, strategy="Weighted")), {}, {},
        {"dc1": 2, "dc2": 1}, pl.PLACED, "3 placed on 2 compute(s) (Weighted)",
        ["placed 2 on dc1 (Weighted)", "placed 1 on dc2 (Weighted)"]),
    "capacity 2 on dc1: never more there, the rest elsewhere": Row(
        service(6, EU), {}, {"dc1": (2, 0)},
        {"dc1": 2, "dc2": 4}, pl.PLACED, "6 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc1 (Spread)", "placed 4 on dc2 (Spread)"],
        {"reasons": {"dc1": "Spread: share 2 of 6, full (capacity 2, 0 used by others)",
                     "dc2": "Spread: share 4 of 6"}}),
    "capacity 5, 3 used by other services: room for 2": Row(
        service(6, EU), {}, {"dc1": (5, 3)},
        {"dc1": 2, "dc2": 4}, pl.PLACED, "6 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc1 (Spread)", "placed 4 on dc2 (Spread)"],
        {"reasons": {"dc1": "Spread: share 2 of 6, full (capacity 5, 3 used by others)",
                     "dc2": "Spread: share 4 of 6"}}),
    "strategy Capacity: by what each can take; none reported, nothing": Row(
        service(4, {"strategy": "Capacity"}), {}, {"dc1": (10, 4), "dc2": (4, 2)},
        {"dc1": 3, "dc2": 1}, pl.PLACED, "4 placed on 2 compute(s) (Capacity)",
        ["placed 3 on dc1 (Capacity)", "placed 1 on dc2 (Capacity)"],
        {"shares": {"dc1": 3, "dc2": 1}}),
    "pack: the listed order, each up to maxPerCompute": Row(
        service(6, {"computes": ["dc3", "dc1", "dc2"], "strategy": "Pack",
                    "maxPerCompute": 4}), {}, {},
        {"dc1": 2, "dc3": 4}, pl.PLACED, "6 placed on 2 compute(s) (Pack)",
        ["placed 2 on dc1 (Pack)", "placed 4 on dc3 (Pack)"],
        {"reasons": {"dc1": "Pack: share 2 of 6",
                     "dc3": "Pack: share 4 of 6, full (maxPerCompute 4)"}}),
    "pack: a capacity smaller than maxPerCompute bounds first": Row(
        service(6, {"computes": ["dc1", "dc2"], "strategy": "Pack", "maxPerCompute": 4}),
        {}, {"dc1": (5, 2)},
        {"dc1": 3, "dc2": 3}, pl.PLACED, "6 placed on 2 compute(s) (Pack)",
        ["placed 3 on dc1 (Pack)", "placed 3 on dc2 (Pack)"]),
    "maxPerCompute 2 on two: 4 of 6 fit": Row(
        service(6, dict(EU, maxPerCompute=2)), {}, {},
        {"dc1": 2, "dc2": 2}, pl.UNSCHEDULABLE, "Unschedulable: 6 wanted, 4 fit",
        ["placed 2 on dc1 (Spread)", "placed 2 on dc2 (Spread)"], {"placed": 4}),
    "no compute in the placement": Row(
        service(3, {"computes": ["dc9"]}), {}, {},
        {}, pl.UNSCHEDULABLE, "Unschedulable: 3 wanted, 0 fit (no compute is in the placement)",
        [], {"shares": {}, "reasons": {}}),
    "total 0: nothing anywhere": Row(
        service(0, EU), {}, {},
        {}, pl.PLACED, "0 placed on 0 compute(s) (Spread)", []),
    # -- steady: a change of the total, of the computes --------------------------------
    "total 6 to 8: adds where furthest under, moves nothing": Row(
        service(8, EU), placed(running(dc1=4, dc2=2), {"dc1": 4, "dc2": 2}), {},
        {"dc1": 4, "dc2": 4}, pl.PLACED, "8 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc2 (Spread)"]),
    "total 6 to 3: removes where furthest over": Row(
        service(3, EU), placed(running(dc1=4, dc2=2), {"dc1": 4, "dc2": 2}), {},
        {"dc1": 2, "dc2": 1}, pl.PLACED, "3 placed on 2 compute(s) (Spread)",
        ["took 2 off dc1 (Spread)", "took 1 off dc2 (Spread)"]),
    "counts per compute, then a total: it starts from those counts": Row(
        service(6, EU), running(dc1=4), {},
        {"dc1": 4, "dc2": 2}, pl.PLACED, "6 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc2 (Spread)"], {"shares": {"dc1": 3, "dc2": 3}}),
    "a third compute joins: nothing moves until a rebalance": Row(
        service(6), placed(running(dc1=3, dc2=3), {"dc1": 3, "dc2": 3}), {},
        {"dc1": 3, "dc2": 3}, pl.PLACED, "6 placed on 2 compute(s) (Spread)", [],
        {"shares": {"dc1": 2, "dc2": 2, "dc3": 2},
         "reasons": {"dc1": "Spread: share 2 of 6; holds 3 until a rebalance",
                     "dc2": "Spread: share 2 of 6; holds 3 until a rebalance",
                     "dc3": "Spread: share 2 of 6; holds 0 until a rebalance"}}),
    "a third compute joins and the total grows: it gets the new one": Row(
        service(7), placed(running(dc1=3, dc2=3), {"dc1": 3, "dc2": 3}), {},
        {"dc1": 3, "dc2": 3, "dc3": 1}, pl.PLACED, "7 placed on 3 compute(s) (Spread)",
        ["placed 1 on dc3 (Spread)"]),
    "a compute leaves the placement: it keeps its count": Row(
        service(6, EU), placed(running(dc1=2, dc2=2, dc3=2), {"dc1": 2, "dc2": 2, "dc3": 2}),
        {}, {"dc1": 2, "dc2": 2, "dc3": 2}, pl.PLACED, "6 placed on 3 compute(s) (Spread)", [],
        {"shares": {"dc1": 3, "dc2": 3},
         "reasons": {"dc1": "Spread: share 3 of 6; holds 2 until a rebalance",
                     "dc2": "Spread: share 3 of 6; holds 2 until a rebalance",
                     "dc3": "not in the placement: kept until a rebalance"}}),
    "a compute left and the total shrinks: it loses first": Row(
        service(4, EU), placed(running(dc1=2, dc2=2, dc3=2), {"dc1": 2, "dc2": 2, "dc3": 2}),
        {}, {"dc1": 2, "dc2": 2}, pl.PLACED, "4 placed on 2 compute(s) (Spread)",
        ["took 2 off dc3 (Spread)"]),
    "a compute left, a tie in how far over: it loses before one in the placement": Row(
        service(4, EU), placed(running(dc1=3, dc2=1, dc3=1), {"dc1": 3, "dc2": 1, "dc3": 1},
                               total=5), {},
        {"dc1": 3, "dc2": 1}, pl.PLACED, "4 placed on 2 compute(s) (Spread)",
        ["took 1 off dc3 (Spread)"], {"shares": {"dc1": 2, "dc2": 2}}),
    "a compute refused for lack of room: keeps what it can hold, the rest elsewhere": Row(
        service(5, EU), placed(REFUSED, {"dc1": 2, "dc2": 3}, total=5), {"dc2": (3, 2)},
        {"dc1": 4, "dc2": 1}, pl.PLACED, "5 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc1 (Spread)", "took 2 off dc2 (Spread)"],
        {"reasons": {"dc1": "Spread: share 4 of 5",
                     "dc2": "Spread: share 1 of 5, full (capacity 3, 2 used by others)"}}),
    "capacity None: what the last pass recorded, its own 2 on dc1 not counted twice": Row(
        service(8, EU), after_a_pass(service(6, EU), {"dc1": (2, 0)}), None,
        {"dc1": 2, "dc2": 6}, pl.PLACED, "8 placed on 2 compute(s) (Spread)",
        ["placed 2 on dc2 (Spread)"],
        {"reasons": {"dc1": "Spread: share 2 of 8, full (capacity 2, 0 used by others)",
                     "dc2": "Spread: share 6 of 8"}}),
    # -- rebalance: asked by a counter above status.placement.rebalanced ---------------
    "rebalance asked: adds maxSurge (25% of 6: 2) where under": Row(
        service(6, rebalance=1), placed(running(dc1=3, dc2=3), {"dc1": 3, "dc2": 3}), {},
        {"dc1": 3, "dc2": 3, "dc3": 2}, pl.REBALANCING,
        "rebalancing to 2 on dc1, 2 on dc2, 2 on dc3, 2 at a time",
        ["placed 2 on dc3 (rebalance)"], {"rebalanced": 0, "placed": 8}),
    "rebalance waits while what is assigned does not run": Row(
        service(6, rebalance=1),
        placed(scaling(running(dc1=3, dc2=3), "dc3", 2, 1), {"dc1": 3, "dc2": 3, "dc3": 2},
               condition=pl.REBALANCING), {},
        {"dc1": 3, "dc2": 3, "dc3": 2}, pl.REBALANCING,
        "rebalancing to 2 on dc1, 2 on dc2, 2 on dc3, 2 at a time", [], {"rebalanced": 0}),
    "rebalance, once it all runs: removes as many where over": Row(
        service(6, rebalance=1),
        placed(running(dc1=3, dc2=3, dc3=2), {"dc1": 3, "dc2": 3, "dc3": 2},
               condition=pl.REBALANCING), {},
        {"dc1": 2, "dc2": 2, "dc3": 2}, pl.REBALANCING,
        "rebalancing to 2 on dc1, 2 on dc2, 2 on dc3, 2 at a time",
        ["took 1 off dc1 (rebalance)", "took 1 off dc2 (rebalance)"], {"rebalanced": 0}),
    "rebalance done when the shares run: rebalanced catches up": Row(
        service(6, rebalance=1),
        placed(running(dc1=2, dc2=2, dc3=2), {"dc1": 2, "dc2": 2, "dc3": 2},
               condition=pl.REBALANCING), {},
        {"dc1": 2, "dc2": 2, "dc3": 2}, pl.PLACED, "6 placed on 3 compute(s) (Spread)", [],
        {"rebalanced": 1, "reasons": {"dc1": "Spread: share 2 of 6",
                                      "dc2": "Spread: share 2 of 6",
                                      "dc3": "Spread: share 2 of 6"}}),
    "rebalance already done: the counter is not above rebalanced": Row(
        service(6, rebalance=1), placed(running(dc1=3, dc2=3), {"dc1": 3, "dc2": 3},
                                        rebalanced=1), {},
        {"dc1": 3, "dc2": 3}, pl.PLACED, "6 placed on 2 compute(s) (Spread)", [],
        {"rebalanced": 1}),
    "rebalance with maxSurge 1 off a compute that left": Row(
        service(4, dict(EU, maxSurge=1), rebalance=2),
        placed(running(dc1=2, dc3=2), {"dc1": 2, "dc3": 2}, total=4, rebalanced=1), {},
        {"dc1": 2, "dc2": 1, "dc3": 2}, pl.REBALANCING,
        "rebalancing to 2 on dc1, 2 on dc2, 1 at a time",
        ["placed 1 on dc2 (rebalance)"], {"rebalanced": 1}),
    "rebalance of an even spread: the remainder stays where it runs": Row(
        service(4, rebalance=1), placed(running(dc1=1, dc2=1, dc3=2),
                                        {"dc1": 1, "dc2": 1, "dc3": 2}, total=4), {},
        {"dc1": 1, "dc2": 1, "dc3": 2}, pl.PLACED, "4 placed on 3 compute(s) (Spread)", [],
        {"rebalanced": 1, "shares": {"dc1": 1, "dc2": 1, "dc3": 2}}),
    "rebalance to shares that hold less than the total: what has no room goes": Row(
        service(6, dict(EU, maxPerCompute=2), rebalance=1),
        placed(running(dc1=3, dc2=3), {"dc1": 3, "dc2": 3}), {},
        {"dc1": 2, "dc2": 2}, pl.UNSCHEDULABLE, "Unschedulable: 6 wanted, 4 fit",
        ["took 1 off dc1 (rebalance)", "took 1 off dc2 (rebalance)"], {"rebalanced": 0}),
    "rebalance to shares that hold less than the total: ends once they run": Row(
        service(6, dict(EU, maxPerCompute=2), rebalance=1),
        placed(running(dc1=2, dc2=2), {"dc1": 2, "dc2": 2}, condition=pl.UNSCHEDULABLE), {},
        {"dc1": 2, "dc2": 2}, pl.UNSCHEDULABLE, "Unschedulable: 6 wanted, 4 fit", [],
        {"rebalanced": 1}),
    "rebalance with nothing to move is done at once": Row(
        service(6, rebalance=1), placed(running(dc1=2, dc2=2, dc3=2),
                                        {"dc1": 2, "dc2": 2, "dc3": 2}), {},
        {"dc1": 2, "dc2": 2, "dc3": 2}, pl.PLACED, "6 placed on 3 compute(s) (Spread)", [],
        {"rebalanced": 1}),
}


def why(service, status):
    """What the events of a pass say moved resources: as the controller has it, the
    strategy, or "rebalance" while one is asked for and not done."""
    if service.rebalance > (status.get("placement") or {}).get("rebalanced", 0):
        return "rebalance"
    return service.placement.strategy if service.placement else pl.SPREAD


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
def test_assign(row):
    got = pl.assign(row.service, row.status, computes=row.computes, capacity=row.capacity)
    assert (got["assignment"], got["condition"], got["message"]) \
        == (row.assignment, row.condition, row.message)
    assert {field: got[field] for field in row.more} == row.more
    assert sum(got["assignment"].values()) == got["placed"]
    said = pl.moves(row.status, got, why(row.service, row.status))
    assert [message for _, message in said] == row.events
    assert [compute for compute, _ in said] == sorted(compute for compute, _ in said)


@pytest.mark.parametrize("total, setting, surge", [
    (6, None, 2), (8, None, 2), (1, None, 1), (0, None, 1), (6, "50%", 3), (7, "100%", 7),
    (10, "1%", 1), (10, 3, 3), (2, 5, 5),
], ids=str)
def test_max_surge(total, setting, surge):
    assert pl.max_surge(total, setting) == surge


@pytest.mark.parametrize("status, total, rebalance, needed", [
    ({}, 6, 0, True),
    (placed({}, {"dc1": 6}, total=6), 6, 0, False),
    (placed({}, {"dc1": 6}, total=6), 7, 0, True),
    (placed({}, {"dc1": 6}, total=6, rebalanced=1), 6, 1, False),
    (placed({}, {"dc1": 6}, total=6, rebalanced=1), 6, 2, True),
    (placed({}, {"dc1": 4}, total=6), 6, 0, True),
    (placed(REFUSED, {"dc1": 2, "dc2": 3}, total=5), 5, 0, True),
], ids=["no placement yet", "same total", "new total", "rebalance done", "rebalance asked",
        "unschedulable: room may have come", "a compute refused for lack of room"])
def test_needs_capacity_only_when_the_assignment_may_change(status, total, rebalance, needed):
    assert pl.needs_capacity(service(total, rebalance=rebalance), status) is needed
