"""A lab for end-to-end tests: a real genisys, a real process connector, and a
service whose processes carry a marker unique to the test, so that tests count
what really runs (as `ps` would), not what anyone reports."""

import json
import re
import sys
import uuid

from tests.support import find_processes, free_port, wait_for

#: Fast loops for tests: resync every 0.5 s, retries from 0.1 s up to 1 s.
FAST = ["--poll-interval", "500ms", "--backoff-initial", "100ms", "--backoff-max", "1s",
        "--connector-timeout", "2s", "--connector-connect-timeout", "1s"]


#: A process connector's log lines about a process of a service beginning (started,
#: adopted, found in /proc) and ending (stopped, or seen to have exited or been killed).
_BEGAN = re.compile(r"\b(?:started|adopted|found) process (\d+) of ([\w.-]+)")
_ENDED = re.compile(r"\bstopped process (\d+) of ([\w.-]+)"
                    r"|\bprocess (\d+) of ([\w.-]+) (?:exited|killed)")


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
        #: Every connector started, in order (one at a time: they share the port).
        self.connectors = []

    def start_the_connector(self, *args):
        self.connector = self.start_connector(
            "--port", str(self.connector_port), "--services", str(self.services_file),
            "--grace-period", "2s", *args, state_dir=self.state_dir)
        self.connectors.append(self.connector)
        return self.connector

    def most_alive(self, service="web"):
        """The most processes of ``service`` alive at once, by the connectors' own logs.

        Each start is logged as it happens and each exit only once it is seen, so
        this is never less than the truth: an overshoot, however brief, is in it."""
        alive, most = set(), 0
        for connector in self.connectors:
            for line in connector.log().splitlines():
                began, ended = _BEGAN.search(line), _ENDED.search(line)
                if began and began.group(2) == service:
                    alive.add(int(began.group(1)))
                    most = max(most, len(alive))
                elif ended and service in ended.groups():
                    alive.discard(int(ended.group(1) or ended.group(3)))
        return most

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
