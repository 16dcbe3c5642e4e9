"""A lab for end-to-end tests: a real genisys, a real process connector, and a
service whose processes carry a marker unique to the test, so that tests count
what really runs (as `ps` would), not what anyone reports."""

import json
import sys
import threading
import uuid

from tests.support import find_processes, free_port, wait_for

#: Fast loops for tests: resync every 0.5 s, retries from 0.1 s up to 1 s.
FAST = ["--poll-interval", "500ms", "--backoff-initial", "100ms", "--backoff-max", "1s",
        "--connector-timeout", "2s", "--connector-connect-timeout", "1s"]


def processes(marker):
    """Pids of live processes whose command line has ``marker``."""
    return find_processes(cmdline=marker)


class Lab:
    """genisys + a process connector + a service definition with a marker."""

    def __init__(self, tmp_path, start_genisys, start_connector):
        self.tmp_path = tmp_path
        self.start_genisys = start_genisys
        self.start_connector = start_connector
        self.marker = "genisys-test-%s" % uuid.uuid4().hex[:12]
        self.state_dir = str(tmp_path / "connector-state")
        self.connector_port = free_port()
        self.services_file = tmp_path / "services.json"
        self.services_file.write_text(json.dumps([{
            "name": "web",
            "command": [sys.executable, "-c", "import time; time.sleep(3600)", self.marker],
        }]))
        self.genisys = None
        self.connector = None

    def start_the_connector(self, *args):
        self.connector = self.start_connector(
            "--port", str(self.connector_port), "--services", str(self.services_file),
            "--grace-period", "2s", *args, state_dir=self.state_dir)
        return self.connector

    def start(self, *args):
        self.genisys = self.start_genisys(*FAST, *args)
        r = self.genisys.request("PUT", "/compute/local",
                                 json={"connector": "http://127.0.0.1:%d" % self.connector_port})
        assert r.status_code in (200, 201), r.text
        return self.genisys

    def scale(self, number, service="web"):
        r = self.genisys.request("POST", "/service/%s/scale" % service,
                                 json={"compute": "local", "number": number})
        assert r.status_code == 202, r.text

    def entry(self, service="web"):
        r = self.genisys.request("GET", "/service/" + service)
        if r.status_code != 200:
            return None
        return r.json()["status"]["computes"].get("local")

    def converged(self, number, service="web"):
        def check():
            entry = self.entry(service)
            return (entry and entry["condition"] == "Converged" and entry["running"] == number
                    and len(processes(self.marker)) == number)
        wait_for(check, timeout=30, interval=0.05,
                 message="%s converged at %d (status %s, processes %s)"
                 % (service, number, self.entry(service), processes(self.marker)))
        return processes(self.marker)


class Sampler:
    """Counts the marked processes in the background; remembers the most seen."""

    def __init__(self, marker):
        self.marker = marker
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.most = max(self.most, len(processes(self.marker)))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
