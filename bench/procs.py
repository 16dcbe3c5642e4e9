"""The processes a benchmark starts, what /proc says about them, and their cleanup.

Every process is started through a ``Fleet``: a context manager that stops
all of them when it ends, however it ends (normal exit, exception, Ctrl-C,
SIGTERM). Each child also gets SIGTERM from the kernel if the benchmark
itself dies abruptly (``PR_SET_PDEATHSIG``), so nothing outlives a run.
Ports are picked by the children themselves (``--port 0``) and read back
from their "listening on" log line, so two runs never collide.
"""

import collections
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from typing import Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENISYS_PY = os.path.join(ROOT, "genisys.py")

_CONTROLLER_LISTENING = re.compile(r"genisys listening on https?://([^:\s]+):(\d+)")
_CONNECTOR_LISTENING = re.compile(r"genisys connector listening on https?://([^:\s]+):(\d+)")
_NOOP_LISTENING = re.compile(r"noop listening on https?://([^:\s]+):(\d+)")
NOOP_PY = os.path.join(ROOT, "bench", "noop.py")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None  # not Linux: the Fleet's own cleanup still runs on every normal path


def _die_with_parent():
    """In the child, before exec: SIGTERM when the benchmark process goes away."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_env():
    # The benchmark says every setting on the command line: a GENISYS_* variable of
    # the caller's shell (a token, a store, a config file) must not change what runs.
    return {k: v for k, v in os.environ.items() if not k.startswith("GENISYS_")}


# -- what /proc says ------------------------------------------------------------------


def cpu_seconds(pid):
    """User + system CPU time of ``pid`` (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    # "pid (comm) state ..." -- comm may hold spaces; utime and stime are fields 14, 15.
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_mb(pid):
    """{"rss": current resident set, "peak": its high-water mark (VmHWM)}, in MB."""
    values = {}
    with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024.0  # kB -> MB
    return {"rss": values.get("VmRSS"), "peak": values.get("VmHWM")}


#: A log line that tells of a fault: genisys' "<date> <time> ERROR <logger>: ...", or the
#: first line of a traceback that no logger caught.
_FAULT = re.compile(r"^\S+ \S+ (?:ERROR|CRITICAL) .*$|^Traceback \(most recent call last\):$",
                    re.M)


# -- one child ------------------------------------------------------------------------


class Child:
    """One process of the run: its command, its log file, and the port it listens on."""

    def __init__(self, argv, *, workdir, name, listening):
        self.argv = list(argv)
        self.workdir = workdir
        self.name = name
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.listening = listening
        self.proc: Optional[subprocess.Popen] = None
        self.port = None
        #: time.monotonic() when the process was spawned, and when it said it listens.
        self.spawned_at = None
        self.listening_at = None

    @property
    def pid(self):
        return self.proc.pid

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def spawn(self):
        with open(self.log_path, "ab") as log:
            self.spawned_at = time.monotonic()
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=_child_env(),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        return self

    def wait_listening(self, timeout=60.0):
        """Block until the log says "listening"; sets ``port`` and ``listening_at``."""
        deadline = time.monotonic() + timeout
        while True:
            match = self.listening.search(self.log())
            if match:
                self.listening_at = time.monotonic()
                self.port = int(match.group(2))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with status %s before listening; its log:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not listen within %.0fs; its log:\n%s"
                                   % (self.name, timeout, self.log_tail()))
            time.sleep(0.01)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self, lines=30):
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM (a graceful stop), then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# -- every child of a run ----------------------------------------------------------------


class Fleet(contextlib.AbstractContextManager):
    """Starts the controller, connectors and load generators of a run in ``workdir``,
    and stops every one of them on exit."""

    def __init__(self, workdir):
        self.workdir = workdir
        self._children = []
        #: Every child of the run, stopped or not: their logs are read at the end.
        self._spawned = []
        self._names = collections.Counter()

    def _name(self, base):
        self._names[base] += 1
        return "%s-%d" % (base, self._names[base])

    def _track(self, child):
        self._children.append(child)
        self._spawned.append(child)
        return child

    def faults(self):
        """{name: (count, first)} of the children whose logs tell of a fault: a line
        logged as ERROR or CRITICAL, or a traceback. A run under load is where a fault
        that tests miss shows (a race at shutdown, say): the report prints them."""
        found = {}
        for child in self._spawned:
            try:
                lines = _FAULT.findall(child.log())
            except OSError:
                continue
            if lines:
                found[child.name] = (len(lines), lines[0].strip())
        return found

    def controller(self, store, *, args=(), profile_to=None, name="controller"):
        """``genisys.py serve`` on ``store`` (a SQLite file's path, durable, or a store
        URL such as ``etcd://...``), on a free port.

        ``profile_to``: run it under cProfile, which writes its stats there at exit."""
        python = [sys.executable]
        if profile_to:
            python += ["-m", "cProfile", "-o", profile_to]
        url = store if "://" in store else "sqlite:///" + os.path.abspath(store)
        argv = python + [GENISYS_PY, "serve", "--port", "0", "--bind", "127.0.0.1",
                         "--store", url] + list(args)
        child = self._track(Child(argv, workdir=self.workdir, name=self._name(name),
                                  listening=_CONTROLLER_LISTENING))
        return child.spawn()

    def connectors(self, count, *, latency, args=()):
        """``count`` simulated connectors, each its own process, answering after ``latency``
        seconds; they are started together and returned once all of them listen."""
        children = []
        for _ in range(count):
            argv = [sys.executable, GENISYS_PY, "connector", "--backend", "simulated",
                    "--bind", "127.0.0.1", "--port", "0",
                    "--latency", "%gms" % (latency * 1000.0)] + list(args)
            children.append(self._track(Child(argv, workdir=self.workdir,
                                              name=self._name("connector"),
                                              listening=_CONNECTOR_LISTENING).spawn()))
        for child in children:
            child.wait_listening()
        return children

    def noop(self):
        """The no-work tornado server (``bench/noop.py``), the API's ceiling."""
        child = self._track(Child([sys.executable, NOOP_PY, "--port", "0"],
                                  workdir=self.workdir, name=self._name("noop"),
                                  listening=_NOOP_LISTENING))
        return child.spawn()

    def python(self, argv, *, name):
        """Any other Python process of ours (the load generator); no port."""
        child = self._track(Child([sys.executable] + list(argv), workdir=self.workdir,
                                  name=self._name(name), listening=None))
        return child.spawn()

    def stop(self, *children):
        for child in children:
            child.stop()
            if child in self._children:
                self._children.remove(child)

    def __exit__(self, *exc):
        # Ask everybody at once, then wait: a slow graceful stop costs its time once.
        for child in self._children:
            if child.alive():
                child.proc.send_signal(signal.SIGTERM)
        for child in self._children:
            child.stop(timeout=15.0)
        self._children.clear()
        return None


# -- what a connector says --------------------------------------------------------------


_REQUESTS_SAMPLE = re.compile(r'^genisys_connector_(requests|batch_services)_total\{([^}]*)\}'
                              r'\s+(\S+)', re.M)
_ENDPOINT = re.compile(r'endpoint="([^"]*)"')
_COUNTED = ("status", "scale", "batch_status", "batch_scale")


def connector_requests(connectors):
    """What the connectors answered so far, summed over ``connectors`` (from each one's
    Prometheus /metrics): ``{"status": n, "scale": n, "batch_status": n, "batch_scale":
    n}``. ``status`` and ``scale`` are status checks and scale orders of one service each,
    whichever way they came: one per request (``genisys_connector_requests_total``), or
    many in a batch request (``genisys_connector_batch_services_total``). ``batch_*``
    count the batch requests themselves."""
    total = collections.Counter()
    for child in connectors:
        text = requests.get(child.url + "/metrics", timeout=60).text
        for metric, labels, value in _REQUESTS_SAMPLE.findall(text):
            endpoint = _ENDPOINT.search(labels)
            endpoint = endpoint.group(1) if endpoint else None
            if metric == "requests" and endpoint in _COUNTED:
                total[endpoint] += int(float(value))
            elif metric == "batch_services" and endpoint in ("batch_status", "batch_scale"):
                total[endpoint[len("batch_"):]] += int(float(value))
    return {k: total[k] for k in _COUNTED}


def requests_between(before, after):
    return {k: after[k] - before[k] for k in _COUNTED}


# -- what the controller says about itself ---------------------------------------------


_HISTOGRAM_PART = re.compile(r"^(genisys_reconcile_pass_seconds|genisys_connector_call_seconds)"
                             r"_(sum|count)(?:\{[^}]*\})?\s+(\S+)", re.M)


def _metrics(child):
    return requests.get(child.url + "/metrics", timeout=120).text


def controller_timings(child):
    """Totals of the controller's own histograms (its /metrics): reconcile passes and
    connector calls, how many and how long on average. Read once, after the
    measurement: at 10,000 services the page is megabytes (per-pair gauges)."""
    text = _metrics(child)
    total = collections.Counter()
    for name, part, value in _HISTOGRAM_PART.findall(text):
        total[name, part] += float(value)

    def mean_ms(name):
        count = total[name, "count"]
        return total[name, "sum"] * 1000.0 / count if count else None
    return {"passes": int(total["genisys_reconcile_pass_seconds", "count"]),
            "pass_ms_mean": mean_ms("genisys_reconcile_pass_seconds"),
            "calls": int(total["genisys_connector_call_seconds", "count"]),
            "call_ms_mean": mean_ms("genisys_connector_call_seconds"),
            "call_seconds_total": total["genisys_connector_call_seconds", "sum"]}


_PLACEMENT_COUNTER = re.compile(r"^genisys_(placement_cpu_seconds|placements)_total\s+(\S+)",
                                re.M)


def controller_placement(child):
    """The controller's placement counters (its /metrics): ``{"cpu_seconds": CPU time of
    its placement decisions (genisys_placement_cpu_seconds_total), "decisions": how many
    (genisys_placements_total)}``."""
    found = dict(_PLACEMENT_COUNTER.findall(_metrics(child)))
    return {"cpu_seconds": float(found.get("placement_cpu_seconds", 0.0)),
            "decisions": int(float(found.get("placements", 0.0)))}
