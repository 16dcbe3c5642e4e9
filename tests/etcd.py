"""Real etcd processes for the tests: members on free loopback ports, temporary data.

Never a system etcd: every member is started here, with its own data directory,
ports and cluster token, and killed by the fixture that started it. Without an
``etcd`` binary the tests that need one are skipped with a message saying how to
get it (under CI, tests/conftest.py makes that a failure).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from tests.support import free_port, wait_for


def etcd_binary():
    """The etcd binary, or skip the test."""
    path = shutil.which("etcd")
    if path is None:
        pytest.skip("etcd is not installed: run `bash scripts/ensure-etcd.sh` "
                    "(Debian's etcd-server) to run the etcd tests")
    return path


class EtcdMember:
    def __init__(self, name, workdir, *, token):
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = os.path.join(workdir, name + ".etcd")
        self.log_path = os.path.join(workdir, name + ".log")
        self.token = token
        self.proc = None
        self.paused = False

    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def client_url(self):
        return "http://" + self.endpoint

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def start(self, initial_cluster):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        args = [etcd_binary(), "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", self.token,
                "--initial-cluster-state", "new",
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                "--logger", "zap", "--log-level", "warn"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        return self

    def healthy(self):
        try:
            r = requests.get(self.client_url + "/health", timeout=1)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def pause(self):
        """SIGSTOP: the member keeps its sockets but answers nothing (a stall)."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.paused and self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


class EtcdCluster:
    """``size`` members on loopback, each with a fresh data directory."""

    def __init__(self, size=1, workdir=None):
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="genisys-etcd-")
        os.makedirs(self.workdir, exist_ok=True)
        token = "genisys-test-" + uuid.uuid4().hex[:12]
        self.members = [EtcdMember("m%d" % i, self.workdir, token=token) for i in range(size)]

    def start(self, timeout=30.0):
        initial = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        for member in self.members:
            member.start(initial)
        try:
            wait_for(self._ready, timeout=timeout, interval=0.05, message="etcd to be healthy")
        except AssertionError:
            logs = "\n".join("--- %s\n%s" % (m.name, m.log()[-3000:]) for m in self.members)
            self.stop()
            raise AssertionError("etcd did not become healthy:\n" + logs) from None
        return self

    def _ready(self):
        for member in self.members:
            if not member.alive():
                raise AssertionError("etcd %s exited:\n%s" % (member.name, member.log()[-3000:]))
        return all(m.healthy() for m in self.members)

    def url(self, prefix=None, members=None):
        """The store URL of ``members`` (default: all), keys under ``prefix``."""
        members = self.members if members is None else members
        return "etcd://" + ",".join(m.endpoint for m in members) + \
            ("/" + prefix if prefix else "")

    def stop(self):
        for member in self.members:
            member.resume()
            member.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def unique_prefix():
    return "test-%s-%s" % (int(time.time()), uuid.uuid4().hex[:8])
