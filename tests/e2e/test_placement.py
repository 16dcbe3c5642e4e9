"""End to end: a placed service (a total and a placement) over several real process
connectors, one per compute, each its own ``genisys connector --backend process``.

Each connector has its own services file, whose command carries a marker unique to
the compute and the test: the tests count what really runs on each compute (as
`ps` would), not what genisys or the connectors report. A sampler thread counts
them every 20 ms while something moves, and the connectors' own logs give the most
that were ever alive at once on each (a start is logged as it happens, an exit only
once it is seen: never less than the truth).
"""

import json
import os
import sys
import threading
import time
import uuid

import pytest

from genisys.connector.process import read_proc_stat
from tests.e2e.lab import _BEGAN, _ENDED, FAST
from tests.support import wait_for

#: Seconds any convergence may take (a busy CI machine included).
CONVERGE = 30
#: The connectors' --grace-period (between SIGTERM and SIGKILL).
GRACE = "5s"
#: A resource that stops at once on SIGTERM (Python's default).
SLEEPER = "import time; time.sleep(3600)"
#: A resource that takes 1.5 s to stop after SIGTERM (a server draining its clients):
#: alive, though being stopped, for that long (within the grace period).
SLOW_STOPPER = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.5), sys.exit(0)))\n"
                "time.sleep(3600)")


# -- counting what really runs ---------------------------------------------------


def alive(markers):
    """marker -> how many live (not zombie) processes have it in their command line,
    in one pass over /proc."""
    counts = dict.fromkeys(markers, 0)
    wanted = [(m, m.encode()) for m in markers]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        for marker, encoded in wanted:
            if encoded in cmdline:
                stat = read_proc_stat(int(entry))
                if stat is not None and stat.state not in ("Z", "X"):
                    counts[marker] += 1
    return counts


def most_alive(connector, service="web"):
    """The most processes of ``service`` alive at once by ``connector``'s own log
    (as ``tests.e2e.lab.Lab.most_alive``)."""
    alive_now, most = set(), 0
    for line in connector.log().splitlines():
        began, ended = _BEGAN.search(line), _ENDED.search(line)
        if began and began.group(2) == service:
            alive_now.add(int(began.group(1)))
            most = max(most, len(alive_now))
        elif ended and service in ended.groups():
            alive_now.discard(int(ended.group(1) or ended.group(3)))
    return most


class Sampler:
    """Counts every 20 ms, in a thread, the live processes of each (compute, service)
    in ``markers``: ``samples`` is a list of (seconds since start, {key: count})."""

    def __init__(self, markers, interval=0.02):
        self.markers = dict(markers)
        self.interval = interval
        self.samples = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)
        self._started = None

    def _run(self):
        by_marker = {m: key for key, m in self.markers.items()}
        while not self._done.is_set():
            counts = alive(by_marker)
            self.samples.append((time.monotonic() - self._started,
                                 {by_marker[m]: n for m, n in counts.items()}))
            self._done.wait(self.interval)

    def __enter__(self):
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(10)

    def totals(self, keys=None):
        """The sum over ``keys`` (every key if None) of each sample."""
        return [sum(n for k, n in counts.items() if keys is None or k in keys)
                for _, counts in self.samples]

    def of(self, key):
        return [counts[key] for _, counts in self.samples]

    def describe(self, keys=None, limit=60):
        """The samples where the counts changed, for an assertion's message."""
        lines, last = [], None
        for at, counts in self.samples:
            shown = {k: n for k, n in sorted(counts.items()) if keys is None or k in keys}
            if shown != last:
                lines.append("%7.3fs %s total %d" % (at, shown, sum(shown.values())))
                last = shown
        return "\n".join(lines[:limit])


# -- genisys and its computes ----------------------------------------------------


class Site:
    """A compute: its own process connector and services file, a marker per service."""

    def __init__(self, name, connector, markers):
        self.name = name
        self.connector = connector
        self.markers = markers

    @property
    def url(self):
        return self.connector.url


class Placements:
    """A real genisys and any number of computes, each with its own connector."""

    def __init__(self, tmp_path, start_genisys, start_connector):
        self.tmp_path = tmp_path
        self.start_genisys = start_genisys
        self.start_connector = start_connector
        self.test_id = uuid.uuid4().hex[:10]
        self.sites = {}
        self.genisys = None

    def start(self, *args):
        self.genisys = self.start_genisys(*FAST, *args)
        return self.genisys

    def site(self, name, *args, labels=None, services=("web",), command=SLEEPER,
             grace=GRACE, register=True):
        """Start a connector for compute ``name`` (``args``: more of its flags), and
        register the compute with ``labels`` unless ``register`` is false."""
        markers = {s: "genisys-placement-%s-%s-%s" % (self.test_id, name, s) for s in services}
        services_file = self.tmp_path / ("%s-services.json" % name)
        services_file.write_text(json.dumps([
            {"name": s, "command": [sys.executable, "-c", command, markers[s]]}
            for s in services]))
        connector = self.start_connector("--services", str(services_file),
                                         "--grace-period", grace, *args, name=name)
        site = self.sites[name] = Site(name, connector, markers)
        if register:
            self.put_compute(name, labels)
        return site

    def request(self, method, path, **kwargs):
        return self.genisys.request(method, path, **kwargs)

    def put_compute(self, name, labels=None):
        r = self.request("PUT", "/compute/" + name,
                         json={"connector": self.sites[name].url, "labels": labels or {}})
        assert r.status_code in (200, 201), r.text

    def put_service(self, replicas, placement=None, service="web"):
        body = {"replicas": replicas}
        if placement is not None:
            body["placement"] = placement
        r = self.request("PUT", "/service/" + service, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def get(self, service="web"):
        r = self.request("GET", "/service/" + service)
        assert r.status_code == 200, r.text
        return r.json()

    def placement(self, service="web"):
        return self.get(service)["status"].get("placement") or {}

    def markers(self, service="web"):
        """compute -> the marker of ``service`` there."""
        return {name: site.markers[service] for name, site in self.sites.items()
                if service in site.markers}

    def counts(self, service="web"):
        """compute -> live processes of ``service`` there (0s included)."""
        markers = self.markers(service)
        found = alive(markers.values())
        return {name: found[m] for name, m in markers.items()}

    def sampler(self, service="web"):
        return Sampler(self.markers(service))

    def converged(self, expected, service="web", timeout=CONVERGE):
        """Wait until the assignment is ``expected`` (compute -> count, no 0s), the
        placement Placed, each of its computes Converged at its count, and that many
        processes (and none elsewhere) really run; returns the service."""
        want = {name: expected.get(name, 0) for name in self.markers(service)}
        seen = {}

        def check():
            seen["service"] = view = self.get(service)
            seen["counts"] = counts = self.counts(service)
            status = view["status"]
            placed = status.get("placement") or {}
            return (placed.get("assignment") == expected and placed.get("condition") == "Placed"
                    and status["observedGeneration"] == view["generation"]
                    and all(status["computes"].get(c, {}).get("condition") == "Converged"
                            and status["computes"][c]["running"] == n
                            for c, n in expected.items())
                    and counts == want and view)
        try:
            return wait_for(check, timeout=timeout, interval=0.05,
                            message="%s placed as %s" % (service, expected))
        except AssertionError as e:
            status = (seen.get("service") or {}).get("status")
            raise AssertionError("%s; last seen: processes %s, status %s"
                                 % (e, seen.get("counts"), json.dumps(status))) from None

    def events(self, service="web"):
        r = self.request("GET", "/service/%s/events" % service)
        assert r.status_code == 200, r.text
        return r.json()

    def connector_calls(self, compute):
        """How many calls genisys made to ``compute``'s connector (by /metrics): each
        resync asks the connectors of a converged service (one batch status each), and
        once converged nothing else calls them."""
        text = self.request("GET", "/metrics").text
        total = 0.0
        for line in text.splitlines():
            if line.startswith("genisys_connector_call_seconds_count{") \
                    and 'compute="%s"' % compute in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def resyncs_pass(self, count, computes):
        """Wait until ``computes``' connectors each got ``count`` more calls: once a
        service has converged, ``count`` resyncs (--poll-interval 500ms)."""
        before = {c: self.connector_calls(c) for c in computes}
        wait_for(lambda: all(self.connector_calls(c) >= before[c] + count for c in computes),
                 timeout=CONVERGE, interval=0.1, message="%d resyncs" % count)


@pytest.fixture
def cluster(tmp_path, start_genisys, start_connector):
    return Placements(tmp_path, start_genisys, start_connector)


def placed_events(cluster, service="web"):
    return [e for e in cluster.events(service) if e["reason"] == "Placed"]


# -- dividing a total --------------------------------------------------------------


def test_spread_puts_five_as_three_and_two_real_processes(cluster):
    cluster.start()
    cluster.site("dc1")
    cluster.site("dc2")
    cluster.put_service(5, {"computes": ["dc1", "dc2"], "strategy": "Spread"})
    # The seat left over goes by name, in an order that starts at a compute chosen by
    # the service's name: for web, dc2 (so that services do not all pile on dc1).
    expected = {"dc1": 2, "dc2": 3}
    view = cluster.converged(expected)
    placed = view["status"]["placement"]
    assert placed["shares"] == expected
    assert placed["total"] == placed["placed"] == 5
    assert "Spread: share 2 of 5" in placed["reasons"]["dc1"]
    assert "Spread: share 3 of 5" in placed["reasons"]["dc2"]
    # Each connector says the same of itself as /proc does.
    for name, n in expected.items():
        site = cluster.sites[name]
        assert site.connector.request("GET", "/service/web/status").json() == \
            {"running_resources": n}
        assert most_alive(site.connector) == n  # never one too many, not even for a moment
    messages = {e["message"] for e in placed_events(cluster)}
    assert {"placed 2 on dc1 (Spread)", "placed 3 on dc2 (Spread)"} <= messages


def test_weights_three_to_one_put_eight_as_six_and_two(cluster):
    cluster.start()
    cluster.site("dc1")
    cluster.site("dc2")
    cluster.put_service(8, {"computes": ["dc1", "dc2"], "strategy": "Weighted",
                            "weights": {"dc1": 3, "dc2": 1}})
    view = cluster.converged({"dc1": 6, "dc2": 2})
    placed = view["status"]["placement"]
    assert "(weight 3)" in placed["reasons"]["dc1"] and "(weight 1)" in placed["reasons"]["dc2"]
    assert most_alive(cluster.sites["dc1"].connector) == 6
    assert most_alive(cluster.sites["dc2"].connector) == 2


def test_a_selector_places_on_the_computes_whose_labels_match(cluster):
    cluster.start()
    cluster.site("dc1", labels={"region": "eu"})
    cluster.site("dc2", labels={"region": "eu"})
    cluster.site("us1", labels={"region": "us"})
    cluster.put_service(4, {"selector": {"matchLabels": {"region": "eu"}}})
    cluster.converged({"dc1": 2, "dc2": 2})
    assert cluster.counts()["us1"] == 0


# -- capacity ---------------------------------------------------------------------------


def other_converged(cluster, number):
    """Wait until service "other" (counts per compute) runs ``number`` on small, and
    genisys has the connector's answer."""
    def check():
        entry = cluster.get("other")["status"]["computes"].get("small") or {}
        return (entry.get("condition") == "Converged" and entry.get("running") == number
                and cluster.counts("other")["small"] == number)
    wait_for(check, timeout=CONVERGE, message="other to run %d on small" % number)


def test_a_connector_with_capacity_two_never_runs_more_and_the_rest_goes_elsewhere(cluster):
    cluster.start()
    small = cluster.site("small", "--capacity", "2")
    cluster.site("big")
    assert small.connector.request("GET", "/capabilities").json()["capacity"] == \
        {"total": 2, "used": 0}
    with cluster.sampler() as sampler:
        cluster.put_service(5, {"computes": ["small", "big"], "strategy": "Spread"})
        view = cluster.converged({"small": 2, "big": 3})
        assert view["status"]["placement"]["capacity"]["small"]["total"] == 2
        # More of the total: all of it on the compute with room.
        r = cluster.request("POST", "/service/web/scale", json={"number": 8})
        assert r.status_code == 202, r.text
        cluster.converged({"small": 2, "big": 6})
    assert max(sampler.of("small")) == 2, sampler.describe()
    assert most_alive(small.connector) == 2
    assert small.connector.request("GET", "/capabilities").json()["capacity"] == \
        {"total": 2, "used": 2}
    # genisys never asked it for more than it could hold.
    assert "InsufficientCapacity" not in small.connector.log()
    assert "InsufficientCapacity" not in cluster.genisys.log()


def test_capacity_used_by_another_service_leaves_only_the_rest_for_a_placed_one(cluster):
    cluster.start()
    small = cluster.site("small", "--capacity", "3", services=("web", "other"))
    cluster.site("big")
    cluster.put_service({"small": 2}, service="other")  # counts per compute, by hand
    other_converged(cluster, 2)
    both = {"web": small.markers["web"], "other": small.markers["other"]}
    with Sampler(both) as sampler:
        cluster.put_service(5, {"computes": ["small", "big"], "strategy": "Spread"})
        cluster.converged({"small": 1, "big": 4})
        cluster.resyncs_pass(3, ["small", "big"])
        view = cluster.converged({"small": 1, "big": 4}, timeout=1)
    assert max(sampler.totals()) == 3, sampler.describe()
    assert most_alive(small.connector, "web") == 1
    # What the status says of it, after the passes that followed the placing: small
    # is full (3, of which other's 2 and web's 1), so its share is the 1 it holds.
    placed = view["status"]["placement"]
    assert "capacity 3, 2 used by others" in placed["reasons"]["small"], placed
    assert placed["shares"] == placed["assignment"] == {"small": 1, "big": 4}, placed
    # And a rebalance has nothing to move.
    r = cluster.request("POST", "/service/web/rebalance", json={})
    assert r.status_code == 202, r.text
    wait_for(lambda: cluster.placement().get("rebalanced") == 1, timeout=CONVERGE,
             message="the rebalance to be done")
    cluster.converged({"small": 1, "big": 4})
    assert "InsufficientCapacity" not in cluster.genisys.log()


def test_a_placement_made_while_another_order_takes_the_room_is_placed_again(cluster):
    """The room a connector reports can be gone by the time genisys' order arrives
    (another service's order was on its way): the connector refuses the order (409
    InsufficientCapacity), and genisys must place what it refused elsewhere, not
    retry it forever."""
    cluster.start()
    small = cluster.site("small", "--capacity", "8", services=("web", "other"))
    cluster.site("big")
    cluster.put_service({"small": 8}, service="other")
    # Other's order is under way (its processes start, one by one) when web is placed.
    wait_for(lambda: cluster.counts("other")["small"] >= 1, timeout=CONVERGE, interval=0.005,
             message="other's processes to start on small")
    cluster.put_service(2, {"computes": ["small", "big"], "strategy": "Pack"})
    view = cluster.converged({"big": 2})
    # What small had room for, for web: none (other holds all 8).
    assert view["status"]["placement"]["capacity"]["small"] == {"total": 8,
                                                                 "usedByOthers": 8}
    assert cluster.counts("other")["small"] == 8
    assert most_alive(small.connector, "web") == 0


def test_capacity_counts_processes_still_stopping(cluster):
    """A connector with capacity 2 whose resources take 1.5 s to stop: one being
    stopped still runs, so the room it leaves is not there until it is gone."""
    cluster.start()
    small = cluster.site("small", "--capacity", "2", services=("web", "other"),
                         command=SLOW_STOPPER)
    cluster.site("big", command=SLOW_STOPPER)
    cluster.put_service({"small": 2}, service="other")
    other_converged(cluster, 2)
    cluster.put_service(2, {"computes": ["small", "big"], "strategy": "Pack"})
    cluster.converged({"big": 2})  # small is full
    both = {"web": small.markers["web"], "other": small.markers["other"]}
    with Sampler(both) as sampler:
        cluster.put_service({"small": 0}, service="other")
        # While other's processes take their 1.5 s to stop, they still run: the
        # connector counts them (status and capacity alike).
        wait_for(lambda: (cluster.get("other")["status"]["computes"].get("small")
                          or {}).get("condition") == "Progressing", timeout=CONVERGE,
                 message="genisys to order other to 0 on small")
        r = cluster.request("POST", "/service/web/scale", json={"number": 4})
        assert r.status_code == 202, r.text
        # Wherever genisys puts the 2 more (small once other's are gone, or big)...
        view = wait_for(lambda: cluster.placement().get("placed") == 4
                        and cluster.placement().get("condition") == "Placed"
                        and cluster.get(), timeout=CONVERGE, message="web placed at 4")
        cluster.converged(view["status"]["placement"]["assignment"])
        wait_for(lambda: sampler.samples[-1][1]["other"] == 0, timeout=CONVERGE,
                 message="other's to be gone")
    # ...small never runs more than its capacity.
    assert max(sampler.totals()) <= 2, sampler.describe()


# -- a compute joins; rebalancing ------------------------------------------------------


def _three_computes_with_one_unlabelled(cluster, total, max_surge=None, command=SLEEPER):
    cluster.start()
    for name in ("dc1", "dc2"):
        cluster.site(name, labels={"pool": "web"}, command=command)
    cluster.site("dc3", labels={}, command=command)
    placement = {"selector": {"matchLabels": {"pool": "web"}}, "strategy": "Spread"}
    if max_surge is not None:
        placement["maxSurge"] = max_surge
    cluster.put_service(total, placement)


def test_a_compute_joining_the_selector_moves_nothing_until_a_rebalance(cluster):
    _three_computes_with_one_unlabelled(cluster, 6)
    before = cluster.converged({"dc1": 3, "dc2": 3})
    events_before = placed_events(cluster)
    with cluster.sampler() as sampler:
        cluster.put_compute("dc3", {"pool": "web"})  # labelled after the fact: it joins
        # A pass saw it: dc3 has a share now, and nothing of the assignment.
        placed = wait_for(lambda: cluster.placement().get("shares") == {"dc1": 2, "dc2": 2,
                                                                         "dc3": 2}
                          and cluster.placement(), timeout=CONVERGE,
                          message="dc3 in the shares")
        assert placed["assignment"] == {"dc1": 3, "dc2": 3}
        assert placed["condition"] == "Placed"
        assert "holds 3 until a rebalance" in placed["reasons"]["dc1"]
        # Several resyncs later, still nothing moved.
        cluster.resyncs_pass(4, ["dc1", "dc2"])
        after = cluster.converged({"dc1": 3, "dc2": 3}, timeout=1)
    assert sampler.samples and all(counts == {"dc1": 3, "dc2": 3, "dc3": 0}
                                   for _, counts in sampler.samples), sampler.describe()
    assert after["generation"] == before["generation"]
    assert after["status"]["computes"]["dc1"]["lastTransitionTime"] == \
        before["status"]["computes"]["dc1"]["lastTransitionTime"]
    assert placed_events(cluster) == events_before
    assert most_alive(cluster.sites["dc3"].connector) == 0
    # Now the rebalance, and everything moves to the shares.
    r = cluster.request("POST", "/service/web/rebalance", json={})
    assert r.status_code == 202, r.text
    view = cluster.converged({"dc1": 2, "dc2": 2, "dc3": 2})
    assert view["status"]["placement"]["rebalanced"] == view["rebalance"] == 1
    messages = [e["message"] for e in placed_events(cluster)]
    assert any(m.startswith("placed") and "dc3 (rebalance)" in m for m in messages), messages
    assert any(m.startswith("took") and "(rebalance)" in m for m in messages), messages


def _rebalance_within_surge(cluster, total, surge):
    """Rebalance a total spread over dc1 and dc2 onto dc3 too, sampling the processes
    alive every 20 ms: never fewer than ``total``, never more than ``total + surge``."""
    even = total // 3
    cluster.converged({"dc1": total - total // 2, "dc2": total // 2})
    cluster.put_compute("dc3", {"pool": "web"})
    wait_for(lambda: "dc3" in cluster.placement().get("shares", {}), timeout=CONVERGE,
             message="dc3 in the shares")
    started = time.monotonic()
    with cluster.sampler() as sampler:
        r = cluster.request("POST", "/service/web/rebalance", json={})
        assert r.status_code == 202, r.text
        seen = wait_for(lambda: cluster.placement().get("condition") == "Rebalancing"
                        and cluster.placement(), timeout=CONVERGE,
                        message="the rebalance to start")
        cluster.converged({"dc1": even, "dc2": even, "dc3": even})
    took = time.monotonic() - started
    totals = sampler.totals()
    # The samples saw it all: from before the first step to after the last.
    first, last = sampler.samples[0][1], sampler.samples[-1][1]
    assert first == {"dc1": 3, "dc2": 3, "dc3": 0} and last == {"dc1": 2, "dc2": 2, "dc3": 2}, \
        sampler.describe()
    assert min(totals) >= total, sampler.describe()
    assert max(totals) <= total + surge, sampler.describe()
    assert max(totals) > total, sampler.describe()  # it did start before it stopped
    assert ("%d at a time" % surge) in seen["message"], seen["message"]
    return took


def test_a_rebalance_one_at_a_time_never_runs_fewer_than_the_total_nor_more_than_one_over(
        cluster):
    _three_computes_with_one_unlabelled(cluster, 6, max_surge=1)
    _rebalance_within_surge(cluster, 6, 1)


def test_a_rebalance_with_the_default_surge_of_a_quarter(cluster):
    _three_computes_with_one_unlabelled(cluster, 6)
    _rebalance_within_surge(cluster, 6, 2)  # 25% of 6, rounded up


def test_a_rebalance_counts_a_process_still_stopping_as_running(cluster):
    """Resources that take a while to stop (1.5 s here, within the grace period):
    one being stopped still runs, so a rebalance must not take its next step (start
    more elsewhere) before it is gone, or more than total + maxSurge run at once."""
    _three_computes_with_one_unlabelled(cluster, 6, max_surge=1, command=SLOW_STOPPER)
    _rebalance_within_surge(cluster, 6, 1)


# -- the total --------------------------------------------------------------------------


def test_upscale_and_downscale_change_the_total_and_per_compute_steps_answer_409(cluster):
    cluster.start()
    cluster.site("dc1")
    cluster.site("dc2")
    cluster.put_service(5, {"computes": ["dc1", "dc2"]})
    cluster.converged({"dc1": 2, "dc2": 3})  # web's odd one goes to dc2 (see the first test)
    r = cluster.request("POST", "/service/web/upscale", json={})
    assert r.status_code == 202, r.text
    assert r.json()["replicas"] == 6
    cluster.converged({"dc1": 3, "dc2": 3})  # added where it was furthest under its share
    for _ in range(2):
        r = cluster.request("POST", "/service/web/downscale", json={})
        assert r.status_code == 202, r.text
    assert r.json()["replicas"] == 4
    view = cluster.converged({"dc1": 2, "dc2": 2})
    messages = [e["message"] for e in placed_events(cluster)]
    assert "placed 1 on dc1 (Spread)" in messages and "took 1 off dc2 (Spread)" in messages

    # A step or a scale on one compute of a placed service: 409, saying what to do.
    generation = view["generation"]
    for path, body in (("upscale", {"compute": "dc1"}), ("downscale", {"compute": "dc2"}),
                       ("scale", {"compute": "dc1", "number": 3})):
        r = cluster.request("POST", "/service/web/" + path, json=body)
        assert r.status_code == 409, (path, r.status_code, r.text)
        error = r.json()["error"]
        assert error["reason"] == "Conflict" and error["field"] == "compute", error
        assert "placed by genisys (a total of 4)" in error["message"], error
        assert "its total (leave out \"compute\")" in error["message"], error
        assert "PUT /service/web" in error["message"], error
    cluster.resyncs_pass(2, ["dc1", "dc2"])
    view = cluster.converged({"dc1": 2, "dc2": 2}, timeout=1)
    assert view["generation"] == generation and view["replicas"] == 4
