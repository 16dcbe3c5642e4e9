"""Helpers of the connector tests: commands to run, and the calls a controller makes."""

import concurrent.futures
import os
import re
import sys
import threading

from genisys.connector.process import STATE_DIR_ENV
from tests.support import find_processes

#: A resource that runs until it is stopped.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

#: A resource that ignores SIGTERM (says "ready" once it does): only SIGKILL stops it.
IGNORES_SIGTERM = [sys.executable, "-c",
                   "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(600)"]


def slow_to_stop(seconds):
    """A resource that takes ``seconds`` to exit once SIGTERMed (says "ready" once it
    will): it exits on its own, with status 0, well within a long grace period."""
    return [sys.executable, "-c",
            "import signal, sys, time\n"
            "def stop(*_):\n    time.sleep(%r)\n    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "print('ready', flush=True)\ntime.sleep(600)" % float(seconds)]


def define(connector, name, command, **fields):
    r = connector.request("PUT", "/service/%s" % name, json=dict(fields, command=command))
    assert r.status_code in (200, 201), r.text
    return r.json()


def scale(connector, name, number):
    """POST /service/<name>/scale; the response (checked by the caller)."""
    return connector.request("POST", "/service/%s/scale" % name, json={"number": number})


def running(connector, name):
    r = connector.request("GET", "/service/%s/status" % name)
    assert r.status_code == 200, r.text
    return r.json()["running_resources"]


def alive(connector, name):
    """The pids of ``name``'s processes that a process connector's /proc shows alive,
    those being stopped included (not only what its state file lists as running)."""
    mine = find_processes(environ="%s=%s" % (STATE_DIR_ENV, os.path.realpath(connector.state_dir)))
    return sorted(set(mine) & set(find_processes(environ="GENISYS_SERVICE=%s" % name)))


def error_of(response, status):
    """The error object of a JSON error answer, checked for shape and status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"reason", "message", "field"}, body
    assert body["error"]["message"], body
    return body["error"]


def output_of(entry):
    """What a process (a state file entry) wrote to its log so far."""
    with open(entry["log"], encoding="utf-8", errors="replace") as f:
        return f.read()


#: A process or docker connector's log line for one change of a service's count.
_CHANGE = re.compile(r"\bscaling (\S+) (?:up|down) from (\d+) to (\d+)")
#: ... and for one resource started (a process, or a container: name and short id).
_STARTED = re.compile(r"\bstarted (?:process \d+|container \S+ \(\w+\)) of ([^\s:]+)")

#: Concurrent orders of different sizes (each one different from the one before it).
MIXED_ORDERS = [2, 7, 4, 9, 1, 6, 3, 8]


def changes(log, service):
    """(from, to) of every change of ``service``'s count a connector logged, in order."""
    return [(int(m.group(2)), int(m.group(3))) for m in map(_CHANGE.search, log.splitlines())
            if m and m.group(1) == service]


def starts(log, service):
    """How many resources of ``service`` a connector logged starting."""
    return sum(1 for m in map(_STARTED.search, log.splitlines()) if m and m.group(1) == service)


def at_once(calls):
    """Run every one of ``calls`` at the same moment, each in its own thread; their
    results, in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=30)
        return call()
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def stopping_bounds(history):
    """{count: (least, most)}: how many resources were still being stopped when the
    order that left that count answered, from a service's ``history`` (``changes``,
    each count once). At least those it stopped itself (it answers before any of them
    can have exited), at most every one the changes up to it stopped."""
    bounds, stopped = {}, 0
    for begin, to in history:
        stopped += max(0, begin - to)
        bounds[to] = (max(0, begin - to), stopped)
    return bounds


def answered_within(answer, number, history):
    """True if ``answer``, a process connector's running count in answer to the order for
    ``number``, is ``number`` and the resources being stopped then (``stopping_bounds``):
    what runs, and what runs until it has exited."""
    least, most = stopping_bounds(history)[number]
    return number + least <= answer <= number + most


def one_after_the_other(history, *, start):
    """True if every change in ``history`` begins where the one before it ended (the
    first where the service stood at ``start``): none interleaved with another."""
    ends = [start] + [to for _, to in history]
    return all(begin == end for (begin, _), end in zip(history, ends))


def orders(connector):
    """{caller: scale orders} from the connector's /metrics."""
    text = connector.request("GET", "/metrics", timeout=5).text
    return {caller: float(n) for caller, n in re.findall(
        r'^genisys_connector_orders_total\{caller="([^"]*)"\} (\S+)$', text, re.M)}
