"""Test helpers: real genisys processes on loopback, free ports, waiting on conditions."""

import contextlib
import io
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import requests

from genisys.cli import COMMANDS
from genisys.cli import main as cli_main
from genisys.connector.process import read_proc_stat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENISYS_PY = os.path.join(ROOT, "genisys.py")

_LISTENING = re.compile(r"genisys listening on https?://([^:]+):(\d+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, *, timeout=20.0, interval=0.02, message="condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, message))
        time.sleep(interval)


def intents_dump(path):
    """The intents (computes and services, with their versions) in a SQLite
    store, read by another connection; status, which the reconciler writes
    on its own, is left out."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT key, value, version FROM kv WHERE key LIKE 'computes/%' "
                            "OR key LIKE 'services/%' ORDER BY key").fetchall()
        return "\n".join("%s %s %d" % row for row in rows)
    finally:
        conn.close()


class GenisysProcess:
    """``python genisys.py serve`` as a real OS process on a free loopback port."""

    #: The log line that says the process listens, and on which port.
    LISTENING = _LISTENING
    WHAT = "genisys"

    def __init__(self, workdir, args=(), env=None, name="genisys"):
        self.workdir = workdir
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("GENISYS_CONFIG", None)
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.proc = None
        self.port = None
        self._log_offset = 0

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=20.0):
        if not any(a == "--port" or a.startswith("--port=") for a in self.args):
            self.args += ["--port", "0"]
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self.proc = subprocess.Popen([sys.executable, GENISYS_PY] + self.args,
                                         cwd=self.workdir, env=self.env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)

        def listening():
            match = self.LISTENING.search(self.log())
            if match:
                return int(match.group(2))
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s before listening:\n%s"
                                     % (self.WHAT, self.proc.returncode, self.log()))
            return None
        self.port = wait_for(listening, timeout=timeout, message="%s to listen" % self.WHAT)
        return self

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(self._log_offset)
            return f.read()

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.url + path, **kwargs)

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Send ``sig`` and wait for the exit; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("genisys did not exit within %.0fs of %s:\n%s"
                                 % (timeout, sig, self.log())) from e

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_genisys(args, *, cwd, env=None, timeout=30):
    """Run ``python genisys.py ARGS`` to completion (for commands that exit)."""
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("GENISYS_CONFIG", None)
    return subprocess.run([sys.executable, GENISYS_PY] + list(args), cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _as_a_process(*, cwd, env):
    """This process seen as ``run_genisys`` would start one: ``os.environ`` (with ``env``,
    without GENISYS_CONFIG), the working directory, an empty stdin and stdout/stderr
    read into strings; everything put back after."""
    saved_environ, saved_cwd = dict(os.environ), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.environ.update(env or {})
    os.environ.pop("GENISYS_CONFIG", None)
    saved_stdin, sys.stdin = sys.stdin, io.StringIO("")
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)


def run_client_command(args, *, cwd, env=None):
    """``genisys ARGS`` for a client command (get, apply, plan...) run in this process
    through ``genisys.cli.main``, as ``run_genisys`` runs it as a process: the same
    CompletedProcess (exit status, stdout, stderr). A process costs a second of CPU for
    its start-up alone; the server it talks to stays a real process. An exception the
    command lets out fails the test here, as its traceback would there. Every command
    family keeps tests that run it as a real process (run_genisys)."""
    argv = list(args)
    if not argv or argv[0] not in COMMANDS:  # as genisys.py: `genisys.py FLAGS` serves
        argv = ["serve"] + argv
    with _as_a_process(cwd=cwd, env=env) as (out, err):
        try:
            status = cli_main(argv)
        except SystemExit as e:  # argparse: --help, bad usage
            status = e.code
    if status is None:
        status = 0
    elif not isinstance(status, int):  # sys.exit("message"): printed, status 1
        err.write("%s\n" % status)
        status = 1
    return subprocess.CompletedProcess(["genisys"] + list(args), status, out.getvalue(),
                                       err.getvalue())


# -- connectors ------------------------------------------------------------------------

_CONNECTOR_LISTENING = re.compile(r"genisys connector listening on http://([^:]+):(\d+)")

#: Environment variable every connector started by the tests carries (with a value
#: unique to its fixture), inherited by every process it starts: cleanup finds them all.
TEST_MARKER = "GENISYS_TEST_MARKER"


def process_alive(pid, start_time=None):
    """True while ``pid`` runs (a zombie has exited); with ``start_time``, only if it is
    still that process (not a later one that got the same pid)."""
    stat = read_proc_stat(pid)
    if stat is None or stat.state in ("Z", "X"):
        return False
    return start_time is None or stat.start_time == start_time


def find_processes(*, cmdline=None, environ=None, pgid=None):
    """Pids of live (not zombie) processes, other than this one, whose command line
    contains ``cmdline``, whose environment has the entry ``environ`` ("NAME=value"),
    and whose process group is ``pgid`` (each only if given): what `ps` would show."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        stat = read_proc_stat(pid)
        if stat is None or stat.state in ("Z", "X") or pgid not in (None, stat.pgid):
            continue
        try:
            if cmdline is not None:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if cmdline.encode() not in f.read():
                        continue
            if environ is not None:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    if environ.encode() not in f.read().split(b"\0"):
                        continue
        except OSError:
            continue  # gone meanwhile, or not ours to read
        pids.append(pid)
    return sorted(pids)


def kill_marked_processes(marker):
    """SIGKILL every process whose environment has TEST_MARKER=marker; returns their pids."""
    killed = []
    for _ in range(5):  # again, in case one forked while we looked
        found = find_processes(environ="%s=%s" % (TEST_MARKER, marker))
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += found
        if not found:
            break
    return killed


class ConnectorProcess(GenisysProcess):
    """``python genisys.py connector ...`` as a real OS process on a free loopback port.

    ``state_dir`` is its --state-dir (process backend) or None; ``marker`` is put in
    its environment (TEST_MARKER) so that ``cleanup`` finds every process it started."""

    LISTENING = _CONNECTOR_LISTENING
    WHAT = "the connector"

    def __init__(self, workdir, args=(), env=None, name="connector", state_dir=None,
                 marker=None):
        env = dict(env or {})
        if marker is not None:
            env[TEST_MARKER] = marker
        super().__init__(workdir, ["connector"] + list(args), env=env, name=name)
        self.state_dir = state_dir
        self.marker = marker

    def state(self):
        """The connector's state file (process backend), or None if there is none."""
        if self.state_dir is None:
            return None
        try:
            with open(os.path.join(self.state_dir, "state.json"), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def recorded(self, service=None):
        """The process entries of the state file (of ``service`` only, if given)."""
        processes = (self.state() or {}).get("processes", [])  # the docker backend has none
        return [p for p in processes if service is None or p["service"] == service]

    def running_pids(self, service=None):
        """Recorded, not being stopped, and alive."""
        return sorted(p["pid"] for p in self.recorded(service)
                      if not p["stopping"] and process_alive(p["pid"], p["start_time"]))

    def cleanup(self):
        """SIGKILL the connector, then every process it (or an earlier connector with
        the same marker) started: marked ones, and the recorded process groups."""
        self.kill()
        if self.marker is not None:
            kill_marked_processes(self.marker)
        for entry in self.recorded():
            if process_alive(entry["pid"], entry["start_time"]):
                try:
                    os.killpg(entry["pgid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
