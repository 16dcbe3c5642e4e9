"""End to end: compute health and the fail-over of placed services, with real
process connectors (one per compute) that the tests SIGKILL, SIGSTOP and restart,
and real processes counted in /proc (tests.e2e.test_placement's Placements and
Sampler). A connector SIGKILLed leaves its processes running (they are its
"originals"); restarted on the same port and state directory, it takes them back.

The health thresholds are short here (--compute-failure-threshold 300ms): what is
tested is what moves, when, and how far, never how fast.
"""

import signal
import threading
import time

import pytest

from genisys.model import utc_seconds
from tests.e2e.test_placement import CONVERGE, Placements
from tests.support import free_port, run_client_command, wait_for

#: Health that reacts within a second, and probes of idle computes every 200 ms.
QUICK_HEALTH = ["--compute-failure-threshold", "300ms", "--compute-success-threshold", "300ms",
                "--compute-probe-interval", "200ms", "--connector-timeout", "1s"]
THREE = ["a", "b", "c"]


class Failovers(Placements):
    """Placements whose connectors listen on ports of their own, so that one can be
    killed and started again as the same compute (same port, same state directory)."""

    def site(self, name, *args, **kwargs):
        port = free_port()
        found = super().site(name, "--port", str(port), *args, **kwargs)
        found.args, found.port = args, port
        return found

    def restart(self, name):
        site = self.sites[name]
        old = site.connector
        services_file = self.tmp_path / ("%s-services.json" % name)
        site.connector = self.start_connector(
            "--services", str(services_file), "--grace-period", "5s", "--port", str(site.port),
            *site.args, state_dir=old.state_dir, name=name)
        return site

    def condition(self, compute):
        r = self.request("GET", "/compute/%s/status" % compute)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_condition(self, compute, condition, reason=None):
        return wait_for(lambda: (self.condition(compute)["condition"] == condition
                                 and (reason is None or self.condition(compute)["reason"] == reason)
                                 and self.condition(compute)), timeout=CONVERGE, interval=0.05,
                        message="compute %s %s" % (compute, condition))

    def failover(self, service="web"):
        return self.placement(service).get("failover") or {}

    def wait_failover(self, condition, service="web"):
        return wait_for(lambda: self.failover(service).get("condition") == condition
                        and self.failover(service), timeout=CONVERGE, interval=0.05,
                        message="the fail-over of %s %s (now %s)"
                                % (service, condition, self.failover(service)))

    def reasons(self, service="web"):
        return [(e["reason"], e["compute"]) for e in reversed(self.events(service))]


@pytest.fixture
def sites(tmp_path, start_genisys, start_connector):
    return Failovers(tmp_path, start_genisys, start_connector)


def three_computes(sites, *args, toleration=2, mode="Graceful", total=6):
    sites.start(*QUICK_HEALTH, *args)
    for name in THREE:
        sites.site(name)
    sites.put_service(total, {"computes": THREE, "failover": {
        "tolerationSeconds": toleration, "purgeMode": mode, "gracePeriodSeconds": 600}})
    sites.converged({"a": 2, "b": 2, "c": 2})
    for name in THREE:
        assert sites.condition(name)["condition"] == "Ready"


@pytest.mark.parametrize("mode", ["Graceful", "Immediate", "Never"])
def test_a_dead_connector_s_share_moves_and_its_originals_go_as_the_purge_mode_says(sites, mode):
    three_computes(sites, mode=mode)
    with sites.sampler() as sampler:
        sites.sites["c"].connector.kill()  # its two processes run on, unmanaged
        down = sites.wait_condition("c", "NotReady")
        assert down["reason"] == "NotAnswering"
        held = sites.wait_failover("FailedOver")["computes"]["c"]
        assert held["originals"] == 2
        # Not before the toleration (the times are whole seconds).
        assert utc_seconds(held["failedOverAt"]) - utc_seconds(held["notReadySince"]) >= 1
        assert utc_seconds(held["notReadySince"]) >= utc_seconds(down["lastTransitionTime"])
        wait_for(lambda: sites.counts() == {"a": 3, "b": 3, "c": 2}, timeout=CONVERGE,
                 message="replacements on a and b, c's originals still running")
        assert sites.placement()["assignment"] == {"a": 3, "b": 3, "c": 2}
        assert ("FailedOver", "c") in sites.reasons()
        described = run_client_command(["describe", "service", "web", "--server",
                                        sites.genisys.url], cwd=str(sites.tmp_path)).stdout
        assert "  Fail-Over:        after 2s NotReady, purge %s, grace 600s\n" % mode in described
        assert "\nFail-Over:    FailedOver\n" in described
        section = described.split("\nFail-Over:    FailedOver\n")[1].split("\nReplicas:")[0]
        assert [line.split(None, 3)[:3] for line in section.splitlines()[1:]] == [
            ["c", "FailedOver", "2"]], described

        sites.restart("c")
        sites.wait_condition("c", "Ready")
        if mode == "Never":
            kept = sites.wait_failover("Kept")
            assert "POST /service/web/rebalance removes them" in kept["message"]
            assert ("OriginalsKept", "c") in sites.reasons()
            # They stay, pass after pass.
            sites.resyncs_pass(3, ["a", "b", "c"])
            assert sites.counts() == {"a": 3, "b": 3, "c": 2}
            assert sites.request("POST", "/service/web/rebalance").status_code == 202
            final = {"a": 2, "b": 2, "c": 2}  # a rebalance moves to the shares
        else:
            final = {"a": 3, "b": 3}
        sites.converged(final)
    purged = [e for e in sites.events() if e["reason"] == "Purged"]
    why = {"Graceful": "it is Ready again and the replacements run (purgeMode Graceful)",
           "Immediate": "it is Ready again (purgeMode Immediate)",
           "Never": "a rebalance was asked for (purgeMode Never)"}[mode]
    assert [e["message"] for e in purged] == ["removed the 2 original(s) of web on c: " + why]
    assert "failover" not in sites.placement()
    assert "genisys_failovers_total 1.0" in sites.request("GET", "/metrics").text
    # Never more than the total, plus what the dead compute still held.
    for total, c in zip(sampler.totals(), sampler.of("c")):
        assert total <= 6 + c, sampler.describe()


def test_most_computes_down_trips_the_breaker_and_nothing_moves(sites):
    three_computes(sites)
    for name in ("b", "c"):
        sites.sites[name].connector.kill()
    for name in ("b", "c"):
        sites.wait_condition(name, "NotReady")
    held = sites.wait_failover("Held")
    assert held["message"] == (
        "2 of the placement's 3 computes are NotReady (more than 55%): genisys' own network "
        "is the likelier fault, so nothing fails over")
    assert ("FailoverHeld", "b") in sites.reasons()
    # Well past the toleration, a still holds its own 2 only.
    time_down = utc_seconds(sites.condition("c")["lastTransitionTime"])
    wait_for(lambda: time.time() > time_down + 4, timeout=CONVERGE, message="the toleration")
    sites.resyncs_pass(2, ["a"])
    assert sites.counts() == {"a": 2, "b": 2, "c": 2}
    assert sites.placement()["assignment"] == {"a": 2, "b": 2, "c": 2}
    assert sites.failover()["condition"] == "Held"


def many_on_two(sites, services, total, *args):
    """``services``, each ``total`` over computes a and b with a toleration of 1 s,
    converged; then b's connector SIGKILLed."""
    sites.start(*QUICK_HEALTH, *args)
    for name in ("a", "b"):
        sites.site(name, services=services)
    for service in services:
        sites.put_service(total, {"computes": ["a", "b"], "failover": {"tolerationSeconds": 1}},
                          service=service)
    for service in services:
        sites.converged({"a": total // 2, "b": total // 2}, service=service)
    sites.sites["b"].connector.kill()


def test_many_services_on_a_dead_compute_fail_over_no_faster_than_the_rate(sites):
    services = ["s%02d" % i for i in range(20)]
    many_on_two(sites, services, 2, "--failover-rate", "2")
    for service in services:
        wait_for(lambda s=service: sites.failover(s).get("condition") == "FailedOver",
                 timeout=60, message="%s failed over" % service)
    moved = sorted(utc_seconds(sites.failover(s)["computes"]["b"]["failedOverAt"])
                   for s in services)
    # A token bucket of 2 a second (and a burst of 1): at most 3 within any second,
    # so 20 take 9.5 s at least (whole seconds: 9 between the first and the last).
    per_second = {t: moved.count(t) for t in moved}
    assert max(per_second.values()) <= 3, per_second
    assert moved[-1] - moved[0] >= 9, per_second
    for service in services:
        assert sites.placement(service)["assignment"] == {"a": 2, "b": 1}
    wait_for(lambda: sites.counts(services[-1]) == {"a": 2, "b": 1}, timeout=CONVERGE,
             message="the last one's replacement runs")


def test_a_flapping_connector_does_not_move_replicas_back_and_forth(sites):
    # Calls time out within a third of a stop, so each stop is seen as a failure.
    three_computes(sites, "--compute-flap-window", "60s", "--connector-timeout", "300ms",
                   toleration=1)
    flapper = sites.sites["c"].connector.proc
    stop = threading.Event()

    def flap():  # down (hanging: every call times out) and up, every second
        while not stop.is_set():
            flapper.send_signal(signal.SIGSTOP)
            stop.wait(1.0)
            flapper.send_signal(signal.SIGCONT)
            stop.wait(1.0)
    thread = threading.Thread(target=flap, daemon=True)
    with sites.sampler() as sampler:
        thread.start()
        try:
            sites.wait_condition("c", "NotReady", reason="Flapping")
            sites.wait_failover("FailedOver")
            wait_for(lambda: sites.counts() == {"a": 3, "b": 3, "c": 2}, timeout=CONVERGE,
                     message="c's share on a and b")
            stable = len(sampler.samples)
            # Flapping on for a while: c stays NotReady, nothing moves back.
            sites.resyncs_pass(6, ["a", "b"])
            assert sites.condition("c")["condition"] == "NotReady"
        finally:
            stop.set()
            thread.join()
            flapper.send_signal(signal.SIGCONT)
    assert [r for r in sites.reasons() if r[0] in ("FailedOver", "Purged")] == [
        ("FailedOver", "c")]
    for key in ("a", "b"):
        after = sampler.of(key)[stable:]
        assert after == [3] * len(after), sampler.describe()
    # a and b only ever grew: never a replica moved back and forth.
    for key in ("a", "b"):
        counts = sampler.of(key)
        assert all(x <= y for x, y in zip(counts, counts[1:])), sampler.describe()


def test_a_controller_killed_in_the_middle_of_a_fail_over_finishes_it_after_restart(sites):
    services = ["s%d" % i for i in range(5)]
    many_on_two(sites, services, 4, "--failover-rate", "0.5")
    wait_for(lambda: any(sites.failover(s).get("condition") == "FailedOver" for s in services),
             timeout=CONVERGE, message="a first fail-over")
    # One service at most every 2 s: most are still to fail over.
    assert sum(sites.failover(s).get("condition") == "FailedOver" for s in services) < 5
    sites.genisys.kill()  # SIGKILL, in the middle of the fail-over
    sites.start(*QUICK_HEALTH, "--failover-rate", "0.5")
    assert sites.condition("b")["condition"] == "NotReady"  # as stored before the kill
    for service in services:
        wait_for(lambda s=service: sites.counts(s) == {"a": 4, "b": 2}
                 and sites.placement(s).get("assignment") == {"a": 4, "b": 2},
                 timeout=60, message="%s failed over" % service)
    for service in services:
        assert sites.failover(service)["computes"]["b"]["originals"] == 2
        assert sites.reasons(service).count(("FailedOver", "b")) == 1


def test_a_compute_s_condition_is_shown_stored_and_counted(sites):
    sites.start(*QUICK_HEALTH)
    port = free_port()  # nothing listens there yet
    r = sites.request("PUT", "/compute/a", json={"connector": "http://127.0.0.1:%d" % port})
    assert r.status_code == 201, r.text
    # Not observed yet, then NotReady once every call (the probes) failed for 300 ms.
    first = sites.condition("a")
    assert first["condition"] in ("Unknown", "NotReady")
    if first["condition"] == "Unknown":
        assert first == {"name": "a", "condition": "Unknown", "reason": "NotObserved",
                         "message": first["message"]}
    down = sites.wait_condition("a", "NotReady")
    assert down["reason"] == "NotAnswering"
    assert "its connector has failed every call for 0.3s" in down["message"]
    # The seed's body of the compute is what it always was.
    assert sites.request("GET", "/compute/a").json() == {
        "name": "a", "connector": "http://127.0.0.1:%d" % port}

    sites.site("a", register=False)
    sites.put_compute("a")  # moved to a connector that answers
    up = sites.wait_condition("a", "Ready")
    assert (up["reason"], up["message"]) == ("Answering", "its connector answers")
    metrics = sites.request("GET", "/metrics").text
    assert 'genisys_compute_condition{compute="a",condition="Ready"} 1.0' in metrics
    assert 'genisys_compute_condition{compute="a",condition="NotReady"} 0.0' in metrics

    # What is stored is what a restarted genisys starts from.
    sites.genisys.stop()
    sites.start(*QUICK_HEALTH)
    assert sites.condition("a")["lastTransitionTime"] == up["lastTransitionTime"]

    for path, code, field in [("/compute/nope/status", 404, "compute"),
                              ("/compute/-bad-/status", 400, "name")]:
        r = sites.request("GET", path)
        assert (r.status_code, r.json()["error"]["field"]) == (code, field), r.text
    # A deleted compute's record goes with it: made again, it starts Unknown.
    assert sites.request("DELETE", "/compute/a").status_code == 200
    wait_for(lambda: 'compute="a"' not in sites.request("GET", "/metrics").text,
             timeout=CONVERGE, message="the series of a gone")
    r = sites.request("PUT", "/compute/a", json={"connector": "http://127.0.0.1:%d" % port})
    assert r.status_code == 201
    assert sites.condition("a")["condition"] in ("Unknown", "NotReady")
    assert sites.condition("a").get("lastTransitionTime") != up["lastTransitionTime"]
