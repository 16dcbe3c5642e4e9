"""Properties of the placement algorithm (genisys.placement): how a total is divided
over computes, fresh and after changes of the total, and how a rebalance walks to
the shares.

Inputs are small on purpose (a few computes, totals up to 30, rooms up to 12) so that
rooms bind, remainders tie and weights are 0 often enough to matter; a few service
names turn the order ties go in (``turns``). The concrete
cases, with the status and events they make, are a table in
tests/reconciler/test_placement_rules.py.
"""

import dataclasses
import json
import math
from typing import NamedTuple

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from genisys import placement as pl
from genisys.model import CONVERGED, Placement, Selector, Service
from genisys.reconciler.status import entry
from tests.properties.common import PROPERTY

#: Compute names: some sort as strings the other way than as numbers (dc10 < dc2).
POOL = ("a", "b", "dc1", "dc10", "dc2", "eu-1")
#: Names of computes that were in a previous assignment and are not candidates now.
GONE = ("gone", "old")
MAX_TOTAL = 30


class Setup(NamedTuple):
    spec: dict
    names: list
    capacity: dict
    found: list
    #: The service's name: where the order ties are broken in starts.
    salt: str = ""

    def place(self, total, **kwargs):
        return pl.place(total, self.spec, self.found, salt=self.salt, **kwargs)


# Strategies are built once and combined with tuples and map, not drawn from within a
# composite: that is most of the time an example takes.
MOST = 5  # computes
weights = st.none() | st.integers(0, 5)  # None: the placement names no weight
reports = st.none() | st.tuples(st.integers(0, 12), st.integers(0, 12))  # (total, used)
most_per_compute = st.none() | st.integers(1, 8)
#: Service names: none (ties by name), and names whose turns start at other computes.
salts = st.sampled_from(["", "mail", "web", "api-7"])


def setups(strategies=pl.STRATEGIES, bounded=True, min_size=1):
    """A placement spec and its candidates as ``pl.candidates`` makes them: with
    ``bounded``, maybe a maxPerCompute and, for each compute, maybe a capacity."""
    def setup(drawn):
        strategy, computes, most, salt = drawn
        names = [name for name, _, _ in computes]
        spec = {"strategy": strategy}
        if strategy == pl.WEIGHTED:
            spec["weights"] = {name: w for name, w, _ in computes if w is not None}
        if most is not None:
            spec["maxPerCompute"] = most
        capacity = {name: r for name, _, r in computes if r is not None}
        return Setup(spec, names, capacity, pl.candidates(spec, names, capacity=capacity,
                                                          running={}), salt)
    # Each compute: its name, its weight (Weighted), what its connector reports.
    computes = st.lists(st.tuples(st.sampled_from(POOL), weights,
                                  reports if bounded else st.none()),
                        unique_by=lambda c: c[0], min_size=min_size, max_size=MOST)
    return st.tuples(st.sampled_from(strategies), computes,
                     most_per_compute if bounded else st.none(), salts).map(setup)


totals = st.integers(0, MAX_TOTAL)
total_changes = st.lists(totals, max_size=6)


def fit(strategy, found, previous=None):
    """How many the candidates hold in all, or besides ``previous`` (math.inf: no
    bound), said independently: Pack may use every compute, the other strategies those
    with a weight."""
    usable = [c for c in found if strategy == pl.PACK or c.weight > 0]
    if any(c.room is None for c in usable):
        return math.inf
    return sum(max(0, c.room - (previous or {}).get(c.name, 0)) for c in usable)


def fresh(total, setup):
    return setup.place(total, previous=None, running={}, rebalance=False)


def changed(total, setup, previous):
    """The placement after the total became ``total``, ``previous`` running."""
    return setup.place(total, previous=previous, running=previous, rebalance=False)


def history(setup, first, then):
    """Each placement from a fresh one of ``first`` through the totals ``then``."""
    result = fresh(first, setup)
    yield first, result
    for total in then:
        result = changed(total, setup, result.assignment)
        yield total, result


def counts(result, setup):
    """Every candidate's count, 0s included."""
    return {c.name: result.assignment.get(c.name, 0) for c in setup.found}


def assert_within_rooms(assignment, found):
    for c in found:
        if c.room is not None:
            assert assignment.get(c.name, 0) <= c.room, (c, assignment)


#: A past assignment as counts: ``assignment(names, counts)``.
counts_drawn = st.lists(st.integers(0, 6), max_size=MOST + len(GONE))


def assignment(names, drawn, most=math.inf):
    """The counts ``drawn`` on the candidates ``names`` and then on computes that are
    gone, taking none past ``most`` in all."""
    found = {}
    for name, n in zip(list(names) + list(GONE), drawn):
        n = min(n, most - sum(found.values()))
        if n > 0:
            found[name] = n
    return dict(sorted(found.items()))


# -- the total, and rooms ----------------------------------------------------------


@PROPERTY
@given(setups(), totals, total_changes)
def test_the_assignment_holds_the_total_or_all_that_fits_and_no_room_is_exceeded(
        setup, first, then):
    strategy = setup.spec["strategy"]
    room = fit(strategy, setup.found)
    assert pl.fits(strategy, setup.found) == (None if room == math.inf else room)
    for total, result in history(setup, first, then):
        assert result.placed == min(total, room)
        assert sum(result.shares.values()) == min(total, room)
        assert set(result.assignment) <= set(setup.names)
        assert all(n > 0 for n in result.assignment.values())
        assert_within_rooms(result.assignment, setup.found)
        assert_within_rooms(result.shares, setup.found)


def placed_service(total, spec, rebalance=0):
    return Service(name="web", replicas=total, generation=1, deleting=False,
                   placement=Placement.model_validate(spec), rebalance=rebalance)


@PROPERTY
@given(setups(), totals, st.booleans())
def test_assign_says_unschedulable_with_what_was_wanted_and_what_fit(setup, total, exist):
    # The placement lists its computes; they exist, or none of them does.
    spec = dict(setup.spec, computes=setup.names)
    computes = {name: {} for name in setup.names} if exist else {}
    status = pl.assign(placed_service(total, spec), {}, computes=computes,
                       capacity=setup.capacity)
    room = fit(setup.spec["strategy"], setup.found) if exist else 0
    assert status["placed"] == min(total, room)
    if total <= room:
        assert status["condition"] == pl.PLACED
    else:
        assert status["condition"] == pl.UNSCHEDULABLE
        assert status["message"] == "Unschedulable: %d wanted, %d fit%s" % (
            total, room, "" if exist else " (no compute is in the placement)")


@PROPERTY
@given(setups(), totals, totals, st.booleans())
def test_a_pass_that_reads_no_capacity_keeps_to_the_one_the_status_recorded(
        setup, total, new_total, rebalance):
    # The first pass read the connectors while the service ran nothing there; the next
    # one reads nothing (a pass whose assignment may not change, GET /plan) and goes by
    # what the first recorded, the service's own resources now running there: they
    # must not count as room a second time.
    spec = dict(setup.spec, computes=setup.names)
    computes = {name: {} for name in setup.names}
    first = pl.assign(placed_service(total, spec), {}, computes=computes,
                      capacity=setup.capacity)
    status = {"computes": {c: entry(None, desired=n, running=n, condition=CONVERGED)
                           for c, n in first["assignment"].items()}, "placement": first}
    second = pl.assign(placed_service(new_total, spec, rebalance=int(rebalance)), status,
                       computes=computes)
    assert second["capacity"] == first["capacity"]
    for name, (most, used) in setup.capacity.items():
        assert second["assignment"].get(name, 0) <= max(0, most - used), (first, second)
        assert second["shares"].get(name, 0) <= max(0, most - used), (first, second)


# -- Spread ------------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.sampled_from(POOL), unique=True, min_size=1, max_size=5),
       most_per_compute, salts, totals, total_changes)
def test_spread_stays_within_one_through_any_changes_of_the_total(
        names, most, salt, first, then):
    # No rooms, or the same maxPerCompute on every compute.
    spec = {"strategy": pl.SPREAD} if most is None else {"strategy": pl.SPREAD,
                                                         "maxPerCompute": most}
    setup = Setup(spec, names, {}, pl.candidates(spec, names, capacity={}, running={}), salt)
    for _, result in history(setup, first, then):
        spread = counts(result, setup).values()
        assert max(spread) - min(spread) <= 1
        assert result.assignment == result.shares


@PROPERTY
@given(st.lists(st.sampled_from(POOL), unique=True, min_size=1, max_size=5), totals,
       salts, st.randoms(use_true_random=False))
def test_an_even_spread_is_its_own_shares_whichever_computes_hold_one_more(
        names, total, salt, rng):
    # The remainder's ties go to the computes that hold more already: a rebalance of
    # an even spread has nothing to move.
    low, extra = divmod(total, len(names))
    more = set(rng.sample(names, extra))
    even = {name: low + (name in more) for name in names}
    found = pl.candidates({}, names, capacity={}, running={})
    assert pl.shares(total, pl.SPREAD, found, even, pl.turns(names, salt)) == even
    assert pl.place(total, {}, found, previous=even, running=even, rebalance=True,
                    salt=salt).rebalanced


# -- determinism -----------------------------------------------------------------


@PROPERTY
@given(setups(), totals, st.randoms(use_true_random=False), st.booleans())
def test_the_same_input_gives_the_same_placement_in_any_order_of_the_computes(
        setup, total, rng, rebalance):
    previous = fresh(total, setup).assignment
    grown = min(MAX_TOTAL, total + 3)
    first = setup.place(grown, previous=previous, running=previous, rebalance=rebalance)
    again = setup.place(grown, previous=previous, running=previous, rebalance=rebalance)
    assert again == first
    if setup.spec["strategy"] == pl.PACK:
        return  # its order is the placement's
    found = list(setup.found)
    rng.shuffle(found)
    reordered = list(previous.items())
    rng.shuffle(reordered)
    other = setup._replace(found=found).place(grown, previous=dict(reordered),
                                              running=dict(reversed(reordered)),
                                              rebalance=rebalance)
    assert shown(other) == shown(first)


def shown(result):
    """A placement as written, keys in their order (equal dicts may differ in it)."""
    return json.dumps(dataclasses.asdict(result))


labels = st.dictionaries(st.sampled_from(["region", "tier"]), st.sampled_from(["eu", "us"]),
                         max_size=2)


_keys, _values = st.sampled_from(["region", "tier", "zone"]), st.sampled_from(["eu", "us"])
_expressions = st.lists(st.tuples(
    _keys, st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(_values, min_size=1, max_size=2, unique=True)), max_size=3)


def selector(drawn):
    match, rules = drawn
    selector = {} if match is None else {"matchLabels": match}
    expressions = [{"key": key, "operator": operator, "values": values}
                   if operator in ("In", "NotIn") else {"key": key, "operator": operator}
                   for key, operator, values in rules]
    if expressions:
        selector["matchExpressions"] = expressions
    Selector.model_validate(selector)
    return selector


#: Selectors the model accepts, over the keys and values ``labels`` uses and one key
#: (zone) no compute has.
selectors = st.tuples(st.none() | st.dictionaries(_keys, _values, max_size=2),
                      _expressions).map(selector)


@PROPERTY
@given(setups(strategies=[pl.SPREAD, pl.WEIGHTED, pl.CAPACITY]),
       st.dictionaries(st.sampled_from(POOL), labels), st.none() | selectors,
       totals, st.randoms(use_true_random=False))
def test_assign_over_a_selector_does_not_depend_on_the_order_of_the_computes(
        setup, computes, selector, total, rng):
    spec = dict(setup.spec)
    if selector is not None:
        spec["selector"] = selector
    service = placed_service(total, spec)

    def shuffled(mapping):
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    first = pl.assign(service, {}, computes=computes, capacity=setup.capacity)
    written = json.dumps(first)
    for field in ("assignment", "shares", "reasons", "capacity"):
        first[field]["x"] = 1  # what a caller does with its answer is not the next one's
    again = pl.assign(service, {}, computes=shuffled(computes),
                      capacity=shuffled(setup.capacity))
    assert json.dumps(again) == written
    grown = placed_service(min(MAX_TOTAL, total + 2), spec)
    status = {"placement": again}
    assert json.dumps(pl.assign(grown, status, computes=shuffled(computes))) \
        == json.dumps(pl.assign(grown, status, computes=computes))


# -- steady ----------------------------------------------------------------------


@PROPERTY
@given(setups(), counts_drawn, totals, st.booleans(), st.booleans())
def test_a_change_of_the_total_never_moves_anything_between_computes(
        setup, drawn, total, rebalance, settled):
    previous = assignment(setup.names, drawn)
    before = sum(previous.values())
    assume(total != before)
    running = previous if settled else {}
    after = setup.place(total, previous=previous, running=running,
                        rebalance=rebalance).assignment
    for name in set(previous) | set(after):
        if total > before:
            assert after.get(name, 0) >= previous.get(name, 0), (name, previous, after)
        else:
            assert after.get(name, 0) <= previous.get(name, 0), (name, previous, after)
    # It grows by what the rooms left allow; it shrinks unless a rebalance waits for
    # what it assigned to run.
    if total > before:
        room = fit(setup.spec["strategy"], setup.found, previous)
        assert sum(after.values()) == before + min(total - before, room)
    else:
        assert sum(after.values()) == (before if rebalance and not settled else total)


@PROPERTY
@given(setups(min_size=2), totals, st.integers(0, 4), totals)
def test_a_compute_that_leaves_keeps_its_count_and_is_the_first_to_lose(
        setup, total, which, new_total):
    previous = fresh(total, setup).assignment
    leaving = setup.names[which % len(setup.names)]
    rest = setup._replace(names=[n for n in setup.names if n != leaving],
                          found=[c for c in setup.found if c.name != leaving])
    held, placed = previous.get(leaving, 0), sum(previous.values())
    after = changed(new_total, rest, previous).assignment
    if new_total == total:
        assert after == previous
    if new_total < placed:
        assert after.get(leaving, 0) == max(0, held - (placed - new_total)), (previous, after)
    else:
        assert after.get(leaving, 0) == held


# -- Pack, Weighted, Capacity ---------------------------------------------------------


@PROPERTY
@given(setups(strategies=[pl.PACK]), totals, total_changes)
def test_pack_fills_the_computes_in_order(setup, first, then):
    for _, result in history(setup, first, then):
        filled = [result.assignment.get(c.name, 0) for c in setup.found]
        last = max((i for i, n in enumerate(filled) if n > 0), default=0)
        for c, n in zip(setup.found[:last], filled):
            assert c.room is not None and n == c.room, (setup.found, filled)


def test_weighted_3_to_1_of_8_is_6_and_2():
    spec = {"strategy": pl.WEIGHTED, "weights": {"dc1": 3, "dc2": 1}}
    found = pl.candidates(spec, ["dc1", "dc2"], capacity={}, running={})
    assert pl.shares(8, pl.WEIGHTED, found, {}) == {"dc1": 6, "dc2": 2}
    result = pl.place(8, spec, found, previous=None, running={}, rebalance=False)
    assert result.assignment == {"dc1": 6, "dc2": 2}


@PROPERTY
@given(setups(strategies=[pl.WEIGHTED, pl.SPREAD], bounded=False), totals,
       st.dictionaries(st.sampled_from(POOL), st.integers(0, 4)))
def test_shares_are_largest_remainders_when_no_room_binds(setup, total, current):
    assert_largest_remainders(total, setup, current)


@PROPERTY
@given(setups(strategies=[pl.CAPACITY]), totals)
def test_capacity_shares_are_largest_remainders_of_the_rooms_when_all_fits(setup, total):
    # Weighing each compute by its room, no room binds until the total is all of them.
    total = min(total, fit(pl.CAPACITY, setup.found))
    assert_largest_remainders(total, setup, {})


def assert_largest_remainders(total, setup, current):
    strategy = setup.spec["strategy"]
    share = pl.shares(total, strategy, setup.found, current, pl.turns(setup.names, setup.salt))
    weight = sum(c.weight for c in setup.found)
    if weight == 0:
        assert set(share.values()) <= {0}
        return
    assert sum(share.values()) == total
    extra = {}
    for c in setup.found:
        low, remainder = divmod(total * c.weight, weight)
        assert share[c.name] in (low, low + (remainder > 0)), (c, share)
        extra[c.name] = (remainder, share[c.name] - low)
    for rem_a, got_a in extra.values():
        for rem_b, got_b in extra.values():
            if rem_a > rem_b:
                assert got_a >= got_b, extra


# -- ties ------------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.sampled_from(POOL), unique=True, max_size=6), salts)
def test_ties_go_by_name_from_a_compute_the_service_name_chooses(names, salt):
    turn = pl.turns(reversed(names), salt)
    ordered = sorted(names)
    assert sorted(turn.values()) == list(range(len(names)))
    by_turn = sorted(names, key=turn.__getitem__)
    # The order of the names, turned to start somewhere (with no service name: at the
    # first).
    assert by_turn in [ordered[i:] + ordered[:i] for i in range(len(names))] or not names
    if not salt:
        assert by_turn == ordered


# -- rebalance ---------------------------------------------------------------------

max_surges = st.none() | st.integers(1, 4) | st.sampled_from(["1%", "10%", "25%", "50%",
                                                              "100%"])


@PROPERTY
@given(setups(), max_surges, counts_drawn, st.booleans())
def test_a_settled_rebalance_walks_to_the_shares_within_max_surge(
        setup, surge_setting, drawn, fitting):
    spec = dict(setup.spec)
    if surge_setting is not None:
        spec["maxSurge"] = surge_setting
    # Any assignment (on computes gone too) of a total that fits, or of any total.
    room = fit(spec["strategy"], setup.found)
    previous = assignment(setup.names, drawn, room if fitting else math.inf)
    total = sum(previous.values())
    assert_rebalance_converges(total, setup._replace(spec=spec), previous)


def test_a_rebalance_onto_a_joining_compute_takes_three_steps_of_two():
    names = ["dc1", "dc2", "dc3"]
    setup = Setup({}, names, {}, pl.candidates({}, names, capacity={}, running={}))
    walk = assert_rebalance_converges(6, setup, {"dc1": 3, "dc2": 3})
    assert walk == [{"dc1": 3, "dc2": 3, "dc3": 2}, {"dc1": 2, "dc2": 2, "dc3": 2}]


def assert_rebalance_converges(total, setup, previous):
    """Iterate a rebalance that always settles before the next step; the assignments
    it went through. Each step holds the total, and at most maxSurge more; only shares
    that hold less than the total (a room shrank) take the rest away, at the end."""
    surge = pl.max_surge(total, setup.spec.get("maxSurge"))
    first = setup.place(total, previous=previous, running=previous, rebalance=True)
    deficit = sum(max(0, n - previous.get(c, 0)) for c, n in first.shares.items())
    steps = 2 * -(-deficit // surge) + 2
    walk, assignment, result = [], previous, first
    for _ in range(steps):
        result = setup.place(total, previous=assignment, running=assignment, rebalance=True)
        assert result.placed <= total + surge, (walk, result)
        assert result.placed >= total or result.assignment == result.shares, (walk, result)
        if result.rebalanced:
            break
        walk.append(result.assignment)
        assignment = result.assignment
    else:
        pytest.fail("no rebalance in %d steps from %s: %s" % (steps, previous, walk))
    assert result.assignment == result.shares
    assert result.placed == min(total, sum(first.shares.values()))
    return walk


@PROPERTY
@given(setups(), counts_drawn, st.integers(0, 5), st.integers(0, 4),
       st.none() | st.integers(1, MAX_TOTAL))
def test_a_rebalance_removes_nothing_until_what_is_assigned_runs(
        setup, drawn, over, which, short):
    previous = assignment(setup.names, drawn)
    assume(previous)
    total = max(0, sum(previous.values()) - over)  # the assignment holds it, or more
    # Something assigned does not run (yet): a compute short, or not reporting.
    late = sorted(previous)[which % len(previous)]
    running = dict(previous)
    running[late] = None if short is None else max(0, previous[late] - short)
    result = setup.place(total, previous=previous, running=running, rebalance=True)
    assert result.assignment == previous
    assert not result.rebalanced


# -- selectors --------------------------------------------------------------------


def kubernetes_selects(selector, labels):
    """Kubernetes' reading of a label selector, term by term: every matchLabels pair,
    and every expression (NotIn and DoesNotExist hold for a compute without the key)."""
    if not selector:
        return True
    terms = [{"key": k, "operator": "In", "values": [v]}
             for k, v in selector.get("matchLabels", {}).items()]
    for term in terms + selector.get("matchExpressions", []):
        has = term["key"] in labels
        inside = has and labels[term["key"]] in term.get("values", [])
        holds = {"In": inside, "NotIn": not inside, "Exists": has,
                 "DoesNotExist": not has}[term["operator"]]
        if not holds:
            return False
    return True


@pytest.mark.parametrize("selector, labels, selected", [
    (None, {}, True),
    ({}, {"region": "eu"}, True),
    ({"matchLabels": {"region": "eu"}}, {"region": "eu", "tier": "a"}, True),
    ({"matchLabels": {"region": "eu"}}, {"region": "us"}, False),
    ({"matchLabels": {"region": "eu"}}, {}, False),
    ({"matchLabels": {"region": "eu", "tier": "a"}}, {"region": "eu"}, False),
    ({"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu", "us"]}]},
     {"region": "us"}, True),
    ({"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]},
     {}, False),
    ({"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
     {"region": "us"}, True),
    ({"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
     {"region": "eu"}, False),
    ({"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]},
     {}, True),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"gpu": ""}, True),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, {"gpu": "1"}, False),
    ({"matchLabels": {"region": "eu"},
      "matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, {"region": "eu"}, False),
], ids=["none", "empty", "matchLabels", "matchLabels other value", "matchLabels no key",
        "matchLabels all pairs", "In", "In no key", "NotIn", "NotIn listed", "NotIn no key",
        "Exists empty value", "Exists no key", "DoesNotExist", "DoesNotExist has key",
        "matchLabels and expressions"])
def test_selects(selector, labels, selected):
    assert pl.selects(selector, labels) is selected
    assert kubernetes_selects(selector, labels) is selected


@PROPERTY
@given(st.dictionaries(st.sampled_from(POOL), labels), selectors)
def test_a_selector_selects_as_kubernetes_and_eligible_computes_come_by_name(
        computes, selector):
    for its in computes.values():
        assert pl.selects(selector, its) == kubernetes_selects(selector, its)
    assert pl.eligible({"selector": selector}, computes) == sorted(
        name for name, its in computes.items() if kubernetes_selects(selector, its))
    listed = list(reversed(POOL))
    assert pl.eligible({"computes": listed}, computes) == [n for n in listed if n in computes]


# -- candidates ------------------------------------------------------------------


@PROPERTY
@given(setups(), st.dictionaries(st.sampled_from(POOL), st.integers(0, 6)))
def test_a_room_is_the_capacity_left_with_what_this_service_runs_and_max_per_compute(
        setup, running):
    found = pl.candidates(setup.spec, setup.names, capacity=setup.capacity, running=running)
    assert [c.name for c in found] == setup.names
    most = setup.spec.get("maxPerCompute")
    for c in found:
        rooms = [most] if most is not None else []
        if c.name in setup.capacity:
            total, used = setup.capacity[c.name]
            rooms.append(max(0, total - used + running.get(c.name, 0)))
        assert c.room == (min(rooms) if rooms else None)
        assert (c.bound == "") == (c.room is None)
        strategy = setup.spec["strategy"]
        if strategy == pl.WEIGHTED:
            assert c.weight == setup.spec["weights"].get(c.name, 1)
        elif strategy == pl.CAPACITY:
            assert c.weight == (c.room if c.name in setup.capacity else 0)
        else:
            assert c.weight == 1
