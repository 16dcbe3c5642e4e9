"""``genisys get services -w``, the real command as a process against a real genisys: the
table, then a line for each change made through the API, and a clean stop on Ctrl-C."""

import os
import queue
import signal
import subprocess
import sys
import threading

import pytest

from tests.support import GENISYS_PY, wait_for

TOKEN = "get-watch-admin-token-0123456789"


class Watcher:
    """``genisys get services -w ...`` running, its stdout read line by line."""

    def __init__(self, genisys, *args, env=None):
        full_env = dict(os.environ, **(env or {}))
        full_env.pop("GENISYS_CONFIG", None)
        self.proc = subprocess.Popen(
            [sys.executable, GENISYS_PY, "get", "services", *args, "-w",
             "--server", genisys.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=full_env)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_lines(self, count, message):
        """Wait until ``count`` lines were printed in all; returns them."""
        def enough():
            while not self._queue.empty():
                self.lines.append(self._queue.get())
            return len(self.lines) >= count
        wait_for(enough, timeout=20, message="%s (printed so far: %r)" % (message, self.lines))
        return self.lines

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def watchers():
    started = []

    def start(genisys, *args, env=None):
        watcher = Watcher(genisys, *args, env=env)
        started.append(watcher)
        return watcher
    yield start
    for watcher in started:
        watcher.stop()


def columns(line):
    return line.split()


def test_a_line_for_each_change_then_ctrl_c_stops_it_cleanly(start_genisys, watchers):
    genisys = start_genisys("--poll-interval", "500ms")
    r = genisys.request("PUT", "/compute/local", json={"connector": "http://127.0.0.1:9"})
    assert r.status_code == 201
    assert genisys.request("PUT", "/service/web", json={"replicas": {"local": 1}}).ok
    watcher = watchers(genisys)
    header, row = watcher.wait_lines(2, "the table")[:2]
    assert columns(header) == ["NAME", "TOTAL", "PLACEMENT", "COMPUTE", "DESIRED", "RUNNING",
                               "CONDITION", "AGE"]
    assert columns(row)[:5] == ["web", "1", "-", "local", "1"]

    # Each change through the API is a line (and the reconciler's status writes may add
    # lines of their own: the test looks for the ones the changes must print).
    assert genisys.request("POST", "/service/web/upscale", json={"compute": "local"}).ok
    wait_for(lambda: any(columns(line)[:5] == ["web", "2", "-", "local", "2"]
                         for line in watcher.wait_lines(3, "the upscale")),
             timeout=20, message="a line for web at 2")
    assert genisys.request("PUT", "/service/db", json={"replicas": 4}).ok
    wait_for(lambda: any(columns(line)[:3] == ["db", "4", "Spread:"]
                         for line in watcher.wait_lines(4, "the new service")),
             timeout=20, message="a line for db")
    assert genisys.request("DELETE", "/service/db").ok
    # Marked for deletion (its connector is not there: the reconciler cannot finish it).
    wait_for(lambda: any(columns(line)[0] == "db" and "(deleting)" in line
                         for line in watcher.wait_lines(5, "the deletion")),
             timeout=20, message="db (deleting)")

    watcher.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert watcher.proc.wait(timeout=20) == 0
    stderr = watcher.proc.stderr.read()
    assert "Traceback" not in stderr and stderr == ""


def test_a_name_watches_that_service_and_errors_are_one_line(start_genisys, watchers):
    genisys = start_genisys(env={"GENISYS_TOKEN": TOKEN})
    auth = {"Authorization": "Bearer " + TOKEN}
    r = genisys.request("PUT", "/compute/local", json={"connector": "http://127.0.0.1:9"},
                        headers=auth)
    assert r.status_code == 201
    for name in ("web", "web-2"):
        r = genisys.request("PUT", "/service/" + name, json={"replicas": {"local": 1}},
                            headers=auth)
        assert r.status_code == 201
    watcher = watchers(genisys, "web", env={"GENISYS_TOKEN": TOKEN})
    lines = watcher.wait_lines(2, "the table of web")
    assert [columns(line)[0] for line in lines] == ["NAME", "web"]
    r = genisys.request("POST", "/service/web-2/upscale", json={"compute": "local"},
                        headers=auth)
    assert r.status_code == 202
    r = genisys.request("POST", "/service/web/upscale", json={"compute": "local"},
                        headers=auth)
    assert r.status_code == 202
    lines = watcher.wait_lines(3, "web at 2")
    assert all(columns(line)[0] == "web" for line in lines[1:])

    refused = watchers(genisys, env={"GENISYS_TOKEN": ""})
    assert refused.proc.wait(timeout=20) == 1
    assert refused.proc.stderr.read().startswith(
        "genisys: Authorization: this request needs a token")
