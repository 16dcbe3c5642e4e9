"""Real etcd processes for the tests: members on free loopback ports, temporary data.

Never a system etcd: every member is started here, with its own data directory,
ports and cluster token, and killed by the fixture that started it. A cluster may
serve clients over TLS only, asking each for a certificate (``EtcdTLS``: a
throwaway CA from trustme), and may have etcd's authentication on
(``EtcdCluster.enable_auth``: users and roles made through its JSON gateway). Without an
``etcd`` binary the tests that need one are skipped with a message saying how to
get it (under CI, tests/conftest.py makes that a failure).
"""

import base64
import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests
import trustme

from genisys.store.etcd_client import EtcdSecurity
from tests.support import free_port, wait_for


def etcd_binary():
    """The etcd binary, or skip the test."""
    path = shutil.which("etcd")
    if path is None:
        pytest.skip("etcd is not installed: run `bash scripts/ensure-etcd.sh` "
                    "(Debian's etcd-server) to run the etcd tests")
    return path


class EtcdTLS:
    """A throwaway CA and, signed by it, the members' certificate (for 127.0.0.1) and a
    client certificate genisys shows, as PEM files in ``workdir``."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem)
        self.server_cert, self.server_key = self.issue("server", "127.0.0.1", "localhost")
        self.client_cert, self.client_key = self.issue("client", "genisys-client")

    def _write(self, name, blob):
        path = os.path.join(self.workdir, name)
        blob.write_to_path(path)
        return path

    def issue(self, name, *identities, ca=None, expired=False):
        """(certificate file, key file) of a new certificate for ``identities``, signed by
        ``ca`` (default: this one); ``expired``: its validity ended yesterday."""
        kwargs = {}
        if expired:
            now = datetime.datetime.now(datetime.timezone.utc)
            kwargs = {"not_before": now - datetime.timedelta(days=30),
                      "not_after": now - datetime.timedelta(days=1)}
        cert = (ca or self.ca).issue_cert(*identities, **kwargs)
        return (self._write(name + ".pem", cert.cert_chain_pems[0]),
                self._write(name + ".key", cert.private_key_pem))

    def flags(self, cert=None, key=None, ca_file=None):
        """genisys serve's flags to talk to the cluster with a client certificate."""
        return ["--etcd-ca-file", ca_file or self.ca_file,
                "--etcd-cert-file", cert or self.client_cert,
                "--etcd-key-file", key or self.client_key]

    def requests_kwargs(self):
        return {"verify": self.ca_file, "cert": (self.client_cert, self.client_key)}


def _b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def prefix_range_end(prefix):
    """etcd's range_end of every key starting with ``prefix`` (ASCII), as text."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class EtcdMember:
    def __init__(self, name, workdir, *, token, tls=None, args=()):
        self.name = name
        self.tls = tls
        self.args = list(args)
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
        return ("https://" if self.tls else "http://") + self.endpoint

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
        args += self.args
        if self.tls:
            args += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                     "--client-cert-auth", "--trusted-ca-file", self.tls.ca_file]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        return self

    def healthy(self):
        try:
            r = requests.get(self.client_url + "/health", timeout=1, **self.requests_kwargs())
            return r.status_code == 200 and r.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def requests_kwargs(self):
        return self.tls.requests_kwargs() if self.tls else {}

    def call(self, path, body, token=None):
        """POST ``body`` to the member's JSON gateway; the decoded answer (raises on an
        error answer)."""
        r = requests.post(self.client_url + path, json=body, timeout=5,
                          headers={"Authorization": token} if token else {},
                          **self.requests_kwargs())
        assert r.status_code == 200, "%s: %s %s" % (path, r.status_code, r.text)
        return r.json()

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
        """SIGSTOP: the member keeps its sockets but answers nothing (a stall). Returns
        once every thread of it has stopped: the signal takes effect a little later
        than it is sent, and on a busy machine a member still running then answered
        the request sent right after (1 time in 40 beside three busy loops)."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + 10.0
        while not self._stopped():
            if time.monotonic() > deadline:
                raise AssertionError("etcd member %s did not stop within 10 s of SIGSTOP"
                                     % self.name)
            time.sleep(0.001)

    def _stopped(self):
        """True when every thread of the member is stopped (state T), or it is gone."""
        tasks = "/proc/%d/task" % self.proc.pid
        try:
            threads = os.listdir(tasks)
        except FileNotFoundError:
            return True
        for tid in threads:
            try:
                with open("%s/%s/stat" % (tasks, tid), "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except FileNotFoundError:
                continue  # a thread that just ended
            if state not in (b"T", b"t", b"Z", b"X"):  # stopped, or dead
                return False
        return True

    def resume(self):
        if self.paused and self.alive():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False


class EtcdCluster:
    """``size`` members on loopback, each with a fresh data directory."""

    def __init__(self, size=1, workdir=None, *, tls=False, args=()):
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="genisys-etcd-")
        os.makedirs(self.workdir, exist_ok=True)
        token = "genisys-test-" + uuid.uuid4().hex[:12]
        self.tls = EtcdTLS(self.workdir) if tls else None
        self.members = [EtcdMember("m%d" % i, self.workdir, token=token, tls=self.tls,
                                   args=args) for i in range(size)]
        #: name -> password of the users enable_auth made.
        self.users = {}

    def start(self, timeout=30.0):
        for member in self.members:
            member.start(self._initial())
        try:
            wait_for(self._ready, timeout=timeout, interval=0.05, message="etcd to be healthy")
        except AssertionError:
            logs = "\n".join("--- %s\n%s" % (m.name, m.log()[-3000:]) for m in self.members)
            self.stop()
            raise AssertionError("etcd did not become healthy:\n" + logs) from None
        return self

    def _initial(self):
        return ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)

    def restart(self, member, timeout=30.0):
        """Kill ``member`` and start it again on its data: it forgets every token."""
        member.kill()
        member.start(self._initial())
        wait_for(member.healthy, timeout=timeout, interval=0.05,
                 message="etcd %s to be healthy again" % member.name)

    def _ready(self):
        for member in self.members:
            if not member.alive():
                raise AssertionError("etcd %s exited:\n%s" % (member.name, member.log()[-3000:]))
        return all(m.healthy() for m in self.members)

    def url(self, prefix=None, members=None):
        """The store URL of ``members`` (default: all), keys under ``prefix``."""
        members = self.members if members is None else members
        return ("etcd+https://" if self.tls else "etcd://") + \
            ",".join(m.endpoint for m in members) + ("/" + prefix if prefix else "")

    def enable_auth(self, users):
        """Turn etcd's authentication on, with a root user and ``users``: {name: (permType
        or None, key prefix)}, each with a role of its own that may do ``permType`` (READ,
        WRITE, READWRITE) on the keys starting with that prefix. Passwords go to
        ``self.users``; returns root's token, for the test's own calls."""
        member = self.members[0]
        self.users["root"] = "root-" + uuid.uuid4().hex
        member.call("/v3/auth/user/add", {"name": "root", "password": self.users["root"]})
        member.call("/v3/auth/user/grant", {"user": "root", "role": "root"})
        for name, (permission, prefix) in users.items():
            self.users[name] = "pw-" + uuid.uuid4().hex
            member.call("/v3/auth/role/add", {"name": name + "-role"})
            if permission:
                member.call("/v3/auth/role/grant", {"name": name + "-role", "perm": {
                    "permType": permission, "key": _b64(prefix),
                    "range_end": _b64(prefix_range_end(prefix))}})
            member.call("/v3/auth/user/add", {"name": name, "password": self.users[name]})
            member.call("/v3/auth/user/grant", {"user": name, "role": name + "-role"})
        member.call("/v3/auth/enable", {})
        self.root_token = wait_for(lambda: self.token("root"), timeout=10,
                                   message="etcd to take root's password")
        return self.root_token

    def security(self, user=None, **changes):
        """The EtcdSecurity of a store on this cluster: its TLS files (if it has TLS),
        as ``user`` (one of ``users``) if given; ``changes`` replace fields."""
        tls = self.tls
        fields = {"tls": True, "ca_file": tls.ca_file, "cert_file": tls.client_cert,
                  "key_file": tls.client_key} if tls else {}
        if user is not None:
            fields.update(user=user, password=self.users[user])
        fields.update(changes)
        return EtcdSecurity(**fields)

    def token(self, user):
        """A token of ``user`` (one of ``users``), or None if etcd refuses."""
        try:
            return self.members[0].call("/v3/auth/authenticate",
                                        {"name": user, "password": self.users[user]})["token"]
        except AssertionError:
            return None

    def stop(self):
        for member in self.members:
            member.resume()
            member.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def unique_prefix():
    return "test-%s-%s" % (int(time.time()), uuid.uuid4().hex[:8])
