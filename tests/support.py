"""Test helpers: real genisys processes on loopback, free ports, waiting on conditions."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENISYS_PY = os.path.join(ROOT, "genisys.py")

_LISTENING = re.compile(r"genisys listening on http://([^:]+):(\d+)")


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


def sqlite_dump(path):
    """The whole content of a SQLite file, as SQL text, read by another connection."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


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
            match = _LISTENING.search(self.log())
            if match:
                return int(match.group(2))
            if self.proc.poll() is not None:
                raise AssertionError("genisys exited with %s before listening:\n%s"
                                     % (self.proc.returncode, self.log()))
            return None
        self.port = wait_for(listening, timeout=timeout, message="genisys to listen")
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
