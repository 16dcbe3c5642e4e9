"""A chaos run of distributed mode, bounded to about 30 seconds of chaos: three etcd
members, two controllers and a process connector running real processes, with clients
upscaling and downscaling throughout, while every couple of seconds a random etcd member
or controller is SIGKILLed or SIGSTOPped (always leaving a quorum of members, and one
controller) and later brought back. Afterwards:

* every change a client was answered 2xx for is in the store, exactly;
* the real processes are exactly what the intents say;
* at no sampled moment did both controllers send scale orders (the connector counts
  orders by the Genisys-Identity of the controller that sent them);
* no service ever ran more processes than it was asked for in the seconds before.
"""

import hashlib
import json
import random
import signal
import threading
import time
import uuid

import pytest
import requests

from genisys.store.etcd_client import b64, range_end, unb64
from tests.connector.common import SLEEPER, define, orders
from tests.etcd import EtcdCluster, etcd_binary, unique_prefix
from tests.support import wait_for

SERVICES = ("s0", "s1", "s2")
#: Seconds of chaos.
CHAOS_SECONDS = 30.0
#: The controllers' lease: a controller paused longer than this loses the leadership.
TTL = 2.0
#: How long a downscale may take to show in the processes (a pass, and a process that
#: stops): a sample may see more running than wanted for this long after a downscale.
SETTLE_SECONDS = 12.0


class Controllers:
    """The two controllers, restarted under the same name after a SIGKILL."""

    def __init__(self, start_genisys, url):
        self._start = start_genisys
        self.url = url
        self.lock = threading.Lock()
        self.live = {name: self._spawn(name) for name in ("ctl-a", "ctl-b")}
        self.paused = set()

    def _spawn(self, name):
        return self._start("--store", self.url, "--identity", name, "--leader-ttl",
                           "%gs" % TTL, "--poll-interval", "1s", "--backoff-max", "1s",
                           "--connector-timeout", "5s", store=False, name=name)

    def urls(self):
        with self.lock:
            return [p.url for n, p in self.live.items() if n not in self.paused]

    def kill(self, name):
        with self.lock:
            process = self.live[name]
        process.proc.kill()
        process.proc.wait()

    def restart(self, name):
        process = self._spawn(name)
        with self.lock:
            self.live[name] = process

    def pause(self, name):
        with self.lock:
            self.paused.add(name)
            self.live[name].proc.send_signal(signal.SIGSTOP)

    def resume(self, name):
        with self.lock:
            self.live[name].proc.send_signal(signal.SIGCONT)
            self.paused.discard(name)


class Clients:
    """Threads that upscale and downscale through whichever controller answers, each
    change with an Idempotency-Key it retries until it is answered (so each change is
    applied once, and known to be)."""

    def __init__(self, controllers, rng):
        self.controllers = controllers
        self.rng = rng
        self.lock = threading.Lock()
        #: service -> net acknowledged change.
        self.acked = {s: 0 for s in SERVICES}
        #: service -> [(time, most it may want then)]: what is acknowledged plus the
        #: upscales sent but not yet answered.
        self.ceilings = {s: [(time.monotonic(), 0)] for s in SERVICES}
        self._pending = {s: 0 for s in SERVICES}
        self.answered = self.refused = 0
        self.stop = threading.Event()
        self.errors = []
        #: Idempotency-Key -> (service, "upscale" or "downscale", [each try's outcome],
        #: what the client concluded): what to compare with the store when they differ.
        self.history = {}

    def _ceiling(self, service):
        self.ceilings[service].append((time.monotonic(),
                                       self.acked[service] + self._pending[service]))

    def run(self):
        try:
            while not self.stop.is_set():
                service = self.rng.choice(SERVICES)
                up = self.rng.random() < 0.6
                self._change(service, up)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def _change(self, service, up):
        key = uuid.uuid4().hex
        tries = []
        self.history[key] = (service, "upscale" if up else "downscale", tries, None)
        with self.lock:
            if up:
                self._pending[service] += 1
                self._ceiling(service)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                urls = self.controllers.urls()
                if not urls:
                    time.sleep(0.1)
                    continue
                url = self.rng.choice(urls)
                try:
                    r = requests.post("%s/service/%s/%s" % (url, service,
                                                          "upscale" if up else "downscale"),
                                      json={"compute": "local"}, timeout=3,
                                      headers={"Idempotency-Key": key})
                except requests.RequestException as e:
                    tries.append((round(time.monotonic(), 2), url, type(e).__name__))
                    continue  # a controller killed or paused: try again, same key
                tries.append((round(time.monotonic(), 2), url, r.status_code,
                              r.headers.get("Idempotent-Replayed")))
                if r.status_code >= 500:
                    time.sleep(0.05)
                    continue  # no quorum, or not sure it happened: the same key again
                if r.status_code == 409 and not up:
                    with self.lock:
                        self.refused += 1  # nothing to downscale: not applied
                    self.history[key] = (service, "downscale", tries, "refused")
                    return
                assert r.status_code == 202, (r.status_code, r.text)
                with self.lock:
                    self.acked[service] += 1 if up else -1
                    self.answered += 1
                self.history[key] = (service, "upscale" if up else "downscale", tries, "acked")
                return
            raise AssertionError("a change of %s was never answered" % service)
        finally:
            with self.lock:
                if up:
                    self._pending[service] -= 1
                self._ceiling(service)

    def most_wanted(self, service, since):
        """The most ``service`` may have wanted from ``since`` on."""
        with self.lock:
            ceilings = list(self.ceilings[service])
        before = [c for t, c in ceilings if t <= since]
        return max([before[-1] if before else 0] + [c for t, c in ceilings if t > since])


def _held(member, key, **more):
    """[(key, mod_revision, decoded value)] of etcd ``key`` on ``member``."""
    answer = member.call("/v3/kv/range", dict({"key": b64(key)}, **more))
    return [(unb64(kv["key"]), int(kv["mod_revision"]), json.loads(unb64(kv["value"])))
            for kv in answer.get("kvs") or []]


def _disagreements(cluster, prefix, history):
    """The changes whose outcome the client and the store disagree on (each change's
    Idempotency-Key is recorded in the store, ``idempotency/<sha256>`` with the spec it
    wrote, exactly when the change was applied), and what each member holds (members
    that disagree would be etcd's own fault)."""
    live = [m for m in cluster.members if m.alive() and not m.paused]
    full = prefix + "/idempotency/"
    applied = {key[len(full):]: (revision, value["spec"]["replicas"])
               for key, revision, value in _held(live[0], full, range_end=range_end(full))}
    lines = []
    for key, (service, step, tries, outcome) in history.items():
        stored = applied.get(hashlib.sha256(key.encode()).hexdigest())
        if (stored is not None) != (outcome == "acked"):
            lines.append("%s of %s: the client says %s, the store %s; tries: %s" % (
                step, service, outcome, "applied it at revision %d (-> %s)" % stored
                if stored else "has no record of it", tries))
    for member in live:
        held = {s: [value["replicas"] for _, _, value in _held(
            member, "%s/services/%s" % (prefix, s), serializable=True)] for s in SERVICES}
        lines.append("etcd member %s holds %s" % (member.name, held))
    return "\n".join(lines)


def _bring_back(cluster, controllers, down):
    """Restart (after a SIGKILL) or resume (after a SIGSTOP) what ``down`` says."""
    kind, name, how = down
    if kind == "member":
        member = cluster.members[name]
        if how == "kill":
            member.start(cluster._initial())
        else:
            member.resume()
        wait_for(member.healthy, timeout=30, message="etcd %s back" % member.name)
    elif how == "kill":
        controllers.restart(name)
    else:
        controllers.resume(name)


def _chaos(cluster, controllers, rng, stop, log):
    """Every 1.5 to 3 s, SIGKILL or SIGSTOP one etcd member or controller, and bring
    back the last one first, so that two members and one controller always live."""
    down = None
    while not stop.is_set():
        stop.wait(rng.uniform(1.5, 3.0))
        if down is not None:
            _bring_back(cluster, controllers, down)
            log.append((time.monotonic(), "back", down[1]))
            down = None
        if stop.is_set():
            return
        how = rng.choice(("kill", "stop"))
        if rng.random() < 0.5:
            index = rng.randrange(len(cluster.members))
            member = cluster.members[index]
            if how == "kill":
                member.kill()
            else:
                member.pause()
            down = ("member", index, how)
        else:
            name = rng.choice(sorted(controllers.live))
            if how == "kill":
                controllers.kill(name)
            else:
                controllers.pause(name)
            down = ("controller", name, how)
        log.append((time.monotonic(), how, down[1]))
    if down is not None:  # back before the test looks
        _bring_back(cluster, controllers, down)


@pytest.mark.timeout(300)
def test_chaos_loses_nothing_runs_exactly_the_intents_and_never_two_leaders(
        tmp_path, start_genisys, start_connector):
    etcd_binary()
    rng = random.Random(7)
    cluster = EtcdCluster(3, workdir=str(tmp_path / "etcd")).start()
    try:
        connector = start_connector("--grace-period", "2s")
        for service in SERVICES:
            define(connector, service, SLEEPER)
        prefix = unique_prefix()
        controllers = Controllers(start_genisys, cluster.url(prefix))
        first = controllers.live["ctl-a"]
        r = requests.put(first.url + "/compute/local", json={"connector": connector.url},
                         timeout=10)
        assert r.status_code == 201, r.text
        for service in SERVICES:
            r = requests.put("%s/service/%s" % (first.url, service),
                             json={"replicas": {"local": 0}}, timeout=10)
            assert r.status_code == 201, r.text

        samples, stop, log = [], threading.Event(), []
        clients = Clients(controllers, rng)

        def sample():
            while not stop.is_set():
                try:
                    counted = orders(connector)
                    running = {s: len(connector.running_pids(s)) for s in SERVICES}
                except requests.RequestException:
                    continue
                samples.append((time.monotonic(), counted, running))
                stop.wait(0.05)

        threads = [threading.Thread(target=clients.run, daemon=True) for _ in range(2)]
        threads.append(threading.Thread(target=sample, daemon=True))
        chaos = threading.Thread(target=_chaos, args=(cluster, controllers, rng, stop, log),
                                 daemon=True)
        for thread in threads + [chaos]:
            thread.start()
        time.sleep(CHAOS_SECONDS)  # the length of the run, not a wait for a condition
        clients.stop.set()
        for thread in threads[:2]:
            thread.join(90)
        stop.set()
        chaos.join(90)
        threads[2].join(10)
        assert not clients.errors, clients.errors
        assert clients.answered > 50, "too few changes went through: %d" % clients.answered
        print("chaos: %d changes answered, %d downscales refused at 0; %s"
              % (clients.answered, clients.refused,
                 ", ".join("%s %s" % (how, name) for _, how, name in log)))

        # Every acknowledged change is in the store, and the processes follow it exactly.
        wanted = dict(clients.acked)
        url = controllers.urls()[0]
        stored = {s: requests.get("%s/service/%s" % (url, s), timeout=10).json()["replicas"]
                  .get("local", 0) for s in SERVICES}
        assert stored == wanted, _disagreements(cluster, prefix, clients.history)
        wait_for(lambda: {s: len(connector.running_pids(s)) for s in SERVICES} == wanted,
                 timeout=60, message="the processes at %s" % wanted)

        # At no sampled moment did both controllers send orders.
        both = []
        for (t0, before, _), (t1, after, _) in zip(samples, samples[1:]):
            acting = [c for c in ("ctl-a", "ctl-b") if after.get(c, 0) > before.get(c, 0)]
            if len(acting) == 2:
                both.append((round(t0, 2), round(t1, 2)))
        assert not both, "both controllers sent orders between samples at %s" % both
        callers = samples[-1][1]
        print("orders by controller: %s, in %d samples" % (callers, len(samples)))
        assert set(callers) <= {"ctl-a", "ctl-b"}, callers

        # No service ran more than it was asked for in the seconds before.
        over = [(round(t, 2), s, n) for t, _, running in samples for s, n in running.items()
                if n > clients.most_wanted(s, t - SETTLE_SECONDS)]
        assert not over, "more processes than wanted: %s" % over[:5]
    finally:
        cluster.stop()
