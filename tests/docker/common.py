"""Helpers of the Docker connector tests: the private engine, the test image, waiting."""

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time

import docker
import docker.errors
import requests.exceptions

from tests.support import find_processes, wait_for

#: The image every test runs; its default command stops at once on SIGTERM.
IMAGE = "genisys-test/busybox:1"
#: Where busybox-static puts its binary.
BUSYBOX = "/bin/busybox"
#: The image's default command: waits for SIGTERM, then exits 0.
SERVE_SCRIPT = b"#!/bin/sh\ntrap 'exit 0' TERM\nsleep 3600 &\nwait\n"
#: A command that only SIGKILL stops: PID 1 in its namespace ignores SIGTERM.
IGNORES_SIGTERM = ["sleep", "3600"]
#: The label every container of a connector carries.
CONNECTOR_LABEL = "genisys.connector"


class EngineUnavailable(Exception):
    """The private engine can't run here (no dockerd, not root, it did not start)."""


def dockerd():
    return shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.access("/usr/sbin/dockerd",
                                                                        os.X_OK) else None)


class DockerEngine:
    """A private ``dockerd`` under ``root``: ``start()``, ``stop()``, ``url``, ``api``."""

    def __init__(self, root):
        self.root = root
        self.socket = os.path.join(root, "docker.sock")
        self.url = "unix://" + self.socket
        self.log_path = os.path.join(root, "dockerd.log")
        #: In the command line of dockerd, its containerd and every shim, and of nothing
        #: else (a connector's mentions only the socket).
        self.exec_root = os.path.join(root, "exec")
        self.proc = None
        self._api = None

    def start(self, timeout=60.0):
        config = os.path.join(self.root, "daemon.json")
        with open(config, "w") as f:
            f.write("{}\n")  # not /etc/docker/daemon.json, whatever it says
        args = [dockerd(), "--config-file", config,
                "--data-root", os.path.join(self.root, "data"),
                "--exec-root", self.exec_root,
                "--pidfile", os.path.join(self.root, "dockerd.pid"),
                "-H", self.url, "--storage-driver", "vfs",
                "--iptables=false", "--ip-masq=false", "--bridge=none"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None:
                raise EngineUnavailable("dockerd exited with %s at start:\n%s"
                                        % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise EngineUnavailable("dockerd did not answer within %.0fs:\n%s"
                                        % (timeout, self.log_tail()))
            time.sleep(0.05)
        return self

    def answers(self):
        if not os.path.exists(self.socket):
            return False
        try:
            return self.api.ping()
        except (requests.exceptions.RequestException, docker.errors.DockerException):
            return False

    @property
    def api(self):
        if self._api is None:
            self._api = docker.APIClient(base_url=self.url, version="auto", timeout=30)
        return self._api

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0):
        """Stop dockerd (which stops its containers and its containerd), then whatever of
        it is left."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _ in range(5):
            leftovers = self.processes()
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not leftovers:
                break
            time.sleep(0.1)

    def processes(self):
        """Pids of dockerd, its containerd and the containers' shims."""
        return find_processes(cmdline=self.exec_root)

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def import_image(self):
        """Load IMAGE: busybox, its sh and sleep, and /bin/serve as the default command."""
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            with open(BUSYBOX, "rb") as f:
                add_file(tar, "bin/busybox", f.read())
            add_file(tar, "bin/serve", SERVE_SCRIPT)
            for applet in ("sh", "sleep", "true", "cat"):
                link = tarfile.TarInfo("bin/" + applet)
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        repository, tag = IMAGE.rsplit(":", 1)
        self.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag,
                                        changes=['CMD ["/bin/serve"]'])

    # -- what the tests look at ---------------------------------------------------------

    def containers(self, connector_id, service=None, *, running=True):
        """What `docker ps` shows of a connector's containers (of ``service`` only, if given;
        every state unless ``running``)."""
        labels = ["%s=%s" % (CONNECTOR_LABEL, connector_id)]
        if service is not None:
            labels.append("genisys.service=%s" % service)
        filters = {"label": labels}
        if running:
            filters["status"] = "running"
        return self.api.containers(all=not running, filters=filters)

    def remove_test_containers(self):
        """Remove (killing) every container any connector created."""
        for entry in self.api.containers(all=True, filters={"label": CONNECTOR_LABEL}):
            try:
                self.api.remove_container(entry["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass


def add_file(tar, name, data, mode=0o755):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def wait_running(engine, connector_id, number, service=None, timeout=20.0):
    """Wait until exactly ``number`` containers of the connector (and service) run; them."""
    def check():
        found = engine.containers(connector_id, service)
        return (found,) if len(found) == number else None
    try:
        return wait_for(check, timeout=timeout, interval=0.05)[0]
    except AssertionError:
        running = [c["Names"][0] for c in engine.containers(connector_id, service)]
        raise AssertionError("timed out after %.0fs waiting for %d running container(s) of %s; "
                             "running: %s" % (timeout, number, service or connector_id,
                                              running)) from None
