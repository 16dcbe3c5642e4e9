"""A real genisys among misbehaving connectors (issue 19): answers of 64 MiB and of 1 GiB
streamed, an enormous count, bottle's HTML 501 page, a JSON error. Its memory is sampled
from /proc the whole time and stays within 100 MB of where it started, each pair's
status says what is wrong in one line, and a healthy compute on the same controller
keeps converging meanwhile."""

import json
import os
import subprocess
import sys
import threading

import pytest
import requests

from tests.support import ROOT, wait_for

MB = 1000 * 1000
#: compute (the case of tests.reconciler.bad_connectors) -> the service asked of it there.
SERVICES = {"big64": "big", "stream1g": "stream", "hugecount": "huge", "html501": "ghost",
            "jsonerror": "broken"}
#: More services on the connectors of large answers, so that several are read at once.
MORE = {"big64": ["big-%d" % i for i in range(1, 6)],
        "stream1g": ["stream-%d" % i for i in range(1, 6)]}


def rss(pid):
    """Resident memory of ``pid``, in bytes."""
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class MemorySampler(threading.Thread):
    """Samples the RSS of a process every 10 ms until ``stop()``; ``samples``, ``peak``."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples = []
        self._stopped = threading.Event()

    def run(self):
        while not self._stopped.wait(0.01):
            try:
                self.samples.append(rss(self.pid))
            except (OSError, ValueError, IndexError):
                return  # it exited; the test says so

    @property
    def peak(self):
        return max(self.samples)

    def stop(self):
        self._stopped.set()
        self.join()


@pytest.fixture
def bad_connectors():
    """The cases of tests.reconciler.bad_connectors in a process of their own: {case: url}
    and a function that reads their stats."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.reconciler.bad_connectors"]
                            + list(SERVICES), cwd=ROOT, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        ports = json.loads(proc.stdout.readline())
        urls = {case: "http://127.0.0.1:%d" % port for case, port in ports.items()}
        yield urls
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def stats(url):
    return requests.get(url + "/stats", timeout=10).json()


def test_misbehaving_connectors_cost_bounded_memory_and_say_what_is_wrong(
        start_genisys, start_connector, bad_connectors):
    healthy = start_connector(backend="simulated")
    genisys = start_genisys("--poll-interval", "1s", "--backoff-initial", "50ms",
                            "--backoff-max", "300ms",
                            env={"GENISYS_CONNECTOR_MAX_ANSWER_SIZE": "512KiB"})
    sampler = MemorySampler(genisys.proc.pid)
    sampler.start()
    try:
        assert genisys.request("PUT", "/compute/healthy",
                               json={"connector": healthy.url}).status_code == 201

        def converged(service, number):
            entry = genisys.request("GET", "/service/" + service).json()["status"]["computes"]
            entry = entry.get("healthy", {})
            return entry.get("condition") == "Converged" and entry.get("running") == number

        def scale(service, compute, number):
            r = genisys.request("POST", "/service/%s/scale" % service,
                                json={"compute": compute, "number": number})
            assert r.status_code in (200, 202), r.text

        scale("web", "healthy", 2)
        wait_for(lambda: converged("web", 2), timeout=30, message="web converged")
        baseline, before = rss(genisys.proc.pid), len(sampler.samples)

        for compute, service in SERVICES.items():
            assert genisys.request("PUT", "/compute/" + compute, json={
                "connector": bad_connectors[compute]}).status_code == 201
            for name in [service] + MORE.get(compute, []):
                scale(name, compute, 2)

        def failed_often(service, compute):
            entry = genisys.request("GET", "/service/" + service).json()["status"][
                "computes"].get(compute, {})
            return entry if entry.get("failures", 0) >= 10 else None

        # While they misbehave, again and again, the healthy compute keeps converging.
        for number in (3, 1, 4):
            scale("web", "healthy", number)
            wait_for(lambda n=number: converged("web", n), timeout=30,
                     message="web converged at %d" % number)
        entries = {compute: wait_for(lambda c=compute, s=service: failed_often(s, c),
                                     timeout=60, message="%s failing on %s" % (service, compute))
                   for compute, service in SERVICES.items()}
        # Many large answers each (6 services there, each failing again and again): a
        # condition waited for, since the services fail at their own pace.
        for compute in ("big64", "stream1g"):
            wait_for(lambda c=compute: stats(bad_connectors[c])[c]["answers"] >= 60,
                     timeout=60, message="60 answers of %s" % compute)
        scale("web", "healthy", 0)
        wait_for(lambda: converged("web", 0), timeout=30, message="web converged at 0")
    finally:
        sampler.stop()

    assert genisys.proc.poll() is None, genisys.log()
    assert len(sampler.samples) > before + 10  # sampled throughout, not only before
    print("RSS of genisys: %.1f MB at the baseline, %.1f MB at most over %d samples"
          % (baseline / MB, sampler.peak / MB, len(sampler.samples)))
    assert sampler.peak < baseline + 100 * MB, (baseline, sampler.peak)

    for compute in ("big64", "stream1g"):
        entry = entries[compute]
        assert (entry["condition"], entry["reason"]) == ("Error", "ConnectorBadResponse"), entry
        assert "the answer is too large" in entry["message"], entry
        assert "the limit of 512 KiB (connector.max_answer_size)" in entry["message"], entry
        sent = stats(bad_connectors[compute])[compute]
        assert sent["answers"] >= 60 and sent["completed"] == 0, sent
        assert sent["sent"] < 64 * MB, sent  # 1 GiB never went over loopback
    assert "its body is 67108864 bytes (Content-Length)" in entries["big64"]["message"]
    assert "its body passed the limit" in entries["stream1g"]["message"]

    huge = entries["hugecount"]
    assert huge["reason"] == "ConnectorBadResponse"
    assert huge["message"].endswith(
        "huge from %s reported 10^30 running, more than genisys could have ordered "
        "(max_replicas 1000; a count above 10100 is taken for a broken connector)"
        % bad_connectors["hugecount"]), huge
    assert huge["running"] in (None, 0)  # never taken as a count

    ghost = entries["html501"]
    assert (ghost["condition"], ghost["reason"]) == ("Error", "ConnectorError"), ghost
    assert ghost["message"].endswith(": 501 Undefined service: ghost."), ghost
    assert "<" not in ghost["message"]

    broken = entries["jsonerror"]
    assert (broken["condition"], broken["reason"]) == ("Unreachable", "ConnectorUnavailable")
    assert broken["message"].endswith(
        "503, the connector is unavailable: the engine [31mis down since 12:00"), broken
