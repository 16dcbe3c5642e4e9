"""The reconciler with placed services, on simulated connectors: a new placed service,
one that had counts per compute, the first upscale without a compute, and the plan."""

import re

from tests.support import wait_for


def _placement_counters(genisys):
    """(genisys_placements_total, genisys_placement_cpu_seconds_total) from /metrics."""
    found = dict(re.findall(r"^genisys_(placements|placement_cpu_seconds)_total ([0-9.e+-]+)$",
                            genisys.request("GET", "/metrics").text, re.M))
    return float(found["placements"]), float(found["placement_cpu_seconds"])


def _status(genisys, name):
    r = genisys.request("GET", "/service/" + name)
    return r.json() if r.status_code == 200 else None


def _converged(genisys, name, assignment):
    def check():
        view = _status(genisys, name)
        if not view:
            return None
        status = view["status"]
        entries = status["computes"]
        placed = status.get("placement") or {}
        return (placed.get("assignment") == assignment
                and {c: (e["condition"], e["running"]) for c, e in entries.items()}
                == {c: ("Converged", n) for c, n in assignment.items()} and view)
    return wait_for(check, timeout=30, message="%s converged at %s (have %s)"
                    % (name, assignment, _status(genisys, name)))


def _setup(start_genisys, start_connector, computes):
    genisys = start_genisys("--poll-interval", "500ms", "--backoff-initial", "100ms")
    for name in computes:
        connector = start_connector(backend="simulated")
        r = genisys.request("PUT", "/compute/" + name, json={"connector": connector.url})
        assert r.status_code == 201, r.text
    return genisys


def test_a_service_given_a_total_keeps_its_counts_until_a_rebalance(start_genisys,
                                                                    start_connector):
    genisys = _setup(start_genisys, start_connector, ["dc1", "dc2"])
    r = genisys.request("PUT", "/service/web", json={"replicas": {"dc1": 3}})
    assert r.status_code == 201
    wait_for(lambda: (_status(genisys, "web")["status"]["computes"].get("dc1") or {})
             .get("running") == 3, timeout=30, message="web at 3 on dc1")
    r = genisys.request("PUT", "/service/web", json={"replicas": 3})
    assert r.status_code == 200, r.text
    view = _converged(genisys, "web", {"dc1": 3})
    assert view["status"]["placement"]["shares"] == {"dc1": 2, "dc2": 1}
    # The plan says nothing is to be done until a rebalance.
    plan = genisys.request("GET", "/plan").json()
    assert [line["action"] for line in plan["lines"]] == ["none"] and plan["changes"] == 0
    r = genisys.request("POST", "/service/web/upscale", json={})
    assert r.status_code == 202 and r.json()["replicas"] == 4
    _converged(genisys, "web", {"dc1": 3, "dc2": 1})
    r = genisys.request("POST", "/service/web/rebalance")
    assert r.status_code == 202, r.text
    _converged(genisys, "web", {"dc1": 2, "dc2": 2})
    # The pass after the last step sees it run, and says the rebalance is done.
    wait_for(lambda: _status(genisys, "web")["status"]["placement"]["rebalanced"] == 1,
             timeout=30, message="the rebalance to be done")
    view = _converged(genisys, "web", {"dc1": 2, "dc2": 2})
    assert view["status"]["placement"]["condition"] == "Placed"


def test_the_first_upscale_without_a_compute_places_a_new_service_everywhere(
        start_genisys, start_connector):
    genisys = _setup(start_genisys, start_connector, ["a", "b", "c"])
    assert _placement_counters(genisys) == (0.0, 0.0)  # no placed service yet
    for _ in range(4):
        r = genisys.request("POST", "/service/api/upscale", json={})
        assert r.status_code == 202, r.text
    # One each, and the fourth where api's turn of the names starts (b, then c, then a).
    view = _converged(genisys, "api", {"a": 1, "b": 2, "c": 1})
    assert view["replicas"] == 4 and "placement" not in view
    messages = [e["message"] for e in view["events"] if e["reason"] == "Placed"]
    assert "placed 1 on a (Spread)" in messages
    # Every pass of a placed service decides its placement, and the CPU it took counts.
    decisions, seconds = _placement_counters(genisys)
    assert decisions >= 1 and 0 < seconds < 60
    r = genisys.request("POST", "/service/api/upscale", json={"compute": "a"})
    assert r.status_code == 409 and "is placed by genisys (a total of 4)" in r.json()[
        "error"]["message"]
    r = genisys.request("POST", "/service/api/scale", json={"number": 7})
    assert r.status_code == 202
    _converged(genisys, "api", {"a": 2, "b": 3, "c": 2})


def test_a_total_that_does_not_fit_says_so_and_what_fits_runs(start_genisys, start_connector):
    genisys = _setup(start_genisys, start_connector, ["dc1", "dc2"])
    r = genisys.request("PUT", "/service/web", json={
        "replicas": 7, "placement": {"computes": ["dc1", "dc2"], "maxPerCompute": 2}})
    assert r.status_code == 201, r.text
    view = _converged(genisys, "web", {"dc1": 2, "dc2": 2})
    placed = view["status"]["placement"]
    assert (placed["condition"], placed["message"]) == ("Unschedulable",
                                                        "Unschedulable: 7 wanted, 4 fit")
    assert placed["reasons"]["dc1"] == "Spread: share 2 of 7, full (maxPerCompute 2)"


def test_a_rebalance_to_shares_that_hold_less_than_the_total_ends(start_genisys,
                                                                  start_connector):
    """A room that shrank (maxPerCompute 3 -> 2 on 6 over 2): the shares hold 4, and a
    rebalance takes what no room is left for, and ends (it used to wait forever)."""
    genisys = _setup(start_genisys, start_connector, ["dc1", "dc2"])
    placement = {"computes": ["dc1", "dc2"], "maxPerCompute": 3}
    r = genisys.request("PUT", "/service/web", json={"replicas": 6, "placement": placement})
    assert r.status_code == 201, r.text
    _converged(genisys, "web", {"dc1": 3, "dc2": 3})
    r = genisys.request("PUT", "/service/web", json={
        "replicas": 6, "placement": dict(placement, maxPerCompute=2)})
    assert r.status_code == 200, r.text
    r = genisys.request("POST", "/service/web/rebalance")
    assert r.status_code == 202, r.text
    view = _converged(genisys, "web", {"dc1": 2, "dc2": 2})
    wait_for(lambda: _status(genisys, "web")["status"]["placement"]["rebalanced"] == 1,
             timeout=30, message="the rebalance to be done")
    placed = _status(genisys, "web")["status"]["placement"]
    assert (placed["condition"], placed["message"]) == ("Unschedulable",
                                                        "Unschedulable: 6 wanted, 4 fit")
    messages = [e["message"] for e in view["events"] if e["reason"] == "Placed"]
    assert "took 1 off dc1 (rebalance)" in messages


def test_an_unschedulable_total_takes_a_compute_that_joins(start_genisys, start_connector):
    genisys = _setup(start_genisys, start_connector, ["dc1"])
    r = genisys.request("PUT", "/service/web", json={
        "replicas": 4, "placement": {"maxPerCompute": 2}})
    assert r.status_code == 201, r.text
    _converged(genisys, "web", {"dc1": 2})
    connector = start_connector(backend="simulated")
    r = genisys.request("PUT", "/compute/dc2", json={"connector": connector.url})
    assert r.status_code == 201
    view = _converged(genisys, "web", {"dc1": 2, "dc2": 2})
    assert view["status"]["placement"]["condition"] == "Placed"
