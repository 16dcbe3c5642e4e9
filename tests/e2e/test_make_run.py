"""`make run` itself: genisys and the process connector together, real processes,
and Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops
both and leaves nothing behind."""

import os
import signal
import subprocess

import requests

from tests.support import ROOT, find_processes, free_port, wait_for


def processes_of(state_dir):
    """Live processes started by the connector owning ``state_dir``."""
    return find_processes(environ="GENISYS_CONNECTOR_STATE_DIR=%s"
                          % os.path.realpath(state_dir))


def test_make_run_serves_converges_and_ctrl_c_stops_everything(tmp_path):
    api_port, connector_port = free_port(), free_port()
    computes = tmp_path / "computes.py"
    computes.write_text('local = {"name": "local", "connector": "http://127.0.0.1:%d"}\n'
                        % connector_port)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("compute.yaml", "web.yaml"):  # the example manifests, on this test's port
        with open(os.path.join(ROOT, "manifests", "local", name)) as f:
            (manifests / name).write_text(f.read().replace(":7051", ":%d" % connector_port))
    state_dir = str(tmp_path / "connector")
    env = dict(os.environ, GENISYS_PORT=str(api_port), GENISYS_COMPUTE_FILE=str(computes),
               GENISYS_STORE="sqlite:///%s/genisys.db" % tmp_path, GENISYS_POLL_INTERVAL="1s")
    env.pop("GENISYS_CONFIG", None)
    env.pop("MAKEFLAGS", None)
    log_path = tmp_path / "make-run.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(["make", "-s", "run", "CONNECTOR_PORT=%d" % connector_port,
                                 "CONNECTOR_STATE=%s" % state_dir, "MANIFESTS=%s" % manifests],
                                cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        wait_for(lambda: "genisys listening on" in log_path.read_text()
                 and "connector listening on" in log_path.read_text(), timeout=60,
                 message="make run to start both servers")
        url = "http://127.0.0.1:%d" % api_port

        def converged(number):
            r = requests.get(url + "/service/web", timeout=30)
            entry = r.json()["status"]["computes"].get("local", {}) if r.ok else {}
            return entry.get("condition") == "Converged" and entry.get("running") == number \
                and len(processes_of(state_dir)) == number
        # The demo manifest asks for 2 web processes; an edit of it is followed.
        wait_for(lambda: converged(2), timeout=30, message="2 web processes")
        web = manifests / "web.yaml"
        web.write_text(web.read_text().replace("local: 2", "local: 3"))
        wait_for(lambda: converged(3), timeout=30, message="3 web processes")
        servers = processes_of(state_dir)
        with open("/proc/%d/cmdline" % servers[0], "rb") as f:
            assert b"http.server" in f.read()

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C
        make.wait(timeout=60)
        assert processes_of(state_dir) == []
        wait_for(lambda: find_processes(pgid=make.pid) == [], timeout=30,
                 message="genisys and the connector to exit")
        log = log_path.read_text()
        assert "INFO genisys: stopped" in log and "INFO genisys.connector: stopped" in log
    finally:
        for pid in find_processes(pgid=make.pid) + processes_of(state_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if make.poll() is None:
            make.kill()
            make.wait()
